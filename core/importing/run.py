"""``import_files``: every file of one call in one transaction, with progress and cancel.

Order inside a call: items, users, then events, so profile files fill in titles and
attributes before events refer to them (either order gives the same workspace). Any error
or cancel rolls the whole call back: the workspace is exactly as it was.
"""

from __future__ import annotations

import json
import sqlite3
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import numpy as np

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex

from core.importing.errors import REPORT_REJECTED_LIMIT, FileReport, ImportReport, RejectedRow
from core.importing.ids import IdMap
from core.importing.loaders import column_text
from core.importing.plan import ImportOptions, Plan, plan_source, reading
from core.importing.target import Target, WrittenEvents
from core.importing.times import ORDER, slashed_dates_shown
from core.importing.sources import Source, open_source
from core.progress import CancelToken, Progress, ProgressCallback, RateMeter, emit
from core.store import Workspace, schema
from core.store.whole_log import WholeLog

IMPORT_CACHE_KIB = 64 * 1024  # SQLite page cache while importing: a fixed bound, not the file size
# Page cache while the events' indexes are built. It also bounds the sorter's in-memory runs: small
# runs merged stay in the CPU's caches, and building both indexes of 5M events took half the CPU
# time with 2 MiB (SQLite's default) as with 64 MiB.
_INDEX_BUILD_CACHE_KIB = 2 * 1024
_REBUILD_MIN_ROWS = 100_000
# The import's connection: foreign-key checks off (they cost more than the insert itself; the import
# creates every user and item before events refer to them), a page cache of a fixed size whatever
# the file's, index builds sorting on disk rather than in memory, and no checkpoint in the commit.
BULK_SETTINGS = {"foreign_keys": 0, "cache_size": -IMPORT_CACHE_KIB, "temp_store": 1, "wal_autocheckpoint": 0}


def import_files(workspace: Workspace, events=None, items=None, users=None, options: Optional[ImportOptions] = None,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                 on_whole_log: Optional[Callable[[WholeLog], None]] = None) -> ImportReport:
    """Import events and/or items and users into ``workspace`` as one transaction. Each is a
    CSV file, a Parquet file or folder of them, or an ``SqlQuery`` (see ``sources``).

    on_whole_log: when the workspace had no events before, called after the commit with every
    event it now holds (``WholeLog``), kept in memory while they were written, so the caches
    built next need not read them back.
    """
    options = options or ImportOptions()
    started = time.perf_counter()
    plans = [plan_source(kind, open_source(kind, spec, options), options)
             for kind, spec in (("items", items), ("users", users), ("events", events)) if spec]
    report = ImportReport()
    with _bulk_connection(workspace, progress, cancel) as raw:
        target = Target.over(raw, IdMap(raw, "users"), IdMap(raw, "items"))
        if on_whole_log is not None and events and raw.execute("SELECT NOT EXISTS (SELECT 1 FROM events)").fetchone()[0]:
            target.written = WrittenEvents(first_id=1)
        for plan in plans:
            report.files.append(_import_file(target, plan, options, progress, cancel))
    report.duration_s = time.perf_counter() - started
    if target.written is not None and report.rows_accepted:
        on_whole_log(target.written.whole_log())
    return report


@contextmanager
def _bulk_connection(workspace: Workspace, progress: Optional[ProgressCallback],
                     cancel: Optional[CancelToken]) -> Iterator[sqlite3.Connection]:
    """One write transaction (commit on success, rollback on any exception) on a connection
    tuned for bulk writes (``BULK_SETTINGS``); the usual settings are restored before the
    connection goes back to the pool. The commit does not copy the WAL into the database file
    itself: a thread does (``Workspace.checkpoint_in_background``) while the caches are built."""
    with workspace.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        usual = {name: raw.execute(f"PRAGMA {name}").fetchone()[0] for name in BULK_SETTINGS}
        for name, value in BULK_SETTINGS.items():
            raw.execute(f"PRAGMA {name} = {value}")
        try:
            workspace.begin_write(raw, progress, cancel)  # waits (and says so) for another writer
            try:
                yield raw
            except BaseException:
                raw.rollback()
                raise
            raw.commit()
            workspace.checkpoint_in_background()
        finally:
            for name, value in usual.items():
                raw.execute(f"PRAGMA {name} = {int(value)}")


