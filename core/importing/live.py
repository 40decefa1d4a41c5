"""Events that arrive one request at a time (``nextpick serve``'s ``POST /events``).

A posted row is judged by the same ``EventsLoader`` that judges a CSV row, so a bad time or a
missing id is refused with the same reason in both. Each request is one transaction; all the
requests of one service are recorded under one ``imports`` row ("events posted to the
service"), whose counts grow with every request and whose rejected rows are kept like a
file's, numbered by their place in the service's stream.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.gathering import Gatherer
from core.importing.errors import FileReport, RejectedRow
from core.importing.ids import IdMap
from core.importing.loaders import EventsLoader, Target
from core.importing.run import _IMPORT_CACHE_KIB, _record_block
from core.store import Workspace

log = logging.getLogger("nextpick.serve")

FIELDS = ("user", "item", "time", "event_type", "value")
ROLES = {"user": "user", "item": "item", "time": "time", "event": "event_type", "value": "value"}
MAX_ID_CHARS = 256  # a user or item id longer than this is refused at its row
GROUP_LINGER_S = 0.01  # the longest a write waits for the requests of the clients answered last (core.gathering)
GROUP_GAP_S = 0.002  # ... and for each next one (a 100-event POST is read and parsed in about a millisecond)
MAX_GROUP = 64  # requests written in one transaction at most
CHECKPOINT_EVERY_S = 1.0  # how often the feed's thread copies committed events from the WAL into the database


@dataclass(frozen=True)
class PostedRejection:
    """One refused row of a request: its 0-based place in the request, the field to blame, why."""

    index: int
    field: Optional[str]
    reason: str


@dataclass(frozen=True)
class PostedReport:
    accepted: int
    rejected: list[PostedRejection]
    new_users: int
    new_items: int


class EventFeed:
    """The events one running service receives, written into ``workspace``.

    Every request is all or nothing and stored before it is answered. The feed's own thread
    writes them: the requests that queued while it wrote the last ones are written together, in
    one pass of the loader (should that fail, again one savepoint each, so that a failing
    request is rolled back alone) and one commit for all (group commit). A commit writes every
    index page the events touched, so one per request would bound the service at a few hundred
    requests a second; a group waits a moment for the requests of the clients its last group
    answered (``core.gathering``). One thread takes them from the queue (``submit``, from the
    service's event loop) rather than each request's own worker thread waiting on a lock: 8
    clients' worker threads, woken in turn to find their request already written by another,
    cost more CPU than validating the events.

    Users and items are looked up through id maps kept between requests; inside each write
    transaction they first catch up with rows another writer (an import in the studio) added
    meanwhile, so a request costs a lookup of its own ids, not a read of the whole catalogue.

    The feed writes through one connection of its own, kept open with the importer's settings
    (a fixed page cache that stays warm between requests, foreign-key checks off: users and
    items are created before their events) and without automatic checkpoints: copying the WAL
    into the database file (and its fsync) happens on a thread of its own every
    ``CHECKPOINT_EVERY_S``, never while a request waits. A commit is in the WAL before the
    request is answered (``synchronous=NORMAL``: it survives the service's crash; a power cut
    may lose the last commits). ``close()`` ends both.
    """

    def __init__(self, workspace: Workspace, source: str) -> None:
        self.workspace = workspace
        self.source = source
        self.received = 0  # events stored since the feed started
        self._queue: Gatherer[_Request] = Gatherer(MAX_GROUP, GROUP_LINGER_S, GROUP_GAP_S)
        self._thread: Optional[threading.Thread] = None
        self._thread_lock = threading.Lock()
        self._import: Optional[FileReport] = None
        self._maps: Optional[tuple[IdMap, IdMap]] = None
        self._writer: Optional[_Writer] = None

    def submit(self, rows: list) -> Future:
        """A future of the ``PostedReport`` of ``rows`` (dicts with the FIELDS): the good ones stored in
        one transaction by the feed's thread (its exception, if the request failed as a whole)."""
        request = _Request(rows)
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_while_open, name="nextpick-feed-writer",
                                                daemon=True)
                self._thread.start()
            self._queue.put(request)
        return request.answer

    def post(self, rows: list) -> PostedReport:
        """``submit`` and wait for its report."""
        return self.submit(rows).result()

    def close(self) -> None:
        """Write what was submitted, stop the thread and give the feed's connection back (after a last
        checkpoint); a later submit starts them again."""
        with self._thread_lock:
            if self._thread is not None:
                self._queue.stop()
                self._thread.join()
                self._thread = None
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def _write_while_open(self) -> None:
        for group in self._queue.batches():
            self._write(group)
            for request in group:
                request.answered()

    def _write(self, group: list["_Request"]) -> None:
        before = self._counts()
        try:
            if self._writer is None:
                self._writer = _Writer(self.workspace)
            with self._writer.transaction() as raw:
                report = self._session_import(raw)
                together = self._write_together(raw, report, group) if len(group) > 1 else None
                for at, request in enumerate(group):
                    alone = None if together is not None else self._write_one(raw, report, [request.rows])
                    request.outcome = together[at] if together is not None else _first(alone)
        except Exception as error:  # the transaction failed as a whole: nothing of the group was stored
            self._restore(before)
            for request in group:
                request.outcome = error
            return
        self.received += sum(r.outcome.accepted for r in group if isinstance(r.outcome, PostedReport))

    def _write_together(self, raw, report: FileReport, group: list["_Request"]) -> Optional[list[PostedReport]]:
        """The group's requests judged and written as one block: the loader's and the inserts' cost
        per call (about half of a 100-event request's) paid once. None when that fails (nothing of it
        stays): then each request is written alone, so only a failing one fails. Not before the
        workspace has a clock or an order: the first request's times decide which, as a file's do."""
        if self._target(raw, report.import_id).time_kind is None:
            return None
        answers = self._write_one(raw, report, [request.rows for request in group])
        return None if isinstance(answers, Exception) else answers

    def _write_one(self, raw, report: FileReport, requests: list[list]) -> list[PostedReport] | Exception:
        """Requests (their rows) as one block inside the group's transaction, under a savepoint of its own."""
        before = self._counts()
        raw.execute("SAVEPOINT posted")
        try:
            answers = self._store(raw, report, requests)
        except Exception as error:
            raw.execute("ROLLBACK TO posted")
            raw.execute("RELEASE posted")
            self._restore(before)
            return error
        raw.execute("RELEASE posted")
        return answers

    def _store(self, raw, report: FileReport, requests: list[list]) -> list[PostedReport]:
        rows = [row for request in requests for row in request]
        first_row = report.rows_read + 1
        target = self._target(raw, report.import_id)
        table, positions, shape_errors = _cells(rows, target.time_kind)
        loader = EventsLoader(Path(self.source), ROLES)
        if target.time_kind is not None:
            loader.time.kind = target.time_kind  # a stream keeps the workspace's clock, not a file's guess
        users_before, items_before = target.users.next_id, target.items.next_id
        block = _PostedBlock(table, positions, rows, first_row)
        accepted, rejected = loader.load(target, block, strict=False) if len(table) else (0, [])
        rejected = sorted(rejected + [RejectedRow(first_row + i, f, why, _raw(rows[i])) for i, f, why in shape_errors],
                          key=lambda r: r.line)
        _record_block(target, report, len(rows), accepted, rejected)
        raw.execute("UPDATE imports SET rows_read = ?, rows_accepted = ?, rows_rejected = ? WHERE id = ?",
                    (report.rows_read, report.rows_accepted, report.rows_rejected, report.import_id))
        starts = np.cumsum([0] + [len(request) for request in requests])
        refused = np.array([r.line - first_row for r in rejected], dtype=np.int64)
        stored = positions[~np.isin(positions, refused)]
        request_of = np.searchsorted(starts, np.arange(len(rows)), side="right") - 1
        new_users = _new_per_request(table, "user", target.users, users_before, positions, stored, request_of, requests)
        new_items = _new_per_request(table, "item", target.items, items_before, positions, stored, request_of, requests)
        return [PostedReport(len(request) - int((request_of[refused] == at).sum()),
                             [PostedRejection(r.line - first_row - int(starts[at]), r.column, r.reason)
                              for r in rejected if request_of[r.line - first_row] == at],
                             int(new_users[at]), int(new_items[at]))
                for at, request in enumerate(requests)]

    def _counts(self) -> Optional[tuple[int, int, int, int]]:
        report = self._import
        return None if report is None else (report.rows_read, report.rows_accepted, report.rows_rejected,
                                             len(report.rejected))

    def _restore(self, counts: Optional[tuple[int, int, int, int]]) -> None:
        """Forget what a rolled-back write did here: its counts, a session row it created, and the
        ids its users and items were given (the maps are read again inside the next write)."""
        self._maps = None
        if counts is None:
            self._import = None
            return
        report = self._import
        report.rows_read, report.rows_accepted, report.rows_rejected, kept = counts
        del report.rejected[kept:]

    def _session_import(self, raw) -> FileReport:
        """This feed's ``imports`` row, created with its first request."""
        if self._import is None:
            report = FileReport("events", Path(self.source), f"service:{uuid.uuid4().hex}")
            cursor = raw.execute(
                "INSERT INTO imports(kind, source_path, source_sha256, rows_read, rows_accepted, rows_rejected, "
                "duration_s, created_at, options) VALUES ('events', ?, ?, 0, 0, 0, 0, ?, ?)",
                (self.source, report.sha256, time.time(), json.dumps({"posted": True, "roles": ROLES})))
            report.import_id = cursor.lastrowid
            self._import = report
        return self._import

    def _target(self, raw, import_id: int) -> Target:
        if self._maps is None:
            self._maps = IdMap(raw, "users"), IdMap(raw, "items")
        users, items = self._maps
        users.catch_up(raw)
        items.catch_up(raw)
        kind = raw.execute("SELECT value FROM meta WHERE key = 'time_kind'").fetchone()
        return Target(raw, users, items, kind[0] if kind else None, import_id)


