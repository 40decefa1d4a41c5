"""Generator: scores the whole catalogue from H_t and the predicted interests; picks top-N.

score(item) = <h, E_item> + scale * P(interest of item), where E_item is the item's own
embedding plus its category embedding (tied to the encoder's input table). An item nobody
has interacted with still gets a meaningful score from its category embedding and from the
interest-match term. ``generate_candidates`` turns any ``Scorer``'s scores into top-N lists
with history exclusion, and hands users without history to a fallback scorer (segment
popularity in the product).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from core.chunked_softmax import linear_cross_entropy
from core.encoder import ItemEmbeddings
from core.predictor import NO_INTEREST
from core.scorer import Scorer, WrappedScorer


# Up to this many rows the interest match is gathered per item (serving: about 1 ms at 1M items);
# for training batches a one-hot matrix product is cheaper than an (N, n_items) gather.
GATHER_ROWS = 64


@dataclass(frozen=True)
class Catalogue:
    """What the head needs about the scored items that does not depend on the user.

    Serving builds it once per frozen model: at 1M items the table alone takes 0.5 s, and
    every per-item pass over the interest map (clamp, mask, any) costs about 1 ms a question.
    Training builds it for every batch, since the weights move.
    """

    vectors: torch.Tensor  # (n_scored, d) tied item + category embeddings
    bias: torch.Tensor  # (n_scored,) each item's own score, whatever the history (``CatalogueHead.item_bias``)
    interest_column: torch.Tensor  # (n_scored,) int32 interest index; n_interests = "none" (a zero column)
    has_interests: bool  # False until items are mapped to interests: the match term is then skipped

    @classmethod
    def build(cls, embeddings: ItemEmbeddings, item_bias: torch.Tensor, item_interest: torch.Tensor,
              n_interests: int, items: Optional[torch.Tensor] = None) -> "Catalogue":
        """The whole catalogue (column 0 = padding included), or only ``items`` (sampled softmax)."""
        vectors = embeddings.table() if items is None else embeddings(items)
        bias = item_bias if items is None else item_bias[items]
        interest = item_interest if items is None else item_interest[items]
        known = interest != NO_INTEREST
        column = torch.where(known, interest, n_interests).to(torch.int32)
        return cls(vectors, bias, column, bool(known.any()))


class CatalogueHead(nn.Module):
    """hidden (N, d) + interest logits (N, K) -> item logits (N, n_scored).

    ``item_bias`` is each item's score before the history says anything: training starts it at the
    log's popularity (``core.training.network.popularity_bias``), so a network that has seen a fraction of
    an epoch (a big catalogue on a CPU budget) ranks at least like popularity, and its steps learn
    what the history adds instead of first learning what is popular, one item row at a time.
    """

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.interest_scale = nn.Parameter(torch.tensor(1.0))
        self.item_bias = nn.Parameter(torch.zeros(n_items + 1))

    def forward(self, hidden: torch.Tensor, interest_logits: torch.Tensor, catalogue: Catalogue) -> torch.Tensor:
        """<h, E_item> + bias_item + scale * P(interest of item) for every item of ``catalogue``.

        The scaled probabilities get a zero "no interest" column, so one gather per item gives
        the whole match term, added in place: at 1M items every extra full-width temporary
        costs about as much as the rest of the term.
        """
        logits = torch.addmm(catalogue.bias.to(hidden.dtype), hidden, catalogue.vectors.T)  # (N, n_scored)
        if not catalogue.has_interests:
            return logits
        probs = interest_logits.softmax(dim=-1) * self.interest_scale  # (N, K)
        padded = nn.functional.pad(probs, (0, 1)).to(logits.dtype)  # (N, K + 1), last column = no interest
        if hidden.shape[0] <= GATHER_ROWS:
            return logits.add_(padded.index_select(1, catalogue.interest_column))  # (N, n_scored)
        # One term per product (one-hot rows), so adding it inside the product is exact, and no (N, n_scored)
        # temporary is made: 200 MB per 256 users scored over 200,000 items.
        onehot = nn.functional.one_hot(catalogue.interest_column.long(), padded.shape[1])
        return logits.addmm_(padded, onehot.to(padded.dtype).T)

    def loss(self, hidden: torch.Tensor, interest_logits: torch.Tensor, catalogue: Catalogue,
             targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of ``targets`` (N,) (column indices of ``catalogue``) under ``forward``'s
        logits, without holding them (``core.chunked_softmax``). The interest match is one more product
        (each item's one-hot interest column against the scaled probabilities), so it joins the item
        vectors as extra columns and its gradient reaches the interest head and scale as ``forward``'s does.
        """
        if not catalogue.has_interests:
            return linear_cross_entropy(hidden, catalogue.vectors, catalogue.bias, targets)
        probs = interest_logits.softmax(dim=-1) * self.interest_scale
        padded = nn.functional.pad(probs, (0, 1)).to(hidden.dtype)
        onehot = nn.functional.one_hot(catalogue.interest_column.long(), padded.shape[1]).to(hidden.dtype)
        return linear_cross_entropy(torch.cat([hidden, padded], dim=1), torch.cat([catalogue.vectors, onehot], dim=1),
                                    catalogue.bias, targets)


