"""Turn an exception from the engine into a dialog a shop analyst can act on.

A dialog says what happened and what to do next in plain words; the exception's own message
and traceback stay behind "Show Details..." for whoever has to report it. Dialogs open
window-modal without blocking (``QMessageBox.open``), so a failing background job never stalls
the event loop and tests can find and close them.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Optional

from PySide6.QtWidgets import QMessageBox, QWidget

from core.progress import Cancelled
from core.store import WorkspaceError


@dataclass(frozen=True)
class ErrorText:
    title: str  # window title: which action failed
    what: str  # what happened, in one or two sentences
    next_step: str  # what the user can do about it
    details: str  # the exception type, message and traceback


def describe_error(exc: BaseException, action: Optional[str] = None) -> ErrorText:
    """The words for ``exc``; ``action`` ("Import", "Training"...) names what was attempted."""
    title = f"{action} failed" if action else "Something went wrong"
    what, next_step = _explain(exc)
    return ErrorText(title, what, next_step, _details(exc))


def show_error(parent: Optional[QWidget], exc: BaseException, action: Optional[str] = None) -> QMessageBox:
    """Open a non-blocking error dialog for ``exc`` over ``parent`` and return it."""
    text = describe_error(exc, action)
    box = QMessageBox(parent)
    box.setObjectName("errorDialog")
    box.setIcon(QMessageBox.Icon.Information if isinstance(exc, Cancelled) else QMessageBox.Icon.Warning)
    box.setWindowTitle(text.title)
    box.setText(text.what)
    box.setInformativeText(text.next_step)
    box.setDetailedText(text.details)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.open()
    return box


def _explain(exc: BaseException) -> tuple[str, str]:
    """(what happened, what to do next) for the errors the engine is known to raise."""
    import torch  # already loaded by the engine; imported here to keep this module light to load

    from core.bundles import BundleError
    from core.importing import CsvImportError

    if isinstance(exc, Cancelled):
        return "The job was stopped before it finished.", "Nothing was changed. Start it again when you are ready."
    if isinstance(exc, CsvImportError):
        return (
            f"The file could not be imported: {exc}",
            "Fix that line in the file, or choose 'Skip bad rows' to import the rest and review "
            "the rejected rows afterwards. The workspace was not changed.",
        )
    if isinstance(exc, WorkspaceError):
        return (
            f"The workspace could not be opened: {exc}",
            "Choose another workspace file, or create a new workspace with File > New workspace.",
        )
    if isinstance(exc, BundleError):
        return (
            f"The trained model could not be loaded: {exc}",
            "Train the model again on this workspace, or pick another run as the active model.",
        )
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return (
            "The GPU ran out of memory.",
            "Lower the batch size or the model size on the Train page, or train on the CPU.",
        )
    if isinstance(exc, MemoryError):
        return "The computer ran out of memory.", "Close other programs, or use a smaller file or model."
    if isinstance(exc, FileNotFoundError):
        return f"A file was not found: {exc.filename or exc}", "Check that the file still exists and choose it again."
    if isinstance(exc, PermissionError):
        return (
            f"Access was denied: {exc.filename or exc}",
            "Choose a location you are allowed to read or write, or ask your administrator.",
        )
    if isinstance(exc, OSError):
        return f"The operating system reported an error: {exc}", "Check the disk space and the file location, then retry."
    return (
        f"An unexpected error occurred: {exc}",
        "Nothing in the workspace was lost. Retry; if it happens again, copy the details below into a bug report.",
    )


def _details(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
