"""Every neural run is compared with popularity on the same validation users; one that does not beat it is flagged."""

import numpy as np
import pytest

from core.engine import Engine
from core.runs import popularity_gate
from core.training import TrainConfig
from engine_data import demo_workspace, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_gate_needs_a_higher_mean_and_a_significant_paired_test():
    rng = np.random.default_rng(0)
    popularity = rng.integers(0, 40, 300)
    better = np.maximum(popularity - 15, 0)
    assert popularity_gate(better, popularity)["beats_popularity"]
    assert not popularity_gate(popularity, better)["beats_popularity"]  # worse
    assert not popularity_gate(popularity, popularity)["beats_popularity"]  # a tie is no win
    barely = popularity.copy()
    barely[0] = 0  # one user better: higher mean, but chance could do that
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
    run = engine.train(config)
    assert run.status == "done" and run.beats_popularity is False
    gate, popularity = run.metrics["gate"], run.metrics["popularity"]
    assert gate["mean_a"] == pytest.approx(run.metrics["valid"]["ndcg@10"])
    assert gate["mean_b"] == pytest.approx(popularity["valid"]["ndcg@10"]) and gate["mean_b"] > gate["mean_a"]
    assert set(popularity) == {"valid", "test"} and popularity["test"]["ndcg@10"] > 0
    assert engine.active_run() is None  # training never makes a run active by itself


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