@contextmanager
def _events_indexes_rebuilt(raw: sqlite3.Connection, plan: Plan,
                            progress: Optional[ProgressCallback]) -> Iterator[bool]:
    """When an events file at least doubles the events table, building its indexes once at
    the end is much faster than updating them row by row (one sort instead of random writes).
    Yields whether it does so: the file is then most of the table. That build can take as long
    as the load itself, so it reports as a stage of its own."""
    stored = raw.execute("SELECT count(*) FROM events").fetchone()[0]
    incoming = plan.source.rows_expected
    if incoming is None:  # a query's rows are not known before: rebuilding a small table costs little
        incoming = _REBUILD_MIN_ROWS if stored < _REBUILD_MIN_ROWS else 0
    if plan.kind != "events" or incoming < max(stored, _REBUILD_MIN_ROWS):
        yield False
        return
    dialect = sqlite_dialect.dialect()
    for index in schema.events.indexes:
        raw.execute(f"DROP INDEX {index.name}")
    yield True
    indexes = sorted(schema.events.indexes, key=lambda index: index.name)
    raw.execute(f"PRAGMA cache_size = {-_INDEX_BUILD_CACHE_KIB}")
    for done, index in enumerate(indexes):
        emit(progress, Progress("rebuild indexes", done, len(indexes), message=index.name))
        raw.execute(str(CreateIndex(index).compile(dialect=dialect)))
    raw.execute(f"PRAGMA cache_size = {-IMPORT_CACHE_KIB}")


def _import_file(target: Target, plan: Plan, options: ImportOptions, progress, cancel) -> FileReport:
    started = time.perf_counter()
    source = plan.source
    report = FileReport(plan.kind, source.label, source.identity, roles=dict(plan.roles), columns=list(source.columns),
                        category_flags=list(plan.category_flags), renamed=dict(source.renamed))
    earlier = _earlier_import_read_alike(target.raw, plan, report.sha256)
    if earlier is not None:
        report.import_id, report.duplicate = earlier, True
        return report
    report.import_id = target.import_id = _insert_import(target, plan, report, options)
    first_event = target.raw.execute("SELECT coalesce(max(id), 0) + 1 FROM events").fetchone()[0]
    with ThreadPoolExecutor(1, thread_name_prefix="nextpick-import") as beside:
        with _events_indexes_rebuilt(target.raw, plan, progress) as most_of_the_table:
            target.events_indexed = not most_of_the_table
            try:
                _load_blocks(target, plan, report, options, progress, cancel)
            finally:
                target.events_indexed = True
            sharing = _sort_the_log_beside(beside, target, plan, report, options)
        among = None if sharing is None else sharing.result()
    if report.rows_read == 0:
        raise source.no_rows_error()
    if plan.kind == "events":
        report.time_kind, report.time_unit = plan.loader.time.kind, plan.loader.time.unit
        report.low_values = plan.loader.low_count  # dropped ones were never accepted
        if not options.keep_duplicates:
            emit(progress, Progress("skip repeated events", message=f"{source.name}: events already stored"))
            deleted = _delete_repeated_events(target.raw, first_event, most_of_the_table, among)
            if target.written is not None:
                target.written.forget(deleted)
            report.duplicates = len(deleted)
            report.rows_accepted -= report.duplicates
            report.whole_days = report.time_kind == "unix" and _whole_days(target.raw, first_event)
    else:
        report.ids_repeated = plan.loader.repeated
    report.duration_s = time.perf_counter() - started
    target.raw.execute(
        "UPDATE imports SET rows_read = ?, rows_accepted = ?, rows_rejected = ?, duration_s = ?, "
        "options = json_set(options, '$.time_unit', ?, '$.duplicates_skipped', ?, '$.low_values', json(?)) "
        "WHERE id = ?",
        (report.rows_read, report.rows_accepted, report.rows_rejected, report.duration_s, report.time_unit,
         report.duplicates, json.dumps({"action": options.low_values.action, "at_most": options.low_values.at_most,
                                        "events": report.low_values}), report.import_id),
    )
    return report


def _sort_the_log_beside(beside: ThreadPoolExecutor, target: Target, plan: Plan, report: FileReport,
                         options: ImportOptions) -> Optional[Future]:
    """When the import holds every event, a thread sorts them while SQLite builds the indexes (the build
    lets go of the interpreter lock): the only events that can repeat another, its result
    (``WholeLog.sharing_user_and_time``; None when repeats are kept), and the arrays the caches are
    built from (``WholeLog.for_caches``, kept on the log), seconds at 25M events that then no longer
    follow the build. Not for a file without rows, which is refused as such (``no_rows_error``) and has
    no events to join."""
    if plan.kind != "events" or target.written is None or not report.rows_read:
        return None

    def sort() -> Optional[np.ndarray]:
        log = target.written.whole_log()
        among = None if options.keep_duplicates else log.sharing_user_and_time()
        log.for_caches  # noqa: B018 (made and kept on the log)
        return among

    return beside.submit(sort)


