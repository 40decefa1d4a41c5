"""``GET /recommend`` requests that arrive together, scored as one batch.

With several clients at once, each request's thread used to score its user alone: the catalogue
scores, the top candidates, the re-ranker's features and the interests were computed once per
request, each call paying its own setup, and the threads took turns at the GIL. Here every
request thread reads its user's history (SQLite releases the GIL meanwhile) and hands it to
the scoring threads, one per core (torch runs each op on one thread in the service), each of
which takes whatever has queued up (at most ``MAX_BATCH``) and answers it with one
``Engine.recommend_histories`` call per run and setting. A lone request waits for nothing: it
is a batch of one. On the 2-core bench machine (a SASRec run) one scoring thread cut the
service's CPU per request from 13 to 7 ms but left a core idle; with one per core the cores
are used and the batches still form once more requests wait than there are cores.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Optional

MAX_BATCH = 64  # requests scored in one call at most
SCORING_THREADS = os.cpu_count() or 1


@dataclass
class _Request:
    served: object  # core.service.follow.Served
    user: str
    history: list[str]
    k: int
    diversity: float
    answer: Future = field(default_factory=Future)

    def setting(self) -> tuple:
        return id(self.served.engine), self.served.run, self.k, self.diversity


class RecommendBatcher:
    """``recommend(...)`` from any thread; the scoring happens on the batcher's own threads."""

    def __init__(self, threads: int = SCORING_THREADS, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Optional[_Request]] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, name="nextpick-serve-scoring", daemon=True)
                         for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def recommend(self, served, user: str, history: list[str], k: int, diversity: float) -> list:
        """``served.engine.recommend(served.run, user, k, diversity, history=history)``, scored with
        the requests queued beside it; its exception, if scoring fails, is raised here."""
        request = _Request(served, user, history, k, diversity)
        self._queue.put(request)
        return request.answer.result()

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _serve(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = [first]
            while len(batch) < self.max_batch and batch[-1] is not None:  # a None stops this thread only
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = batch[-1] is None
            groups: dict[tuple, list[_Request]] = {}
            for request in batch[:-1] if stop else batch:
                groups.setdefault(request.setting(), []).append(request)
            for group in groups.values():
                _answer(group)
            if stop:
                return


def _answer(group: list[_Request]) -> None:
    head = group[0]
    try:
        lists = head.served.engine.recommend_histories(head.served.run, [r.user for r in group],
                                                       [r.history for r in group], k=head.k, diversity=head.diversity)
    except BaseException as error:  # noqa: BLE001 - every request of the batch answers with it
        for request in group:
            request.answer.set_exception(error)
        return
    for request, recommendations in zip(group, lists):
        request.answer.set_result(recommendations)
