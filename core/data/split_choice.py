"""SplitChoice: how a run asks to cut the data (kind, cut-off, evaluation mode, validation, test users),
recorded with the run so that re-evaluating it cuts the same way, and checked against the data
(``SplitError`` says why a split cannot be made). The cutting itself is ``core.data.splits``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Optional

import numpy as np

from core.data.sequences import SequenceData
from core.data.splits import (
    DEFAULT_TEST_USERS, LEAVE_ONE_OUT, MIN_EVAL_LENGTH, EvalMode, Split, SplitKind, Validation, format_cutoff,
    leave_one_out, leave_one_out_positions, time_split, time_split_positions,
)
from core.errors import UsageError

DEFAULT_TEST_FRACTION = 0.1


class SplitError(UsageError):
    """A split that cannot be made on this workspace's data; the message says what to do instead."""


def _member(enum: type[Enum], value, what: str):
    """``value`` as a member of ``enum``; SplitError names the choices (values come from files and flags)."""
    try:
        return enum(value)
    except ValueError:
        raise SplitError(f"unknown {what} {value!r}; use {' or '.join(m.value for m in enum)}") from None


@dataclass(frozen=True)
class SplitChoice:
    """How a run cuts the data and what it holds out, recorded with the run so that re-evaluating
    it cuts the same way.

    A time split asked for by ``test_fraction`` is resolved to a fixed ``cutoff_ts`` when the run
    starts (``resolve``): a later import must move neither the training data's end nor the test.
    Two choices are equal when they cut alike: how the cut-off was asked for does not count.
    """

    kind: SplitKind = SplitKind.LEAVE_ONE_OUT
    cutoff_ts: Optional[float] = None  # time split: unix seconds; events from here on are the future
    test_fraction: float = field(default=DEFAULT_TEST_FRACTION, compare=False)  # no cut-off: share of latest events
    eval_mode: EvalMode = EvalMode.NEW
    validation: Validation = Validation.SAMPLE
    test_users: Optional[int] = DEFAULT_TEST_USERS  # tested users: a seeded sample of this many; None = all

    def __post_init__(self) -> None:
        if self.test_users is not None and (not isinstance(self.test_users, int) or self.test_users < 1):
            raise SplitError(f"the number of test users must be a positive whole number or all, "
                             f"got {self.test_users!r}")
        object.__setattr__(self, "kind", _member(SplitKind, self.kind, "split"))
        object.__setattr__(self, "eval_mode", _member(EvalMode, self.eval_mode, "evaluation mode"))
        object.__setattr__(self, "validation", _member(Validation, self.validation, "validation"))
        if not 0.0 < self.test_fraction < 1.0:
            raise SplitError(f"the test fraction must be between 0 and 1 (e.g. 0.1), got {self.test_fraction}")

    def to_json(self) -> dict:
        return {**asdict(self), "kind": self.kind.value, "eval_mode": self.eval_mode.value,
                "validation": self.validation.value}

    @classmethod
    def from_json(cls, values: Optional[dict]) -> "SplitChoice":
        """The recorded choice; runs recorded before splits were a choice were leave-one-out, before
        evaluation modes were a choice, sampled validation (their new-items figures need re-evaluating);
        before the test was sampled, every test user."""
        values = {"test_users": None, **(values or {})}
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def describe(self) -> str:
        """"leave-one-out" or "time split at 2026-03-01" (or "... latest 10% of events" before resolving)."""
        if self.kind is SplitKind.LEAVE_ONE_OUT:
            return LEAVE_ONE_OUT
        if self.cutoff_ts is None:
            return f"time split before the latest {self.test_fraction:.0%} of events"
        return f"time split at {format_cutoff(self.cutoff_ts)}"

    def same_test_as(self, other: "SplitChoice") -> bool:
        """Whether both hold out the same test items, so their runs can be compared user by user
        (the validation choice changes training, not the test)."""
        return ((self.kind, self.cutoff_ts, self.eval_mode, self.test_users)
                == (other.kind, other.cutoff_ts, other.eval_mode, other.test_users))

    def resolve(self, data: SequenceData, time_kind: str) -> "SplitChoice":
        """This choice with its cut-off fixed and checked against ``data``; SplitError says why not."""
        if self.kind is SplitKind.LEAVE_ONE_OUT:
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
        if self.kind is SplitKind.LEAVE_ONE_OUT:
            return leave_one_out(data, self.eval_mode, self.validation, self.test_users)
        return time_split(data, self._cutoff(), self.eval_mode, self.validation, self.test_users)

    def test_position(self, data: SequenceData, user_index: int) -> Optional[int]:
        """Where the user's test target sits in their history (what came before it is what the
        model saw), exactly as ``split`` holds them out; None when the user is not tested."""
        start, stop = int(data.offsets[user_index]), int(data.offsets[user_index + 1])
        offsets, items = np.array([0, stop - start]), data.items[start:stop]
        if self.kind is SplitKind.LEAVE_ONE_OUT:
            positions = leave_one_out_positions(offsets, items, self.eval_mode)
        else:
            positions = time_split_positions(offsets, items, data.ts[start:stop], self._cutoff(), self.eval_mode)
        position = int(positions.test[0])
        return position if position >= 0 else None

    def _cutoff(self) -> float:
        if self.cutoff_ts is None:
            raise SplitError("a time split needs its cut-off resolved against the data first")
        return self.cutoff_ts


def _cutoff_for_fraction(ts: np.ndarray, fraction: float) -> float:
    """The time at which the latest ``fraction`` of all events begins."""
    at = len(ts) - max(1, int(np.ceil(fraction * len(ts))))
    return float(np.partition(ts, at)[at])  # a sort of 25M times took 2 s of the Train page's opening


def _check_cutoff(data: SequenceData, cutoff: float) -> None:
    first, last = float(data.ts.min()), float(data.ts.max())
    span = f"the log runs from {format_cutoff(first)} to {format_cutoff(last)}"
    if cutoff <= first:
        raise SplitError(f"the cut-off {format_cutoff(cutoff)} leaves nothing to learn from: {span}")
    if cutoff > last:
        raise SplitError(f"the cut-off {format_cutoff(cutoff)} leaves nothing to test on: {span}")
    # Each user's times are in order: one has MIN_EVAL_LENGTH events before the cut-off when that
    # many-th event is before it (a count per user over 25M events held the window's thread 0.2 s).
    long_enough = data.offsets[:-1][data.lengths() >= MIN_EVAL_LENGTH]
    if not (data.ts[long_enough + MIN_EVAL_LENGTH - 1] < cutoff).any():
        raise SplitError(f"no user has {MIN_EVAL_LENGTH} events before the cut-off {format_cutoff(cutoff)}, so "
                         f"nothing is left to validate on; choose a later cut-off ({span})")
