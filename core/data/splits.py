"""Train / validation / test splits of the sequences.

Leave-one-out is the standard of next-item benchmarks (published numbers use it); the time
split is what a shop really faces: learn from the past, predict what happens after a date.
Both give models the same shape of data, so every model and baseline is trained and judged
the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Optional

import numpy as np

from core.data.sequences import SequenceData
from core.errors import UsageError

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

    @property
    def name(self) -> str:
        """The protocol's short form for report headers: "leave-one-out", "time split at 2026-03-01"."""
        return self.protocol.split(" (")[0]


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


# Early stopping needs a few thousand validation users, not all of them: every other user's
# validation event goes back into training, so the model learns each user's latest behaviour
# before the test (on amazon-toys the freshest events are the most telling).
VALIDATION_USERS = 2000
VALIDATION_SHARE = 0.1


def sample_validation(split: Split, seed: int = 0) -> Split:
    """Keep the validation target out of training for a sample of users only.

    The sample is ``VALIDATION_USERS`` users or ``VALIDATION_SHARE`` of them, whichever is more;
    the other users train on their validation event (it precedes the test, so the test item is
    still never seen). Small logs keep every validation user.
    """
    valid = split.valid
    size = max(VALIDATION_USERS, int(np.ceil(VALIDATION_SHARE * len(valid))))
    if size >= len(valid):
        return split
    keep = np.sort(np.random.default_rng(seed).choice(len(valid), size, replace=False))
    returned = np.setdiff1d(np.arange(len(valid)), keep)
    train = list(split.train)
    for i in returned:
        user = valid.user_index[i]
        train[user] = np.append(valid.histories[i], valid.targets[i])
    sampled = EvalSet(valid.user_index[keep], [valid.histories[i] for i in keep], valid.targets[keep])
    protocol = f"{split.protocol}, validation on {size:,} sampled users (the others train on that event)"
    return Split(train, sampled, split.test, protocol)


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
    return Split(train, valid, test, f"time split at {format_cutoff(cutoff_ts)} (first event after the cut = test)")


def format_cutoff(cutoff_ts: float) -> str:
    """A cut-off as people write dates: "2026-03-01" at midnight UTC, else with the time of day."""
    moment = datetime.fromtimestamp(cutoff_ts, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d" if moment.time() == datetime.min.time() else "%Y-%m-%d %H:%M:%S UTC")


LEAVE_ONE_OUT, TIME = "leave-one-out", "time"
SPLIT_KINDS = (LEAVE_ONE_OUT, TIME)
DEFAULT_TEST_FRACTION = 0.1


class SplitError(UsageError):
    """A split that cannot be made on this workspace's data; the message says what to do instead."""


@dataclass(frozen=True)
class SplitChoice:
    """How a run cuts the data, recorded with the run so that re-evaluating it cuts the same way.

    A time split asked for by ``test_fraction`` is resolved to a fixed ``cutoff_ts`` when the run
    starts (``resolve``): a later import must move neither the training data's end nor the test.
    Two choices are equal when they cut alike: how the cut-off was asked for does not count.
    """

    kind: str = LEAVE_ONE_OUT  # "leave-one-out" | "time"
    cutoff_ts: Optional[float] = None  # time split: unix seconds; events from here on are the future
    test_fraction: float = field(default=DEFAULT_TEST_FRACTION, compare=False)  # no cut-off: share of latest events

    def __post_init__(self) -> None:
        if self.kind not in SPLIT_KINDS:
            raise SplitError(f"unknown split {self.kind!r}; use {' or '.join(SPLIT_KINDS)}")
        if not 0.0 < self.test_fraction < 1.0:
            raise SplitError(f"the test fraction must be between 0 and 1 (e.g. 0.1), got {self.test_fraction}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, values: Optional[dict]) -> "SplitChoice":
        """The recorded choice; runs recorded before splits were a choice were leave-one-out."""
        return cls(**{k: v for k, v in (values or {}).items() if k in cls.__dataclass_fields__})

    def describe(self) -> str:
        """"leave-one-out" or "time split at 2026-03-01" (or "... latest 10% of events" before resolving)."""
        if self.kind == LEAVE_ONE_OUT:
            return LEAVE_ONE_OUT
        if self.cutoff_ts is None:
            return f"time split before the latest {self.test_fraction:.0%} of events"
        return f"time split at {format_cutoff(self.cutoff_ts)}"

    def resolve(self, data: SequenceData, time_kind: str) -> "SplitChoice":
        """This choice with its cut-off fixed and checked against ``data``; SplitError says why not."""
        if self.kind == LEAVE_ONE_OUT:
            return self
        if time_kind != "unix":
            raise SplitError("this workspace's events have no real timestamps (they were imported in file or "
                             "step order), so there is no date to cut at; use the leave-one-out split")
        if not len(data.ts):
            raise SplitError("the workspace holds no events to split")
        cutoff = self.cutoff_ts if self.cutoff_ts is not None else _cutoff_for_fraction(data.ts, self.test_fraction)
        _check_cutoff(data, float(cutoff))
        return replace(self, cutoff_ts=float(cutoff))

    def split(self, data: SequenceData) -> Split:
        """The split itself (a time split must be resolved first)."""
        if self.kind == LEAVE_ONE_OUT:
            return sample_validation(leave_one_out(data))
        if self.cutoff_ts is None:
            raise SplitError("a time split needs its cut-off resolved against the data first")
        return sample_validation(time_split(data, self.cutoff_ts))

    def test_position(self, data: SequenceData, user_index: int) -> Optional[int]:
        """Where the user's test target sits in their history (what came before it is what the
        model saw), exactly as ``split`` holds them out; None when the user is not tested."""
        length = int(data.offsets[user_index + 1] - data.offsets[user_index])
        if self.kind == LEAVE_ONE_OUT:
            return length - 1 if length >= MIN_EVAL_LENGTH else None
        ts = data.ts[data.offsets[user_index]: data.offsets[user_index + 1]]
        before = int(np.count_nonzero(ts < self.cutoff_ts))
        return before if before < length else None


def _cutoff_for_fraction(ts: np.ndarray, fraction: float) -> float:
    """The time at which the latest ``fraction`` of all events begins."""
    ordered = np.sort(ts)
    return float(ordered[len(ordered) - max(1, int(np.ceil(fraction * len(ordered))))])


def _check_cutoff(data: SequenceData, cutoff: float) -> None:
    first, last = float(data.ts.min()), float(data.ts.max())
    span = f"the log runs from {format_cutoff(first)} to {format_cutoff(last)}"
    if cutoff <= first:
        raise SplitError(f"the cut-off {format_cutoff(cutoff)} leaves nothing to learn from: {span}")
    if cutoff > last:
        raise SplitError(f"the cut-off {format_cutoff(cutoff)} leaves nothing to test on: {span}")
    user_of_event = np.repeat(np.arange(data.n_users), data.lengths())
    before = np.bincount(user_of_event[data.ts < cutoff], minlength=data.n_users)
    if not (before >= MIN_EVAL_LENGTH).any():
        raise SplitError(f"no user has {MIN_EVAL_LENGTH} events before the cut-off {format_cutoff(cutoff)}, so "
                         f"nothing is left to validate on; choose a later cut-off ({span})")
