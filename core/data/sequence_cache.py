"""A workspace's sequences, built once per content and kept beside it.

Building is the slowest read of a workspace, so ``build_sequences`` caches its result as a folder
of ``.npy`` files keyed on the workspace's content hash (any import changes the hash and therefore
rebuilds) and reads them back memory-mapped: a 25M-event log's arrays are paged in as used, not
loaded, and never unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from core.data.sequences import SequenceData, sequences_from_arrays
from core.store.array_files import save_array_folder

# Part of the cache key: bump it when SequenceData's fields change, so no cached copy of the old
# shape is ever read back.
CACHE_FORMAT = 3


def cache_folder(workspace_path: Path) -> Path:
    """Where a workspace's derived caches live: next to the file, never inside the project."""
    return Path(workspace_path).with_name(Path(workspace_path).name + ".cache")


def sequence_cache(workspace, content: Optional[str] = None) -> Path:
    """The folder that caches the sequences of the workspace's content (``content``: its hash, when known)."""
    return cache_folder(workspace.path) / f"sequences-{content or workspace.content_hash()}-v{CACHE_FORMAT}"


def build_sequences(workspace, events=None, content: Optional[str] = None) -> SequenceData:
    """Sequences of a workspace, rebuilt only when its content hash changed (a read-only one: every time).

    events: every interaction as ``Workspace.event_arrays`` reads them, when the caller holds them
    already (an import that wrote the whole log): they are not read back from the store then.
    content: the workspace's content hash, when the caller holds it (it counts every event: seconds
    at 25M events while they are in the WAL).
    """
    if workspace.read_only:
        return _build_from_workspace(workspace, events)
    folder = sequence_cache(workspace, content)
    if not folder.is_dir():
        _write_cache(_build_from_workspace(workspace, events), folder)
    return _read_cache(folder)


def _build_from_workspace(workspace, events=None) -> SequenceData:
    events = workspace.event_arrays() if events is None else events
    return sequences_from_arrays(
        events.user_id, events.item_id, events.ts, workspace.items_frame(), workspace.users_frame()
    )


def _write_cache(data: SequenceData, folder: Path) -> None:
    """One ``.npy`` per numeric field; text fields as UTF-8 bytes plus offsets (``.npy`` holds text
    only as fixed-width or pickled objects)."""
    arrays = {}
    for name in SequenceData.__dataclass_fields__:
        values = getattr(data, name)
        if values.dtype == object:
            encoded = [str(text).encode("utf-8") for text in values]
            arrays[f"{name}.text"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
            arrays[f"{name}.ends"] = np.cumsum([len(b) for b in encoded], dtype=np.int64)
        else:
            arrays[name] = values
    save_array_folder(folder, arrays)


# Fields with one value per event: read memory-mapped (read-only views). The per-item and
# per-user ones are small and are loaded, so callers may hand them to torch as they are.
PER_EVENT_FIELDS = ("items", "ts")


def _read_cache(folder: Path) -> SequenceData:
    fields = {}
    for name in SequenceData.__dataclass_fields__:
        if (folder / f"{name}.npy").exists():
            fields[name] = np.load(folder / f"{name}.npy", mmap_mode="r" if name in PER_EVENT_FIELDS else None)
        else:
            fields[name] = _decode_texts(np.load(folder / f"{name}.text.npy"), np.load(folder / f"{name}.ends.npy"))
    return SequenceData(**fields)


TEXTS_PER_CALL = 100_000  # texts decoded per C call: a few milliseconds of the interpreter lock each


def _decode_texts(text: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The texts of ``_write_cache`` (UTF-8 bytes and each text's end) as an object array.

    Decoding them one by one in Python took 1.7 s for a million user ids, on the way to a studio's
    first answer; here a NUL goes after each text and a chunk of them is decoded and split at once.
    Text holding a NUL itself is decoded one by one."""
    if not len(ends) or (text == 0).any():
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        data = text.tobytes()
        return np.array([data[a:b].decode("utf-8") for a, b in zip(starts, ends)], dtype=object)
    chunks, start = [], 0
    for first in range(0, len(ends), TEXTS_PER_CALL):
        chunk_ends = ends[first: first + TEXTS_PER_CALL] - start
        separated = np.zeros(int(chunk_ends[-1]) + len(chunk_ends), dtype=np.uint8)
        is_text = np.ones(len(separated), dtype=bool)
        is_text[chunk_ends + np.arange(len(chunk_ends))] = False
        separated[is_text] = text[start: start + int(chunk_ends[-1])]
        chunk = np.empty(len(chunk_ends), dtype=object)
        chunk[:] = separated.tobytes().decode("utf-8").split("\0")[:-1]
        chunks.append(chunk)
        start += int(chunk_ends[-1])
    return np.concatenate(chunks)
