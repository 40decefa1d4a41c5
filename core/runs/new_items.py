"""Figures on the test targets that are new items: items without an event the models could see."""

from __future__ import annotations

import numpy as np

from core.data.histories import Histories
from core.evaluation import metrics_from_ranks


def known_items(split, n_items: int) -> np.ndarray:
    """(n_items + 1,) bool: items with an event the models could see (training sequences, the
    validation and test histories and validation targets); the others are new at test time."""
    counts = sum(Histories.of(histories).item_counts(n_items)
                 for histories in (split.train, split.valid.histories, split.test.histories))
    counts[np.asarray(split.valid.targets, dtype=np.int64)] += 1
    counts[0] = 0
    return counts > 0


def new_item_figures(test, generator_test, split, n_items: int) -> dict:
    """The served list's and the generator's own figures on new items: the re-ranker's features
    (popularity, co-occurrence) know nothing of new items, the generator reads their text."""
    known = known_items(split, n_items)
    figures = {"new_items": new_item_metrics(test, split.test, known)}
    if generator_test is not None:  # an update measures the served list only
        figures["generator_new_items"] = new_item_metrics(generator_test, split.test, known)
    return figures


def new_item_metrics(report, test_set, known: np.ndarray) -> dict:
    """HR@10 and NDCG@10 over the test targets that are new items (None, not 0, when there are none)."""
    new = ~known[np.asarray(test_set.targets, dtype=np.int64)]
    if not new.any():
        return {"events": 0, "hr@10": None, "ndcg@10": None}
    figures = metrics_from_ranks(report.ranks[new], ks=(10,))
    return {"events": int(new.sum()), "hr@10": figures["hr@10"], "ndcg@10": figures["ndcg@10"]}
