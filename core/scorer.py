"""The one interface every recommender in the engine offers, neural or baseline.

Evaluation, candidate generation, bundles and the engine facade only ever see a ``Scorer``;
that is what lets a popularity baseline and the Transformer be trained, compared, saved and
served by the same code.
"""

from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Scorer(Protocol):
    """Scores the whole catalogue for a batch of users given their histories.

    Item indices follow ``core.data.SequenceData``: 0 is padding, 1..n_items are items.
    """

    name: str

    def score(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> torch.Tensor:
        """(batch, n_items + 1) float scores; column 0 is -inf. ``segments`` = profile segment per user.

        A new tensor every call, which the caller may mask in place: at 1M items a defensive
        copy of each answer would cost a user's request about 0.4 ms.
        """
        ...

    def interests(self, history: np.ndarray) -> Optional[np.ndarray]:
        """Predicted next-interest probabilities (n_interests,), or None when the scorer has no notion of them."""
        ...

    def interests_batch(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> np.ndarray:
        """(batch, n_interests) float probabilities in one pass; a row of zeros where none is known.

        The width is fixed for a scorer (its interest vocabulary) whatever the histories; the
        ranker and serving ask for whole batches. ``segments`` as for ``score``.
        """
        ...

    def attributions(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(len(items), len(history)) non-negative weights: how much each history event drove each item."""
        ...

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything needed to rebuild the scorer, as tensors, for a safetensors bundle."""
        ...

    def text_vectors(self) -> Optional[torch.Tensor]:
        """(n_items + 1, d) the unit text vectors of the items this scorer reads (the re-ranker's text
        features read the same ones), or None when it reads no item text."""
        ...


class WrappedScorer:
    """Base of the scorers that change only how another one scores (the served pipeline's
    re-ranker, the cold-start routing): interests, attributions and saved state stay the
    wrapped scorer's, written once here."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.name = scorer.name

    def interests(self, history: np.ndarray) -> Optional[np.ndarray]:
        return self.scorer.interests(history)

    def interests_batch(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> np.ndarray:
        return self.scorer.interests_batch(histories, segments)

    def attributions(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.scorer.attributions(history, items)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return self.scorer.state_tensors()

    def text_vectors(self) -> Optional[torch.Tensor]:
        return self.scorer.text_vectors()
