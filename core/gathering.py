"""Requests that arrive together, taken by one thread as one batch (``nextpick serve``: the
recommendations scored together, the posted events written in one commit).

A batch costs a fixed part (a Markov run's catalogue scores and re-ranker passes; a commit's
index pages) and a small part per request, so how many requests one batch holds decides the
throughput. Taking only what had queued, a consuming thread grabbed the first request the event
loop handed over while the other answered clients were still sending theirs, and 8 clients'
batches fell apart into 1s and 7s (bench_serve.py: 4.3 recommendations a batch on average). So
the thread expects everyone in flight to be back: the clients it answered last and the requests
queued while it worked. Having taken a request, it waits (at most ``linger_s``, and no longer than
``gap_s`` for each next arrival) until that many are queued. Expecting only as many as the last
batch held, 8 clients settled into two halves of 4 taking turns (each batch answered while the
other half queued), paying the fixed part twice as often. A lone client's batches hold one
request: it waits for nothing.
"""

from __future__ import annotations

import queue
import time
from typing import Generic, Iterator, Optional, TypeVar

Request = TypeVar("Request")


class Gatherer(Generic[Request]):
    """``put`` from any thread; each consuming thread iterates ``batches()``, which ends when a
    ``stop()`` reaches it (one ``stop()`` per consuming thread)."""

    def __init__(self, max_batch: int, linger_s: float, gap_s: float) -> None:
        self.max_batch, self.linger_s, self.gap_s = max_batch, linger_s, gap_s
        self._queue: queue.SimpleQueue[Optional[Request]] = queue.SimpleQueue()

    def put(self, request: Request) -> None:
        self._queue.put(request)

    def stop(self) -> None:
        self._queue.put(None)

    def qsize(self) -> int:
        return self._queue.qsize()

    def batches(self) -> Iterator[list[Request]]:
        expected = 1  # requests in flight when the last batch was answered: expected in the next one
        while (first := self._queue.get()) is not None:
            batch = self._gather(first, expected)
            stop = batch[-1] is None
            if stop:
                batch.pop()
            yield batch
            expected = min(self.max_batch, len(batch) + self._queue.qsize())
            if stop:
                return

    def _gather(self, first: Request, expected: int) -> list[Optional[Request]]:
        """``first`` and what queues beside it: everything already queued, then, until ``expected``
        requests are in hand, arrivals no more than ``gap_s`` apart for at most ``linger_s`` (a None
        taken ends the batch: it stops this thread)."""
        batch: list[Optional[Request]] = [first]
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.max_batch and batch[-1] is not None:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            wait = min(deadline - time.monotonic(), self.gap_s)
            if len(batch) >= expected or wait <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=wait))
            except queue.Empty:
                break
        return batch
