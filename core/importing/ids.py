"""Shop ids to store ids, so events can be written as integers."""

from __future__ import annotations

import sqlite3
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# A key that is an integer written the one way an integer prints ("42", "-7"; not "042", "+7" or
# "4.0"), short enough for an int64: looked up as that number.
_INTEGER_KEY = r"^(0|-?[1-9][0-9]{0,17})$"
_INTEGER_LIMIT = 10**18
# Integer keys are also looked up in a table indexed by the key itself while it stays this dense:
# the largest key at most this many times the keys held, or below the floor (8 MiB of table).
_DENSE_SPREAD = 4
_DENSE_FLOOR = 1 << 20


def stored_id(external_id: str) -> str:
    """``external_id`` as an import stores it: whitespace trimmed at both ends, by the same Arrow kernel
    the loaders use. A look-up with an id as a client or a person wrote it (" U1 ") then finds the
    events stored under it, instead of answering as for a stranger."""
    return pc.utf8_trim_whitespace(pa.scalar(str(external_id), pa.string())).as_py()


class IdMap:
    """external_id -> id for users or items: the rows already stored plus those this import adds.

    New ids are handed out here (max + 1, ...) rather than by SQLite, so a block's events can
    be written with one executemany without reading ids back. Safe because the import holds
    the workspace's write lock for its whole transaction.

    Keys that are integers (most shops number their users) are kept as sorted int64 arrays and
    found with a binary search over a whole block at once; a dict lookup per distinct key cost
    more than writing the events (7.8 of a 5M-event import's CPU seconds). While those keys are
    dense (ids numbered from 1 up, as most are), a table indexed by the key finds them without
    a search. Other keys are in a dict. A key is one or the other by its text alone, so it
    always finds the same id.
    """

    def __init__(self, raw: sqlite3.Connection, table: str) -> None:
        self.table = table
        self.texts: dict[str, int] = {}
        self.numbers = np.zeros(0, dtype=np.int64)  # sorted integer keys
        self.number_ids = np.zeros(0, dtype=np.int64)  # their ids
        self._dense: Optional[np.ndarray] = None  # key -> id (0: none), built when first asked
        self.next_id = 1
        self._add_rows(raw.execute(f"SELECT external_id, id FROM {table}").fetchall())

    def catch_up(self, raw: sqlite3.Connection) -> None:
        """Add the rows another writer stored since this map was read (ids only ever grow).

        Only correct inside a write transaction, like ``resolve``: nobody else can add rows then.
        """
        self._add_rows(raw.execute(f"SELECT external_id, id FROM {self.table} WHERE id >= ?", (self.next_id,)).fetchall())

    def find(self, keys: pa.Array) -> np.ndarray:
        """Store ids aligned with ``keys``; 0 for a key not stored."""
        numeric, numbers = _integer_keys(keys)
        found = np.zeros(len(keys), dtype=np.int64)
        if numeric.any() and len(self.numbers):
            found[numeric] = self._find_numbers(numbers[numeric])
        if not numeric.all():
            texts = keys.filter(pa.array(~numeric)).to_pylist()
            found[~numeric] = [self.texts.get(key, 0) for key in texts]
        return found

    def resolve(self, keys: pa.Array) -> tuple[np.ndarray, tuple[list[int], list[str]]]:
        """Store ids aligned with ``keys``, and the ids and external ids that are new (two lists, in
        the order the keys first appear). Every key is looked up as it comes; only the keys not
        found are hashed to tell them apart: hashing a whole block's 200,000 keys took more time
        than finding them all."""
        ids = self.find(keys)
        missing = np.flatnonzero(ids == 0)
        encoded = pc.dictionary_encode(keys.take(pa.array(missing, type=pa.int64())))
        new_keys = encoded.dictionary  # in the order they first appear
        new_ids = np.arange(self.next_id, self.next_id + len(new_keys))
        ids[missing] = new_ids[encoded.indices.to_numpy(zero_copy_only=False)]
        self._add(new_keys, new_ids)
        return ids, (new_ids.tolist(), new_keys.to_pylist())

    def _find_numbers(self, wanted: np.ndarray) -> np.ndarray:
        """Store ids of integer keys (0: not stored): read from the dense table when the keys
        fall in it, else a binary search."""
        dense = self._dense_table()
        if dense is not None and wanted.min() >= 0 and wanted.max() < len(dense):
            return dense[wanted]
        order = np.argsort(wanted)  # sorted keys walk the table in order: far fewer cache misses
        at = np.empty(len(wanted), dtype=np.int64)
        at[order] = np.minimum(np.searchsorted(self.numbers, wanted[order]), len(self.numbers) - 1)
        return np.where(self.numbers[at] == wanted, self.number_ids[at], 0)

    def _dense_table(self) -> Optional[np.ndarray]:
        """key -> id for the integer keys held, when they are none negative and dense enough
        (``_DENSE_SPREAD``) for a table of the largest key's size; else None."""
        if self._dense is None and self.numbers[0] >= 0 and self.numbers[-1] < max(
                _DENSE_SPREAD * len(self.numbers), _DENSE_FLOOR):
            self._dense = np.zeros(int(self.numbers[-1]) + 1, dtype=np.int64)
            self._dense[self.numbers] = self.number_ids
        return self._dense

    def _add_rows(self, rows: list[tuple[str, int]]) -> None:
        if rows:
            keys, ids = zip(*rows)
            self._add(pa.array(keys, type=pa.string()), np.array(ids, dtype=np.int64))

    def _add(self, keys: pa.Array, ids: np.ndarray) -> None:
        if not len(keys):
            return
        numeric, numbers = _integer_keys(keys)
        if numeric.any():
            order = np.argsort(numbers[numeric], kind="stable")
            added, added_ids = numbers[numeric][order], ids[numeric][order]
            at = np.searchsorted(self.numbers, added)
            self.numbers, self.number_ids = np.insert(self.numbers, at, added), np.insert(self.number_ids, at, added_ids)
            if self._dense is not None and added[0] >= 0 and added[-1] < len(self._dense):
                self._dense[added] = added_ids  # a block's new keys mostly fall inside the table: no rebuild
            else:
                self._dense = None
        if not numeric.all():
            self.texts.update(zip(keys.filter(pa.array(~numeric)).to_pylist(), ids[~numeric].tolist()))
        self.next_id = max(self.next_id, int(ids.max()) + 1)


def _integer_keys(keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Which keys are integers (``_INTEGER_KEY``), and their values (0 elsewhere). The whole
    block is first read as numbers and written back: when every key comes back as it was, no
    key needs the pattern."""
    numbers = np.zeros(len(keys), dtype=np.int64)
    if not len(keys):
        return np.zeros(0, dtype=bool), numbers
    try:
        values = pc.cast(keys, pa.int64())
        if (not keys.null_count and pc.all(pc.equal(pc.cast(values, pa.string()), keys)).as_py()
                and pc.max(pc.abs_checked(values)).as_py() < _INTEGER_LIMIT):
            return np.ones(len(keys), dtype=bool), values.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    numeric = pc.fill_null(pc.match_substring_regex(keys, _INTEGER_KEY), False).to_numpy(zero_copy_only=False)
    if numeric.any():
        numbers[numeric] = pc.cast(keys.filter(pa.array(numeric)), pa.int64()).to_numpy(zero_copy_only=False)
    return numeric, numbers
