"""``GET /recommend`` requests that arrive together, read and scored as one batch.

With several clients at once, scoring each request alone paid every per-call cost (the
catalogue scores, the top candidates, the re-ranker's features, the interests) once per
request, and handing each request from the event loop to a worker thread and on to a scoring
thread cost more CPU than the Markov model's scoring itself. Here a request goes from the
event loop straight to a scoring thread, which takes what has queued up (at most
``MAX_BATCH``; how long it waits for more: ``core.gathering``), reads those users' histories as
stored now (``Engine.users_items``: the loaded sequences and, in one query, the events stored since,
so an event posted a moment ago counts) and scores them with one
``Engine.recommend_histories`` call per run and setting.

A list already answered for the same run, setting and stored history is answered again from
``AnswerCache`` without scoring (a shopper reloading a page): an event stored for the user
changes the history, so it is never served a stale list.

One scoring thread by default: on the 2-core bench machine the event loop (HTTP, JSON) keeps
the other core busy, and a second scoring thread made the batches smaller and the threads contend
for the GIL (bench_serve.py under load: a SASRec run's service CPU per request 2.8 ms with one,
3.8 ms with two; a Markov run's about the same, 1.9 and 1.8 ms).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Optional

from core.gathering import Gatherer

MAX_BATCH = 64  # requests scored in one call at most
CACHED_ANSWERS = 4096  # lists kept for the histories they were scored from (a few MB)
SCORING_THREADS = 1
LINGER_S = 0.005  # the longest a batch waits for the requests of the clients answered last
# ... and for each next one: a quiet gap this long ends the batch. The answered clients' next requests come
# back 1-4 ms later on the 2-core bench machine (SASRec, 8 clients): 1 ms gave batches of 4.4, 4 ms of 8.0.
GAP_S = 0.004


@dataclass(frozen=True)
class Answer:
    history: list[str]  # the user's item ids as stored when the request was scored
    recommendations: list  # core.serving.Recommendation


@dataclass
class _Request:
    served: object  # core.service.follow.Served
    user: str
    k: int
    diversity: float
    answer: Future = field(default_factory=Future)

    def setting(self) -> tuple:
        return id(self.served.engine), self.served.run, self.k, self.diversity


class AnswerCache:
    """The last ``size`` lists scored, by (setting, user, stored history): the same question answers
    the same. Only the scoring thread uses it. Emptied when the served engine changes (a new run
    loaded beside the old one), so an old engine's lists neither linger nor keep it alive."""

    def __init__(self, size: int = CACHED_ANSWERS) -> None:
        self.size = size
        self._lists: OrderedDict[tuple, list] = OrderedDict()
        self._engine: Optional[int] = None
        self.hits = 0

    def get(self, request: _Request, history: list[str]) -> Optional[list]:
        self._follow(request)
        found = self._lists.get(self._key(request, history))
        if found is not None:
            self._lists.move_to_end(self._key(request, history))
            self.hits += 1
        return found

    def put(self, request: _Request, history: list[str], recommendations: list) -> None:
        self._follow(request)
        self._lists[self._key(request, history)] = recommendations
        while len(self._lists) > self.size:
            self._lists.popitem(last=False)

    def _follow(self, request: _Request) -> None:
        if id(request.served.engine) != self._engine:
            self._lists.clear()
            self._engine = id(request.served.engine)

    @staticmethod
    def _key(request: _Request, history: list[str]) -> tuple:
        return request.setting(), request.user, tuple(history)


class RecommendBatcher:
    """``submit(...)`` from any thread (an ``asyncio`` route awaits ``asyncio.wrap_future`` of it);
    the reading and scoring happen on the batcher's own threads."""

    def __init__(self, threads: int = SCORING_THREADS, max_batch: int = MAX_BATCH, linger_s: float = LINGER_S,
                 gap_s: float = GAP_S) -> None:
        self._queue: Gatherer[_Request] = Gatherer(max_batch, linger_s, gap_s)
        self.answers = AnswerCache()
        self._threads = [threading.Thread(target=self._serve, name="nextpick-serve-scoring", daemon=True)
                         for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, served, user: str, k: int, diversity: float) -> Future:
        """A future of the ``Answer``: ``user``'s stored history and ``served.engine.recommend(served.run,
        user, k, diversity, history=that history)``, scored with the requests queued beside it; its
        exception, if reading or scoring fails."""
        request = _Request(served, user, k, diversity)
        self._queue.put(request)
        return request.answer

    def recommend(self, served, user: str, k: int, diversity: float) -> Answer:
        return self.submit(served, user, k, diversity).result()

    def close(self) -> None:
        for _ in self._threads:
            self._queue.stop()
        for thread in self._threads:
            thread.join()

    def _serve(self) -> None:
        for batch in self._queue.batches():
            groups: dict[tuple, list[_Request]] = {}
            for request in batch:
                groups.setdefault(request.setting(), []).append(request)
            for group in groups.values():
                _answer(group, self.answers)


def _answer(group: list[_Request], answers: AnswerCache) -> None:
    head = group[0]
    engine = head.served.engine
    try:
        histories = engine.users_items([r.user for r in group])
        known = [answers.get(request, history) for request, history in zip(group, histories)]
        asked = [i for i, found in enumerate(known) if found is None]
        lists = engine.recommend_histories(head.served.run, [group[i].user for i in asked],
                                           [histories[i] for i in asked], k=head.k,
                                           diversity=head.diversity) if asked else []
    except BaseException as error:  # noqa: BLE001 - every request of the batch answers with it
        for request in group:
            request.answer.set_exception(error)
        return
    for i, recommendations in zip(asked, lists):
        known[i] = recommendations
        answers.put(group[i], histories[i], recommendations)
    for request, history, recommendations in zip(group, histories, known):
        request.answer.set_result(Answer(history, recommendations))
