"""Opening a workspace file, writing to it under the write lock, and its schema (created or migrated);
the reads the engine and the app need fast are ``Workspace``'s base, ``core.store.reads.WorkspaceReads``.

Writes that change the behaviour log belong to ``core.importing`` (one transaction per
import); training runs are written by the engine. Everything here is safe to call from
any thread: each call takes its own pooled connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DatabaseError

from core.errors import NextPickError
from core.progress import CancelToken, Progress, ProgressCallback, emit
from core.store import schema
from core.store.connections import (READ_BUSY_TIMEOUT_S, ChangeWatch, checkpoint_file, connect_engine, connect_to,
                                    read_only_mode)
from core.store.reads import WorkspaceReads


class WorkspaceError(NextPickError):
    """A workspace file that cannot be opened, is from an incompatible release, or cannot be written now."""


class WorkspaceBusyError(WorkspaceError):
    """A write gave up waiting for another window or command writing to the workspace."""

    hint = "Wait for the import or training in the other window or command to finish, then try again."


class ReadOnlyWorkspaceError(WorkspaceError):
    """A write asked of a workspace this process can only read."""

    hint = ("Browse it as it is, or copy the file (with its .runs folder) to a folder you can write to "
            "and open the copy.")


def _cannot_open(path: Path, reason) -> WorkspaceError:
    return WorkspaceError(f"cannot open the workspace {path}: {reason}",
                          "Choose a workspace file you are allowed to read and write.")


def default_workspace_path() -> Path:
    """Where a workspace lives when the user names none: the user's data folder."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "nextpick" / "workspace.sqlite"


# A write waits this long for another window or command's write (an import can hold the lock
# for minutes) before giving up with a WorkspaceError; it says it waits through ``progress``.
WRITE_WAIT_S = 120.0
_WRITE_POLL_MS = 250

# Steps that bring an older workspace up to SCHEMA_VERSION: {from_version: [sql, ...]}.
_MIGRATIONS: dict[int, list[str]] = {
    1: ["ALTER TABLE events ADD COLUMN negative INTEGER NOT NULL DEFAULT 0"],  # low ratings marked negative
    2: ["DROP INDEX IF EXISTS ix_events_item"],  # see schema: the events' second index
}


