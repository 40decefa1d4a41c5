"""Data commands: ``import`` a behaviour log, ``stats`` on what is in it, ``demo`` for a ready shop."""

from __future__ import annotations

import argparse
import textwrap
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from core.cli.common import CommandLineError, Output, at_least, require_workspace
from core.demo import DemoConfig, create_demo_workspace
from core.errors import UsageError
from core.importing import (
    LOW_VALUE_ACTIONS, NO_TIME_NOTE, ImportOptions, LowValues, SqlQuery, describe_time_unit, duplicates_text,
    export_rejected, repeated_rows,
)
from core.store import Workspace
from core.store.stats import quality_notes, workspace_stats


def add_commands(commands, common) -> None:
    p = commands.add_parser("import", parents=[common],
                            help="import a behaviour log (CSV, Parquet, or a database query) into the workspace")
    p.add_argument("events", type=Path, nargs="?",
                   help="events file (CSV or Parquet) or folder of Parquet files: user, item, time, [event type], [value]")
    p.add_argument("--items", type=Path, help="item attributes file: item, title, categories (A|B)")
    p.add_argument("--users", type=Path, help="user profiles file: user plus any attributes")
    p.add_argument("--from-sql", metavar="URL",
                   help="read from this database (SQLAlchemy URL, e.g. postgresql://user@host/shop; "
                        "PostgreSQL needs the [sql] extra) with --query, --items-query, --users-query")
    p.add_argument("--query", help="with --from-sql: the SELECT that returns the events")
    p.add_argument("--items-query", help="with --from-sql: the SELECT that returns the items")
    p.add_argument("--users-query", help="with --from-sql: the SELECT that returns the users")
    p.add_argument("--map", action="append", type=_role_pair, metavar="ROLE=COLUMN",
                   help="use COLUMN for ROLE (user, item, time, time_of_day, event, value, title, categories; "
                        "prefix items./users. for one file); repeatable")
    p.add_argument("--columns", action="append", type=_column_names, metavar="KIND=NAMES",
                   help="names for the columns of a headerless file, e.g. users=user,age,gender,occupation,zip "
                        "(KIND: events, items or users); repeatable")
    p.add_argument("--date-order", choices=("mdy", "dmy"),
                   help="how dates written with slashes read: mdy = 12/31/2025 (US), dmy = 31/12/2025 (default: as "
                        "the file's dates show, else as the workspace's earlier files did)")
    p.add_argument("--event-type", metavar="NAME",
                   help="the type of the events file's events that name none, e.g. purchase for a log shipped as "
                        "one file per type (clicks, buys); default: interaction")
    p.add_argument("--strict", action="store_true", help="abort on the first bad row instead of skipping it")
    p.add_argument("--delimiter", type=_delimiter, help="field separator (, ; | tab); default: detected")
    p.add_argument("--encoding", help="text encoding; default: UTF-8 unless the file as a whole is not, then latin-1")
    p.add_argument("--keep-duplicates", action="store_true",
                   help="keep events that repeat one already imported or earlier in the file exactly "
                        "(default: skip and count them, as for exports that overlap)")
    p.add_argument("--low-values", choices=LOW_VALUE_ACTIONS, default="keep",
                   help="events whose value (rating) is at or below --low-at-most: keep them as interactions "
                        "(default), drop them, or store them marked negative (dislikes: shown, but never learned "
                        "from as interactions nor tested on)")
    p.add_argument("--low-at-most", type=float, metavar="VALUE",
                   help="the highest value that counts as low for --low-values, e.g. 2 on a 5-star scale")
    p.add_argument("--rejected-out", metavar="FILE", help="write the skipped rows (line, column, reason, raw) to FILE")
    p.set_defaults(handler=cmd_import)

    p = commands.add_parser("stats", parents=[common], help="what is in the workspace")
    p.add_argument("--top", type=at_least(0), default=10, help="categories to list (default: %(default)s)")
    p.set_defaults(handler=cmd_stats)

    p = commands.add_parser("demo", parents=[common], help="write the built-in demo toy shop into a new workspace")
    p.add_argument("--users", type=at_least(1), default=DemoConfig.n_users,
                   help="users (~25 events each; default: %(default)s)")
    p.add_argument("--events", type=at_least(1),
                   help="size the shop to about this many events instead (for benchmarks)")
    p.add_argument("--items", type=at_least(1), default=DemoConfig.n_items,
                   help="catalogue size (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DemoConfig.seed, help="same seed, same shop (default: %(default)s)")
    p.set_defaults(handler=cmd_demo)


def cmd_import(args, out: Output) -> dict:
    sources = _sources(args)
    if args.low_values != "keep" and args.low_at_most is None:
        raise CommandLineError(f"--low-values {args.low_values} needs --low-at-most VALUE (e.g. 2 on a 5-star scale)")
    options = ImportOptions(delimiter=args.delimiter, encoding=args.encoding,
                            roles=dict(args.map or []), column_names=dict(args.columns or []), strict=args.strict,
                            keep_duplicates=args.keep_duplicates,
                            low_values=LowValues(args.low_values, args.low_at_most), date_order=args.date_order,
                            event_type=args.event_type)
    with _new_file_removed_on_failure(args.db), Workspace.open(args.db) as workspace:
        report = _import_and_prepare(workspace, sources, options, out)
        files = [_file_summary(f, options.low_values) for f in report.files]
        if args.rejected_out:
            for summary, path in _rejected_targets(files, Path(args.rejected_out)):
                out.stage("write rejected rows", str(path))
                summary["rejected_written_to"] = str(path)
                export_rejected(workspace, summary["import_id"], path)
        out.stage("count", "users, items and events in the workspace")
        counts = workspace.counts()
    out.done_progress()
    result = {"workspace": str(args.db), "files": files, "duration_s": round(out.elapsed(), 3), "counts": counts}
    out.lines(_import_lines(result))
    return result


def _import_and_prepare(workspace, sources: dict, options: ImportOptions, out: Output):
    """The import, then the sequences and the user directory cached as the studio's import builds them
    (``core.caches.import_and_prepare``): the studio's first look at a workspace imported here maps
    them, instead of waiting for a scan of every event (42 s at a million users). Never through the
    engine: importing torch would cost the command 4 CPU-seconds."""
    from core.caches import import_and_prepare

    return import_and_prepare(workspace, **sources, options=options, progress=out.progress())


def _sources(args) -> dict:
    """events, items and users to import: files, or queries on the ``--from-sql`` database."""
    queries = {"events": args.query, "items": args.items_query, "users": args.users_query}
    files = {"events": args.events, "items": args.items, "users": args.users}
    if args.from_sql is None:
        if any(queries.values()):
            raise CommandLineError("--query, --items-query and --users-query need --from-sql URL")
        if not any(files.values()):
            raise CommandLineError("nothing to import: give an events file and/or --items/--users, or --from-sql")
        return files
    if not any(queries.values()):
        raise CommandLineError("--from-sql needs --query (events), --items-query or --users-query")
    both = [kind for kind in files if files[kind] and queries[kind]]
    if both:
        raise CommandLineError(f"{both[0]}: give a file or a query, not both")
    return {kind: SqlQuery(args.from_sql, queries[kind]) if queries[kind] else files[kind] for kind in files}


@contextmanager
def _new_file_removed_on_failure(path: Path):
    """A failed first import leaves no empty workspace behind, nor the folders made for it, as if the
    command never ran."""
    existed = path.exists()
    made = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]  # nearest first
    try:
        yield
    except BaseException:
        if not existed and path.parent.is_dir():
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
            _remove_empty(made)
        raise


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (nearest first) while they are empty: anything else written there stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


