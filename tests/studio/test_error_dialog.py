"""The error dialog: the engine's own errors show their message and hint; anything else is a bug
and keeps its traceback behind Show Details."""

from __future__ import annotations

import pytest
import torch

from core.bundles import BundleError
from core.errors import NextPickError
from core.importing import RejectedRow
from core.progress import Cancelled
from core.store import Workspace, WorkspaceError
from studio.dialogs.errors import describe_error, show_error
from studio.pages.evaluate import EvaluatePage


@pytest.mark.parametrize("exc, what, next_step", [
    (RejectedRow(12, "time", "'soon' is not a time", "x").as_error("/data/log.csv"),
     "/data/log.csv, line 12, column 'time': 'soon' is not a time.", "bad rows be skipped"),
    (WorkspaceError("/x/shop.sqlite was written by a newer NextPick", "Update NextPick."), "newer NextPick",
     "Update NextPick."),
    (BundleError("model was trained on other items"), "Model was trained on other items.", "Train the model again"),
    (NextPickError("no run #3 in shop.sqlite"), "No run #3 in shop.sqlite.", ""),
    (torch.cuda.OutOfMemoryError("CUDA out of memory"), "GPU ran out of memory", "batch size"),
    (Cancelled("cancelled by the user"), "stopped before it finished", "Nothing was changed"),
    (ValueError("odd"), "unexpected error occurred: odd", "bug report"),
    (FileNotFoundError(2, "No such file or directory"), "unexpected error occurred", "bug report"),
])
def test_the_engines_errors_show_message_and_hint_anything_else_is_unexpected(exc, what, next_step):
    text = describe_error(exc, "Import")
    assert text.title == "Import failed"
    assert what in text.what and next_step in text.next_step
    assert "Traceback" not in text.what + text.next_step


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - the test wants it with its traceback
        return caught


def test_a_family_error_dialog_has_no_traceback_a_bug_keeps_it(qtbot):
    family = show_error(None, _raised(RejectedRow(3, "user", "missing user id", "").as_error("/data/log.csv")), "Import")
    qtbot.addWidget(family)
    assert family.isVisible() and family.windowTitle() == "Import failed"
    assert "line 3" in family.text() and "bad rows be skipped" in family.informativeText()
    assert family.detailedText() == ""
    bug = show_error(None, _raised(KeyError("column")), "Import")
    qtbot.addWidget(bug)
    assert "unexpected error" in bug.text() and "bug report" in bug.informativeText()
    assert "Traceback" in bug.detailedText() and "KeyError: 'column'" in bug.detailedText()


def test_a_folder_opened_as_workspace_reads_as_one_sentence(tmp_path):
    with pytest.raises(WorkspaceError) as error:
        Workspace.open(tmp_path)
    text = describe_error(error.value, "Opening the workspace")
    assert text.what == f"Cannot open the workspace {tmp_path}: Is a directory."
    assert text.next_step == "Choose a workspace file you are allowed to read and write." and text.details == ""


def test_exporting_to_an_unwritable_place_names_the_file(qtbot, context, tmp_path, error_dialogs):
    page = EvaluatePage(context)
    qtbot.addWidget(page)
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "evaluation.csv"
    page.export_csv(target)
    [box] = error_dialogs(page)
    assert box.windowTitle() == "Export failed"
    assert box.text().startswith(f"Cannot write {target}: Not a directory")
    assert "folder you are allowed to write" in box.informativeText() and box.detailedText() == ""


def test_a_missing_file_in_the_import_dialog_is_named_with_a_hint(qtbot, context, engine, tmp_path, error_dialogs):
    from studio.dialogs.import_dialog import ImportDialog

    context.set_engine(engine)
    dialog = ImportDialog(context)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.set_path("events", tmp_path / "gone.csv")
    [box] = error_dialogs(dialog)
    assert box.text() == f"{tmp_path / 'gone.csv'}: cannot read the file: No such file or directory."
    assert box.windowTitle() == "Reading gone.csv failed" and box.detailedText() == ""
