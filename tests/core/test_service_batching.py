"""Concurrent GET /recommend requests are scored together, each answered as it would be alone."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from core.service.batching import RecommendBatcher
from core.service.follow import Served
from service_data import pair_shop_engine, running_service


class _SlowEngine:
    """Records each batch it is asked to score; the first one waits until the test lets it go."""

    def __init__(self):
        self.batches, self.release = [], threading.Event()

    def users_items(self, users):
        return [["x"] if user == "a" else ["x", "y"] for user in users]

    def recommend_histories(self, run, users, histories, k, diversity):
        self.batches.append((list(users), k))
        if len(self.batches) == 1:
            self.release.wait(30)
        if "bad" in users:
            raise ValueError("cannot score")
        return [[f"{user}:{k}:{len(history)}"] for user, history in zip(users, histories)]


def test_requests_queued_while_one_is_scored_are_scored_together_by_setting():
    engine, batcher = _SlowEngine(), RecommendBatcher(threads=1)
    served = Served(engine, 1, "markov")
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.recommend, served, "a", 5, 0.0)
        while not engine.batches:
            time.sleep(0.001)
        rest = [pool.submit(batcher.recommend, served, user, k, 0.0) for user, k in (("b", 5), ("c", 3), ("d", 5))]
        while batcher._queue.qsize() < 3:
            time.sleep(0.001)
        engine.release.set()
        answers = [first.result(), *(future.result() for future in rest)]
    assert [a.recommendations for a in answers] == [["a:5:1"], ["b:5:2"], ["c:3:2"], ["d:5:2"]]
    assert [a.history for a in answers] == [["x"], ["x", "y"], ["x", "y"], ["x", "y"]]
    assert engine.batches == [(["a"], 5), (["b", "d"], 5), (["c"], 3)]
    with pytest.raises(ValueError, match="cannot score"):
        batcher.recommend(served, "bad", 5, 0.0)
    batcher.close()


class _GatedEngine(_SlowEngine):
    """Records each batch; the second one waits until the test lets it go."""

    def recommend_histories(self, run, users, histories, k, diversity):
        self.batches.append(list(users))
        if len(self.batches) == 2:
            self.release.wait(30)
        return [[user] for user in users]


def test_a_batch_waits_for_the_clients_it_answered_and_those_queued_and_a_lone_client_for_none():
    """8 clients fell into two alternating halves of 4 (each batch answered while the other half queued, so
    "as many as the last batch" stayed 4): the thread now expects everyone in flight, the clients it just
    answered and the requests queued meanwhile."""
    engine = _GatedEngine()
    served = Served(engine, 1, "markov")
    batcher = RecommendBatcher(threads=1, linger_s=60.0, gap_s=60.0)  # here only the count ends a batch
    with ThreadPoolExecutor(4) as pool:
        assert batcher.recommend(served, "a", 5, 0.0).recommendations == ["a"]  # a batch of one waits for none
        second = pool.submit(batcher.recommend, served, "b", 5, 0.0)
        while len(engine.batches) < 2:
            time.sleep(0.001)
        three = [pool.submit(batcher.recommend, served, user, 5, 0.0) for user in ("c", "d", "e")]
        while batcher._queue.qsize() < 3:
            time.sleep(0.001)
        engine.release.set()
        assert second.result(10).recommendations == ["b"]
        time.sleep(0.05)
        assert not any(f.done() for f in three)  # the client answered ("b") is expected to ask again
        again = pool.submit(batcher.recommend, served, "f", 5, 0.0)
        assert [f.result(10).recommendations for f in (*three, again)] == [["c"], ["d"], ["e"], ["f"]]
    assert engine.batches == [["a"], ["b"], ["c", "d", "e", "f"]]
    batcher.close()


class _CountingEngine:
    """Histories the test edits; counts the users it is asked to score."""

    def __init__(self):
        self.histories, self.scored = {"a": ["x"], "b": ["x", "y"]}, []

    def users_items(self, users):
        return [list(self.histories.get(user, [])) for user in users]

    def recommend_histories(self, run, users, histories, k, diversity):
        self.scored.extend(users)
        return [[f"{user}:{len(history)}:{k}"] for user, history in zip(users, histories)]


def test_a_question_asked_again_is_answered_from_the_cache_until_the_history_or_the_engine_changes():
    engine, batcher = _CountingEngine(), RecommendBatcher(threads=1)
    served = Served(engine, 1, "sasrec")
    assert batcher.recommend(served, "a", 5, 0.0).recommendations == ["a:1:5"]
    assert batcher.recommend(served, "a", 5, 0.0).recommendations == ["a:1:5"]
    assert batcher.recommend(served, "a", 3, 0.0).recommendations == ["a:1:3"]  # another setting is scored
    engine.histories["a"].append("z")  # an event stored for the user
    assert batcher.recommend(served, "a", 5, 0.0).recommendations == ["a:2:5"]
    assert engine.scored == ["a", "a", "a"] and batcher.answers.hits == 1
    other = Served(_CountingEngine(), 1, "sasrec")  # a new run loaded beside the old one
    assert batcher.recommend(other, "b", 5, 0.0).recommendations == ["b:2:5"]
    assert batcher.recommend(served, "a", 5, 0.0).recommendations == ["a:2:5"] and engine.scored[-1] == "a"
    small = RecommendBatcher(threads=1)
    small.answers.size = 1
    for user in ("a", "b", "a"):
        small.recommend(served, user, 5, 0.0)
    assert small.answers.hits == 0  # only the last list is kept
    batcher.close()
    small.close()


def test_concurrent_clients_get_the_lists_each_would_get_alone(tmp_path):
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    users = [f"U{u:02d}" for u in range(24)]
    with running_service(engine, engine.active_run()) as (url, _):
        def ask(user):
            with httpx.Client(base_url=url, timeout=30) as client:
                return client.get("/recommend", params={"user": user, "k": 5}).json()["recommendations"]
        alone = [ask(user) for user in users]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(ask, users))
    assert together == alone
    assert [r.item for r in engine.recommend(engine.active_run(), "U03", k=5)] == [r["item"] for r in alone[3]]
    engine.workspace.close()


def test_a_transformer_runs_lists_and_reasons_are_the_same_from_the_service_the_cli_and_the_studio(tmp_path, capsys):
    """A SASRec run's lists scored as the service scores them (one batch of histories of unequal
    lengths, encoded to the longest; and over HTTP, eight clients at once) are the ones the CLI and
    the studio's engine give one user at a time: items, reasons, the history items behind each and
    their weights, scores."""
    from core.cli import main
    from core.demo import DemoConfig, create_demo_workspace
    from core.engine import Engine
    from core.training import TrainConfig

    path = tmp_path / "shop.sqlite"
    create_demo_workspace(path, DemoConfig(n_users=150, n_items=120, n_categories=6, seed=5)).close()
    engine = Engine.open(path)
    data = engine.sequence_data()
    run = engine.train(TrainConfig.for_data(data, model="sasrec", epochs=1, hidden=16, max_len=12, device="cpu")).id
    users = [str(u) for u in data.user_external[:16]]
    assert len({min(len(data.history(i)), 12) for i in range(16)}) > 3  # histories of unequal lengths
    batch = engine.recommend_histories(run, users, engine.users_items(users), k=6, diversity=0.2)
    with running_service(engine, run) as (url, _):
        def ask(user):
            with httpx.Client(base_url=url, timeout=60) as client:
                return client.get("/recommend", params={"user": user, "k": 6, "diversity": 0.2}).json()
        with ThreadPoolExecutor(8) as pool:
            served = list(pool.map(ask, users))
    studio = Engine.open(path)
    for number, (user, batched, answer) in enumerate(zip(users, batch, served)):
        alone = studio.recommend(run, user, k=6, diversity=0.2)
        listed = [(r.item, r.reason, r.taken_with, [b[0] for b in r.because]) for r in alone]
        assert len(listed) == 6 and listed == [(r.item, r.reason, r.taken_with, [b[0] for b in r.because])
                                               for r in batched]
        assert listed == [(r["item"], r["reason"], r["taken_with"], [b["item"] for b in r["because"]])
                          for r in answer["recommendations"]]
        if number % 4 == 0:  # the CLI answers through the studio's engine call: a few users suffice
            assert main(["recommend", "--db", str(path), "--run", str(run), "--user", user, "-k", "6",
                         "--diversity", "0.2", "--json"]) == 0
            assert listed == [(r["item"], r["reason"], r["taken_with"], [b[0] for b in r["because"]])
                              for r in json.loads(capsys.readouterr().out)["recommendations"]]
        for other in (batched, [SimpleNamespace(score=r["score"], because=[tuple(b.values()) for b in r["because"]])
                                for r in answer["recommendations"]]):
            assert np.allclose([r.score for r in other], [r.score for r in alone], atol=1e-5)
            assert np.allclose([w for r in other for _, w in r.because], [w for r in alone for _, w in r.because],
                               atol=1e-6)
    assert any(r.because for rs in batch for r in rs)
    engine.workspace.close()
    studio.workspace.close()