LOW_VALUES_WERE = {"keep": "kept", "drop": "dropped", "negative": "stored as negative (dislikes)"}


def _delimiter(text: str) -> str:
    """``--delimiter``: one character, or its name (tab, comma, semicolon, pipe)."""
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    delimiter = named.get(text, text)
    if len(delimiter) != 1:
        raise argparse.ArgumentTypeError(f"expects one character or tab, comma, semicolon, pipe; got {text!r}")
    return delimiter


def _role_pair(pair: str) -> tuple[str, str]:
    """``role=column`` of ``--map``, checked by argparse so a malformed one is a usage error."""
    role, sep, column = pair.partition("=")
    if not sep or not role.strip() or not column.strip():
        raise argparse.ArgumentTypeError(f"expects role=column (e.g. user=customer_id), got {pair!r}")
    return role.strip(), column.strip()


def _column_names(spec: str) -> tuple[str, list[str]]:
    """``kind=name,name,...`` of ``--columns``."""
    kind, sep, columns = spec.partition("=")
    if not sep or kind not in ("events", "items", "users") or not columns:
        raise argparse.ArgumentTypeError(
            f"expects KIND=NAME,NAME,... with KIND events, items or users, got {spec!r}")
    return kind, [name.strip() for name in columns.split(",")]