class Workspace(WorkspaceReads):
    """One SQLite file: the behaviour log, import provenance and training runs.

    Opening never writes unless the file must be created or migrated, and then only under the
    write lock, so any number of readers (``stats`` during an import, a second window) see the
    last committed state at once. A file or folder this process cannot write opens read-only:
    every read works and every write raises ``WorkspaceError`` saying why.
    """

    def __init__(self, path: Path, engine: Engine, read_only: bool = False, write_wait_s: float = WRITE_WAIT_S) -> None:
        self.path = path
        self.engine = engine
        self.read_only = read_only
        self.write_wait_s = write_wait_s
        self._checkpoints: list[threading.Thread] = []

    @classmethod
    def open(cls, path: os.PathLike | str, read_only: bool = False, write_wait_s: float = WRITE_WAIT_S) -> "Workspace":
        """Open the workspace at ``path``; a missing or empty file is created (in a folder made if needed).

        Refused with ``WorkspaceError``: a file that is not SQLite, an SQLite database of another
        program (left byte-for-byte as it was), a schema this release does not know, a folder
        that cannot be created or written.
        """
        path = Path(path).expanduser().resolve()
        try:
            version = _stored_version(path)
            if version is None:
                if read_only:
                    raise WorkspaceError(f"no workspace at {path}", "Create one with an import or the demo shop.")
                _prepare_folder(path.parent)
                if path.exists() and not os.access(path, os.W_OK):
                    raise _cannot_open(path, "the file is not writable, so it cannot become a workspace")
            read_only = read_only or (version is not None and not _writable(path))
            workspace = cls(path, connect_engine(path, read_only, create=version is None), read_only, write_wait_s)
        except OSError as error:  # a path the person named: a folder, unreadable, in a read-only place
            raise _cannot_open(path, error.strerror or error) from error
        try:
            if version != schema.SCHEMA_VERSION:
                workspace._create_or_migrate()
        except (DatabaseError, sqlite3.DatabaseError) as error:  # damaged, or a disk that refuses the write
            workspace.close()
            raise _cannot_open(path, getattr(error, "orig", error)) from error
        except BaseException:
            workspace.close()
            raise
        return workspace

    def close(self) -> None:
        """Waits for the checkpoints ``checkpoint_in_background`` started, then closes every connection."""
        for thread in self._checkpoints:
            thread.join()
        self.engine.dispose()

    def checkpoint_in_background(self) -> None:
        """Copy what the WAL holds into the database file on a thread and connection of their own.

        A large write commits with SQLite's automatic checkpoint off (``wal_autocheckpoint = 0``)
        and calls this: the copy of 25M events (13 s) then runs beside whatever the writer does
        next (an import builds its caches) instead of inside its commit. Nothing is at risk
        meanwhile: the WAL holds the committed data, and readers read it from there."""
        thread = threading.Thread(target=checkpoint_file, args=(self.path,), name="nextpick-checkpoint", daemon=True)
        thread.start()
        self._checkpoints = [t for t in self._checkpoints if t.is_alive()] + [thread]

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------

    @contextmanager
    def writing(self, progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None):
        """A connection inside one write transaction (commit on success, rollback on any error).

        The write lock is taken first (``BEGIN IMMEDIATE``), so a transaction never fails half-way
        for a lock; while another window or command holds it, see ``begin_write``.
        """
        with self.engine.connect() as conn:
            with conn.begin():
                self.begin_write(conn.connection.dbapi_connection, progress, cancel)
                yield conn

    def begin_write(self, raw: sqlite3.Connection, progress: Optional[ProgressCallback] = None,
                    cancel: Optional[CancelToken] = None) -> None:
        """``BEGIN IMMEDIATE`` on ``raw``, waiting up to ``write_wait_s`` for another writer.

        While it waits it says so through ``progress`` (once); when it gives up, or when the
        workspace is read-only, it raises ``WorkspaceError`` naming the file.
        """
        if self.read_only:
            raise ReadOnlyWorkspaceError(f"{self.path} is read-only here (the file or its folder cannot be "
                                         "written): it can be browsed, not changed")
        deadline = time.monotonic() + self.write_wait_s
        said_so = False
        raw.execute(f"PRAGMA busy_timeout = {_WRITE_POLL_MS}")
        try:
            while True:
                try:
                    raw.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                if time.monotonic() >= deadline:
                    raise WorkspaceBusyError(
                        f"{self.path} is busy: another window or command (an import?) kept writing to it for "
                        f"{self.write_wait_s:.0f} s; try again when it has finished")
                if cancel is not None:
                    cancel.raise_if_cancelled()
                if not said_so:
                    emit(progress, Progress("waiting", message=f"waiting for the import (or other write) in another "
                                                                f"window or command to finish with {self.path.name}…"))
                    said_so = True
        finally:
            raw.execute(f"PRAGMA busy_timeout = {int(READ_BUSY_TIMEOUT_S * 1000)}")

    # -- schema ---------------------------------------------------------------------------

    def _create_or_migrate(self) -> None:
        """Create the tables of a new file or bring an older one up to date, under the write lock
        (another process may have done it meanwhile: the version is read again inside)."""
        if self.read_only:
            raise ReadOnlyWorkspaceError(f"{self.path} is from an older NextPick (schema {self.get_meta('schema_version')}) "
                                         "and must be upgraded, which needs write access: open it once where it can "
                                         "be written")
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            if raw.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                raw.execute("PRAGMA journal_mode=WAL")  # persistent; outside any transaction
            with conn.begin():
                self.begin_write(raw)
                schema.metadata.create_all(conn)
                row = conn.execute(
                    select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
                ).first()
                if row is None:
                    self._set_meta(conn, "schema_version", str(schema.SCHEMA_VERSION))
                    return
                version = _known_version(row[0], self.path)
                if version == schema.SCHEMA_VERSION:  # another process did it meanwhile
                    return
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

    def set_meta(self, key: str, value: str, progress: Optional[ProgressCallback] = None) -> None:
        with self.writing(progress) as conn:
            self._set_meta(conn, key, value)

    @staticmethod
    def _set_meta(conn, key: str, value: str) -> None:
        conn.execute(schema.meta.delete().where(schema.meta.c.key == key))
        conn.execute(schema.meta.insert().values(key=key, value=value))

    def change_watch(self) -> "ChangeWatch":
        """A ``ChangeWatch`` on this file: tells cheaply whether anything was committed since it last looked."""
        return ChangeWatch(self.path, self.read_only)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or "locked" in str(exc)


