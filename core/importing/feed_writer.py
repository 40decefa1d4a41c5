"""FeedWriter: the connection an ``EventFeed`` writes posted events through, kept open with the
importer's settings, and the thread that checkpoints what it commits (never while a request waits)."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from typing import Iterator

from core.importing.run import BULK_SETTINGS
from core.store import Workspace
from core.store.connections import connect_to, passive_checkpoint

CHECKPOINT_EVERY_S = 1.0  # how often the feed's thread copies committed events from the WAL into the database


class FeedWriter:
    """The feed's own connection, and the thread that checkpoints what it commits."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._pooled = workspace.engine.raw_connection()
        self.raw = self._pooled.dbapi_connection
        self._restore = {name: self.raw.execute(f"PRAGMA {name}").fetchone()[0] for name in BULK_SETTINGS}
        for name, value in BULK_SETTINGS.items():
            self.raw.execute(f"PRAGMA {name} = {value}")
        self._committed = threading.Event()
        self._stop = threading.Event()
        self._checkpoints = threading.Thread(target=self._checkpoint_while_open, name="nextpick-feed-checkpoint",
                                             daemon=True)
        self._checkpoints.start()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``Workspace.begin_write``: waits for another writer, then
        WorkspaceBusyError), committed on success, rolled back on any exception."""
        self.workspace.begin_write(self.raw)
        try:
            yield self.raw
        except BaseException:
            self.raw.rollback()
            raise
        self.raw.commit()
        self._committed.set()

    def _checkpoint_while_open(self) -> None:
        """A passive checkpoint (it waits for no reader or writer) after each ``CHECKPOINT_EVERY_S``
        in which something was committed, on a connection of its own."""
        connection = connect_to(self.workspace.path, "mode=rw")
        try:
            while not self._stop.wait(CHECKPOINT_EVERY_S):
                if self._committed.is_set():
                    self._committed.clear()
                    passive_checkpoint(connection)
            passive_checkpoint(connection)
        finally:
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._checkpoints.join()
        for name, value in self._restore.items():
            self.raw.execute(f"PRAGMA {name} = {int(value)}")
        self._pooled.close()

