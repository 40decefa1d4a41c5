import json

import numpy as np
import pytest

from core.data import EvalMode, SplitChoice
from core.engine import Engine, Interest, Recommendation, UnknownUserError
from core.serving import NEAR_UNIFORM
from core.progress import CancelToken, Cancelled
from core.runs import run_folder
from core.training import TrainConfig
from engine_data import demo_workspace, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A small demo workspace with item-kNN and popularity runs."""
    engine = Engine(demo_workspace(tmp_path_factory.mktemp("engine") / "ws.sqlite", 400, 150))
    data = engine.sequence_data()
    engine.train(TrainConfig.for_data(data, model="itemknn"))
    engine.train(TrainConfig.for_data(data, model="pop"))
    yield engine
    engine.workspace.close()


def _busy_user(engine):
    return engine.users_page(0, 1, order_by="activity")[0].user


def test_training_records_a_done_run_with_metrics_and_bundle(engine):
    knn, pop = engine.runs()[:2]
    assert (knn.model, knn.status, pop.model, pop.status) == ("itemknn", "done", "pop", "done")
    assert knn.metrics["protocol"].startswith("full-catalogue ranking, leave-one-out, new items (")
    assert knn.metrics["eval"] == "new" and knn.report() == knn.report("new") and knn.report("repeat") == {}
    assert set(knn.metrics["segments"]) == {"cold (0-2 events)", "short (3-10 events)", "long (>10 events)"}
    assert knn.metrics["generator_test"]["ndcg@10"] > pop.metrics["generator_test"]["ndcg@10"] > 0
    for run in (knn, pop):  # a ranker the engine keeps does not lower the test score; one left out changes nothing
        generator = run.metrics["generator_test"]["ndcg@10"]
        assert run.metric("ndcg@10") >= generator if run.metrics["ranker"]["kept"] else run.metric("ndcg@10") == generator
    assert "coverage@10" in knn.metrics["beyond"] and "ndcg@10" in knn.metrics["valid"]
    assert knn.device == "CPU" and knn.duration_s > 0 and knn.content_hash == engine.workspace.content_hash()
    assert (run_folder(engine.workspace, knn.id) / "bundle" / "bundle.json").is_file()
    json.dumps(knn.metrics)


def test_recommendations_are_explained_by_real_history_items(engine):
    user = _busy_user(engine)
    history = set(engine.user_history(user)["item"])
    recs = engine.recommend(1, user, k=8)
    assert [r.rank for r in recs] == list(range(1, 9))
    assert all(isinstance(r, Recommendation) for r in recs)
    assert not {r.item for r in recs} & history  # exclude_seen by default
    assert any(r.because for r in recs) and all({item for item, _ in r.because} <= history for r in recs)
    assert all(sum(w for _, w in r.because) <= 1 + 1e-9 and len(r.because) <= 3 for r in recs)
    assert all([w for _, w in r.because] == sorted([w for _, w in r.because], reverse=True) for r in recs)
    first = next(r for r in recs if r.because)
    titles = engine.search_items(first.because[0][0], 1)
    assert first.reason.startswith("because they took " + titles[0].title)
    assert all((f"fits their interest in {r.interest}" in r.reason) == (r.interest is not None) for r in recs)
    # An item's interest is named only when the user leans to it: "fits their interest in Thriller" was said
    # of a user predicted 1% Thriller (ml-latest-small).
    predicted = {i.name: i.probability for i in engine.interests(1, user)}
    assert any(r.interest for r in recs)
    assert all(predicted[r.interest] >= NEAR_UNIFORM / len(predicted) for r in recs if r.interest)
    assert all(0 < r.top_share <= 200 / engine.sequence_data().n_items for r in recs)
    assert [r.score for r in recs] == sorted([r.score for r in recs], reverse=True)


def test_diversity_knob_spreads_categories(engine):
    user = _busy_user(engine)
    plain = engine.recommend(1, user, k=10, diversity=0.0)
    diverse = engine.recommend(1, user, k=10, diversity=1.0)
    assert [r.item for r in plain] != [r.item for r in diverse]
    assert len({r.categories[0] for r in diverse}) >= len({r.categories[0] for r in plain})
    with pytest.raises(ValueError):
        engine.recommend(1, user, diversity=1.5)


def test_what_if_history_changes_recommendations_and_interests(engine):
    user = _busy_user(engine)
    stored = engine.recommend(1, user, k=5)
    some_item = engine.next_items(stored[0].item, 1) or [stored[0]]
    what_if = engine.recommend(1, user, k=5, history=[some_item[0].item])
    assert [r.item for r in what_if] != [r.item for r in stored]
    assert all({item for item, _ in r.because} <= {some_item[0].item} for r in what_if)
    interests = engine.interests(1, user, history=[some_item[0].item])
    assert all(isinstance(i, Interest) for i in interests)
    assert abs(sum(i.probability for i in interests) - 1) < 1e-5
    assert interests != engine.interests(1, user)


def test_what_if_history_merges_repeats_like_stored_sequences(engine):
    stored = engine.user_history(_busy_user(engine))["item"].astype(str).tolist()
    a, b = stored[0], next(item for item in stored if item != stored[0])
    merged = engine.recommend(1, "someone-new", k=5, history=[a, b])
    assert engine.recommend(1, "someone-new", k=5, history=[a, a, b]) == merged
    assert engine.interests(1, "someone-new", history=[a, a, b]) == engine.interests(1, "someone-new", history=[a, b])


def test_cold_start_is_asked_for_explicitly_and_an_unknown_user_is_refused(engine):
    recs = engine.recommend(2, "someone-new", k=3, history=[])
    assert len(recs) == 3 and all(r.because == [] for r in recs)
    assert recs[0].reason.startswith("popular overall")  # no profile segment: not "shoppers like them"
    assert all("their interest" not in r.reason for r in recs)  # nothing is known of them to have one
    assert all(r.interest is None for r in recs)  # the service's JSON named one beside that reason
    assert engine.recommend(2, None, k=3) == recs  # no user at all: an anonymous visitor
    for ask in (lambda: engine.recommend(2, "someone-new"), lambda: engine.interests(1, "someone-new"),
                lambda: list(engine.recommend_many(2, [_busy_user(engine), "someone-new"]))):
        with pytest.raises(UnknownUserError) as error:
            ask()
        assert str(error.value) == "unknown user 'someone-new' in ws.sqlite: no events or profile under that id"
        assert isinstance(error.value, KeyError) and error.value.user == "someone-new"


def test_one_users_answer_needs_no_table_of_every_users_id(engine):
    """recommend, interests and held_out find one user through the store's index of ids: the table of
    every id (``SequenceData.user_index_of``) took a million-user studio 0.7 s before its first answer."""
    fresh = Engine(engine.workspace)
    data, user = fresh.sequence_data(), _busy_user(engine)
    assert fresh.recommend(2, user, k=3) == engine.recommend(2, user, k=3)
    assert fresh.interests(1, user) == engine.interests(1, user)
    assert fresh.held_out(user, 1) == engine.held_out(user, 1) is not None
    assert "_user_lookup" not in vars(data)
    with pytest.raises(UnknownUserError):
        fresh.recommend(2, "someone-new")


def test_users_page_orders_and_searches(engine):
    by_activity = engine.users_page(0, 50, order_by="activity")
    assert [u.events for u in by_activity] == sorted([u.events for u in by_activity], reverse=True)
    by_time = engine.users_page(0, 50, order_by="last_seen")
    seen = [u.last_seen for u in by_time if u.last_seen is not None]
    assert seen == sorted(seen, reverse=True)
    assert engine.user_count() == 400
    found = engine.users_page(0, 10, search="u00012")
    assert found and all("U00012" in u.user for u in found)
    assert engine.user_count("u00012") == len(engine.users_page(0, 1000, search="u00012"))
    assert len(engine.users_page(390, 50)) == 10


def test_next_items_and_search(engine):
    user = _busy_user(engine)
    sequence = list(engine.user_history(user)["item"])
    followers = engine.next_items(sequence[0], 5)
    assert followers and followers[0].count >= followers[-1].count
    assert engine.next_items("no-such-item") == []
    assert engine.search_items("", 5) == []


def test_next_items_are_counted_once_and_read_from_the_cache_after(engine, monkeypatch):
    """A second engine on the same content maps the saved followers instead of counting them again."""
    from core.data.successors import Successors

    item = str(engine.user_history(_busy_user(engine))["item"].iloc[0])
    whole = engine.next_items(item, 5)
    assert any(engine.workspace.path.with_name(engine.workspace.path.name + ".cache").glob("successors-*"))

    def counted_again(*_args):
        raise AssertionError("the followers were counted again")

    monkeypatch.setattr(Successors, "count", classmethod(counted_again))
    again = Engine.open(engine.workspace.path)
    try:
        assert again.next_items(item, 5) == whole and whole
    finally:
        again.workspace.close()


def test_an_items_categories_are_one_tuple_of_names_everywhere(engine):
    """Recommendation, ItemInfo and NextItem carry the same categories: names, primary first."""
    data = engine.sequence_data()
    user = _busy_user(engine)
    rec = engine.recommend(1, user, k=1)[0]
    index = int(data.item_index_of([rec.item])[0])
    assert rec.categories == tuple(data.item_categories[index].split("|"))
    assert rec.categories[0] == data.category_names[data.item_category[index]]
    found = next(info for info in engine.search_items(rec.item, 5) if info.item == rec.item)
    follower = engine.next_items(str(engine.user_history(user)["item"].iloc[0]), 1)[0]
    assert found.categories == rec.categories
    assert all(type(c) is tuple and c and all(type(name) is str and name for name in c)
               for c in (rec.categories, found.categories, follower.categories))


def test_held_out_item_is_the_last_new_item(engine):
    user = _busy_user(engine)
    items = list(engine.user_history(user)["item"])
    assert engine.held_out_item(user) == [item for i, item in enumerate(items) if item not in items[:i]][-1]
    assert engine.held_out_item("someone-new") is None


def test_compare_and_evaluate(engine):
    result = engine.compare(1, 2, "ndcg@10")
    assert result["mean_a"] == pytest.approx(engine.runs()[0].metric("ndcg@10"))
    assert result["mean_b"] == pytest.approx(engine.runs()[1].metric("ndcg@10"))
    assert 0.0 <= result["p_value"] <= 1.0 and result["n_users"] == engine.runs()[0].metrics["n_users"]
    same = engine.compare(1, 1, "hr@10")
    assert same["difference"] == 0.0 and same["p_value"] == 1.0
    report = engine.evaluate(2)
    assert report["metrics"]["ndcg@10"] == pytest.approx(engine.runs()[1].metric("ndcg@10"))


def test_runs_evaluated_in_another_mode_keep_both_reports_and_are_compared_only_alike(engine):
    data = engine.sequence_data()
    repeats = engine.train(TrainConfig.for_data(data, model="pop"), split=SplitChoice(eval_mode="repeat"))
    assert repeats.split.eval_mode is EvalMode.REPEAT and repeats.metrics["eval"] == "repeat"
    assert "repeats allowed" in repeats.metrics["protocol"] and repeats.metrics["not_evaluated"] == 0
    with pytest.raises(ValueError, match="tested differently .*new items vs leave-one-out, repeats allowed"):
        engine.compare(2, repeats.id)
    report = engine.evaluate(repeats.id, eval_mode=EvalMode.NEW)  # popularity, now measured on new items
    rerun = engine.run(repeats.id)
    assert rerun.metrics["eval"] == "repeat" and rerun.report(EvalMode.NEW) == report  # its own report is kept
    assert rerun.evaluated_as(EvalMode.NEW).metric("ndcg@10") == report["metrics"]["ndcg@10"]
    assert report["protocol"] == engine.run(2).metrics["protocol"]  # the same test items as run #2's
    alike = engine.compare(2, repeats.id, eval_mode=EvalMode.NEW)
    assert alike["n_users"] == report["n_users"] == engine.run(2).metrics["n_users"]
    assert alike["mean_b"] == pytest.approx(report["metrics"]["ndcg@10"])
    engine.delete_run(repeats.id)


def test_a_test_in_another_mode_reads_the_ranks_an_earlier_evaluation_kept(engine, monkeypatch):
    from core.store import Workspace

    evaluated = {run_id: engine.evaluate(run_id, eval_mode=EvalMode.REPEAT) for run_id in (1, 2)}
    later = Engine(Workspace.open(engine.workspace.path))  # the studio tests in a job of its own
    monkeypatch.setattr("core.engine.run_records.evaluate_scorer", lambda *a, **k: pytest.fail("evaluated again"))
    result = later.compare(1, 2, "ndcg@10", eval_mode=EvalMode.REPEAT)
    later.workspace.close()
    assert result["mean_a"] == pytest.approx(evaluated[1]["metrics"]["ndcg@10"])
    assert result["mean_b"] == pytest.approx(evaluated[2]["metrics"]["ndcg@10"])


def test_active_run_and_delete(engine, tmp_path):
    data = engine.sequence_data()
    run = engine.train(TrainConfig.for_data(data, model="markov"))
    engine.set_active_run(run.id)
    assert engine.active_run() == run.id
    assert engine.recommend(run.id, _busy_user(engine), k=3)
    engine.delete_run(run.id)
    assert engine.active_run() is None
    assert run.id not in [r.id for r in engine.runs()]
    assert not run_folder(engine.workspace, run.id).exists()
    with pytest.raises(KeyError):
        engine.set_active_run(run.id)


def test_cancelled_neural_run_is_marked_and_resumes(engine):
    data = engine.sequence_data()
    config = TrainConfig.for_data(data, model="gru", hidden=16, layers=1, epochs=2, patience=5, max_len=20, text=False)
    token = CancelToken()

    def stop_after_first_epoch(report):
        if report.metrics.get("epoch") == 1 and "valid_ndcg10" in report.metrics:
            token.cancel()

    with pytest.raises(Cancelled):
        engine.train(config, progress=stop_after_first_epoch, cancel=token)
    cancelled = engine.runs()[-1]
    assert cancelled.status == "cancelled" and cancelled.model == "gru"
    assert any((run_folder(engine.workspace, cancelled.id) / "checkpoint").iterdir())
    resumed = engine.train(config, resume_run=cancelled.id)
    assert resumed.id == cancelled.id and resumed.status == "done"
    assert [e["epoch"] for e in resumed.metrics["training"]["epochs"]] == [1, 2]
    recs = engine.recommend(resumed.id, _busy_user(engine), k=5)
    assert len(recs) == 5 and np.isfinite([r.score for r in recs]).all()


def test_recommend_many_matches_one_by_one(engine):
    users = [row.user for row in engine.users_page(0, 8)]
    reports = []
    batched = dict(engine.recommend_many(1, users, k=4, diversity=0.2, batch_size=3, progress=reports.append))
    assert list(batched) == users
    for user in users:
        single = engine.recommend(1, user, k=4, diversity=0.2)
        assert [r.item for r in batched[user]] == [r.item for r in single]
        assert [r.reason for r in batched[user]] == [r.reason for r in single]
    assert reports[-1].done == len(users)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        list(engine.recommend_many(1, users, cancel=token))


def test_history_items_near_an_even_share_explain_nothing():
    import numpy as np

    from core.serving import _drivers

    history = np.arange(1, 31)  # 30 distinct items
    even = np.ones((1, 30))
    one_stands_out = even.copy()
    one_stands_out[0, 4] = 20.0
    assert _drivers([history], [even]) == [[[]]]
    assert [item for item, _ in _drivers([history], [one_stands_out])[0][0]] == [5]


def test_drivers_of_a_long_history_read_the_events_that_weigh():
    import numpy as np

    from core.serving import BECAUSE_ITEMS, _drivers

    rng = np.random.default_rng(4)
    history = rng.integers(1, 400, 3000)
    weights = np.zeros((3, len(history)))
    weights[:, -20:] = rng.random((3, 20)) * (rng.random((3, 20)) < 0.7)
    weights[2, -1] = 30.0  # stands out
    distinct, position = np.unique(history, return_inverse=True)
    totals = weights @ np.equal.outer(position, np.arange(len(distinct)))  # every event's share, summed by item
    least = NEAR_UNIFORM / len(distinct)  # an even share among the whole history's items
    expected = [[(int(distinct[i]), row[i] / row.sum()) for i in np.argsort(-row, kind="stable")[:BECAUSE_ITEMS]
                 if row[i] > 0 and row[i] / row.sum() >= least] for row in totals]
    found = _drivers([history], [weights])[0]
    assert [[item for item, _ in row] for row in found] == [[item for item, _ in row] for row in expected]
    assert np.allclose([share for row in found for _, share in row], [share for row in expected for _, share in row])
    assert found[2][0] == (int(history[-1]), found[2][0][1]) and found[2][0][1] > 0.5


def test_drivers_of_a_batch_are_each_users_own():
    """A served batch's explanations are found for all its users at once: each user's drivers (items, order
    and shares) are what that user's alone are, whatever the others' histories (repeats, ties, none)."""
    import numpy as np

    from core.serving import _drivers

    rng = np.random.default_rng(7)
    histories = [rng.integers(1, 30, n) for n in (12, 0, 5, 40, 1)]
    weights = [np.round(rng.random((10, len(h))) * (rng.random((10, len(h))) < 0.6), 1) for h in histories]
    weights[3][0] = 0.0  # an item nothing drove
    weights[0][1] = 1.0  # ties: broken by item, as alone
    batch = _drivers(histories, weights)
    alone = [_drivers([h], [w])[0] for h, w in zip(histories, weights)]
    assert [[[item for item, _ in row] for row in user] for user in batch] == \
        [[[item for item, _ in row] for row in user] for user in alone]
    assert np.allclose([s for user in batch for row in user for _, s in row],
                       [s for user in alone for row in user for _, s in row])
    assert batch[1] == [[]] * 10 and batch[3][0] == [] and any(batch[0])
