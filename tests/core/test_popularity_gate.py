"""Every neural run is compared with popularity on the same validation users; one that does not beat it is flagged."""

import numpy as np
import pytest

from core.baselines import fit_baseline_on_log
from core.baselines.train_log import TrainLog
from core.engine import Engine
from core.evaluation import evaluate_scorer, per_user_metric
from core.ranker_features import ItemFacts
from core.ranker_training import train_ranker
from core.runs.gate import afterwards, compare_with_popularity, popularity_gate, popularity_side
from core.runs.ranker_inputs import interest_vocabulary, target_times
from core.training import TrainConfig
from engine_data import demo_sequences, demo_workspace, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_gate_needs_a_higher_mean_and_a_significant_paired_test():
    ranks = np.random.default_rng(0).integers(0, 40, 300)
    popularity, better = (per_user_metric(r, "ndcg@10") for r in (ranks, np.maximum(ranks - 15, 0)))
    assert popularity_gate(better, popularity)["beats_popularity"]
    assert not popularity_gate(popularity, better)["beats_popularity"]  # worse
    assert not popularity_gate(popularity, popularity)["beats_popularity"]  # a tie is no win
    barely = popularity.copy()
    barely[np.argmin(popularity)] = 1.0  # one user better: higher mean, but chance could do that
    gate = popularity_gate(barely, popularity)
    assert gate["difference"] > 0 and gate["p_value"] > gate["alpha"] and not gate["beats_popularity"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    engine = Engine(demo_workspace(tmp_path_factory.mktemp("gate") / "ws.sqlite", 300, 120))
    yield engine
    engine.workspace.close()


def test_an_untrained_model_is_flagged_and_both_sides_are_recorded(engine):
    data = engine.sequence_data()
    config = TrainConfig.for_data(data, model="gru", hidden=8, layers=1, epochs=1, lr=1e-9, warmup_steps=1,
                                  max_len=20)
    reports = []
    run = engine.train(config, progress=reports.append)
    assert run.status == "done" and run.beats_popularity is False
    gate, popularity = run.metrics["gate"], run.metrics["popularity"]
    said = [r.metrics["popularity_valid_ndcg10"] for r in reports if "popularity_valid_ndcg10" in r.metrics]
    assert said == [popularity["valid"]["ndcg@10"]]  # before the epochs: the line their curve must climb above
    first_epoch = next(i for i, r in enumerate(reports) if "valid_ndcg10" in r.metrics)
    assert reports.index(next(r for r in reports if "popularity_valid_ndcg10" in r.metrics)) < first_epoch
    assert gate["compares"] == "served, cross-fitted"
    assert gate["mean_b"] == pytest.approx(popularity["served_valid_ndcg10"])
    assert set(popularity) - {"served_test"} == {"valid", "test", "served_valid_ndcg10"}
    assert popularity["test"]["ndcg@10"] > 0
    assert engine.active_run() is None  # training never makes a run active by itself


def test_popularity_s_served_test_is_measured_where_its_re_ranker_is_kept():
    """The report sets the run's served test beside what a popularity run serves: plain popularity's
    test beside a served list flattered the model that the gate (served against served) then flagged."""
    data, split = demo_sequences()
    log = TrainLog.from_split(data, split)
    popularity, config = fit_baseline_on_log("pop", log), TrainConfig()
    side = popularity_side(popularity, data, split, None, served=(log, ItemFacts.from_log(log), config, None))
    assert side.ranker.report["kept"]  # the demo's co-occurrence lifts popularity's lists
    served, plain = side.figures["served_test"], side.figures["test"]
    assert served["ndcg@10"] > plain["ndcg@10"]
    assert set(served) == set(plain)


def test_baselines_are_not_gated(engine):
    run = engine.train(TrainConfig.for_data(engine.sequence_data(), model="itemknn"))
    assert run.beats_popularity is None and "gate" not in run.metrics


def test_the_run_served_by_default_passes_over_a_run_worse_than_popularity(engine):
    data = engine.sequence_data()
    baseline = engine.train(TrainConfig.for_data(data, model="pop"))
    flagged = engine.train(TrainConfig.for_data(data, model="gru", hidden=8, layers=1, epochs=1, lr=1e-9,
                                                warmup_steps=1, max_len=20))
    assert flagged.beats_popularity is False and flagged.id > baseline.id
    assert engine.active_run() is None and engine.serving_run() == baseline.id
    engine.set_active_run(flagged.id)  # a person may still choose it
    assert engine.serving_run() == flagged.id
    engine.set_active_run(None)


def test_the_gate_weighs_what_each_side_serves_cross_fitted():
    """A generator far better than popularity's may still serve no better than a popularity run,
    whose re-ranker lifts it: the gate weighs both served pipelines by their keep checks' cross-fitted
    figures on the same users, not the generators alone."""
    data, split = demo_sequences()
    log = TrainLog.from_split(data, split)
    popularity = fit_baseline_on_log("pop", log)
    valid = evaluate_scorer(fit_baseline_on_log("itemknn", log), data, split.valid)
    generators = compare_with_popularity(valid.ranks, popularity_side(popularity, data, split, None, test=False))["gate"]
    assert generators["compares"] == "generators" and generators["beats_popularity"]

    item_interest, _ = interest_vocabulary(popularity, data)
    popularity_ranker = train_ranker(popularity, log, split.valid, data.user_segment, item_interest,
                                     target_times=target_times(data, split.valid))
    as_popularity = popularity_ranker.judgement
    side = popularity_side(popularity, data, split, None, test=False, served=(log, ItemFacts.from_log(log), TrainConfig(), None))
    compared = compare_with_popularity(valid.ranks, side, popularity_ranker)
    gate = compared["gate"]
    assert gate["compares"] == "served, cross-fitted" and gate["n_users"] == len(as_popularity.users)
    assert gate["difference"] == 0 and not gate["beats_popularity"]  # it serves what a popularity run serves
    assert gate["mean_b"] == pytest.approx(compared["popularity"]["served_valid_ndcg10"])
    assert gate["mean_b"] > generators["mean_b"]  # popularity serves better than its generator alone


def test_the_generator_is_not_validated_again_after_training(engine, monkeypatch):
    """Nor are the log's item facts counted twice: at scale their co-occurrence is the costliest count, and
    popularity's re-ranker (fitted before training) and the run's read the same."""
    from core.ranker_features import ItemFacts
    from core.runs import gate, train

    scored, counted = [], []
    from_log = ItemFacts.from_log
    monkeypatch.setattr(ItemFacts, "from_log", lambda log, *a: counted.append(1) or from_log(log, *a))

    def counting(scorer, *args, **kwargs):
        scored.append(type(scorer).__name__)
        return evaluate(scorer, *args, **kwargs)

    evaluate = train.evaluate_scorer
    for module in (train, gate):  # the run's evaluations, popularity's
        monkeypatch.setattr(module, "evaluate_scorer", counting)
    config = TrainConfig.for_data(engine.sequence_data(), model="gru", hidden=8, layers=1, epochs=2, max_len=20)
    run = engine.train(config)
    best = run.metrics["training"]["epochs"][run.metrics["training"]["best_epoch"] - 1]
    assert run.metrics["valid"]["ndcg@10"] == pytest.approx(best["valid_ndcg10"])  # the best epoch's own ranks
    # Popularity on validation and test (and served, where its re-ranker is kept, before training); the
    # network only on the test (served, and alone when re-ranked).
    assert scored.count("PopularityScorer") == 2
    popularity_served = "served_test" in run.metrics["popularity"]
    assert len(scored) - 2 == (2 if run.metrics["ranker"]["kept"] else 1) + popularity_served
    assert len(counted) == 1
    # Popularity's side is measured before training, and what follows the epochs is planned from it.
    assert list(run.metrics["timing"]["seconds"])[:3] == ["reading", "popularity", "training"]
    assert run.metrics["training"]["estimate"]["after_fixed_s"] > 0


def test_what_follows_training_is_planned_from_popularitys_re_ranker_fitted_before_it():
    from types import SimpleNamespace

    fitted = SimpleNamespace(report={"seconds": {"fit": 2.0, "features": 1.0}, "judged_users": 500},
                             judgement=SimpleNamespace(users=np.arange(1000)))
    split = SimpleNamespace(valid=range(4000), test=range(20_000))
    after = afterwards(fitted, split)
    # The run's fit: every chosen user's list (popularity's candidates held the target for half of them);
    # features for the run's re-ranker's users and every served test user, at popularity's rate.
    assert after.seconds == pytest.approx(2.0 * 1000 / 500 + 1.0 * (1000 + 20_000) / 1000)
    # The network: candidates and interests of the run's re-ranker's users, the served and the generator's tests.
    assert after.passes == pytest.approx((2 * 1000 + 2 * 20_000) / 4000)


def test_both_re_rankers_of_a_run_take_the_item_knn_and_new_item_candidates_it_is_set_to(engine, monkeypatch):
    """The run's re-ranker and popularity's (the gate's other side) draw from the same candidate sources,
    so the gate still compares like with like when a shop turns item-kNN or new-item candidates on."""
    from core.runs import gate, train

    asked = []
    fit = train.train_ranker

    def recording(scorer, *args, **kwargs):
        asked.append((type(scorer).__name__, kwargs.get("neighbours"), kwargs.get("new_items")))
        return fit(scorer, *args, **kwargs)

    for module in (train, gate):  # the run's re-ranker, popularity's
        monkeypatch.setattr(module, "train_ranker", recording)
    config = TrainConfig.for_data(engine.sequence_data(), model="gru", hidden=8, layers=1, epochs=1, max_len=20,
                                  knn_candidates=30, new_item_candidates=7)
    run = engine.train(config)
    assert sorted(asked) == [("NeuralScorer", 30, 7), ("PopularityScorer", 30, 7)]
    assert run.config["knn_candidates"] == 30 and run.config["new_item_candidates"] == 7
