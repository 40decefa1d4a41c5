"""`nextpick update`: a child run catches its parent up with the events added since it was trained."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from cli_run import run
from core.bundles import load_bundle, save_bundle
from core.engine import Engine
from core.errors import NextPickError, UsageError
from core.importing.live import EventFeed
from core.progress import CancelToken, Cancelled
from core.runs import gate, train, update_run
from core.training import TrainConfig
from core.training.network import WarmStart, model_for_data, optimizer_moments, restore_moments
from core.training.steps import make_optimizer
from core.training.loop import LR_FLOOR, train_sequence_model
from core.data import SplitChoice
from core.data.histories import Histories
from core.data.splits import EvalSet
from core.update import (HOLDOUT_SHARE, MIN_VALIDATION_USERS, TRAINING_SHARE, fine_tune_split, holdout_users, mapped_rows,
                         reused_ranker, row_maps, update_split, with_new_items_from_category)
from neural_data import rule_sequences
from service_data import START, pair_shop_engine

NEW_SERIES = [("P40", "P41", "P42"), ("P43", "P44", "P45"), ("P46", "P47", "P48")]  # new items, taken in this order
NEW_ITEMS = [item for series in NEW_SERIES for item in series]
SMALL = dict(model="sasrec", hidden=16, layers=1, max_len=20, lr=1e-2, epochs=25, patience=25, warmup_steps=5, device="cpu")
_BUILT = {}


def _trained_pair_shop(folder):
    """The pair shop with a small Transformer run active, trained once per session."""
    engine = pair_shop_engine(folder / "shop.sqlite")
    engine.set_active_run(engine.train(TrainConfig.for_data(engine.sequence_data(), **SMALL)).id)
    engine.workspace.close()


@pytest.fixture
def engine(tmp_path_factory, tmp_path):
    if "neural" not in _BUILT:
        _BUILT["neural"] = tmp_path_factory.mktemp("pair-shop")
        _trained_pair_shop(_BUILT["neural"])
    shutil.copytree(_BUILT["neural"], tmp_path / "copy")
    engine = Engine.open(tmp_path / "copy" / "shop.sqlite")
    yield engine
    engine.workspace.close()


def post_new_series(engine, users: int = 60, start: int = START + 10**6) -> int:
    """Every user takes two of the new series, each in order, through the service's path: the
    first series and the next one's first item train the update, its second item validates, its
    third tests it."""
    rng = np.random.default_rng(5)
    rows, clock = [], start
    for user in range(users):
        for series in rng.choice(len(NEW_SERIES), size=2, replace=False):
            for item in NEW_SERIES[series]:
                clock += 60
                rows.append({"user": f"U{user:02d}", "item": item, "time": clock})
    EventFeed(engine.workspace, "test").post(rows)
    return len(rows)


def top_items(engine, run_id, history, k):
    return [r.item for r in engine.recommend(run_id, None, history=history, k=k)]


def test_an_update_learns_the_new_items_and_records_its_parent(engine):
    parent = engine.active_run()
    added = post_new_series(engine)
    child = engine.update(time_budget=0)  # no limit: what it learns, not how fast, is tested here
    assert child.status == "done" and child.parent == parent and child.duration_s > 0
    assert child.config["update"] == {"parent": parent, "events": added, "items": 9,
                                      "full_training_s": engine.run(parent).duration_s}
    assert child.lineage() == f"update of #{parent} (+{added} events, +9 items)"
    assert engine.active_run() == child.id  # the active run's update took its place
    bundle = engine.bundle(child.id)
    assert sorted(bundle.manifest["vocabulary"]["items"][-9:]) == NEW_ITEMS
    assert bundle.scorer.model.item_table().shape[0] == 50 and not bundle.notes  # its own table, no mapping
    assert bundle.optimizer  # the optimizer's moments travel with the bundle for the next update
    old = list(engine.workspace.user_sequence("U07")["item"][:10])
    for series in NEW_SERIES:
        for step in range(1, len(series)):
            history = old + list(series[:step])
            child_rank, parent_rank = (top_items(engine, run_id, history, 49).index(series[step])
                                       for run_id in (child.id, parent))
            assert child_rank < min(parent_rank, 7)
    assert child.metric("ndcg@10") > engine.evaluate(parent)["metrics"]["ndcg@10"] + 0.1
    assert engine.run_lag(child.id).newer_events == 0


def test_an_update_learns_from_the_newest_events_its_parents_split_holds_out(engine):
    parent = engine.active_run()
    rows = [{"user": f"U{user:02d}", "item": item, "time": START + 10**6 + 120 * user + step}
            for user in range(60) for step, item in enumerate(("P43", "P44"))]
    EventFeed(engine.workspace, "test").post(rows)  # each user's two newest: validation and test under leave-one-out
    child = engine.update(time_budget=0)
    held = [int(u) for u in engine.bundle(child.id).arrays["test_users"]]
    assert len(held) == 12 == child.metrics["n_users"]  # a fifth of the 60 users with a new validation event
    assert "update holding out 12 users" in child.metrics["protocol"]
    assert "tested on 12 of 60 users" in child.metrics["protocol"]
    user = engine.sequence_data().user_external[held[0]]  # one the child never saw take P44
    history = list(engine.workspace.user_sequence(user)["item"][:-1])
    assert history[-1] == "P43"
    child_rank, parent_rank = ((top_items(engine, run_id, history, 40) + ["P44"]).index("P44")
                               for run_id in (child.id, parent))
    assert child_rank < min(parent_rank, 3)


def test_an_update_reuses_its_parents_re_ranker_over_the_current_log_and_evaluates_what_it_reports(engine, monkeypatch):
    parent = engine.bundle(engine.active_run())
    post_new_series(engine)
    evaluated, evaluate = [], train.evaluate_scorer

    def recording(scorer, *args, **kwargs):
        evaluated.append(scorer.name)
        return evaluate(scorer, *args, **kwargs)

    for module in (train, gate):  # the run's evaluations, popularity's
        monkeypatch.setattr(module, "evaluate_scorer", recording)
    child = engine.update(time_budget=0)
    assert len(evaluated) == 3  # validation and popularity's validation (the gate), the served test
    assert "generator_test" not in child.metrics and "test" not in child.metrics["popularity"]
    assert child.metrics["ranker"]["reused_from_parent"] and child.metrics["ranker"]["kept"] == (parent.ranker is not None)
    assert parent.ranker is None and engine.bundle(child.id).ranker is None  # the parent served without one


def test_a_reused_re_ranker_keeps_its_network_and_reads_the_current_logs_item_facts():
    from types import SimpleNamespace

    from core.baselines.train_log import TrainLog
    from core.data import leave_one_out
    from core.ranker import Ranker, RankerNet
    from core.ranker_features import ItemFacts, features_for

    data = rule_sequences(n_users=60, n_items=20)
    before = TrainLog.from_split(data, leave_one_out(data))
    now = TrainLog.from_split(data, SimpleNamespace(train=[data.history(u) for u in range(len(data.user_external))]))
    net = RankerNet(features_for(True))
    parent = SimpleNamespace(ranker=Ranker(ItemFacts.from_log(before), net, {"kept": True}, exclude_seen=True),
                             metrics={"ranker": {"kept": True, "p_value": 0.01}})
    ranker, report = reused_ranker(parent, data, now)
    assert report == {"kept": True, "p_value": 0.01, "reused_from_parent": True} and ranker.report == report
    assert ranker.net is net and ranker.exclude_seen and ranker.features == parent.ranker.features
    assert torch.equal(ranker.facts.popularity, ItemFacts.from_log(now).popularity)
    assert not torch.equal(ranker.facts.popularity, parent.ranker.facts.popularity)
    assert reused_ranker(SimpleNamespace(ranker=None, metrics={"ranker": {"kept": False}}), data, now) == (
        None, {"kept": False, "reused_from_parent": True})


def test_a_reused_text_re_ranker_reads_the_items_its_parent_never_saw_as_new():
    """A text-reading ranker learned how new items fare from the log's latest items made new (popularity
    0). Read by their first few events, the items added since its parent were ranked as items hardly
    anyone takes: on the demo shop's daily replay the updates served none of 70 next-day picks of such
    items. One first taken long before the latest tenth of the log is read by its events, as a retrain
    reads it."""
    from types import SimpleNamespace

    from core.baselines.train_log import TrainLog
    from core.data import sequences_from_arrays
    from core.ranker import Ranker, RankerNet
    from core.ranker_features import CandidateView, ItemFacts, features_for

    rng = np.random.default_rng(0)
    users, items = np.repeat(np.arange(40), 10), rng.integers(1, 9, 400)  # items 1-8, at times 0-199
    ts = np.tile(np.arange(10) * 20.0, 40) + rng.uniform(0, 10, 400)
    items[ts < 15] = 1  # item 9: first taken early, never by the parent; item 10: first taken last
    items[(ts > 60) & (ts < 80)], items[ts > 185] = 9, 10
    data = sequences_from_arrays(users, items, ts)
    now = TrainLog.from_split(data, SimpleNamespace(train=[data.history(u) for u in range(len(data.user_external))]))
    features = features_for(True, text=True)
    parent = SimpleNamespace(ranker=Ranker(ItemFacts.from_log(now), RankerNet(features), {"kept": True},
                                           exclude_seen=True, features=features),
                             metrics={"ranker": {"kept": True}},
                             manifest={"vocabulary": {"items": [str(item) for item in data.item_external[1:9]]}})
    ranker, _ = reused_ranker(parent, data, now)
    facts = ranker.with_text(torch.ones(data.n_items + 1, 4)).facts
    logged = ItemFacts.from_log(now).popularity
    assert data.n_items == 10 and bool((logged[1:] > 0).all())  # every item has events in the log
    assert float(facts.popularity[10]) == 0.0 and torch.equal(facts.popularity[:10], logged[:10])
    view = CandidateView(facts, np.array([[1, 9, 10]]), np.zeros((1, 3), np.float32), [data.history(0)],
                         np.zeros(1, np.int64), np.zeros((1, 1)), np.zeros(data.n_items + 1, np.int64))
    assert view.new_item().tolist() == [[False, False, True]]
    plain = SimpleNamespace(**{**vars(parent), "ranker": Ranker(ItemFacts.from_log(now), RankerNet(features_for(True)),
                                                               {"kept": True}, exclude_seen=True)})
    assert torch.equal(reused_ranker(plain, data, now)[0].facts.popularity, logged)  # no text: the log as it is


def test_an_update_is_bounded_by_a_tenth_of_its_lineage_s_full_training_and_records_a_cut(engine):
    parent = engine.run(engine.active_run())
    post_new_series(engine, users=30)
    child = engine.update()
    assert child.config["time_budget"] == pytest.approx(parent.duration_s / 60 * TRAINING_SHARE)
    assert TRAINING_SHARE == 0.05  # half of the tenth a whole update may take: the rest evaluates and saves
    assert child.config["lr"] == pytest.approx(parent.config["lr"] * LR_FLOOR)  # where the parent's decay ended
    post_new_series(engine, users=60, start=START + 2 * 10**6)  # U30-U59 take the series for the first time
    grandchild = engine.update(child.id, time_budget=1e-4)  # 6 ms: the budget ends the first epoch
    training = grandchild.metrics["training"]
    assert (training["stopped_by"], training["budget_cut"]) == ("time budget", True)
    assert grandchild.config["update"]["full_training_s"] == parent.duration_s  # a chain keeps the first's time


def test_an_update_is_cancellable_and_resumes_as_an_update(engine):
    parent = engine.active_run()
    post_new_series(engine)
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        engine.update(parent, progress=lambda report: report.stage == "train" and cancel.cancel(), cancel=cancel)
    stopped = max(engine.runs(), key=lambda r: r.id)
    assert (stopped.status, stopped.parent) == ("cancelled", parent)
    resumed = engine.train(TrainConfig.from_json(stopped.config), resume_run=stopped.id)
    assert (resumed.id, resumed.status, resumed.parent) == (stopped.id, "done", parent)
    assert resumed.config["update"] == stopped.config["update"]


def test_an_up_to_date_run_or_one_without_its_log_position_is_refused(engine):
    parent = engine.active_run()
    with pytest.raises(UsageError, match="up to date"):
        engine.update(parent)
    post_new_series(engine)
    config = {k: v for k, v in engine.run(parent).config.items() if k != "log"}
    update_run(engine.workspace, parent, config=json.dumps(config))
    with pytest.raises(UsageError, match="where the log ended"):
        engine.update(parent)
    update_run(engine.workspace, parent, status="cancelled")
    with pytest.raises(NextPickError, match="has no trained model"):
        engine.update(parent)
    assert [r.id for r in engine.runs()] == [1, 2]  # refused before any run was recorded


def test_a_baseline_updates_by_refitting_on_the_whole_log(tmp_path):
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    parent = engine.active_run()
    added = post_new_series(engine)
    child = engine.update()
    assert (child.model, child.parent, child.config["update"]["events"]) == ("markov", parent, added)
    assert top_items(engine, child.id, ["P43"], 1) == ["P44"]  # refitted: the new items' habits are counted
    engine.workspace.close()


def test_cli_update_and_runs_show_the_lineage(tmp_path, capsys):
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    added = post_new_series(engine)
    engine.workspace.close()
    code, out, _ = run(capsys, "update", "--db", tmp_path / "shop.sqlite")
    assert code == 0
    assert out.splitlines()[1] == f"update of #1 (+{added} events, +9 items); now the active run"
    code, out, _ = run(capsys, "runs", "--db", tmp_path / "shop.sqlite", "--json")
    child = json.loads(out)["runs"][-1]
    assert (child["run"], child["parent"]) == (2, 1)
    code, out, _ = run(capsys, "runs", "--db", tmp_path / "shop.sqlite")
    assert f"update of #1 (+{added} events, +9 items) in " in out.splitlines()[2]
    code, _, err = run(capsys, "update", "2", "--db", tmp_path / "shop.sqlite")
    assert code == 1 and "run #2 is up to date" in err


# -- growing the network ----------------------------------------------------------------------


def test_rows_follow_their_vocabulary_and_new_items_start_at_their_category():
    data = rule_sequences(n_users=20, n_items=6, categories=2)
    vocabulary = {"items": ["item1", "item0", "gone"], "categories": ["(none)", "cat1", "old"]}
    maps = row_maps(vocabulary, data, by_category=True, n_interests=2)
    assert list(data.category_names) == ["(none)", "cat0", "cat1"]
    assert list(maps["categories"]) == [0, -1, 1] and list(maps["interests"]) == [-1, 0]
    assert list(maps["items"][:3]) == [0, 2, 1] and (maps["items"][3:] == -1).all()
    trained = torch.tensor([[0.0], [10.0], [20.0]])
    assert mapped_rows(trained, maps["categories"], torch.full((3, 1), -1.0)).flatten().tolist() == [0.0, -1.0, 10.0]
    table = torch.tensor([[0.0], [1.0], [3.0], [0.5], [0.5], [0.5], [0.5]])  # new rows: a fresh network's
    grown = with_new_items_from_category(table, maps["items"], torch.as_tensor(data.item_category))
    # item0 (cat0) and item1 (cat1) are known; every new item moves by its category's known mean
    expected = [0.5 + float(table[1 + int(np.flatnonzero(data.item_category[1:3] == c)[0])])
                for c in data.item_category[3:]]
    assert grown[3:].flatten().tolist() == expected and grown[:3].equal(table[:3])


def test_optimizer_moments_round_trip_through_a_bundle(tmp_path):
    data = rule_sequences(n_users=20, n_items=6)
    config = TrainConfig(model="gru", hidden=8, layers=1, max_len=5, device="cpu")
    model = model_for_data(data, config)
    optimizer = make_optimizer(model, config)
    model.encoder.embeddings.item(torch.tensor([[1, 2]])).sum().backward()
    optimizer.step()
    moments = optimizer_moments(model, optimizer)
    assert set(moments) >= {"encoder.embeddings.item.weight.exp_avg", "encoder.embeddings.item.weight.step"}
    from core.baselines.popularity import PopularityScorer
    from core.baselines.train_log import TrainLog
    from core.data import SplitChoice
    from core.pipeline import NeuralScorer

    scorer = NeuralScorer(model, "gru")
    fallback = PopularityScorer.fit(TrainLog.from_split(data, SplitChoice().split(data)))
    save_bundle(tmp_path / "b", model="gru", config=config.to_json(), data=data, scorer=scorer, fallback=fallback,
                ranker=None, item_interest=np.zeros(7, dtype=np.int64), interest_names=[], metrics={},
                content_hash="x", dims={"n_items": 6, "n_categories": data.n_categories, "n_interests": 3},
                optimizer=moments)
    loaded = load_bundle(tmp_path / "b").optimizer
    fresh = make_optimizer(model, config)
    restore_moments(model, fresh, loaded)
    weight = model.encoder.embeddings.item.weight
    assert torch.equal(fresh.state[weight]["exp_avg"], optimizer.state[weight]["exp_avg"])
    assert float(fresh.state[weight]["step"]) == 1.0


def test_an_update_that_no_epoch_improves_keeps_the_weights_it_started_from():
    data = rule_sequences(n_users=30, n_items=8)
    config = TrainConfig(model="gru", hidden=8, layers=1, max_len=6, epochs=2, patience=5, lr=0.0, warmup_steps=0,
                         device="cpu")
    start = model_for_data(data, config)
    started_from = {key: value.clone() for key, value in start.state_dict().items()}
    result = train_sequence_model(data, SplitChoice().split(data), config, start=WarmStart(start))
    assert (result.best_epoch, len(result.history)) == (0, 2)  # two epochs ran; neither beat the start
    assert all(torch.equal(result.scorer.model.state_dict()[key], value) for key, value in started_from.items())


def test_a_share_of_the_users_with_new_validation_events_is_held_out_topped_up_by_a_sample():
    users = np.arange(1200)
    valid = EvalSet(users, [np.arange(5) for _ in users], np.full(1200, 7))
    first_new = np.full(1200, 9)
    first_new[:300] = 5  # these users' validation event (position 5) is new
    held = holdout_users(valid, first_new)
    assert HOLDOUT_SHARE == 0.2 and len(held) == MIN_VALIDATION_USERS and list(held) == sorted(held)
    assert np.count_nonzero(held < 300) == 60  # a fifth of the users with a new validation event
    first_new[:] = 5
    assert len(holdout_users(valid, first_new)) == 240  # enough of them: no top-up


def test_an_update_split_trains_on_every_event_but_its_held_out_users_who_validate_and_test():
    data = rule_sequences(n_users=300, min_len=8, max_len=8)
    split = SplitChoice().split(data)
    first_new = np.full(300, 8)
    active = split.valid.user_index[:100]  # their validation event and all after it are new
    first_new[active] = [len(h) for h in split.valid.histories[:100]]
    updated = update_split(split, data, first_new)
    held = holdout_users(split.valid, first_new)
    assert np.isin(held, active).sum() == 20 and len(held) == MIN_VALIDATION_USERS
    for user in range(300):
        expected = split.train[user] if user in held else data.history(user)
        assert np.array_equal(updated.train[user], expected)
    assert list(updated.valid.user_index) == list(updated.test.user_index) == list(held)
    for eval_set, whole in ((updated.valid, split.valid), (updated.test, split.test)):
        # views of the split's flat histories, not a Python list of arrays
        assert isinstance(eval_set.histories, Histories) and eval_set.histories.items is whole.histories.items
        assert all(np.array_equal(h, whole.histories[int(np.flatnonzero(whole.user_index == u)[0])])
                   for u, h in zip(eval_set.user_index, eval_set.histories))
    assert (updated.test.sampled_from, len(split.test)) == (300, 300)
    assert "update holding out 200 users" in updated.description and "updated:" in updated.protocol


def test_the_update_learns_from_new_events_and_rehearses_as_many_other_users():
    split = SplitChoice().split(rule_sequences(n_users=40, min_len=12, max_len=12))
    first_new = np.array([len(h) for h in split.train])
    first_new[:5] -= 3  # five users took three new events that are in their training part
    narrowed = fine_tune_split(split, first_new, max_len=4)
    kept = [len(h) for h in narrowed.train]
    assert kept[:5] == [7] * 5  # 4 events of context, then the 3 new ones
    assert sorted(kept[5:], reverse=True)[:6] == [4] * 5 + [0]  # five others rehearse their latest 4
    with pytest.raises(UsageError, match="nothing new to learn"):
        fine_tune_split(split, np.array([len(h) for h in split.train]), max_len=4)
