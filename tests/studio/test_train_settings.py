"""The Train page's settings: the estimate before training, the presets (timed in the background, their
budgets choosing the loss), Advanced edits making a run Custom, settings that cannot matter greyed out.
Moved as they were from test_train_page.py."""

from __future__ import annotations

from core.training import TrainConfig
from tests.studio.trained_workspace import train_page  # noqa: F401 (the page fixture)


def test_the_estimate_is_shown_before_training_and_follows_the_settings(qtbot, page):
    qtbot.waitUntil(lambda: page.settings.estimate_text.text().startswith("Estimate: about"), timeout=20_000)
    assert "per epoch on CPU" in page.settings.estimate_text.text()
    page.settings.form.editors["epochs"].setValue(7)
    page.settings.budget_form.editors["time_budget"].setValue(0)  # no limit
    job = page.settings.estimate_time()
    with qtbot.waitSignal(job.finished, timeout=20_000):
        pass
    qtbot.waitUntil(lambda: "at most 7 epochs" in page.settings.estimate_text.text(), timeout=5000)
    page.settings.model_box.setCurrentIndex(page.settings.model_box.findData("pop"))
    assert not page.settings.estimate_button.isEnabled() and "baseline" in page.settings.estimate_text.text()


def test_a_presets_budget_decides_the_loss_the_train_button_trains_with(qtbot, page, monkeypatch):
    """The form sizes each preset as ``nextpick train --preset`` does (``TrainConfig.for_data``), not the
    defaults sized for the 10-minute budget with the preset's changes laid over them."""
    import core.training as training

    monkeypatch.setattr(training, "full_softmax_epoch_s", lambda *args: 10.0)  # ten epochs' head: 100 s
    page.settings.model_box.setCurrentIndex(page.settings.model_box.findData("gru"))
    data = page.context.engine.sequence_data()
    for name, loss in (("quick", "sampled"), ("balanced", "softmax")):  # 100 s > 0.9 of 1 min; < 0.9 of 6
        page.settings.preset_buttons[name].click()
        config = page.settings.current_config()
        assert config.loss == loss and page.settings.form.editors["loss"].currentText() == loss
        assert config == TrainConfig.for_data(data, model="gru", device=config.device, preset=name)


def test_presets_are_timed_in_the_background_and_labelled_before_training(qtbot, page, monkeypatch):
    import threading

    engine = page.context.engine
    timed_in = []
    estimate_presets = engine.estimate_presets

    def recording(*args, **kwargs):
        timed_in.append(threading.current_thread() is threading.main_thread())
        return estimate_presets(*args, **kwargs)

    monkeypatch.setattr(engine, "estimate_presets", recording)
    page.settings.model_box.setCurrentIndex(page.settings.model_box.findData("gru"))  # a new model: timed again
    buttons = page.settings.preset_buttons.values()
    qtbot.waitUntil(lambda: all(" · about " in b.text() for b in buttons), timeout=30_000)
    assert timed_in == []  # timed in the job process (core.jobs), never in the window's
    labels = [button.text() for button in page.settings.preset_buttons.values()]
    assert labels[0].startswith("Quick · about ") and labels[2].startswith("Best · about ")
    assert "per epoch on CPU" in page.settings.preset_buttons["best"].toolTip()
    assert page.settings.preset_buttons["balanced"].isChecked()  # the starting preset
    assert page.settings.current_config().time_budget == 6.0


def test_a_preset_sets_the_settings_and_an_edit_under_advanced_makes_it_custom(qtbot, page):
    assert not page.settings.advanced.isVisibleTo(page)  # collapsed until asked for
    page.settings.advanced_toggle.click()
    assert page.settings.advanced.isVisibleTo(page)
    page.settings.preset_buttons["quick"].click()
    config = page.settings.current_config()
    data = page.context.engine.sequence_data()
    assert config == TrainConfig.for_data(data, model=config.model, device=config.device, preset="quick")
    assert page.settings.budget_form.editors["time_budget"].value() == 1.0
    page.settings.form.editors["dropout"].setValue(0.1)
    assert page.settings.custom_button.isChecked() and page.settings.current_config().dropout == 0.1
    assert "press Estimate time" in page.settings.estimate_text.text()  # the preset's estimate no longer applies
    page.settings.form.editors["dropout"].setValue(config.dropout)  # back to the preset's value: the preset again
    assert page.settings.preset_buttons["quick"].isChecked()
    page.settings.budget_form.editors["time_budget"].setValue(3)
    assert page.settings.custom_button.isChecked()


def test_settings_that_cannot_matter_are_greyed_out_with_the_reason(qtbot, page):
    page.settings.advanced_toggle.click()
    negatives = page.settings.form.editors["n_negatives"]
    assert not negatives.isEnabled() and "sampled" in negatives.toolTip()
    page.settings.form.editors["loss"].setCurrentText("sampled")
    assert negatives.isEnabled()
    page.settings.device_box.setCurrentIndex(page.settings.device_box.findData("cpu"))
    assert not page.settings.form.editors["bf16"].isEnabled() and "GPU" in page.settings.form.editors["bf16"].toolTip()
    text = page.settings.form.editors["text"]  # the tests run without the [text] extra's model
    assert not text.isEnabled() and "[text]" in text.toolTip()
    page.settings.model_box.setCurrentIndex(page.settings.model_box.findData("lstm"))
    assert not page.settings.form.editors["heads"].isEnabled()
    page.settings.model_box.setCurrentIndex(page.settings.model_box.findData("sasrec"))
    assert page.settings.form.editors["heads"].isEnabled()
