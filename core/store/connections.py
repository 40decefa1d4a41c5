"""Connections to a workspace file: the pool every read and write goes through and its per-connection
settings, read-only opening, the checkpoints that copy the WAL into the file, and ``ChangeWatch``,
which tells whether another connection committed. Each opens its own connection."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import URL, Engine, create_engine, event

log = logging.getLogger("nextpick.store")

# Readers never wait on a writer in WAL mode; this only covers SQLite's brief internal locks.
READ_BUSY_TIMEOUT_S = 5.0


def connect_to(path: Path, mode: str) -> sqlite3.Connection:
    """A connection of its own to the file, opened in ``mode`` (``mode=rw``, ``mode=ro``, ...)."""
    return sqlite3.connect(f"file:{quote(str(path))}?{mode}", uri=True, check_same_thread=False,
                           timeout=READ_BUSY_TIMEOUT_S)


def read_only_mode(path: Path) -> str:
    """``mode=ro`` while a -wal file holds part of the content; else ``immutable=1``: the whole
    content is in the file, and nothing (not even the -shm file WAL readers want) is created."""
    return "mode=ro" if Path(f"{path}-wal").exists() else "mode=ro&immutable=1"


def connect_engine(path: Path, read_only: bool, create: bool) -> Engine:
    """An engine on the file; ``mode=rw`` for an existing one, so a file removed meanwhile is not made anew."""
    def connect() -> sqlite3.Connection:  # read-only: the mode is chosen again for each new connection
        return connect_to(path, read_only_mode(path) if read_only else "mode=rwc" if create else "mode=rw")

    engine = create_engine(URL.create("sqlite", database=str(path)), creator=connect)  # URL: a file database's pool
    event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def _set_sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record) -> None:
    """Per-connection settings only: nothing here writes to the file (WAL is set once, at creation)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def passive_checkpoint(connection: sqlite3.Connection) -> None:
    """``PRAGMA wal_checkpoint(PASSIVE)``: it waits for no reader or writer. One that fails (a disk
    error) is logged: the data stay safe in the WAL, and the next checkpoint tries again."""
    try:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error as error:
        log.warning("could not checkpoint the workspace's WAL (%s); a later one will", error)


def checkpoint_file(path: Path) -> None:
    """A passive checkpoint of the file, on a connection of its own."""
    connection = connect_to(path, "mode=rw")
    try:
        passive_checkpoint(connection)
    finally:
        connection.close()


class ChangeWatch:
    """Whether another connection (another process, a service's writes, an import in another window)
    committed to the workspace since the last look: SQLite's ``PRAGMA data_version`` read on a
    connection of the watch's own, which costs microseconds (no table is read), so a service may
    look between requests and a window on a timer. Its own connection is why it sees every commit
    this process makes through the workspace too. Safe to call from any thread."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self._connection = connect_to(path, read_only_mode(path) if read_only else "mode=ro")
        self._lock = threading.Lock()
        self._seen = self._version()

    def _version(self) -> int:
        return self._connection.execute("PRAGMA data_version").fetchone()[0]

    def changed(self) -> bool:
        """True once after each batch of commits by other connections."""
        with self._lock:
            version = self._version()
            changed, self._seen = version != self._seen, version
            return changed

    def close(self) -> None:
        self._connection.close()
