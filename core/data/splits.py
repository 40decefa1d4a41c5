"""Train / validation / test splits of the sequences.

Leave-one-out is the standard of next-item benchmarks (published numbers use it); the time
split is what a shop really faces: learn from the past, predict what happens after a date.
Both give models the same shape of data, so every model and baseline is trained and judged
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.data.sequences import SequenceData

# A user needs a training prefix, a validation target and a test target.
MIN_EVAL_LENGTH = 3


@dataclass(frozen=True)
class EvalSet:
    """Held-out next items: user ``user_index[i]`` saw ``histories[i]`` and then ``targets[i]``."""

    user_index: np.ndarray
    """(n,) int64 user indices."""
    histories: list[np.ndarray]
    """n arrays of item indices, time-ordered, everything the model may see."""
    targets: np.ndarray
    """(n,) int64 item index of the held-out next item."""

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class Split:
    """One way of cutting the data; ``train`` is indexed by user (empty arrays allowed)."""

    train: list[np.ndarray]
    """Per-user training sequences (item indices, time-ordered), one per user index."""
    valid: EvalSet
    """Targets for early stopping and model selection."""
    test: EvalSet
    """Targets for the reported figures; never seen in training or model selection."""
    protocol: str
    """Readable description of the split, stored with the run's metrics."""


def leave_one_out(data: SequenceData) -> Split:
    """Last event = test, second-to-last = validation; users with < 3 events only train."""
    histories = data.histories()
    lengths = data.lengths()
    evaluated = np.flatnonzero(lengths >= MIN_EVAL_LENGTH)
    train = [h[:-2] if len(h) >= MIN_EVAL_LENGTH else h for h in histories]
    valid = EvalSet(
        evaluated,
        [histories[u][:-2] for u in evaluated],
        np.array([histories[u][-2] for u in evaluated], dtype=np.int64),
    )
    test = EvalSet(
        evaluated,
        [histories[u][:-1] for u in evaluated],
        np.array([histories[u][-1] for u in evaluated], dtype=np.int64),
    )
    return Split(train, valid, test, "leave-one-out (last event = test, second-to-last = validation)")


def time_split(data: SequenceData, cutoff_ts: float) -> Split:
    """Train before ``cutoff_ts``; each user active after it is tested on their first event after.

    Validation mirrors leave-one-out inside the past: a user with at least 3 events before the
    cut has their last pre-cut event held out of training as a validation target, so early
    stopping never looks past the cut.
    """
    histories = data.histories()
    user_of_event = np.repeat(np.arange(data.n_users), data.lengths())
    cut = np.bincount(user_of_event[data.ts < cutoff_ts], minlength=data.n_users)  # prefix length per user
    valid_users = np.flatnonzero(cut >= MIN_EVAL_LENGTH)
    test_users = np.flatnonzero(cut < data.lengths())
    train = [h[: c - 1] if c >= MIN_EVAL_LENGTH else h[:c] for h, c in zip(histories, cut)]
    valid = EvalSet(
        valid_users,
        [histories[u][: cut[u] - 1] for u in valid_users],
        np.array([histories[u][cut[u] - 1] for u in valid_users], dtype=np.int64),
    )
    test = EvalSet(
        test_users,
        [histories[u][: cut[u]] for u in test_users],
        np.array([histories[u][cut[u]] for u in test_users], dtype=np.int64),
    )
    return Split(train, valid, test, f"time split at ts={cutoff_ts:g} (first event after the cut = test)")
