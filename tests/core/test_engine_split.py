"""The engine's split choice (leave-one-out or a time split) and what serving hands back per item."""

import numpy as np
import pytest

from core.data import SplitChoice, SplitError
from core.engine import Engine
from core.progress import CancelToken, Cancelled
from core.training import TrainConfig
from engine_data import demo_workspace, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A small demo workspace with popularity (#1) and item-kNN (#2) on a time split, popularity (#3) on leave-one-out."""
    engine = Engine(demo_workspace(tmp_path_factory.mktemp("split") / "ws.sqlite", 300, 120))
    data = engine.sequence_data()
    for model in ("pop", "itemknn"):
        engine.train(TrainConfig.for_data(data, model=model), split=SplitChoice("time", test_fraction=0.2))
    engine.train(TrainConfig.for_data(data, model="pop"))
    yield engine
    engine.workspace.close()


def test_a_time_split_run_records_its_fixed_cutoff_and_tests_the_first_event_after_it(engine):
    timed, loo = engine.run(1), engine.run(3)
    assert (timed.split.kind, loo.split) == ("time", SplitChoice())
    cutoff = timed.split.cutoff_ts
    data = engine.sequence_data()
    assert np.mean(data.ts >= cutoff) == pytest.approx(0.2, abs=0.02)  # where the latest 20% of events begin
    assert engine.run(2).split == timed.split  # both runs cut at one fixed time
    assert timed.config["split"] == timed.split.to_json() and timed.config["model"] == "pop"
    assert timed.metrics["protocol"].startswith(f"full-catalogue ranking, {timed.split.describe()}, new items (")
    assert timed.split.describe().startswith("time split at 20")
    active_after = len({u for u in range(data.n_users) if (data.ts[data.offsets[u]:data.offsets[u + 1]] >= cutoff).any()})
    assert timed.metrics["n_users"] + timed.metrics["not_evaluated"] == active_after != loo.metrics["n_users"]


def test_re_evaluating_a_time_split_run_uses_its_own_split(engine):
    report = engine.evaluate(1)
    assert report["protocol"] == engine.run(1).metrics["protocol"]
    assert report["n_users"] == engine.run(1).metrics["n_users"]
    assert report["metrics"] == pytest.approx(engine.run(1).metrics["metrics"])


def _new_to_the_user(items) -> np.ndarray:
    """Whether each event's item is one the user had not taken before (what the default mode holds out)."""
    items = [str(i) for i in items]
    return np.array([item not in items[:i] for i, item in enumerate(items)])


def test_held_out_item_follows_the_runs_split(engine):
    data = engine.sequence_data()
    cutoff = engine.run(1).split.cutoff_ts

    def first_after_cut_is_new(u):
        ts = data.ts[data.offsets[u]:data.offsets[u + 1]]
        new = _new_to_the_user(data.items[data.offsets[u]:data.offsets[u + 1]])
        return (ts < cutoff).sum() >= 2 and (ts >= cutoff).any() and new[np.argmax(ts >= cutoff)]

    tested = [u for u in range(data.n_users) if first_after_cut_is_new(u)]
    user = str(data.user_external[tested[0]])
    frame = engine.user_history(user)
    after = frame[frame["ts"] >= cutoff]
    held = engine.held_out(user, run_id=1)
    assert held.item == str(after["item"].iloc[0]) and held.split == engine.run(1).split.describe()
    before = [str(i) for i in frame[frame["ts"] < cutoff]["item"]]
    assert held.before == [item for i, item in enumerate(before) if i == 0 or item != before[i - 1]]
    last_new = frame["item"][_new_to_the_user(frame["item"])].iloc[-1]
    assert engine.held_out_item(user, run_id=3) == str(last_new)  # leave-one-out: the last new item
    quiet = next(str(data.user_external[u]) for u in range(data.n_users)
                 if data.lengths()[u] >= 3 and not (data.ts[data.offsets[u]:data.offsets[u + 1]] >= cutoff).any())
    assert engine.held_out(quiet, run_id=1) is None and engine.held_out_item(quiet, run_id=3) is not None


def test_users_without_history_before_the_cutoff_are_scored_with_the_cold_start_list_they_are_served(engine):
    from core.data import EvalMode

    run = engine.run(2)  # item-kNN: from an empty history it would rank by nothing
    split = run.split.split(engine.sequence_data())
    cold = np.array([len(history) == 0 for history in split.test.histories])
    assert cold.any() and not cold.all()  # the time split holds out users who first came after the cut-off
    users, ranks = engine._ranks(2, EvalMode.NEW)
    pop_users, pop_ranks = engine._ranks(1, EvalMode.NEW)  # popularity on the same split
    assert np.array_equal(users, pop_users) and np.array_equal(users, split.test.user_index)
    assert np.array_equal(ranks[cold], pop_ranks[cold])  # exactly the served popularity list
    assert not np.array_equal(ranks[~cold], pop_ranks[~cold])
    fresh = engine.evaluate(2)  # re-evaluation serves them the same way
    assert fresh["metrics"]["ndcg@10"] == pytest.approx(run.metric("ndcg@10"))


def test_runs_of_different_splits_are_not_compared(engine):
    assert 0.0 <= engine.compare(1, 2)["p_value"] <= 1.0
    with pytest.raises(ValueError, match="tested differently"):
        engine.compare(1, 3)


def test_a_workspace_without_timestamps_refuses_the_time_split_and_records_nothing(engine):
    runs_before = len(engine.runs())
    engine.workspace.set_meta("time_kind", "order")
    try:
        with pytest.raises(SplitError, match="no real timestamps"):
            engine.train(TrainConfig(model="pop"), split=SplitChoice("time"))
    finally:
        engine.workspace.set_meta("time_kind", "unix")
    with pytest.raises(SplitError, match="nothing to test on"):
        engine.train(TrainConfig(model="pop"), split=SplitChoice("time", cutoff_ts=4e9))
    assert len(engine.runs()) == runs_before


def test_recommendations_carry_all_of_an_items_categories_primary_first(engine):
    items = engine.workspace.items_frame().set_index("external_id")["categories"]
    users = [row.user for row in engine.users_page(0, 30)]
    recs = [rec for _, recs in engine.recommend_many(3, users, k=10) for rec in recs]
    assert all(rec.categories == tuple(c.strip() for c in items[rec.item].split("|")) for rec in recs)
    assert any(len(rec.categories) == 2 for rec in recs)  # the demo gives some items a second label
    assert engine.recommend(3, users[0], k=10) == [rec for rec in recs[:10]]
    assert {info.categories for info in engine.search_items("SKU", 200)} >= {rec.categories for rec in recs}


def test_a_resumed_run_keeps_the_split_it_was_started_with(engine):
    config, token = TrainConfig(model="pop"), CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        engine.train(config, cancel=token, split=SplitChoice("time", cutoff_ts=engine.run(1).split.cutoff_ts))
    stopped = max(engine.runs(), key=lambda run: run.id)
    assert stopped.status == "cancelled" and stopped.split == engine.run(1).split
    with pytest.raises(ValueError, match="resumes on it"):
        engine.train(config, resume_run=stopped.id, split=SplitChoice())
    resumed = engine.train(config, resume_run=stopped.id)
    assert (resumed.id, resumed.status, resumed.split) == (stopped.id, "done", engine.run(1).split)
    assert resumed.metrics["protocol"] == engine.run(1).metrics["protocol"]
    engine.delete_run(resumed.id)
