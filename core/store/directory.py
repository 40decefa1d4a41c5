"""The user directory: every user's id, event count and last-seen time, in the three orders the
studio's user list offers (``Engine.users_page`` / ``user_count``).

One grouped scan of the events index builds it (11 s for a million users on a busy 2-core
machine), so it is kept beside the workspace as ``.npy`` files, like the sequence cache, once per
content: opening a big workspace maps them instead of scanning again. Ids are kept as UTF-8
bytes of fixed width, so a page decodes only its own rows, and a search scans the lowered ids
``SEARCH_CHUNK`` at a time: the studio's window shares its interpreter lock with the thread that
searches, and no single C call may hold it for long.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.store.array_files import save_array_folder

CACHE_FORMAT = 1
SEARCH_CHUNK = 50_000  # ids per C call of a search: a few milliseconds each
KEPT_SEARCHES = 8  # recent (search, order)s whose matches stay in memory: the next pages reuse them
ORDERS = ("activity", "last_seen", "user")  # most events first, latest first, id order
_ARRAYS = ("ids", "lowered", "events", "last_seen", *(f"order_{name}" for name in ORDERS))
# Read whole when the cache is opened (a worker's job), not mapped: the list reads its pages on the GUI
# thread as it scrolls, 200 users scattered over the ids, counts and times and a slice of an order, and
# each part not yet in memory was a disk read there (a cold million-user page took 17-24 ms, 70 ms beside
# an import's writes). 47 MB at a million users; only the lowered ids, scanned by a search's worker, stay mapped.
_READ_WHOLE = tuple(name for name in _ARRAYS if name != "lowered")


@dataclass(frozen=True)
class UserRow:
    user: str
    events: int
    last_seen: Optional[float]


class UserDirectory:
    """Pages and counts of the users, optionally only those whose id contains a text (any case)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.ids, self.lowered = arrays["ids"], arrays["lowered"]
        self.events, self.last_seen = arrays["events"], arrays["last_seen"]
        self.orders = {name: arrays[f"order_{name}"] for name in ORDERS}
        self._searches: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()  # (text, order) -> users
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def read(cls, workspace, activity=None, users=None) -> "UserDirectory":
        """Scan the store: one row per user, events counted and the latest time taken per user.

        activity: (user store ids, events, latest time) of the users with events, when the caller
        holds them (``WholeLog.activity``, after an import that wrote every event); else grouped
        from the events table.
        users: (every user's store id, ascending; their ids), when the caller holds them (the
        sequences' ``user_store_id`` and ``user_external``); else read from the users table.
        """
        with workspace.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            if users is None:
                rows = raw.execute("SELECT id, external_id FROM users ORDER BY id").fetchall()
                users = np.array([row[0] for row in rows], dtype=np.int64), [str(row[1]) for row in rows]
            if activity is None:
                stats = raw.execute("SELECT user_id, COUNT(*), MAX(ts) FROM events GROUP BY user_id").fetchall()
                activity = tuple(np.array([row[k] for row in stats]) for k in range(3))
        store_ids, names = np.asarray(users[0], dtype=np.int64), users[1]
        events = np.zeros(len(store_ids), dtype=np.int64)
        last_seen = np.full(len(store_ids), np.nan)
        active, counts, latest = activity
        if len(active):
            where = np.searchsorted(store_ids, np.asarray(active, dtype=np.int64))
            events[where] = counts
            last_seen[where] = latest
        return cls.from_columns(names, events, last_seen)

    @classmethod
    def from_columns(cls, names, events: np.ndarray, last_seen: np.ndarray) -> "UserDirectory":
        """names: every user's id (a list or an object array of text), in the order of ``events``."""
        names = pa.array(names, type=pa.string())
        ids = _utf8(names)
        position = np.arange(len(names))
        return cls({
            "ids": ids,
            "lowered": _utf8(_lowered(names)),
            "events": events,
            "last_seen": last_seen,
            "order_activity": np.lexsort((position, -events)),
            "order_last_seen": np.lexsort((position, -np.nan_to_num(last_seen, nan=-np.inf))),
            "order_user": np.argsort(ids, kind="stable"),
        })

    # -- the cache beside the workspace --------------------------------------------------------

    @classmethod
    def cached(cls, folder: Path) -> Optional["UserDirectory"]:
        """The directory saved in ``folder`` (``_READ_WHOLE`` read, the lowered ids mapped), or None when it was
        never saved."""
        if not folder.is_dir():
            return None
        return cls({name: np.load(folder / f"{name}.npy", mmap_mode=None if name in _READ_WHOLE else "r")
                    for name in _ARRAYS})

    def save(self, folder: Path) -> None:
        save_array_folder(folder, {"ids": self.ids, "lowered": self.lowered, "events": self.events,
                                   "last_seen": self.last_seen,
                                   **{f"order_{name}": order for name, order in self.orders.items()}})

    # -- what the user list asks ---------------------------------------------------------------

    def page(self, offset: int, limit: int, search: Optional[str], order_by: str) -> list[UserRow]:
        rows = self._ordered(search, order_by)[offset: offset + limit]
        ids, events, last_seen = self.ids[rows].tolist(), self.events[rows].tolist(), self.last_seen[rows].tolist()
        return [UserRow(user.decode("utf-8"), count, None if math.isnan(seen) else seen)
                for user, count, seen in zip(ids, events, last_seen)]

    def count(self, search: Optional[str]) -> int:
        return len(self._ordered(search, "activity"))  # the list's first order: its matches are remembered

    def _ordered(self, search: Optional[str], order_by: str) -> np.ndarray:
        """The users whose id contains ``search`` (any case; all without one) in ``order_by`` order,
        remembered for the next pages."""
        if order_by not in self.orders:
            raise ValueError(f"order_by must be one of {', '.join(self.orders)}")
        text = (search or "").strip().lower()
        if not text:
            return self.orders[order_by]
        key = (text, order_by)
        with self._lock:
            if key in self._searches:
                self._searches.move_to_end(key)
                return self._searches[key]
        order = self.orders[order_by]
        found = order[self._matches(text.encode("utf-8"))[order]]
        with self._lock:
            self._searches[key] = found
            while len(self._searches) > KEPT_SEARCHES:
                self._searches.popitem(last=False)
        return found

    def _matches(self, needle: bytes) -> np.ndarray:
        """Whether each user's lowered id contains ``needle``, a chunk of ids per C call."""
        chunks = [np.char.find(self.lowered[start: start + SEARCH_CHUNK], needle) >= 0
                  for start in range(0, len(self.lowered), SEARCH_CHUNK)]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=bool)