@dataclass(frozen=True)
class Candidates:
    """Top-N per user; rows with fewer allowed items end in item 0 with score -inf."""

    items: np.ndarray  # (B, n) int64 item indices, best first
    scores: np.ndarray  # (B, n) float32


# A source of candidates besides the scorer's own top-N: (histories, the scorer's scores (B, n_items + 1) with
# every item that may not be served at -inf) -> (B, m) items it proposes, 0 = none. The ranker's item-kNN
# neighbours are one (``core.candidate_sources.neighbour_candidates``).
CandidateSource = Callable[[list[np.ndarray], torch.Tensor], np.ndarray]


def union_candidates(scores: torch.Tensor, proposed: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every item any of the ``proposed`` (B, n_i) item arrays holds, once per row, ordered by ``scores``
    (ties: the first array's order first); (B, sum n_i) items and their scores, padded with item 0 at -inf.

    Ordered by the scorer's own scores, the lists read as its top-N followed by the items the other
    sources add (they scored lower), so the ranker's rank and score features keep their meaning; an
    item at -inf (seen, unreleased) is never a candidate, whoever proposes it.
    """
    items = np.concatenate([np.asarray(p, dtype=np.int64) for p in proposed], axis=1)
    values = scores.gather(1, torch.from_numpy(items)).float().numpy().copy()
    by_item = np.argsort(items, axis=1, kind="stable")
    sorted_items = np.take_along_axis(items, by_item, axis=1)
    repeat = np.zeros(items.shape, dtype=bool)
    np.put_along_axis(repeat, by_item[:, 1:], sorted_items[:, 1:] == sorted_items[:, :-1], axis=1)
    values[repeat | (items == 0)] = -np.inf
    order = np.argsort(-values, axis=1, kind="stable")
    items, values = np.take_along_axis(items, order, axis=1), np.take_along_axis(values, order, axis=1)
    return np.where(np.isneginf(values), 0, items), values


def with_sources(scores: torch.Tensor, top_items: np.ndarray, histories: list[np.ndarray],
                 sources: Sequence[CandidateSource]) -> tuple[np.ndarray, np.ndarray]:
    """``union_candidates`` of a scorer's ``top_items`` and what each of the ``sources`` proposes for
    ``histories`` from the same ``scores``: serving's and the re-ranker's candidates are formed so."""
    return union_candidates(scores, [top_items] + [source(histories, scores) for source in sources])


def mask_seen(scores: torch.Tensor, histories: list[np.ndarray]) -> torch.Tensor:
    """Set every item of each user's history to -inf in place ("exclude seen"); returns ``scores``.

    The evaluation masks with this same function under ``EvalMode.NEW``, so what it scores is
    exactly what this serves.
    """
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    cols = np.concatenate(histories).astype(np.int64) if len(rows) else np.zeros(0, dtype=np.int64)
    scores[torch.as_tensor(rows), torch.as_tensor(cols)] = float("-inf")
    return scores


class ColdStartScorer(WrappedScorer):
    """A scorer whose users without history get ``fallback``'s scores: what the product serves
    them (segment popularity), so evaluation ranks what serving would show, not the network's
    guess from an empty sequence (a time split can hold out many users with no earlier event)."""

    def __init__(self, scorer: Scorer, fallback: Scorer) -> None:
        super().__init__(scorer)
        self.fallback = fallback

    def score(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> torch.Tensor:
        scores = self.scorer.score(histories, segments)
        empty = np.flatnonzero([len(h) == 0 for h in histories])
        if len(empty):
            cold_segments = None if segments is None else np.asarray(segments)[empty]
            cold = self.fallback.score([histories[i] for i in empty], cold_segments)
            scores[torch.as_tensor(empty)] = cold.to(scores.device, scores.dtype)
        return scores


def generate_candidates(scorer: Scorer, histories: list[np.ndarray], n: int = 200, exclude_seen: bool = True,
                        segments: Optional[np.ndarray] = None, fallback: Optional[Scorer] = None,
                        sources: Sequence[CandidateSource] = ()) -> Candidates:
    """Top-``n`` items per user from ``scorer``, with what the other ``sources`` propose (``union_candidates``);
    users with empty history go to ``fallback``.

    Excluded items (seen ones, padding) get -inf and never appear among the candidates; they
    are masked in the scorer's answer itself, which is the caller's to change (``Scorer.score``).
    """
    scorer = scorer if fallback is None else ColdStartScorer(scorer, fallback)
    scores = scorer.score(histories, segments).float()  # (B, n_items + 1)
    scores[:, 0] = float("-inf")
    if exclude_seen:
        mask_seen(scores, histories)
    n = min(n, scores.shape[1] - 1)
    top_scores, top_items = scores.topk(n, dim=1)
    top_items = torch.where(torch.isinf(top_scores) & (top_scores < 0), 0, top_items).cpu().numpy()
    if not sources:
        return Candidates(top_items.astype(np.int64), top_scores.cpu().numpy())
    scores = scores.cpu()
    return Candidates(*with_sources(scores, top_items, histories, sources))
