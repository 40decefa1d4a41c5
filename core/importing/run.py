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
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import numpy as np

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex

from core.errors import UsageError
from core.importing import roles as roles_
from core.importing.errors import REPORT_REJECTED_LIMIT, CsvImportError, FileReport, ImportReport, RejectedRow
from core.importing.ids import IdMap
from core.importing.loaders import EventsLoader, LowValues, ProfileLoader, column_text
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


@dataclass
class ImportOptions:
    """How to read the sources of one import; None everywhere means "detect it". Delimiter,
    encoding, header and column names are for CSV files only: Parquet files and queries name
    and type their columns.

    delimiter:      field separator for every file (",", "\\t", "|", ";"); None = sniff each file.
    encoding:       text encoding for every file; None = UTF-8 (BOM or not) unless the file as
                    a whole is not UTF-8, then latin-1. In UTF-8, a line with bytes that are
                    not UTF-8 is a bad row.
    has_header:     whether the first line names the columns; None = guess per file.
    roles:          role -> column name, over the guesses. Roles: user, item, time, time_of_day,
                    event, value (events); item, title, categories (items); user (users). Prefix
                    a kind to aim at one file only: {"items.title": "name"}. Any other is refused.
    column_names:   kind -> names for the columns of a headerless file, e.g.
                    {"users": ["user", "age", "gender", "occupation", "zip"]}; names that are
                    not roles become attribute names.
    category_flags: one-hot (0/1) category columns of the items file; None = the trailing
                    run of 0/1 columns, [] = none. Names come from a ``<stem>.genre`` file of
                    ``name|index`` lines next to the items file, else from the columns.
    strict:         abort the whole import on the first bad row (default: skip bad rows and
                    keep a report of them in the workspace).
    keep_duplicates: keep an event exactly like one already in the workspace or earlier in the
                    file (same user, item, time, event type and value); by default such
                    repeats, as in exports that overlap, are skipped and counted.
    low_values:     what to do with events whose value (rating) is at or below a threshold:
                    ``LowValues("drop", 2)`` leaves them out, ``LowValues("negative", 2)`` stores
                    them marked negative (dislikes that training and evaluation never count as
                    interactions); the default keeps them. Needs a value column.
    date_order:     how dates written with slashes read: "mdy" (12/31/2025, as in the US) or
                    "dmy" (31/12/2025); None = as the file's first date only one order reads
                    shows, else as the workspace's earlier files showed (its rows are refused
                    while neither tells).
    chunk_rows:     rows parsed and written per block; bounds memory.
    """

    delimiter: Optional[str] = None
    encoding: Optional[str] = None
    has_header: Optional[bool] = None
    roles: dict[str, str] = field(default_factory=dict)
    column_names: dict[str, list[str]] = field(default_factory=dict)
    category_flags: Optional[list[str]] = None
    strict: bool = False
    keep_duplicates: bool = False
    low_values: LowValues = field(default_factory=LowValues)
    date_order: Optional[str] = None
    chunk_rows: int = 200_000

    def __post_init__(self) -> None:
        for key in self.roles:
            reason = roles_.unknown_role_reason(key)
            if reason is not None:
                raise UsageError(f"cannot use the column {self.roles[key]!r} as {key!r}: {reason}")