def _file_summary(report, low_values: LowValues) -> dict:
    return {
        "kind": report.kind, "path": str(report.path), "import_id": report.import_id, "duplicate": report.duplicate,
        "rows_read": report.rows_read, "rows_accepted": report.rows_accepted, "rows_rejected": report.rows_rejected,
        "roles": report.roles, "category_flags": report.category_flags,
        "unused_columns": [c for c in report.columns
                           if c not in report.roles.values() and c not in report.category_flags],
        "time_kind": report.time_kind, "time_unit": report.time_unit, "in_file_order": report.in_file_order,
        "duplicates_skipped": report.duplicates, "whole_days": report.whole_days, "ids_repeated": report.ids_repeated,
        "low_values": report.low_values,
        "low_values_were": LOW_VALUES_WERE[low_values.action], "renamed_columns": report.renamed,
        "duration_s": round(report.duration_s, 3),
        "first_rejected": [{r.unit: r.line, "file": r.file, "column": r.column, "reason": r.reason}
                           for r in report.rejected[:5]],
    }


def _rejected_targets(files: list[dict], path: Path) -> list[tuple[dict, Path]]:
    """The given path for one file with rejections; ``name.<kind>.csv`` beside it when several have some."""
    with_rejections = [f for f in files if f["rows_rejected"] and not f["duplicate"]]
    if len(with_rejections) == 1:
        return [(with_rejections[0], path)]
    return [(f, path.with_name(f"{path.stem}.{f['kind']}{path.suffix or '.csv'}")) for f in with_rejections]


def _import_lines(result: dict) -> list[str]:
    lines = []
    for f in result["files"]:
        if f["duplicate"]:
            lines.append(f"{f['kind']:<7}{f['path']}: already imported (import #{f['import_id']}), nothing added")
            continue
        lines.append(f"{f['kind']:<7}{f['path']}: {f['rows_read']:,} rows read, {f['rows_accepted']:,} accepted, "
                     f"{f['rows_rejected']:,} rejected (read in {f['duration_s']:.1f} s)")
        lines.extend(_reading_notes(f))
        lines.extend(f"         {_row_place(r)}" + (f", column {r['column']!r}" if r["column"] else "")
                     + f": {r['reason']}" for r in f["first_rejected"])
        lines.extend(_nothing_stored_note(f))
        if f.get("rejected_written_to"):
            lines.append(f"         all rejected rows written to {f['rejected_written_to']}")
    c = result["counts"]
    lines.append(f"workspace {result['workspace']}: {c['users']:,} users, {c['items']:,} items, {c['events']:,} events "
                 f"({result['duration_s']:.1f} s in all)")
    return lines


def _row_place(rejected: dict) -> str:
    """"line 5" of a CSV file, "row 5" of a Parquet file or query, "day=1/part-0.parquet row 5" in a folder."""
    unit = "line" if "line" in rejected else "row"
    return (f"{rejected['file']} " if rejected["file"] else "") + f"{unit} {rejected[unit]}"


def _reading_notes(f: dict) -> list[str]:
    """How the file was read, where the user could not guess it: times, repeats, renamed columns."""
    notes = [f"         header repeats {old!r}: that column is read as {new!r}" for new, old in f["renamed_columns"].items()]
    notes.extend(_columns_note(f))
    if f["time_unit"]:
        notes.append(f"         times read as {describe_time_unit(f['time_unit'], f['roles'].get('time_of_day'))}")
    notes.extend(_order_note(f))
    if f.get("low_values"):
        notes.append(f"         {f['low_values']:,} events with a low value {f['low_values_were']}")
    if f["ids_repeated"]:
        notes.append(f"         {repeated_rows(f['ids_repeated'])} an id an earlier row gave: the last row of each id is "
                     "what is kept")
    if f["duplicates_skipped"]:
        keep = "--keep-duplicates keeps them"
        notes.append("         " + duplicates_text(f["duplicates_skipped"], f["whole_days"], keep))
    return notes


def _columns_note(f: dict) -> list[str]:
    """Which column was read in which role, and what became of the others: a guess gone wrong (a price
    read as the rating, a category column left as an attribute) is seen at once, not in a model later."""
    parts = ["columns read as " + ", ".join(f"{role}={column}" for role, column in f["roles"].items())]
    if f["category_flags"]:
        flags = f["category_flags"]
        parts.append(f"categories from {len(flags)} 0/1 columns, {flags[0]} to {flags[-1]}")
    if f["unused_columns"]:
        rest = ", ".join(f["unused_columns"])
        parts.append(f"not read: {rest}" if f["kind"] == "events" else f"kept as attributes: {rest}")
    return ["         " + "; ".join(parts)]


def _nothing_stored_note(f: dict) -> list[str]:
    """A file whose every row was rejected, most often for a column read in the wrong role (the
    columns line above says which): what to do."""
    if not f["rows_read"] or f["rows_rejected"] < f["rows_read"]:
        return []
    return ["         no row of this file was stored: fix what the lines above say (a column read in the wrong "
            "role: import it again with --map ROLE=COLUMN)"]


