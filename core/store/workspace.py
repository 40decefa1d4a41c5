"""Opening a workspace file and the reads the engine and the app need fast.

Writes that change the behaviour log belong to ``core.importing`` (one transaction per
import); training runs are written by the engine. Everything here is safe to call from
any thread: each call takes its own pooled connection.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from sqlalchemy import URL, Engine, create_engine, event, select, func, text
from sqlalchemy.exc import DatabaseError

from core.errors import NextPickError
from core.store import schema


class WorkspaceError(NextPickError):
    """A workspace file that cannot be opened or is from an incompatible release."""


def _cannot_open(path: Path, reason) -> WorkspaceError:
    return WorkspaceError(f"cannot open the workspace {path}: {reason}",
                          "Choose a workspace file you are allowed to read and write.")


def default_workspace_path() -> Path:
    """Where a workspace lives when the user names none: the user's data folder."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "nextpick" / "workspace.sqlite"


@dataclass(frozen=True)
class EventArrays:
    """Every event as parallel arrays, sorted by (user_id, ts, id): the input of sequence building."""

    user_id: np.ndarray  # int64 store ids
    item_id: np.ndarray  # int64 store ids
    ts: np.ndarray  # float64
    event_id: np.ndarray  # int64, file order; breaks timestamp ties stably

    def __len__(self) -> int:
        return len(self.user_id)


def _set_sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


# Rows per fetch for whole-table reads: between chunks other threads (the studio's GUI) get the GIL.
# A fetch holds the GIL throughout (50k rows: ~45 ms, a visible stall), and the painting GUI
# thread waits for the current fetch every time it takes the GIL back, many times per repaint:
# with 2k rows a fetch (~2.5 ms) the window still froze up to 46 ms while the Train page read
# the events after an import; 500 rows brought that under 20 ms (bench_gui.py), and read 2.5M
# events as fast (2.0-2.2 s either way).
READ_CHUNK_ROWS = 500

_EVENT_DTYPE = np.dtype([("u", np.int64), ("i", np.int64), ("t", np.float64), ("e", np.int64)])

# Steps that bring an older workspace up to SCHEMA_VERSION: {from_version: [sql, ...]}.
_MIGRATIONS: dict[int, list[str]] = {}


