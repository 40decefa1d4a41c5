"""Turn an exception from the engine into a dialog a shop analyst can act on.

The engine's user-facing errors are one family (``core.errors.NextPickError``): the dialog shows
its message and its hint, nothing else. A cancelled job gets a calm note. Running out of memory
is no one's mistake in the code either: it gets what to lower. Anything else is a bug: the
dialog says so and keeps the traceback behind "Show Details..." for whoever reports it. Dialogs
open window-modal without blocking (``QMessageBox.open``), so a failing background job never
stalls the event loop and tests can find and close them.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Optional

from PySide6.QtWidgets import QMessageBox, QWidget

from core.errors import NextPickError, OutOfMemory
from core.progress import Cancelled


@dataclass(frozen=True)
class ErrorText:
    title: str  # window title: which action failed
    what: str  # what happened, in one or two sentences
    next_step: str  # what the user can do about it
    details: str  # a bug's type, message and traceback; empty for the engine's own errors


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
    """(what happened, what to do next)."""
    if isinstance(exc, Cancelled):
        return "The job was stopped before it finished.", "Nothing was changed. Start it again when you are ready."
    if isinstance(exc, NextPickError):
        return _sentence(exc.message), exc.hint or ""
    if OutOfMemory.caught(exc):
        return ("The computer ran out of memory." if isinstance(exc, MemoryError) else "The GPU ran out of memory.",
                "Lower the batch size or the model size on the Train page, use a smaller file, or train on the CPU.")
    return (
        f"An unexpected error occurred: {exc}",
        "Nothing in the workspace was lost. Retry; if it happens again, copy the details below into a bug report.",
    )


def _sentence(message: str) -> str:
    """The engine's messages are written to follow "nextpick COMMAND: "; a dialog shows them as a sentence."""
    text = message[:1].upper() + message[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _details(exc: BaseException) -> str:
    """The traceback, for bugs only: the family's words are the whole story."""
    if isinstance(exc, (NextPickError, Cancelled)) or OutOfMemory.caught(exc):
        return ""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
