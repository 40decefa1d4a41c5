"""The caches every page reads first, the sequences, the user directory and the items' followers, kept beside the
workspace. Nothing here imports torch (4 CPU-seconds): ``nextpick import`` builds them in a process
that needs no model, and the engine reads them through the same functions."""

from __future__ import annotations

from pathlib import Path

from core.data.sequence_cache import build_sequences, cache_folder
from core.data.successors import CACHE_FORMAT as SUCCESSORS_FORMAT, Successors
from core.store.directory import CACHE_FORMAT as DIRECTORY_FORMAT, UserDirectory


def users_folder(workspace, content: str) -> Path:
    """Where the user directory of the workspace's content (its hash) is kept."""
    return cache_folder(workspace.path) / f"users-{content}-v{DIRECTORY_FORMAT}"


def user_directory(workspace, content: str, activity=None, users=None) -> UserDirectory:
    """The user directory of ``content``: mapped from its cache, else scanned (from ``activity`` and
    ``users`` when the caller holds them, as ``UserDirectory.read`` takes them) and cached (never in a
    read-only workspace)."""
    folder = users_folder(workspace, content)
    directory = None if workspace.read_only else UserDirectory.cached(folder)
    if directory is None:
        directory = UserDirectory.read(workspace, activity, users)
        if not workspace.read_only:
            directory.save(folder)
    return directory


def successors_folder(workspace, content: str) -> Path:
    """Where the items' followers of the workspace's content (its hash) are kept."""
    return cache_folder(workspace.path) / f"successors-{content}-v{SUCCESSORS_FORMAT}"


def item_successors(workspace, content: str, data) -> Successors:
    """Every item's followers in ``data`` (the sequences of ``content``): mapped from their cache, else
    counted once and cached (never in a read-only workspace)."""
    folder = successors_folder(workspace, content)
    successors = None if workspace.read_only else Successors.cached(folder)
    if successors is None:
        successors = Successors.count(data.items, data.offsets, data.n_items)
        if not workspace.read_only:
            successors.save(folder)
    return successors


def import_and_prepare(workspace, events=None, items=None, users=None, options=None, progress=None, cancel=None):
    """``core.importing.import_files``, then the sequences, the user directory and the items' followers built and cached on
    disk, so that the next process maps them instead of reading every event. An import into a
    workspace without events hands every event on as it wrote them (``WholeLog``): the caches are
    built from those instead of reading them back."""
    from core.importing import ImportOptions, import_files
    from core.progress import Progress, emit

    logs = []
    report = import_files(workspace, events=events, items=items, users=users, options=options or ImportOptions(),
                          progress=progress, cancel=cancel, on_whole_log=logs.append)
    if report.rows_accepted:
        emit(progress, Progress("prepare", message="Preparing the sequences for training and Explore…"))
        interactions, activity = logs.pop().for_caches if logs else (None, None)  # the log's own arrays go first
        content = workspace.content_hash()
        data = build_sequences(workspace, interactions, content)
        user_directory(workspace, content, activity, (data.user_store_id, data.user_external))
        item_successors(workspace, content, data)
    return report