class _Writer:
    """The feed's own connection, and the thread that checkpoints what it commits."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._pooled = workspace.engine.raw_connection()
        self.raw = self._pooled.dbapi_connection
        self._restore = {name: self.raw.execute(f"PRAGMA {name}").fetchone()[0] for name in _FEED_SETTINGS}
        for name, value in _FEED_SETTINGS.items():
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
        connection = sqlite3.connect(self.workspace.path, check_same_thread=False)
        try:
            while not self._stop.wait(CHECKPOINT_EVERY_S):
                if self._committed.is_set():
                    self._committed.clear()
                    _checkpoint(connection)
            _checkpoint(connection)
        finally:
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._checkpoints.join()
        for name, value in self._restore.items():
            self.raw.execute(f"PRAGMA {name} = {int(value)}")
        self._pooled.close()


_FEED_SETTINGS = {"foreign_keys": 0, "cache_size": -_IMPORT_CACHE_KIB, "wal_autocheckpoint": 0}


def _checkpoint(connection: sqlite3.Connection) -> None:
    """A passive checkpoint; one that fails (a disk error) is logged, and the next one tries again:
    the events stay safe in the WAL meanwhile."""
    try:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error as error:
        log.warning("could not checkpoint the workspace's WAL (%s); trying again in %.0f s", error,
                    CHECKPOINT_EVERY_S)


@dataclass
class _Request:
    rows: list
    outcome: PostedReport | Exception | None = None
    answer: Future = field(default_factory=Future)

    def answered(self) -> None:
        if isinstance(self.outcome, BaseException):
            self.answer.set_exception(self.outcome)
        else:
            self.answer.set_result(self.outcome)


@dataclass
class _PostedBlock:
    """What ``EventsLoader.load`` reads from a CSV block, for posted rows: the rows as a text
    table, and rejected rows numbered by their place in the service's stream."""

    table: pa.Table
    positions: np.ndarray  # index in the request of each table row
    rows: list
    first_row: int

    def undecodable_rows(self) -> dict[int, str]:
        return {}  # posted JSON is text already

    def rejected(self, rows: np.ndarray, columns: list, reasons: list[str]) -> list[RejectedRow]:
        at = self.positions[np.asarray(rows, dtype=np.int64)]
        return [RejectedRow(self.first_row + int(i), column, reason, _raw(self.rows[i]))
                for i, column, reason in zip(at, columns, reasons)]


