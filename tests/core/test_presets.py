"""Training presets: defined once in ``core.presets``, timed by the engine, offered by ``nextpick train --preset``."""

import json

import pytest

from cli_run import run
from core.cli import main
from core.engine import Engine
from core.presets import PRESETS, about_minutes, apply_preset
from core.progress import Cancelled, CancelToken
from core.settings import settings_of
from core.training import TrainConfig
from engine_data import demo_workspace, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def test_each_preset_sets_its_budget_and_changes_only_what_it_names():
    base = TrainConfig(hidden=32, layers=2, patience=10, device="cpu")
    quick, balanced, best = (apply_preset(base, name) for name in ("quick", "balanced", "best"))
    assert (quick.time_budget, balanced.time_budget, best.time_budget) == (1.0, 6.0, 25.0)
    assert quick.layers == 1 and quick.patience < base.patience and quick.hidden == base.hidden
    assert balanced == TrainConfig(hidden=32, layers=2, patience=10, device="cpu", time_budget=6.0)
    assert best.hidden == 64 and best.layers == 2 and best.patience > base.patience
    assert best.device == "cpu" and best.model == base.model  # the choices a person made are kept


def test_about_minutes_rounds_as_a_label_reads():
    assert about_minutes(12) == "about 10 s" and about_minutes(40) == "about 40 s"
    assert about_minutes(70) == "about 1 min" and about_minutes(6 * 60 + 20) == "about 6 min"


def test_settings_carry_plain_labels_and_the_choices_they_depend_on():
    info = {setting.name: setting for setting in settings_of(TrainConfig)}
    assert info["hidden"].label == "Model width" and "_" not in "".join(s.label for s in info.values())
    assert info["n_negatives"].applies({"loss": "sampled"}) and not info["n_negatives"].applies({"loss": "softmax"})
    assert not info["bf16"].applies({"trains_on": "cpu"}) and info["bf16"].applies({"trains_on": "cuda"})
    assert not info["heads"].applies({"model": "gru"}) and info["heads"].applies({"model": "sasrec"})
    assert not info["interest_clusters"].applies({"has_categories": True})
    assert not info["text"].applies({"text_model": False}) and info["text"].applies({"text_model": True})
    assert info["n_negatives"].applies({}) and info["n_negatives"].when_text  # an unknown fact rules nothing out


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    engine = Engine(demo_workspace(tmp_path_factory.mktemp("presets") / "ws.sqlite", 200, 80))
    yield engine
    engine.workspace.close()


def test_the_engine_times_every_preset_on_this_data(shop):
    data = shop.sequence_data()
    configs = {name: TrainConfig.for_data(data, model="gru", device="cpu", max_len=20, preset=name) for name in PRESETS}
    estimates = shop.estimate_presets(configs)
    assert list(estimates) == list(PRESETS)
    assert all(estimate.step_s > 0 for estimate in estimates.values())
    assert estimates["quick"].max_epochs == 30 and estimates["best"].budget_s == 25 * 60
    assert not shop.runs()  # nothing trained or recorded
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        shop.estimate_presets(configs, cancel=cancel)


def test_train_preset_flag_starts_from_the_preset_and_flags_win(tmp_path, capsys):
    db = tmp_path / "shop.sqlite"
    assert main(["demo", "--db", str(db), "--users", "200", "--items", "80", "--seed", "3"]) == 0
    capsys.readouterr()
    quick = ["train", "--db", db, "--model", "gru", "--device", "cpu", "--max-len", "20", "--preset", "quick"]
    code, out, _ = run(capsys, *quick, "--estimate", "--json")
    assert code == 0
    estimate = json.loads(out)["estimate"]
    assert estimate["budget_s"] == 60 and estimate["max_epochs"] == 30
    code, out, _ = run(capsys, *quick, "--epochs", "12", "--estimate", "--json")
    assert code == 0 and json.loads(out)["estimate"]["max_epochs"] == 12
    code, _, err = run(capsys, "train", "--db", db, "--preset", "fastest")
    assert code == 2 and "invalid choice" in err
    code, out, _ = run(capsys, "train", "--help")
    assert "--preset {quick,balanced,best}" in " ".join(out.split())


def test_a_presets_budget_decides_the_loss_not_the_defaults_it_replaced(monkeypatch):
    import core.training as training
    from engine_data import demo_sequences

    data, _ = demo_sequences()
    monkeypatch.setattr(training, "full_softmax_epoch_s", lambda *args: 10.0)  # ten epochs' head: 100 s
    sized = {name: TrainConfig.for_data(data, model="gru", device="cpu", preset=name) for name in PRESETS}
    assert sized["quick"].loss == "sampled" and sized["quick"].time_budget == 1.0  # 100 s > 0.9 of a minute
    assert sized["balanced"].loss == "softmax" and sized["best"].loss == "softmax"
    assert TrainConfig.for_data(data, model="gru", device="cpu", preset="quick", loss="softmax").loss == "softmax"
    base = TrainConfig.for_data(data, model="gru", device="cpu")
    assert PRESETS["quick"].apply(base).sized_for(data).loss == "sampled"