def _utf8(names: pa.Array) -> np.ndarray:
    """Fixed-width UTF-8 bytes (numpy's "S" type): what ``np.save`` maps and ``np.char`` searches.
    Laid out from the Arrow text's own bytes and offsets: a Python bytes object per name took
    0.9 of the directory's 1.0 CPU-s at a million users."""
    names = names.cast(pa.large_string())
    offsets = np.frombuffer(names.buffers()[1], dtype=np.int64)[names.offset: names.offset + len(names) + 1]
    text = names.buffers()[2]
    data = np.frombuffer(text, dtype=np.uint8) if text is not None else np.zeros(0, dtype=np.uint8)
    lengths = np.diff(offsets)
    width = max(int(lengths.max(initial=0)), 1)
    cells = np.zeros((len(names), width), dtype=np.uint8)
    cells[np.arange(width) < lengths[:, None]] = data[offsets[0]: offsets[-1]]
    return cells.view(f"S{width}").ravel()


def _lowered(names: pa.Array) -> pa.Array:
    """Each name as Python's ``str.lower`` gives it, which is how a search lowers its text: Arrow's
    ASCII lowering when every name is ASCII (the same there), else name by name."""
    if pc.all(pc.string_is_ascii(names)).as_py() is not False:
        return pc.ascii_lower(names)
    return pa.array([name.lower() for name in names.to_pylist()], type=pa.string())