def _cells(rows: list, time_kind: Optional[str]) -> tuple[pa.Table, np.ndarray, list[tuple[int, Optional[str], str]]]:
    """The rows as a table of text cells (as a CSV reader gives them), the request index of each
    table row, and the rows refused for their JSON shape (index, field, reason: the first field
    in FIELDS' order that is wrong).

    A missing time is the moment of arrival, in a workspace whose times are a clock (``time_kind``
    "unix" or none yet). The cells are made a field at a time: a posted batch's fields are
    nearly always all text, all numbers or all missing, each made in one step, not a row at a time.
    """
    now = repr(time.time()) if time_kind is None or time_kind == "unix" else ""
    refused: dict[int, tuple[Optional[str], str]] = {
        index: (None, "an event must be a JSON object with user, item, time, event_type, value")
        for index, row in enumerate(rows) if not isinstance(row, dict)}
    objects = [{} if index in refused else row for index, row in enumerate(rows)] if refused else rows
    columns = {name: _field_cells([row.get(name) for row in objects], name, now, refused) for name in FIELDS}
    for name in ("user", "item"):
        if max(map(len, columns[name]), default=0) > MAX_ID_CHARS:
            for index, cell in enumerate(columns[name]):
                if len(cell) > MAX_ID_CHARS:
                    refused.setdefault(index, (name, f"{name} id longer than {MAX_ID_CHARS} characters"))
    positions = [index for index in range(len(rows)) if index not in refused] if refused else range(len(rows))
    if refused:
        columns = {name: [cells[index] for index in positions] for name, cells in columns.items()}
    table = pa.table({name: pa.array(cells, pa.string()) for name, cells in columns.items()})
    return (table, np.asarray(positions, dtype=np.int64),
            [(index, *refused[index]) for index in sorted(refused)])


