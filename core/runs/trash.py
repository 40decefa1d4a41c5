"""Deleting a run so that it can be restored (the studio's Undo): the row goes, the run's folder is set
aside in the runs folder's trash until emptied; what ended processes left there is swept."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sqlalchemy import func, select

from core.store import schema
from core.runs import ACTIVE_RUN_KEY, delete_row, run_folder, runs_root


@dataclass(frozen=True)
class TrashedRun:
    """A deleted run that can still be restored: its row as it was, and its folder set aside."""

    row: dict  # the runs table's row
    was_active: bool
    folder: Optional[Path]  # the run's folder in the trash; None when it had none


TRASH = ".trash"  # beside the run folders: what ``trash_run`` set aside, as RUNID-PID-TAG


def trash_run(workspace, run_id: int) -> TrashedRun:
    """Delete a run so that ``restore_run`` can bring it back: the row goes (committed, as in
    ``delete_run``), the folder moves into the runs folder's trash until ``empty_trash``."""
    with workspace.writing() as conn:
        row, was_active = delete_row(conn, workspace, run_id)
    folder = run_folder(workspace, run_id)
    aside = runs_root(workspace) / TRASH / f"{int(run_id)}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if folder.exists():
        aside.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(aside)
    return TrashedRun(row, was_active, aside if aside.exists() else None)


def restore_run(workspace, trashed: TrashedRun) -> int:
    """Put a trashed run back, under its old id unless a newer run took it; returns the id."""
    with workspace.writing() as conn:
        run_id = int(trashed.row["id"])
        if conn.execute(select(schema.runs.c.id).where(schema.runs.c.id == run_id)).first() is not None:
            run_id = int(conn.execute(select(func.max(schema.runs.c.id))).scalar_one()) + 1
        target = run_folder(workspace, run_id)
        if trashed.folder is not None:
            shutil.rmtree(target, ignore_errors=True)  # a leftover of a killed run under this id
            trashed.folder.rename(target)
        try:
            conn.execute(schema.runs.insert().values(**{**trashed.row, "id": run_id}))
            if trashed.was_active:  # its meta row is there, cleared by the deletion
                conn.execute(schema.meta.update().where(schema.meta.c.key == ACTIVE_RUN_KEY).values(value=str(run_id)))
        except BaseException:
            if trashed.folder is not None:
                target.rename(trashed.folder)
            raise
    return run_id


def empty_trash(trashed: TrashedRun) -> None:
    """Remove a trashed run's folder for good (the studio does this as it closes)."""
    if trashed.folder is not None:
        shutil.rmtree(trashed.folder, ignore_errors=True)


def sweep_trash(workspace) -> int:
    """Remove what a process that has since ended (a crashed studio) left in the trash: nobody
    can restore it any more. Folders of live processes stay, for their Undo. Returns how many."""
    trash = runs_root(workspace) / TRASH
    left = [folder for folder in trash.glob("*") if not _set_aside_by_a_live_process(folder.name)] if trash.is_dir() else []
    for folder in left:
        shutil.rmtree(folder, ignore_errors=True)
    return len(left)


def _set_aside_by_a_live_process(name: str) -> bool:
    parts = name.split("-")
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
