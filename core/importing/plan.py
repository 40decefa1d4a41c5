"""What an import is asked to do (``ImportOptions``) and each source's plan before anything is written
(``Plan``: its roles, checked against its columns, and the loader that will read it), with how the
source is read as the import history stores it (``reading``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from core.errors import UsageError
from core.importing import roles as roles_
from core.importing.errors import CsvImportError
from core.importing.loaders import DEFAULT_EVENT, EventsLoader, LowValues, ProfileLoader
from core.importing.sources import Source


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
    event_type:     the type of an events file's events that name none: every event of a file
                    without an event column (logs shipped as one file per type: clicks, buys), and
                    the empty cells of one that has it. None = "interaction".
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
    event_type: Optional[str] = None
    chunk_rows: int = 200_000

    def __post_init__(self) -> None:
        for key in self.roles:
            reason = roles_.unknown_role_reason(key)
            if reason is not None:
                raise UsageError(f"cannot use the column {self.roles[key]!r} as {key!r}: {reason}")


@dataclass
class Plan:
    kind: str
    source: Source
    roles: dict[str, str]
    loader: EventsLoader | ProfileLoader
    category_flags: list[str] = field(default_factory=list)  # an items file's one-hot category columns


def plan_source(kind: str, source: Source, options: ImportOptions) -> Plan:
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
        return Plan(kind, source, roles, EventsLoader(source.label, roles, options.low_values,
                                                      decimal_comma=source.settings().get("delimiter") == ";",
                                                      date_order=options.date_order, event_type=options.event_type))
    flags = _flags(kind, source, roles, options)
    attributes = [c for c in source.columns if c not in roles.values() and c not in flags]
    names = roles_.flag_names(source.path, flags) if flags and source.path is not None else flags
    return Plan(kind, source, roles, ProfileLoader(source.label, kind, roles, attributes, flags, names), flags)


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


def reading(plan: Plan) -> dict:
    """How a source's rows are read (delimiter, encoding, header, column names, roles, the order of
    slashed dates when named), as the import history stores it."""
    # The date order as asked for: the same file read in another order is a new import.
    events = isinstance(plan.loader, EventsLoader)
    order = plan.loader.date_order if events else None
    named = plan.loader.event_type if events and plan.loader.event_type != DEFAULT_EVENT else None
    return json.loads(json.dumps({**plan.source.settings(), "roles": plan.roles,
                                  **({"date_order": order} if order else {}),
                                  **({"event_type": named} if named else {})}))
