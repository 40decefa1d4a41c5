import dataclasses
import json

import numpy as np
import pytest
from safetensors.torch import load_file

from core.baselines import fit_baseline
from core.data import leave_one_out
from core.evaluation import metrics_from_ranks, ranks_for
from core.progress import CancelToken, Cancelled
import core.training as training
from core.predictor import cluster_items
from core.training import TrainConfig, train_sequence_model

from neural_data import rule_sequences

TINY = dict(hidden=16, layers=1, heads=1, dropout=0.1, max_len=12, batch_size=64, lr=5e-3, warmup_steps=5,
            epochs=6, patience=3, device="cpu")


@pytest.fixture(scope="module")
def rule_data():
    data = rule_sequences(n_users=300, n_items=30)
    return data, leave_one_out(data)


@pytest.mark.parametrize("model", ["sasrec", "gru", "lstm"])
def test_every_sequence_model_beats_popularity_on_learnable_data(rule_data, model):
    data, split = rule_data
    config = TrainConfig(model=model, **TINY)
    result = train_sequence_model(data, split, config)
    model_test = metrics_from_ranks(ranks_for(result.scorer, split.test.histories, split.test.targets))
    popularity = fit_baseline("pop", data, split)
    pop_test = metrics_from_ranks(ranks_for(popularity, split.test.histories, split.test.targets))
    assert model_test["ndcg@10"] > pop_test["ndcg@10"] + 0.2
    assert 1 <= result.best_epoch <= len(result.history) <= config.epochs
    assert result.history[result.best_epoch - 1].valid_ndcg10 == max(r.valid_ndcg10 for r in result.history)
    assert result.device_name.startswith("CPU")


def test_progress_reports_epochs_and_validation(rule_data):
    data, split = rule_data
    reports = []
    train_sequence_model(data, split, TrainConfig(model="gru", **{**TINY, "epochs": 2}), progress=reports.append)
    epoch_reports = [r for r in reports if "valid_ndcg10" in r.metrics]
    assert [r.metrics["epoch"] for r in epoch_reports] == [1, 2]
    assert all(r.metrics["seqs_per_s"] > 0 and r.stage == "train" for r in epoch_reports)
    assert epoch_reports[-1].fraction == 1.0


def test_kmeans_interests_are_learned_when_there_are_no_categories():
    data = rule_sequences(n_users=120, n_items=24, categories=0)
    split = leave_one_out(data)
    config = TrainConfig(model="sasrec", interest_clusters=4, **{**TINY, "epochs": 4, "patience": 4})
    result = train_sequence_model(data, split, config)
    assert result.best_epoch > 1
    item_interest = result.scorer.model.predictor.item_interest
    assert item_interest[0] == -1 and set(item_interest[1:].tolist()) <= {0, 1, 2, 3}
    probabilities = result.scorer.interests(split.test.histories[0])
    assert probabilities.shape == (4,) and np.isclose(probabilities.sum(), 1.0)
    # The served clusters are those of the served embeddings, not of an early epoch's.
    settled = cluster_items(result.scorer.model.item_table().detach(), 4, previous=item_interest)
    assert (settled == item_interest).float().mean() >= 0.9


def test_sampled_softmax_trains(rule_data):
    data, split = rule_data
    config = TrainConfig(model="sasrec", loss="sampled", n_negatives=8, **{**TINY, "epochs": 3})
    result = train_sequence_model(data, split, config)
    assert result.history[-1].loss < result.history[0].loss
    assert result.valid_metrics["ndcg@10"] > 0.3


def test_resume_continues_from_the_last_checkpoint(rule_data, tmp_path):
    data, split = rule_data
    config = TrainConfig(model="sasrec", **{**TINY, "epochs": 2, "patience": 10})
    straight = train_sequence_model(data, split, config)
    first = train_sequence_model(data, split, dataclasses.replace(config, epochs=1), checkpoint_dir=tmp_path)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["state"]["epoch"] == 1 and set(load_file(str(tmp_path / "last.safetensors")))
    resumed = train_sequence_model(data, split, config, checkpoint_dir=tmp_path, resume=True)
    assert [r.epoch for r in resumed.history] == [1, 2]
    assert resumed.history[:1] == first.history
    assert resumed.history[1].loss == pytest.approx(straight.history[1].loss, rel=1e-4)
    assert resumed.history[1].valid_ndcg10 == pytest.approx(straight.history[1].valid_ndcg10, abs=1e-6)


def test_resume_refuses_a_checkpoint_of_another_shape(rule_data, tmp_path):
    data, split = rule_data
    train_sequence_model(data, split, TrainConfig(model="gru", **{**TINY, "epochs": 1}), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="hidden"):
        train_sequence_model(data, split, TrainConfig(model="gru", **{**TINY, "hidden": 8}),
                             checkpoint_dir=tmp_path, resume=True)


def test_cancel_stops_within_one_step_and_leaves_no_partial_files(rule_data, tmp_path, monkeypatch):
    data, split = rule_data
    token = CancelToken()
    steps_run = []
    original = training.batch_loss
    monkeypatch.setattr(training, "batch_loss", lambda *args: steps_run.append(1) or original(*args))
    monkeypatch.setattr(training, "REPORT_EVERY_S", 0.0)
    config = TrainConfig(model="sasrec", **{**TINY, "batch_size": 4})
    with pytest.raises(Cancelled):
        train_sequence_model(data, split, config, progress=lambda report: token.cancel(), cancel=token,
                             checkpoint_dir=tmp_path)
    assert len(steps_run) == 1  # cancelled during the first step's report: the second step never ran
    assert not any(tmp_path.iterdir())


def test_for_data_sizes_the_model_to_the_data(rule_data):
    data, _ = rule_data
    small = TrainConfig.for_data(data)
    assert small.hidden <= 32 and small.max_len >= 20
    assert TrainConfig.for_data(data, model="gru", epochs=3).epochs == 3
    assert TrainConfig.from_json(json.loads(json.dumps(small.to_json()))) == small


def test_baseline_names_are_refused_by_the_neural_loop(rule_data):
    data, split = rule_data
    with pytest.raises(ValueError, match="baseline"):
        train_sequence_model(data, split, TrainConfig(model="pop"))
