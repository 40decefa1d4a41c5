"""Where the loaders write: the import's (or the live feed's) connection with its id maps and the
workspace's time settings (``Target``), rows inserted as SQLite takes them fastest (``insert_rows``),
and the events an import writes kept as arrays when they will be the whole log (``WrittenEvents``)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Optional

import numpy as np

from core.importing.ids import IdMap
from core.store.whole_log import WholeLog


UNINDEXED_ROWS = 32  # rows to a statement into a table without indexes (``insert_rows``)


def insert_rows(raw: sqlite3.Connection, head: str, row: str, columns: list[list], per_statement: int = 1) -> None:
    """``head`` + ``row`` for each row of ``columns`` (equal-length lists of values), in their order,
    ``per_statement`` rows to a statement.

    ``executemany`` binds each statement's values in C, but its work per statement (stepping and
    resetting it from Python) costs as much as one event's values: into a table without indexes (an
    import's events while their indexes wait to be rebuilt) a million events took 1.7-2.0 s one row to
    a statement, 0.8-1.2 s with 10 to 300 (``UNINDEXED_ROWS``). Into indexed tables one row a statement
    is faster (SQLite's own work per row grows with more: 2-core VM, random keys): events added to a
    workspace 13 against 19-23 us each with 32, new users 8-10 against 8-13 us."""
    if per_statement == 1:
        raw.executemany(head + row, zip(*columns))
        return
    rows = len(columns[0]) if columns else 0
    values = np.empty((rows, len(columns)), dtype=object)
    for k, column in enumerate(columns):
        values[:, k] = column
    whole = rows - rows % per_statement
    if whole:
        raw.executemany(head + ", ".join([row] * per_statement),
                        values[:whole].reshape(-1, per_statement * len(columns)).tolist())
    if whole < rows:
        raw.executemany(head + row, values[whole:].tolist())


class WrittenEvents:
    """The events an import writes, as arrays, kept when they will be the whole log (the workspace
    had none before): the sequences and the user directory are then built from them instead of
    reading every event back from the store (``WholeLog``), which took a third of a big import's CPU.
    Event ids follow the order of writing, as SQLite gives a new row the largest rowid plus one."""

    def __init__(self, first_id: int) -> None:
        self.first_id = first_id
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._log: Optional[WholeLog] = None

    def add(self, user_ids: np.ndarray, item_ids: np.ndarray, ts: np.ndarray, negative: np.ndarray) -> None:
        self.parts.append((_narrow(user_ids), _narrow(item_ids), ts, negative))

    def whole_log(self) -> WholeLog:
        """Every event written, with its id (joined once, when the writing is done)."""
        if self._log is None:
            user_id, item_id, ts, negative = (np.concatenate([part[k] for part in self.parts]) for k in range(4))
            self.parts = []
            event_id = np.arange(self.first_id, self.first_id + len(user_id), dtype=np.int64)
            self._log = WholeLog(user_id, item_id, ts, event_id, negative)
        return self._log

    def forget(self, event_ids: np.ndarray) -> None:
        """Those events were deleted (repeats)."""
        self._log = self.whole_log().without(event_ids)


def _narrow(ids: np.ndarray) -> np.ndarray:
    """Store ids as int32 while they fit (any shop below two billion users or items): 200 MB less per
    column at 25M events, the difference between a big import's peak above 4 GB and below it."""
    return ids.astype(np.int32) if ids.max(initial=0) < 2**31 else ids


@dataclass
class Target:
    """What every loader writes through: the transaction's connection and the id maps; ``written``
    keeps the events written when they are to be the whole log."""

    raw: sqlite3.Connection
    users: IdMap
    items: IdMap
    time_kind: Optional[str]  # the workspace's, once known
    import_id: int = 0
    written: Optional[WrittenEvents] = None
    events_indexed: bool = True  # False while an import leaves the events' indexes to be rebuilt at its end
    date_order: Optional[str] = None  # how the workspace's slashed dates read, once a file showed it (meta "date_order")

    @classmethod
    def over(cls, raw: sqlite3.Connection, users: IdMap, items: IdMap, import_id: int = 0) -> "Target":
        """A target writing through ``raw``, with the workspace's time kind and date order as its meta
        table holds them (an import's connection and the live feed's read them alike)."""
        meta = dict(raw.execute("SELECT key, value FROM meta WHERE key IN ('time_kind', 'date_order')").fetchall())
        return cls(raw, users, items, meta.get("time_kind"), import_id, date_order=meta.get("date_order"))
