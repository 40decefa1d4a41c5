"""The engine's user-facing errors: one family, caught once by the CLI and once by the studio.

A ``NextPickError`` is a failure a person can act on from its words alone: ``message`` says what
happened and names what it is about (the file and line, the run, the user, the setting),
``hint`` says what to do next. The CLI prints both and exits with 1; the studio shows both in
its error dialog. Any other exception is a bug and keeps its traceback. OS errors about files a
person named are turned into the family where they happen (``user_file``), so a missing CSV or
an unwritable folder reads as one clear line, while an OS error anywhere else stays a bug.

This module imports nothing heavy: the CLI's data commands load it without torch.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Optional


class NextPickError(Exception):
    """A failure worth one message (and a hint) to the person, never a traceback."""

    hint: Optional[str] = None  # what to do about it; a subclass may set one for all its errors

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(NextPickError, ValueError):
    """What was asked cannot be done as asked: a setting out of range, runs that cannot be
    compared, a resume on another split. Still a ``ValueError`` for callers that check values."""


class UserFileError(NextPickError):
    """A file or folder the person named could not be read or written."""

    def __init__(self, path: os.PathLike | str, action: str, error: OSError) -> None:
        self.path = path
        reason = error.strerror or str(error)
        hint = ("Check that the file exists and that you may read it, then choose it again." if action == "read"
                else "Choose a folder you are allowed to write to, with free space.")
        super().__init__(f"cannot {action} {path}: {reason}", hint)


class OutOfMemory(NextPickError):
    """The machine ran out of memory (host RAM, or the GPU's): a limit of this run, not a bug."""

    hint = ("Close other programs, or make the job smaller: a smaller --batch-size or --max-len for "
            "training, --eval-users N for evaluation.")

    @staticmethod
    def caught(error: BaseException) -> bool:
        """Python's ``MemoryError``, or torch's ``OutOfMemoryError`` (found by name, so that
        callers need not import torch)."""
        return isinstance(error, MemoryError) or any(
            cls.__name__ == "OutOfMemoryError" for cls in type(error).__mro__)


@contextmanager
def user_file(path: os.PathLike | str, action: str) -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into a ``UserFileError`` naming ``path``.

    action: "read" or "write", as the message should say it.
    """
    try:
        yield
    except OSError as error:
        raise UserFileError(path, action, error) from error
