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
from typing import Optional

import numpy as np
import torch
from torch import nn

from core.encoder import ItemEmbeddings
from core.predictor import NO_INTEREST


# Up to this many rows the interest match is gathered per item (serving: 2 ms at 1M items);
# for training batches a one-hot matrix product is cheaper than an (N, n_items) gather.
GATHER_ROWS = 64


class CatalogueHead(nn.Module):
    """hidden (N, d) + interest logits (N, K) -> item logits (N, n_items + 1) or for a subset."""

    def __init__(self) -> None:
        super().__init__()
        self.interest_scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, hidden: torch.Tensor, interest_logits: torch.Tensor, item_interest: torch.Tensor,
                embeddings: ItemEmbeddings, items: Optional[torch.Tensor] = None,
                table: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scores of ``items`` (default: every item index, column 0 included) for each row.

        ``embeddings`` is the encoder's input table (tied), passed in rather than owned so the
        weights exist once in the state dict. ``table`` = ``embeddings.table()`` computed once by
        a caller that scores a frozen model many times (serving), instead of on every call.
        """
        if table is None:
            table = embeddings.table() if items is None else embeddings(items)
        interest = item_interest if items is None else item_interest[items]
        logits = hidden @ table.T  # (N, n_scored)
        known = interest != NO_INTEREST
        if not bool(known.any()):
            return logits
        probs = interest_logits.softmax(dim=-1).to(hidden.dtype)  # (N, K)
        if hidden.shape[0] <= GATHER_ROWS:
            match = probs[:, interest.clamp(min=0)] * known  # (N, n_scored)
        else:
            onehot = nn.functional.one_hot(interest.clamp(min=0), probs.shape[1]) * known.unsqueeze(1)
            match = probs @ onehot.to(probs.dtype).T  # (N, n_scored)
        return logits + self.interest_scale.to(hidden.dtype) * match


@dataclass(frozen=True)
class Candidates:
    """Top-N per user; rows with fewer allowed items end in item 0 with score -inf."""

    items: np.ndarray  # (B, n) int64 item indices, best first
    scores: np.ndarray  # (B, n) float32


def generate_candidates(scorer, histories: list[np.ndarray], n: int = 200, exclude_seen: bool = True,
                        segments: Optional[np.ndarray] = None, fallback=None) -> Candidates:
    """Top-``n`` items per user from ``scorer``; users with empty history go to ``fallback``.

    Excluded items (seen ones, padding) get -inf and never appear among the candidates.
    """
    scores = scorer.score(histories, segments).float().clone()  # (B, n_items + 1)
    empty = np.flatnonzero([len(h) == 0 for h in histories])
    if fallback is not None and len(empty):
        cold_segments = None if segments is None else np.asarray(segments)[empty]
        cold = fallback.score([histories[i] for i in empty], cold_segments).float()
        scores[torch.as_tensor(empty)] = cold.to(scores.device)
    scores[:, 0] = float("-inf")
    if exclude_seen and len(histories):
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        cols = np.concatenate(histories).astype(np.int64)
        scores[torch.as_tensor(rows), torch.as_tensor(cols)] = float("-inf")
    n = min(n, scores.shape[1] - 1)
    top_scores, top_items = scores.topk(n, dim=1)
    top_items = torch.where(torch.isinf(top_scores) & (top_scores < 0), 0, top_items)
    return Candidates(top_items.cpu().numpy().astype(np.int64), top_scores.cpu().numpy())