def _field_cells(values: list, name: str, now: str, refused: dict[int, tuple[Optional[str], str]]) -> list[str]:
    """One field's values as text cells; a value that is neither text nor a number refuses its row
    (unless an earlier field did) and leaves an empty cell."""
    kinds = set(map(type, values))
    if kinds == {str}:
        return values
    if kinds <= {int, float}:
        return list(map(repr, values))
    cells = []
    for index, value in enumerate(values):
        if value is None:
            cells.append(now if name == "time" else "")
        elif isinstance(value, str):
            cells.append(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            cells.append(repr(value))
        else:
            refused.setdefault(index, (name, f"expected text or a number, not {type(value).__name__}"))
            cells.append("")
    return cells


def _first(answers: list[PostedReport] | Exception) -> PostedReport | Exception:
    return answers if isinstance(answers, Exception) else answers[0]


def _new_per_request(table: pa.Table, field: str, ids: IdMap, first_new: int, positions: np.ndarray,
                     stored: np.ndarray, request_of: np.ndarray, requests: list) -> np.ndarray:
    """How many users (or items) each request created: a new one counts for the request whose stored
    row names it first, as when the requests are written one after another."""
    counts = np.zeros(len(requests), dtype=np.int64)
    if ids.next_id == first_new:
        return counts
    keys = pc.utf8_trim_whitespace(table.column(field)).to_pylist()  # as the loader reads the ids
    at = dict(zip(positions.tolist(), keys))
    store_ids = ids.find(pa.array([at[position] for position in stored.tolist()], type=pa.string()))
    new = store_ids >= first_new
    _, first = np.unique(store_ids[new], return_index=True)
    np.add.at(counts, request_of[stored[new][first]], 1)
    return counts


def _raw(row) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)[:1000]
