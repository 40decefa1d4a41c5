import dataclasses
import json
import sys

import numpy as np
import pytest
from safetensors.torch import load_file

from core.baselines import fit_baseline
from core.data import leave_one_out
from core.evaluation import metrics_from_ranks, ranks_for
from core.progress import CancelToken, Cancelled
import core.training as training
from core.training import loop, network, plan, steps
from core.predictor import cluster_items
from core.training import TrainConfig
from core.training.loop import train_sequence_model

from neural_data import TINY_TRAINING as TINY, rule_sequences


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
    result = train_sequence_model(data, split, TrainConfig(model="gru", **{**TINY, "epochs": 2}),
                                  progress=reports.append)
    epoch_reports = [r for r in reports if "valid_ndcg10" in r.metrics]
    assert [r.metrics["epoch"] for r in epoch_reports] == [1, 2]
    if sys.platform.startswith("linux"):  # an epoch's time and memory are said (issue 14)
        assert all(record.peak_rss_mb > 0 for record in result.history)
        assert f"peak memory {result.history[0].peak_rss_mb:,.0f} MiB" in epoch_reports[0].message
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
    token = CancelToken()  # interrupted after epoch 1 (a shorter run would plan another learning-rate decay)
    with pytest.raises(Cancelled):
        train_sequence_model(data, split, config, checkpoint_dir=tmp_path, cancel=token,
                             progress=lambda report: report.metrics.get("epoch") == 1 and "valid_ndcg10" in
                             report.metrics and token.cancel())
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["state"]["epoch"] == 1 and set(load_file(str(tmp_path / "last.safetensors")))
    resumed = train_sequence_model(data, split, config, checkpoint_dir=tmp_path, resume=True)
    assert [r.epoch for r in resumed.history] == [1, 2]
    assert resumed.history[0].loss == pytest.approx(straight.history[0].loss, rel=1e-4)
    assert resumed.estimate == plan.TrainingEstimate.from_json(saved["state"]["estimate"])
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
    original = steps.batch_loss
    monkeypatch.setattr(steps, "batch_loss", lambda *args, **kwargs: steps_run.append(1) or original(*args, **kwargs))
    monkeypatch.setattr(loop, "REPORT_EVERY_S", 0.0)
    config = TrainConfig(model="sasrec", **{**TINY, "batch_size": 4})
    asked_at = []

    def cancel_at_first_step(report):
        if "step" in report.metrics and not asked_at:
            asked_at.append(len(steps_run))
            token.cancel()

    with pytest.raises(Cancelled):
        train_sequence_model(data, split, config, progress=cancel_at_first_step, cancel=token,
                             checkpoint_dir=tmp_path)
    assert asked_at and len(steps_run) == asked_at[0]  # cancelled during a step's report: no step ran after it
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


def test_fused_adamw_only_where_torch_has_it_on_that_device(monkeypatch):
    cpu, gpu = training.torch.device("cpu"), training.torch.device("cuda")
    assert not steps.fused_adamw_available(cpu)
    fused_in_torch = "fused" in steps.inspect.signature(training.torch.optim.AdamW).parameters
    assert steps.fused_adamw_available(gpu) == fused_in_torch

    class OldAdamW(training.torch.optim.AdamW):  # torch before fused AdamW existed
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01):
            super().__init__(params, lr=lr, betas=betas, weight_decay=weight_decay)

    monkeypatch.setattr(training.torch.optim, "AdamW", OldAdamW)
    assert not steps.fused_adamw_available(gpu)
    model = training.torch.nn.Linear(2, 2)
    model.encoder = None
    optimizer = steps.make_optimizer(model, TrainConfig())  # must not pass fused= to this AdamW
    assert isinstance(optimizer, OldAdamW)


def test_every_setting_has_help_and_the_model_choices_are_the_trainable_models():
    from core.baselines import BASELINES
    from core.settings import settings_of

    settings = {info.name: info for info in settings_of(TrainConfig)}
    assert set(settings) == {field.name for field in dataclasses.fields(TrainConfig)}
    assert all(info.help for info in settings.values())
    assert settings["model"].choices == training.NEURAL_MODELS + tuple(BASELINES)
    assert settings["loss"].choices == ("softmax", "sampled") and settings["loss"].kind is str
    assert settings["time_budget"].optional and settings["time_budget"].kind is float
    assert settings["time_budget"].metavar == "MIN" and settings["bf16"].kind is bool
    assert settings["batch_size"].range_error(0) == "must be at least 1" and settings["batch_size"].range_error(1) is None
    assert settings["dropout"].range_error(0.99) == "must be at most 0.95" and settings["loss"].range_error("x") is None


def test_the_sampled_objective_starts_its_item_bias_at_popularity_and_full_softmax_at_zero(rule_data):
    data, split = rule_data
    counts = np.bincount(np.concatenate(list(split.train)), minlength=data.n_items + 1)
    sampled = network.model_for_data(data, TrainConfig(loss="sampled", **TINY), train=split.train)
    bias = sampled.generator.item_bias.detach().numpy()
    assert bias[0] == 0 and abs(bias[1:].mean()) < 1e-5
    assert np.allclose(bias[1:], np.log1p(counts[1:]) - np.log1p(counts[1:]).mean(), atol=1e-5)
    full = network.model_for_data(data, TrainConfig(loss="softmax", **TINY), train=split.train)
    assert not full.generator.item_bias.detach().any()
