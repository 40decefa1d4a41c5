"""The reads the engine and the app need fast: ``WorkspaceReads``, the part of ``Workspace`` that reads
the behaviour log (whole tables in chunks, one user's or a batch of users' events, the content hash).

Safe to call from any thread: each call takes its own pooled connection of the workspace's ``engine``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select, func

from core.store import schema

# Rows per fetch for whole-table reads: a fetch is a list of Python tuples until numpy or pandas
# takes it, so fetching in chunks keeps a read's memory near its result's (the 25M events of a
# big log as one list of tuples would hold ~3 GB). 2.5M events read as fast in chunks of 500 as
# of 50k rows (2.0-2.2 s).
READ_CHUNK_ROWS = 65_536
_MAX_SQL_VARIABLES = 900  # bound parameters in one statement (SQLite before 3.32 allowed 999)

_EVENT_DTYPE = np.dtype([("u", np.int64), ("i", np.int64), ("t", np.float64), ("e", np.int64)])


@dataclass(frozen=True)
class EventArrays:
    """Every event as parallel arrays, sorted by (user_id, ts, id): the input of sequence building."""

    user_id: np.ndarray  # int64 store ids
    item_id: np.ndarray  # int64 store ids
    ts: np.ndarray  # float64
    event_id: np.ndarray  # int64, file order; breaks timestamp ties stably

    def __len__(self) -> int:
        return len(self.user_id)


class WorkspaceReads:
    """The reads of ``Workspace`` (its base class): every one goes through ``self.engine``, a pooled
    connection per call."""

    engine: Engine  # the workspace's SQLAlchemy engine (``Workspace.open`` makes it)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in (("users", schema.users), ("items", schema.items), ("events", schema.events))
            }

    def content_hash(self) -> str:
        """Fingerprint of the behaviour log; changes with every import and every event a service stores,
        so caches keyed on it stay true. It reads the imports and each table's largest id, not its count:
        users, items and events are only ever added (the repeats an import skips are deleted inside
        that import, which adds its own imports row), and counting 25M events took seconds."""
        with self.engine.connect() as conn:
            imports = conn.execute(
                select(schema.imports.c.id, schema.imports.c.source_sha256, schema.imports.c.rows_accepted)
                .order_by(schema.imports.c.id)
            ).all()
            largest = {table.name: conn.execute(select(func.max(table.c.id))).scalar_one()
                       for table in (schema.users, schema.items, schema.events)}
        digest = hashlib.sha256(json.dumps([list(r) for r in imports]).encode())
        digest.update(json.dumps(largest, sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def event_arrays(self, chunk_rows: int = READ_CHUNK_ROWS) -> EventArrays:
        """All interactions sorted by (user, ts, file order): every event but those marked negative.

        An unordered scan plus ``np.lexsort`` is about 3x faster than ``ORDER BY`` through the
        index, so sorting happens in numpy. The scan is read in chunks (``READ_CHUNK_ROWS``).
        """
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            expected = raw.execute("SELECT count(*) FROM events WHERE negative = 0").fetchone()[0]
            cursor = raw.execute("SELECT user_id, item_id, ts, id FROM events WHERE negative = 0")
            rows = _read_chunks(cursor, _EVENT_DTYPE, expected, chunk_rows)
        order = np.lexsort((rows["e"], rows["t"], rows["u"]))
        # One column gathered at a time: sorting the whole record array first held the rows
        # twice more (2.6 GB at 25M events instead of 1.8 GB).
        return EventArrays(*(rows[name][order] for name in ("u", "i", "t", "e")))

    def user_id(self, external_id: str) -> Optional[int]:
        with self.engine.connect() as conn:
            return conn.execute(
                select(schema.users.c.id).where(schema.users.c.external_id == str(external_id))
            ).scalar()

    def user_attributes(self, external_id: str) -> dict:
        """The user's imported profile (the users file's extra columns: age, gender...); {} when none."""
        with self.engine.connect() as conn:
            text = conn.execute(
                select(schema.users.c.attributes).where(schema.users.c.external_id == str(external_id))
            ).scalar()
        return json.loads(text) if text else {}

    def user_sequence(self, external_id: str) -> pd.DataFrame:
        """One user's events in time order, with item details, for display; ``negative`` marks the
        dislikes, which are shown but never scored from."""
        query = (
            "SELECT e.id AS event_id, e.ts, e.event_type, e.value, e.negative, i.id AS item_id, "
            "i.external_id AS item, i.title, i.categories "
            "FROM events e JOIN users u ON u.id = e.user_id JOIN items i ON i.id = e.item_id "
            "WHERE u.external_id = ? ORDER BY e.ts, e.id"
        )
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            rows = raw.execute(query, (str(external_id),)).fetchall()
        columns = ["event_id", "ts", "event_type", "value", "negative", "item_id", "item", "title", "categories"]
        return pd.DataFrame(rows, columns=columns)

    def user_items(self, external_id: str) -> list[str]:
        """The user's item ids in time order as stored now ([] for an unknown user): the history a live
        request is scored from (dislikes left out). ``user_sequence`` gives every event with titles, for display."""
        return self.users_items([external_id])[0]

    def users_items(self, external_ids: list[str]) -> list[list[str]]:
        """``user_items`` of each of ``external_ids``, read in one query (the service reads a batch of
        requests' histories so: one statement instead of one per request)."""
        wanted = [str(user) for user in external_ids]
        found: dict[str, list[str]] = {user: [] for user in wanted}
        distinct = list(found)
        query = ("SELECT u.external_id, i.external_id FROM users u JOIN events e ON e.user_id = u.id "
                 "JOIN items i ON i.id = e.item_id WHERE u.external_id IN ({}) AND e.negative = 0 "
                 "ORDER BY e.user_id, e.ts, e.id")
        for user, item in self._rows_per_users(query, distinct):
            found[user].append(item)
        return [found[user] for user in wanted]

    def _rows_per_users(self, query: str, users: list[str], around=()):
        """The rows of ``query`` whose ``IN ({})`` list takes ``users``, at most SQLite's variable limit
        of them per statement; ``around``: a value bound before the list and the same after it."""
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            for start in range(0, len(users), _MAX_SQL_VARIABLES):
                chunk = users[start:start + _MAX_SQL_VARIABLES]
                yield from raw.execute(query.format(", ".join("?" * len(chunk))), [*around, *chunk, *around])

    def last_event_id(self) -> int:
        """The highest event id stored (0 for none): events are numbered as they are stored."""
        with self.engine.connect() as conn:
            return conn.connection.dbapi_connection.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    def events_since(self, event_id: int, external_ids: list[str]) -> dict[str, tuple[list[str], float, bool]]:
        """Per user of ``external_ids`` with events stored after ``event_id`` (dislikes left out): (their
        item ids in time order, the earliest one's time, whether one is timed no later than the user's
        latest event up to ``event_id``: it then belongs among those, not after them). One query per 900
        users; the user's index finds their newer events without reading the older ones' items."""
        wanted = list(dict.fromkeys(str(user) for user in external_ids))
        found: dict[str, tuple[list[str], float, bool]] = {}
        query = ("SELECT u.external_id, i.external_id, e.ts, e.ts <= coalesce((SELECT max(o.ts) FROM events o "
                 "WHERE o.user_id = e.user_id AND o.id <= ? AND o.negative = 0), -1e300) "
                 "FROM users u JOIN events e ON e.user_id = u.id JOIN items i ON i.id = e.item_id "
                 "WHERE u.external_id IN ({}) AND e.id > ? AND e.negative = 0 ORDER BY e.user_id, e.ts, e.id")
        for user, item, ts, early in self._rows_per_users(query, wanted, around=(event_id,)):
            items, first, interleaved = found.get(user, ([], ts, False))
            items.append(item)
            found[user] = (items, first, interleaved or bool(early))
        return found

    def item(self, external_id: str) -> Optional[dict]:
        """One item as stored now: {"item", "title", "categories" (list, primary first), "attributes"}; None if unknown."""
        with self.engine.connect() as conn:
            row = conn.connection.dbapi_connection.execute(
                "SELECT external_id, title, categories, attributes FROM items WHERE external_id = ?",
                (str(external_id),)).fetchone()
        if row is None:
            return None
        return {"item": row[0], "title": row[1] or "", "categories": list(schema.split_categories(row[2])),
                "attributes": json.loads(row[3]) if row[3] else {}}

    def items_frame(self, chunk_rows: int = READ_CHUNK_ROWS) -> pd.DataFrame:
        """Every item: id, external_id, title, categories (text), attributes (JSON text)."""
        return self._table_frame(schema.items, chunk_rows)

    def users_frame(self, chunk_rows: int = READ_CHUNK_ROWS) -> pd.DataFrame:
        """Every user: id, external_id, attributes (JSON text)."""
        return self._table_frame(schema.users, chunk_rows)

    def _table_frame(self, table, chunk_rows: int) -> pd.DataFrame:
        """A whole table by id, read in chunks (``READ_CHUNK_ROWS``) through the raw cursor
        (``pd.read_sql`` through SQLAlchemy is slower).

        Each chunk becomes its own frame; column types are inferred again over the joined chunks,
        since a chunk whose text column is all null comes back as objects and the whole column
        must read as one read would give it.
        """
        columns = [c.name for c in table.columns]
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            cursor = raw.execute(f"SELECT {', '.join(columns)} FROM {table.name} ORDER BY id")
            chunks = []
            while rows := cursor.fetchmany(chunk_rows):
                chunks.append(pd.DataFrame.from_records(rows, columns=columns, nrows=len(rows)))
        if not chunks:
            return pd.DataFrame(columns=columns)
        return pd.concat(chunks, ignore_index=True).infer_objects() if len(chunks) > 1 else chunks[0]


def _read_chunks(cursor, dtype: np.dtype, expected: int, chunk_rows: int) -> np.ndarray:
    """The cursor's rows as one structured array, filled ``chunk_rows`` at a time.

    ``expected`` (a count taken just before) sizes the array; rows an import adds between the
    count and the scan still fit, as the array grows.
    """
    rows = np.empty(expected, dtype=dtype)
    filled = 0
    while chunk := cursor.fetchmany(chunk_rows):
        end = filled + len(chunk)
        if end > len(rows):
            rows = np.resize(rows, max(end, 2 * len(rows)))
        rows[filled:end] = np.fromiter(chunk, dtype=dtype, count=len(chunk))
        filled = end
    return rows[:filled]