def _earlier_import_read_alike(raw: sqlite3.Connection, plan: Plan, sha256: str) -> Optional[int]:
    """The first earlier import of the same content read the same way, if any. The same file read
    another way (``--map`` naming the right time or title column after a first try rejected every
    row or filed the title as an attribute) is imported again: its events that repeat stored ones
    are skipped as repeats, and profiles are updated."""
    read_as = reading(plan)
    for import_id, options in raw.execute(
            "SELECT id, options FROM imports WHERE kind = ? AND source_sha256 = ? ORDER BY id", (plan.kind, sha256)):
        stored = json.loads(options or "{}")
        if all(stored.get(key) == value for key, value in read_as.items()):
            return import_id
    return None


def _load_blocks(target: Target, plan: Plan, report: FileReport, options: ImportOptions, progress, cancel) -> None:
    meter = RateMeter()
    looked_ahead = plan.kind != "events" or "time" not in plan.roles
    for block in plan.source.blocks(options.chunk_rows, plan.roles, every_column=plan.kind != "events"):
        if not looked_ahead and _dates_undecided(target, plan, block):
            plan.loader.time.date_order = _date_order_further_on(plan, options, progress, cancel)
            looked_ahead = True
        accepted, rejected = plan.loader.load(target, block, options.strict)
        record_block(target, report, block.records, accepted, rejected)
        _report_progress(progress, meter, report, plan.source.fraction(block), plan.source.name)
        if cancel is not None:
            cancel.raise_if_cancelled()


def _dates_undecided(target: Target, plan: Plan, block) -> bool:
    """Whether ``block`` holds slashed dates that neither it, the file so far, the user nor the workspace
    says the order of: its rows would be refused as ambiguous though a later block may tell. Asked only
    while no block has told the column's clock: once one has (unix seconds, ISO dates, a date order) or
    the times are an order, a block's text is not read again before the loader reads it."""
    time = plan.loader.time
    if time.date_order is not None or target.date_order is not None or time.unit is not None or time.kind == ORDER:
        return False
    slashed, order = slashed_dates_shown(column_text(block.table, plan.roles["time"]))
    return slashed and order is None


def _date_order_further_on(plan: Plan, options: ImportOptions, progress, cancel) -> Optional[str]:
    """The order the first block of the file that can tell shows (None: none can), read ahead through its
    time column. A log whose first weeks fall on days 1 to 12 of their months said nothing in its first
    block, whose rows were all refused, however clearly a later block told the order."""
    column = plan.roles["time"]
    emit(progress, Progress("read dates", message=f"{plan.source.name}: reading ahead for a date that tells "
                                                  "month first from day first"))
    for block in plan.source.blocks(options.chunk_rows, {"time": column}, every_column=False):
        _slashed, order = slashed_dates_shown(column_text(block.table, column))
        if order is not None:
            return order
        if cancel is not None:
            cancel.raise_if_cancelled()
    return None


def _whole_days(raw: sqlite3.Connection, first_new: int, sample: int = 10_000) -> bool:
    """Whether the events from ``first_new`` on (their first ``sample``) are all timed at midnight UTC."""
    ts = np.array([row[0] for row in raw.execute("SELECT ts FROM events WHERE id >= ? LIMIT ?", (first_new, sample))],
                  dtype=np.float64)
    return bool(len(ts)) and bool(np.all(ts % 86_400 == 0))


HEAVY_GROUP = 64  # new events sharing one (user, time) from which that group's repeats are found by sorting


