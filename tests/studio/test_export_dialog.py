"""The studio's export dialog opens on the run the CLI's export would write."""

from studio.dialogs.export_dialog import ExportDialog
from tests.studio.trained_workspace import open_trained_copy


def test_the_export_dialog_opens_on_the_run_nextpick_export_writes(qtbot, context, tmp_path, monkeypatch):
    """It opened on the latest run (or the active one), even one that failed the popularity check,
    while `nextpick export` writes the active run, else the latest that did not fail it."""
    from dataclasses import replace

    engine = open_trained_copy(tmp_path)
    context.set_engine(engine)
    engine.set_active_run(None)
    every_run = engine.runs()
    first = every_run[0].id
    checked = [replace(run, metrics={**run.metrics, "gate": {"beats_popularity": run.id == first}})
               for run in every_run]
    monkeypatch.setattr(engine, "runs", lambda: checked)  # as if the later runs had failed the check
    dialog = ExportDialog(context)
    qtbot.addWidget(dialog)
    assert dialog.run_combo.count() == len(engine.runs()) and dialog.run_combo.currentData() == first
    engine.set_active_run(engine.runs()[-1].id)
    monkeypatch.undo()
    activated = ExportDialog(context)
    qtbot.addWidget(activated)
    assert activated.run_combo.currentData() == engine.runs()[-1].id
    assert activated.run_combo.currentText().endswith("— active")
