"""Events that arrive one request at a time (``nextpick serve``'s ``POST /events``).

A posted row is judged by the same ``EventsLoader`` that judges a CSV row, so a bad time or a
missing id is refused with the same reason in both. Each request is one transaction; all the
requests of one service are recorded under one ``imports`` row ("events posted to the
service"), whose counts grow with every request and whose rejected rows are kept like a
file's, numbered by their place in the service's stream.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.gathering import Gatherer
from core.importing.errors import FileReport, RejectedRow
from core.importing.feed_writer import FeedWriter
from core.importing.ids import IdMap
from core.importing.loaders import EventsLoader
from core.importing.target import Target
from core.importing.posted_rows import PostedBlock, raw_text, text_cells
from core.importing.run import record_block
from core.importing.times import TimeColumn
from core.store import Workspace

ROLES = {"user": "user", "item": "item", "time": "time", "event": "event_type", "value": "value"}
GROUP_LINGER_S = 0.01  # the longest a write waits for the requests of the clients answered last (core.gathering)
GROUP_GAP_S = 0.002  # ... and for each next one (a 100-event POST is read and parsed in about a millisecond)
MAX_GROUP = 64  # requests written in one transaction at most
# A client cannot name the order of slashed dates as an import can (``times.FILE_ORDER_HINT``).
POSTED_ORDER_HINT = "send it written out (2025-03-05) or in unix seconds"


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
    ``CHECKPOINT_EVERY_S`` (``core.importing.feed_writer``), never while a request waits. A
    commit is in the WAL before the request is answered (``synchronous=NORMAL``: it survives the
    service's crash; a power cut may lose the last commits). ``close()`` ends both.
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
        self._writer: Optional[FeedWriter] = None

    def submit(self, rows: list) -> Future:
        """A future of the ``PostedReport`` of ``rows`` (dicts with ``core.importing.posted_rows.FIELDS``): the good
        ones stored in one transaction by the feed's thread (its exception, if the request failed as a whole)."""
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
                self._writer = FeedWriter(self.workspace)
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
        table, positions, shape_errors = text_cells(rows, target.time_kind)
        loader = EventsLoader(Path(self.source), ROLES)
        # each client its own clock unit
        loader.time = TimeColumn(ROLES["time"], unit_per_value=True, order_hint=POSTED_ORDER_HINT)
        if target.time_kind is not None:
            loader.time.kind = target.time_kind  # a stream keeps the workspace's clock, not a file's guess
        users_before, items_before = target.users.next_id, target.items.next_id
        block = PostedBlock(table, positions, rows, first_row)
        accepted, rejected = loader.load(target, block, strict=False) if len(table) else (0, [])
        rejected = sorted(rejected + [RejectedRow(first_row + i, f, why, raw_text(rows[i]))
                                      for i, f, why in shape_errors], key=lambda r: r.line)
        record_block(target, report, len(rows), accepted, rejected)
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
        return Target.over(raw, users, items, import_id)


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
