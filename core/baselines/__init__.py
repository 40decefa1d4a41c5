"""Non-neural recommenders behind the same ``Scorer`` interface as the sequence models.

They are the yardsticks every trained model is compared with, the cold-start fallback
(popularity within a profile segment) and a way to serve something useful seconds after
an import. All of them fit from a ``TrainLog`` (the training prefixes of a split, never
the held-out targets) in numpy, and rebuild from their ``state_tensors()`` alone.

Each lives in a module of its own (``popularity``, ``item_knn``, ``markov``); ``base`` and
``sparse_rows`` hold what they share, ``train_log`` what they fit from. This package's face is
the registry: ``BASELINES`` by name, ``fit_baseline``.
"""

from __future__ import annotations

from core.baselines.item_knn import ItemKNNScorer
from core.baselines.markov import MarkovScorer
from core.baselines.popularity import PopularityScorer, RecentPopularityScorer
from core.baselines.train_log import TrainLog
from core.scorer import Scorer

BASELINES = {cls.name: cls for cls in (PopularityScorer, RecentPopularityScorer, ItemKNNScorer, MarkovScorer)}


def fit_baseline(name: str, data, split) -> Scorer:
    """Fit the baseline called ``name`` ("pop", "recentpop", "itemknn", "markov") on the split's training prefixes."""
    return fit_baseline_on_log(name, TrainLog.from_split(data, split))


def fit_baseline_on_log(name: str, log: TrainLog) -> Scorer:
    """Fit the baseline called ``name`` on an already-built training log."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    return BASELINES[name].fit(log)