def _order_note(f: dict) -> list[str]:
    """Events without a clock, said (``FileReport.in_file_order``), and times read as positions."""
    if f["in_file_order"]:
        return [f"         {NO_TIME_NOTE} (name one with --map time=COLUMN)"]
    if f["kind"] == "events" and f["time_kind"] == "order":
        return ["         times read as positions in an order (no clock)"]
    return []


def cmd_stats(args, out: Output) -> dict:
    require_workspace(args.db)
    with Workspace.open(args.db) as workspace:
        stats = workspace_stats(workspace)
    # The notes the studio's Data page shows: what in the log may mislead a model, and what to do.
    result = {"workspace": str(args.db), **stats.to_dict(), "notes": quality_notes(stats)}
    out.lines(_stats_lines(result, top=args.top))
    return result


def _stats_lines(s: dict, top: int) -> list[str]:
    types = ", ".join(f"{name} {n:,}" for name, n in s["event_types"].items())
    dist = s["events_per_user"]
    lines = [
        f"workspace  {s['workspace']}",
        f"users      {s['users']:,} ({s['users_with_events']:,} with events)",
        f"items      {s['items']:,} ({s['items_with_events']:,} with events)",
        f"events     {s['events']:,}" + (f" ({types})" if types else ""),
        f"time       {_time_range(s)}",
    ]
    if not s["events"]:
        return lines
    lines.append(f"events per user: min {dist['min']:g}, median {dist['median']:g}, mean {dist['mean']:.1f}, "
                 f"p90 {dist['p90']:g}, max {dist['max']:g}")
    biggest = max(dist["counts"]) or 1
    rows = [(f"{low}" if high == low + 1 else f"{low}-{high - 1}", n) for low, high, n in _length_bins(dist)]
    width = max(9, *(len(label) for label, _ in rows))
    lines.extend(f"  {label:>{width}}  {'#' * round(30 * n / biggest):<30} {n:,}" for label, n in rows)
    lines.extend(_category_lines(s["categories"], s["named_categories"], top))
    lines.append(f"long tail: the top 10% of items get {s['top_decile_share']:.0%} of events")
    for note in s.get("notes", []):
        lines.extend(textwrap.wrap(note, width=100, initial_indent="note: ", subsequent_indent="      ",
                                   break_on_hyphens=False, break_long_words=False))
    return lines


def _length_bins(dist: dict) -> list[tuple[int, int, int]]:
    """(low, high, users) from the shortest history on, a run of empty bins as one: a single user with
    81,603 events drew ten empty rows below it."""
    bins: list[tuple[int, int, int]] = []
    for low, high, n in zip(dist["bin_edges"], dist["bin_edges"][1:], dist["counts"]):
        if bins and not n and not bins[-1][2]:
            bins[-1] = (bins[-1][0], high, 0)
        elif bins or n:  # lengths below the minimum say nothing
            bins.append((low, high, n))
    return bins


def _category_lines(categories: list[dict], named: int, top: int) -> list[str]:
    """The top categories; a catalogue without any says so (``WorkspaceStats.named_categories``)."""
    if not named:
        return ["categories: none (import an items file with a category column)"]
    lines = [f"top categories (events, items) of {named}:"]
    shown = categories[:top]
    width = max([24] + [len(c["name"]) for c in shown])  # a long name must not push its row's counts out of line
    lines.extend(f"  {c['name']:<{width}} {c['events']:>12,}  {c['items']:>8,} items" for c in shown)
    return lines


def _time_range(s: dict) -> str:
    if s["time_min"] is None:
        return "no events"
    if s["time_kind"] == "order":
        return f"order only: positions {s['time_min']:g} to {s['time_max']:g}"
    first, last = (datetime.fromtimestamp(t, timezone.utc) for t in (s["time_min"], s["time_max"]))
    days = (s["time_max"] - s["time_min"]) / 86_400
    return f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC ({days:.0f} days)"


def cmd_demo(args, out: Output) -> dict:
    sizes = dict(n_items=args.items, seed=args.seed)
    config = DemoConfig.for_events(args.events, **sizes) if args.events else DemoConfig(n_users=args.users, **sizes)
    try:
        config.validate()  # before the workspace file is created
    except UsageError as error:
        raise CommandLineError(str(error), error.hint) from None
    with create_demo_workspace(args.db, config, progress=out.progress()) as workspace:
        out.done_progress()
        counts = workspace.counts()
    result = {"workspace": str(args.db), "seed": args.seed, **counts}
    out.lines([f"demo shop ready in {args.db}: {counts['users']:,} users, {counts['items']:,} items, "
               f"{counts['events']:,} events", f"next: nextpick stats --db {args.db}"])
    return result