_WRITABLE_FOLDER = "Choose a folder you are allowed to write to."
_LEFT_UNCHANGED = "Choose another workspace file, or create a new workspace."


def _prepare_folder(folder: Path) -> None:
    """The folder a new workspace goes in exists and can be written, or a one-line error names it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(f"cannot create the folder {folder} for the workspace: {exc.strerror or exc}",
                             _WRITABLE_FOLDER) from None
    if not os.access(folder, os.W_OK):
        raise WorkspaceError(f"cannot create a workspace in {folder}: the folder is not writable", _WRITABLE_FOLDER)


def _writable(path: Path) -> bool:
    """Whether this process can write the file and the folder WAL keeps its -wal and -shm files in."""
    sidecars = [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    return all(os.access(p, os.W_OK) for p in (path, path.parent, *sidecars))


def _stored_version(path: Path) -> Optional[int]:
    """The schema version of the workspace at ``path``; None for a missing, empty or table-less file
    (one NextPick may initialise). Looks without writing anything, and refuses what is not ours."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, "rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise WorkspaceError(f"{path} is not a NextPick workspace (not an SQLite file); it was left unchanged",
                                 _LEFT_UNCHANGED)
    try:
        tables, value = _peek(path)
    except sqlite3.DatabaseError as exc:
        raise WorkspaceError(f"{path} cannot be read as a workspace ({exc}); it was left unchanged",
                             _LEFT_UNCHANGED) from None
    if not tables:
        return None
    if "meta" not in tables:
        raise WorkspaceError(f"{path} is an SQLite database of another program (it has no NextPick meta table); "
                             "it was left unchanged", _LEFT_UNCHANGED)
    if value is None:
        raise WorkspaceError(f"{path} has a meta table but no schema version: not a NextPick workspace, left unchanged",
                             _LEFT_UNCHANGED)
    return _known_version(value, path)


def _peek(path: Path) -> tuple[set[str], Optional[str]]:
    """(table names, stored schema_version) read through a connection that cannot write."""
    con = connect_to(path, read_only_mode(path))
    try:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        value = None
        if "meta" in tables:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            value = None if row is None else row[0]
        return tables, value
    finally:
        con.close()


def _known_version(value, path: Path) -> int:
    """The stored schema version as a number this release can read or migrate from."""
    try:
        version = int(str(value).strip())
    except ValueError:
        version = None
    if version is not None and version > schema.SCHEMA_VERSION:
        raise WorkspaceError(f"{path} was written by a newer NextPick (schema {version}); "
                             f"this release reads up to schema {schema.SCHEMA_VERSION}",
                             "Update NextPick, or choose another workspace.")
    if version is None or (version != schema.SCHEMA_VERSION and version not in _MIGRATIONS):
        raise WorkspaceError(f"{path} has schema version {value!r}, which no NextPick release wrote "
                             f"(this one knows {', '.join(map(str, _known_versions()))}); the file may be damaged",
                             "Restore the workspace from a copy, or choose another one.")
    return version


def _known_versions() -> list[int]:
    return sorted({*_MIGRATIONS, schema.SCHEMA_VERSION})