class Workspace:
    """One SQLite file: the behaviour log, import provenance and training runs."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine

    @classmethod
    def open(cls, path: os.PathLike | str) -> "Workspace":
        """Open (creating if needed) and migrate the workspace at ``path``."""
        path = Path(path).expanduser().resolve()
        try:
            if path.exists() and not _looks_like_sqlite(path):
                raise WorkspaceError(f"{path} is not a NextPick workspace (not an SQLite file)",
                                     "Choose another workspace file, or create a new workspace.")
            path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(  # a URL object: in a URL string a "?" in the file name starts a query
                URL.create("sqlite", database=str(path)), connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(engine, "connect", _set_sqlite_pragmas)
            workspace = cls(path, engine)
            workspace._create_or_migrate()
        except OSError as error:  # a path the person named: a folder, unreadable, in a read-only place
            raise _cannot_open(path, error.strerror or error) from error
        except DatabaseError as error:  # SQLite could not open or read it (locked, read-only, damaged)
            raise _cannot_open(path, error.orig) from error
        return workspace

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------

    def _create_or_migrate(self) -> None:
        with self.engine.begin() as conn:
            schema.metadata.create_all(conn)
            row = conn.execute(
                select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
            ).first()
            version = int(row[0]) if row else None
            if version is None:
                conn.execute(
                    schema.meta.insert().values(key="schema_version", value=str(schema.SCHEMA_VERSION))
                )
                return
            if version > schema.SCHEMA_VERSION:
                raise WorkspaceError(
                    f"{self.path} was written by a newer NextPick (schema {version}); "
                    f"this release reads up to schema {schema.SCHEMA_VERSION}",
                    "Update NextPick, or choose another workspace.",
                )
            for step in range(version, schema.SCHEMA_VERSION):
                for sql in _MIGRATIONS[step]:
                    conn.execute(text(sql))
            self._set_meta(conn, "schema_version", str(schema.SCHEMA_VERSION))

    @property
    def schema_version(self) -> int:
        return int(self.get_meta("schema_version"))

    def get_meta(self, key: str, default: Optional[str] = None) -> Optional[str]:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == key)).first()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            self._set_meta(conn, key, value)

    @staticmethod
    def _set_meta(conn, key: str, value: str) -> None:
        conn.execute(schema.meta.delete().where(schema.meta.c.key == key))
        conn.execute(schema.meta.insert().values(key=key, value=value))

    # -- reads ----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in (("users", schema.users), ("items", schema.items), ("events", schema.events))
            }

    def content_hash(self) -> str:
        """Fingerprint of the behaviour log; changes with every import, so caches keyed on it stay true."""
        with self.engine.connect() as conn:
            imports = conn.execute(
                select(schema.imports.c.id, schema.imports.c.source_sha256, schema.imports.c.rows_accepted)
                .order_by(schema.imports.c.id)
            ).all()
        digest = hashlib.sha256(json.dumps([list(r) for r in imports]).encode())
        digest.update(json.dumps(self.counts(), sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def event_arrays(self, chunk_rows: int = READ_CHUNK_ROWS) -> EventArrays:
        """All events sorted by (user, ts, file order).

        An unordered scan plus ``np.lexsort`` is about 3x faster than ``ORDER BY`` through the
        index, so sorting happens in numpy. The scan is read in chunks: one C loop over millions
        of rows would hold the GIL and freeze the studio for most of a second.
        """
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            expected = raw.execute("SELECT count(*) FROM events").fetchone()[0]
            cursor = raw.execute("SELECT user_id, item_id, ts, id FROM events")
            rows = _read_chunks(cursor, _EVENT_DTYPE, expected, chunk_rows)
        order = np.lexsort((rows["e"], rows["t"], rows["u"]))
        rows = rows[order]
        return EventArrays(
            np.ascontiguousarray(rows["u"]),
            np.ascontiguousarray(rows["i"]),
            np.ascontiguousarray(rows["t"]),
            np.ascontiguousarray(rows["e"]),
        )

    def user_id(self, external_id: str) -> Optional[int]:
        with self.engine.connect() as conn:
            return conn.execute(
                select(schema.users.c.id).where(schema.users.c.external_id == str(external_id))
            ).scalar()

    def user_sequence(self, external_id: str) -> pd.DataFrame:
        """One user's events in time order, with item details, for display and scoring."""
        query = (
            "SELECT e.id AS event_id, e.ts, e.event_type, e.value, i.id AS item_id, "
            "i.external_id AS item, i.title, i.categories "
            "FROM events e JOIN users u ON u.id = e.user_id JOIN items i ON i.id = e.item_id "
            "WHERE u.external_id = ? ORDER BY e.ts, e.id"
        )
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            rows = raw.execute(query, (str(external_id),)).fetchall()
        columns = ["event_id", "ts", "event_type", "value", "item_id", "item", "title", "categories"]
        return pd.DataFrame(rows, columns=columns)

    def items_frame(self, chunk_rows: int = READ_CHUNK_ROWS) -> pd.DataFrame:
        """Every item: id, external_id, title, categories (text), attributes (JSON text)."""
        return self._table_frame(schema.items, chunk_rows)

    def users_frame(self, chunk_rows: int = READ_CHUNK_ROWS) -> pd.DataFrame:
        """Every user: id, external_id, attributes (JSON text)."""
        return self._table_frame(schema.users, chunk_rows)

    def _table_frame(self, table, chunk_rows: int) -> pd.DataFrame:
        """A whole table by id, read in chunks through the raw cursor so other threads get the GIL
        in between (``pd.read_sql`` through SQLAlchemy held it for up to 300 ms per chunk).

        Each chunk becomes its own frame (one frame of 100k rows held the GIL ~40 ms); column
        types are inferred again over the joined chunks, since a chunk whose text column is all
        null comes back as objects and the whole column must read as one read would give it.
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


def _looks_like_sqlite(path: Path) -> bool:
    if path.stat().st_size == 0:
        return True
    with open(path, "rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"
