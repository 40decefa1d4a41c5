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


class CatalogueHead(nn.Module):
    """hidden (N, d) + interest logits (N, K) -> item logits (N, n_items + 1) or for a subset."""

    def __init__(self) -> None:
        super().__init__()
        self.interest_scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, hidden: torch.Tensor, interest_logits: torch.Tensor, item_interest: torch.Tensor,
                embeddings: ItemEmbeddings, items: Optional[torch.Tensor] = None,
                keys: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scores of ``items`` (default: every item index, column 0 included) for each row.

        ``embeddings`` is the encoder's input table (tied), passed in rather than owned so the
        weights exist once in the state dict. ``keys`` = ``self.keys(...)`` computed once by a
        caller that scores a frozen model many times (serving), instead of on every call.
        """
        if keys is None:
            keys = self.keys(item_interest, embeddings, interest_logits.shape[1], items)
        return self.queries(hidden, interest_logits, keys) @ keys.T  # (N, n_scored)

    @staticmethod
    def keys(item_interest: torch.Tensor, embeddings: ItemEmbeddings, n_interests: int,
             items: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Item side of the score: (n_scored, d) embeddings, plus K one-hot interest columns when items have interests.

        The interest-match term rides along in the same matrix product: [h, s*p] . [E, onehot].
        """
        table = embeddings.table() if items is None else embeddings(items)
        interest = item_interest if items is None else item_interest[items]
        if not bool((interest != NO_INTEREST).any()):
            return table
        onehot = nn.functional.one_hot(interest.clamp(min=0), n_interests) * (interest != NO_INTEREST).unsqueeze(1)
        return torch.cat([table, onehot.to(table.dtype)], dim=1)  # (n_scored, d + K)

    def queries(self, hidden: torch.Tensor, interest_logits: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """User side of the score, shaped to match ``keys``: (N, d) or (N, d + K)."""
        if keys.shape[1] == hidden.shape[1]:
            return hidden
        probs = interest_logits.softmax(dim=-1).to(hidden.dtype)  # (N, K)
        return torch.cat([hidden, self.interest_scale.to(hidden.dtype) * probs], dim=1)


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
