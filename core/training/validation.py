"""Each epoch's end: learned interests follow the item embeddings, the validation users are ranked
against the full catalogue (the reports' protocol), how much that score moves by chance (early
stopping's noise), and how long the pass takes (what the time plan keeps room for)."""

from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np

from core.data.histories import Histories
from core.data.splits import Split
from core.distributed import SOLO, Team
from core.evaluation import per_user_metric, ranks_for
from core.pipeline import NeuralScorer, SequenceModel
from core.predictor import cluster_items
from core.progress import CancelToken
from core.scorer import Scorer
from core.training import TrainConfig

# Validation users scored together: the evaluation's batch. 512 users' scores are 410 MB at 200,000 items, on
# top of everything training holds, and were no faster a user (2.34 vs 2.32 ms, paired, load 8).
VALIDATION_BATCH = 256
# Validation users timed for the estimate: whole batches of the real pass's size, enough users that their
# histories' lengths average out (256 users timed 18 s for a 27.6 s epoch end at 25M events).
VALIDATION_SAMPLE = 4 * VALIDATION_BATCH
NOISE_SHARE = 0.5  # of the validation NDCG@10's standard error an epoch must gain to reset patience


def timed_validation(model: SequenceModel, split: Split, config: TrainConfig,
                     cancel: Optional[CancelToken] = None) -> float:
    """Seconds a validation pass of ``model`` takes, timed on a seeded sample of the validation users
    (not the first ones: users' order can follow their activity) in the real pass's batches and scaled
    to all of them. Leaves ``model`` in training mode."""
    sample = np.sort(np.random.default_rng(config.seed).permutation(len(split.valid))[:VALIDATION_SAMPLE])
    began = time.perf_counter()
    if len(sample):
        validation_ranks(NeuralScorer(model.eval(), config.model), split, cancel, users=sample)
    model.train()
    return (time.perf_counter() - began) * len(split.valid) / max(len(sample), 1)


def recluster_interests(model: SequenceModel, config: TrainConfig) -> None:
    """Learned interests follow the item embeddings as they train (warm-started k-means)."""
    item_interest = model.predictor.item_interest
    table = model.item_table().detach()
    clusters = cluster_items(table, config.interest_clusters, config.seed, previous=item_interest)
    item_interest.copy_(clusters.to(item_interest.device))


def follow_interests(model: SequenceModel, config: TrainConfig, has_categories: bool, team: Team = SOLO) -> None:
    """After an epoch's steps, learned interests (a log without categories) follow the item embeddings. The
    estimate times it with the validation pass: the steps' deadline keeps room for both."""
    if not has_categories:
        recluster_interests(model, config)
        team.copy_from_leader(model.predictor.item_interest)


def validation_ranks(scorer: Scorer, split: Split, cancel: Optional[CancelToken] = None,
                     users: Optional[np.ndarray] = None) -> np.ndarray:
    """Full-catalogue rank of each validation target under the split's evaluation mode (the protocol of the
    reports), for all validation users or those at ``users``."""
    valid = split.valid
    histories, targets = valid.histories, valid.targets
    if users is not None:
        histories, targets = Histories.of(histories)[users], np.asarray(targets)[users]
    return ranks_for(scorer, histories, targets, history_masked=valid.eval_mode.masks_history,
                     batch_size=VALIDATION_BATCH, cancel=cancel)


def validation_noise(ranks: np.ndarray) -> float:
    """How much validation NDCG@10 moves by chance: a share of its standard error over these users.

    On a few hundred users it jumps by about that much between epochs without any real
    progress; counting such jumps as improvements would keep early stopping from ever ending.
    """
    if len(ranks) < 2:
        return 0.0
    per_user = per_user_metric(ranks, "ndcg@10")
    return NOISE_SHARE * float(per_user.std(ddof=1)) / math.sqrt(len(per_user))