@dataclass
class _Plan:
    kind: str
    source: Source
    roles: dict[str, str]
    loader: EventsLoader | ProfileLoader
    category_flags: list[str] = field(default_factory=list)  # an items file's one-hot category columns


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
    plans = [_plan(kind, open_source(kind, spec, options), options)
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
def _events_indexes_rebuilt(raw: sqlite3.Connection, plan: _Plan,
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


def _plan(kind: str, source: Source, options: ImportOptions) -> _Plan:
    """Settle a source's roles before anything is written."""
    roles = roles_.roles_for_kind(kind, source.roles, source.named_columns, source.columns, options.roles)
    for role, column in roles.items():
        if column not in source.columns:
            hint = roles_.unaimed_map_hint(kind, role, column) if options.roles.get(role) == column else None
            raise CsvImportError(source.label, None, column,
                                 f"the {role} column {column!r} is not in the {_what(source)} ({', '.join(source.columns)})",
                                 hint)
    for role in roles_.REQUIRED_ROLES[kind]:
        if role not in roles:
            raise CsvImportError(source.label, None, None, roles_.missing_role_reason(kind, role, source.columns))
    if kind == "events":
        return _Plan(kind, source, roles, EventsLoader(source.label, roles, options.low_values,
                                                       decimal_comma=source.settings().get("delimiter") == ";",
                                                       date_order=options.date_order))
    flags = _flags(kind, source, roles, options)
    attributes = [c for c in source.columns if c not in roles.values() and c not in flags]
    names = roles_.flag_names(source.path, flags) if flags and source.path is not None else flags
    return _Plan(kind, source, roles, ProfileLoader(source.label, kind, roles, attributes, flags, names), flags)


def _what(source: Source) -> str:
    return "query's result" if source.path is None else "file"


def _flags(kind: str, source: Source, roles: dict[str, str], options: ImportOptions) -> list[str]:
    if kind != "items" or "categories" in roles:
        return []
    if options.category_flags is not None:
        missing = [c for c in options.category_flags if c not in source.columns]
        if missing:
            raise CsvImportError(source.label, None, missing[0], f"category flag column is not in the {_what(source)}")
        return list(options.category_flags)
    return roles_.flag_columns(source.columns, source.preview, set(roles.values()))


def _import_file(target: Target, plan: _Plan, options: ImportOptions, progress, cancel) -> FileReport:
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


def _sort_the_log_beside(beside: ThreadPoolExecutor, target: Target, plan: _Plan, report: FileReport,
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


def _reading(plan: _Plan) -> dict:
    """How a source's rows are read (delimiter, encoding, header, column names, roles, the order of
    slashed dates when named), as the import history stores it."""
    # The date order as asked for: the same file read in another order is a new import.
    order = plan.loader.date_order if isinstance(plan.loader, EventsLoader) else None
    return json.loads(json.dumps({**plan.source.settings(), "roles": plan.roles,
                                  **({"date_order": order} if order else {})}))


def _earlier_import_read_alike(raw: sqlite3.Connection, plan: _Plan, sha256: str) -> Optional[int]:
    """The first earlier import of the same content read the same way, if any. The same file read
    another way (``--map`` naming the right time or title column after a first try rejected every
    row or filed the title as an attribute) is imported again: its events that repeat stored ones
    are skipped as repeats, and profiles are updated."""
    reading = _reading(plan)
    for import_id, options in raw.execute(
            "SELECT id, options FROM imports WHERE kind = ? AND source_sha256 = ? ORDER BY id", (plan.kind, sha256)):
        stored = json.loads(options or "{}")
        if all(stored.get(key) == value for key, value in reading.items()):
            return import_id
    return None


def _load_blocks(target: Target, plan: _Plan, report: FileReport, options: ImportOptions, progress, cancel) -> None:
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


def _dates_undecided(target: Target, plan: _Plan, block) -> bool:
    """Whether ``block`` holds slashed dates that neither it, the file so far, the user nor the workspace
    says the order of: its rows would be refused as ambiguous though a later block may tell. Asked only
    while no block has told the column's clock: once one has (unix seconds, ISO dates, a date order) or
    the times are an order, a block's text is not read again before the loader reads it."""
    time = plan.loader.time
    if time.date_order is not None or target.date_order is not None or time.unit is not None or time.kind == ORDER:
        return False
    slashed, order = slashed_dates_shown(column_text(block.table, plan.roles["time"]))
    return slashed and order is None


def _date_order_further_on(plan: _Plan, options: ImportOptions, progress, cancel) -> Optional[str]:
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


def _delete_repeated_events(raw: sqlite3.Connection, first_new: int, most_of_the_table: bool,
                            among: Optional[np.ndarray] = None) -> np.ndarray:
    """Delete the events from ``first_new`` on that repeat an earlier event exactly (same
    user, item, time, event type, value), stored before or earlier in this import; returns
    their ids (found first, then deleted one by one: few, in a log that is not an overlap).
    ``among``: the only events that can (sharing user and time with another, when the import
    holds every event: ``WholeLog.sharing_user_and_time``): only those are looked up, instead of
    walking every event (18 of a 25M-event import's CPU seconds). Each new event looks for an earlier twin through the (user, time) index; only
    a row whose (user, time) is shared is read from the table. The look-up names the index:
    left to itself, SQLite may look twins up by item, which for a popular item means scanning
    most of the table for every row. When the new events are most of the table they are
    walked in that index's order too, so each look-up lands next to the previous one instead
    of at random; a few new events are walked by id, without touching the older ones."""
    if among is not None and not len(among):
        return np.zeros(0, dtype=np.int64)
    walk = "INDEXED BY ix_events_user_ts" if most_of_the_table and among is None else ""
    which = "e.id >= ?" if among is None else "e.id IN (SELECT value FROM json_each(?))"
    repeats = raw.execute(
        f"SELECT e.id FROM events AS e {walk} "
        f"WHERE {which} AND EXISTS (SELECT 1 FROM events AS o INDEXED BY ix_events_user_ts "
        "WHERE o.user_id = e.user_id AND o.ts = e.ts "
        "AND o.id < e.id AND o.item_id = e.item_id AND o.event_type = e.event_type AND o.value IS e.value)",
        (first_new if among is None else json.dumps(among.tolist()),),
    ).fetchall()
    raw.executemany("DELETE FROM events WHERE id = ?", repeats)
    return np.array([row[0] for row in repeats], dtype=np.int64)


def _insert_import(target: Target, plan: _Plan, report: FileReport, options: ImportOptions) -> int:
    settings = {**_reading(plan), "strict": options.strict}
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
