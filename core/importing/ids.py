"""Shop ids to store ids, so events can be written as integers."""

from __future__ import annotations

import sqlite3

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class IdMap:
    """external_id -> id for users or items: the rows already stored plus those this import adds.

    New ids are handed out here (max + 1, ...) rather than by SQLite, so a block's events can
    be written with one executemany without reading ids back. Safe because the import holds
    the workspace's write lock for its whole transaction.
    """

    def __init__(self, raw: sqlite3.Connection, table: str) -> None:
        self.table = table
        self.lookup: dict[str, int] = dict(raw.execute(f"SELECT external_id, id FROM {table}"))
        self.next_id = (max(self.lookup.values()) if self.lookup else 0) + 1

    def catch_up(self, raw: sqlite3.Connection) -> None:
        """Add the rows another writer stored since this map was read (ids only ever grow).

        Only correct inside a write transaction, like ``resolve``: nobody else can add rows then.
        """
        for key, id_ in raw.execute(f"SELECT external_id, id FROM {self.table} WHERE id >= ?", (self.next_id,)):
            self.lookup[key] = id_
            self.next_id = max(self.next_id, id_ + 1)

    def resolve(self, keys: pa.Array) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Store ids aligned with ``keys``, and the (id, external_id) pairs that are new."""
        unique = pc.unique(keys)
        unique_keys = unique.to_pylist()
        ids = np.fromiter((self.lookup.get(k, 0) for k in unique_keys), dtype=np.int64, count=len(unique_keys))
        new: list[tuple[int, str]] = []
        for position in np.flatnonzero(ids == 0):
            key = unique_keys[position]
            ids[position] = self.lookup[key] = self.next_id
            new.append((self.next_id, key))
            self.next_id += 1
        return ids[pc.index_in(keys, value_set=unique).to_numpy()], new