def _delete_repeated_events(raw: sqlite3.Connection, first_new: int, most_of_the_table: bool,
                            among: Optional[np.ndarray] = None) -> np.ndarray:
    """Delete the events from ``first_new`` on that repeat an earlier event exactly (same
    user, item, time, event type, value), stored before or earlier in this import; returns
    their ids. Only events that share their user and time can repeat one another.

    Looking for each event's twin through the others of its (user, time) is quadratic in a group's
    size: with times in whole days, one shopper's 1,360 events a day took 28 s of a 159k-row file's
    29. So a large group's twins are found by sorting it (a window numbering each exact repeat):
    - ``among``, when the import holds every event (``WholeLog.sharing_user_and_time``): the events
      that share a (user, time); all of them are sorted (the file above: 1 s);
    - otherwise (an import added to a stored log) each new event looks its twin up through the
      (user, time) index, except in the groups where more than ``HEAVY_GROUP`` new events share
      one, which are sorted. Sorting every group instead took 94 s against 54-69 s for day 2's
      export of 5M rows that repeats 2.5M of day 1's. The look-up names the index, so no later
      index can take its place; when the new events are most of the table they are walked in that
      index's order, so each look-up lands next to the previous one."""
    if among is not None:
        return _delete(raw, _sorted_repeats(raw, "SELECT * FROM events WHERE id IN (SELECT value FROM json_each(?))",
                                            (json.dumps(among.tolist()),), first_new))
    raw.execute("CREATE TEMP TABLE heavy_groups(user_id, ts, PRIMARY KEY (user_id, ts)) WITHOUT ROWID")
    try:
        raw.execute("INSERT INTO heavy_groups SELECT user_id, ts FROM events WHERE id >= ? GROUP BY user_id, ts "
                    "HAVING count(*) > ?", (first_new, HEAVY_GROUP))
        heavy = raw.execute("SELECT EXISTS (SELECT 1 FROM heavy_groups)").fetchone()[0]
        walk = "INDEXED BY ix_events_user_ts" if most_of_the_table else ""
        light = ("AND NOT EXISTS (SELECT 1 FROM heavy_groups AS h WHERE h.user_id = e.user_id AND h.ts = e.ts) "
                 if heavy else "")
        repeats = raw.execute(
            f"SELECT e.id FROM events AS e {walk} WHERE e.id >= ? {light}"
            "AND EXISTS (SELECT 1 FROM events AS o INDEXED BY ix_events_user_ts "
            "WHERE o.user_id = e.user_id AND o.ts = e.ts "
            "AND o.id < e.id AND o.item_id = e.item_id AND o.event_type = e.event_type AND o.value IS e.value)",
            (first_new,)).fetchall()
        if heavy:
            repeats += _sorted_repeats(raw, "SELECT e.* FROM heavy_groups AS h JOIN events AS e INDEXED BY "
                                            "ix_events_user_ts ON e.user_id = h.user_id AND e.ts = h.ts", (), first_new)
    finally:
        raw.execute("DROP TABLE temp.heavy_groups")
    return _delete(raw, repeats)


def _sorted_repeats(raw: sqlite3.Connection, events: str, parameters: tuple, first_new: int) -> list:
    """Ids from ``first_new`` on, among ``events`` (a query), that repeat an earlier one of them exactly."""
    return raw.execute(
        "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY user_id, ts, item_id, event_type, value "
        f"ORDER BY id) AS copy FROM ({events})) WHERE copy > 1 AND id >= ?", (*parameters, first_new)).fetchall()


def _delete(raw: sqlite3.Connection, repeats: list) -> np.ndarray:
    raw.executemany("DELETE FROM events WHERE id = ?", repeats)
    return np.array([row[0] for row in repeats], dtype=np.int64)


def _insert_import(target: Target, plan: Plan, report: FileReport, options: ImportOptions) -> int:
    settings = {**reading(plan), "strict": options.strict}
    cursor = target.raw.execute(
        "INSERT INTO imports(kind, source_path, source_sha256, rows_read, rows_accepted, rows_rejected, "
        "duration_s, created_at, options) VALUES (?, ?, ?, 0, 0, 0, 0, ?, ?)",
        (plan.kind, _source_path(plan.source), report.sha256, time.time(), json.dumps(settings)),
    )
    return cursor.lastrowid


def _source_path(source: Source) -> str:
    """What the import history keeps: a file's or folder's absolute path, a database's URL (no password)."""
    return str(source.path.resolve()) if source.path is not None else str(source.label)


def record_block(target: Target, report: FileReport, records: int, accepted: int, rejected: list[RejectedRow]) -> None:
    """Count a block's rows into ``report`` (its first rejected rows kept, up to ``REPORT_REJECTED_LIMIT``)
    and store every rejected one: the importer's blocks and the service's posted events are reported alike."""
    report.rows_read += records
    report.rows_accepted += accepted
    report.rows_rejected += len(rejected)
    report.rejected.extend(rejected[: max(0, REPORT_REJECTED_LIMIT - len(report.rejected))])
    target.raw.executemany(
        'INSERT INTO rejected_rows(import_id, line, "column", reason, raw) VALUES (?, ?, ?, ?, ?)',
        [(report.import_id, r.line, r.column, r.reason, r.raw) for r in rejected],
    )


def _report_progress(progress, meter: RateMeter, report: FileReport, fraction: Optional[float], name: str) -> None:
    """Rows done and rows/s; the ETA from the share of the source read so far, where it is known
    (a file's bytes or rows; a query's result has no size before it is read)."""
    if progress is None:
        return
    meter.total = None if fraction is None else max(report.rows_read, round(report.rows_read / max(fraction, 1e-9)))
    message = f"{name}: {report.rows_read:,} rows, {report.rows_rejected:,} rejected"
    emit(progress, meter.report(f"import {report.kind}", report.rows_read, message))
