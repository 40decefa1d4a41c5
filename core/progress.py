"""Progress reports and cancellation shared by every long job in the engine.

Long jobs (import, training, evaluation) take an optional ``progress`` callable and an
optional ``cancel`` token. They never know who listens: the CLI prints a bar, the studio's
workers turn reports into queued Qt signals. Keeping these types free of Qt is what lets
the same job run headless and be tested with a fake listener.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


class Cancelled(Exception):
    """Raised inside a job when its token was cancelled; the job undoes its partial work."""


class CancelToken:
    """A thread-safe flag the caller sets and the job polls between chunks or batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


@dataclass
class Progress:
    """One report from a running job.

    stage:   short name of what runs now ("import", "train", "evaluate", ...).
    done:    units finished (rows, steps, users).
    total:   units expected, or None when unknown (a streamed file of unknown length).
    rate:    units per second, measured so far.
    eta_s:   seconds left at the current rate, or None.
    message: one human-readable line for a log panel or status bar.
    metrics: numbers worth plotting (loss, ndcg@10, epoch, ...).
    """

    stage: str
    done: int = 0
    total: Optional[int] = None
    rate: Optional[float] = None
    eta_s: Optional[float] = None
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> Optional[float]:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


ProgressCallback = Callable[[Progress], None]


class RateMeter:
    """Turns a running count into rate and ETA, so every job reports them the same way."""

    def __init__(self, total: Optional[int] = None) -> None:
        self.total = total
        self.started = time.perf_counter()

    def report(self, stage: str, done: int, message: str = "", **metrics: Any) -> Progress:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = done / elapsed if done else None
        eta = None
        if rate and self.total is not None:
            eta = max(0.0, (self.total - done) / rate)
        return Progress(stage, done, self.total, rate, eta, message, dict(metrics))


def emit(progress: Optional[ProgressCallback], report: Progress) -> None:
    """Send a report to a listener if there is one."""
    if progress is not None:
        progress(report)
