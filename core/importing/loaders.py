"""Turning parsed blocks into rows of the store, one kind of file per loader.

Each loader checks a block, returns the rows it rejects (with the blamed column and the
reason), and writes the rest through the import's ``Target`` (``core.importing.target``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import UsageError
from core.importing.blocks import Block
from core.importing.errors import CsvImportError, RejectedRow
from core.importing.roles import MISSING_MARKERS
from core.importing.target import UNINDEXED_ROWS, Target, insert_rows
from core.importing.times import ORDER, UNIX, TimeColumn, seconds_of_day, to_numbers

DEFAULT_EVENT = "interaction"
LOW_VALUE_ACTIONS = ("keep", "drop", "negative")


@dataclass(frozen=True)
class LowValues:
    """What an import does with events whose value (a rating) is at or below ``at_most``: keep them as
    interactions, drop them, or store them marked negative (a dislike: shown, never learned from as
    an interaction nor tested on)."""

    action: str = "keep"  # one of LOW_VALUE_ACTIONS
    at_most: Optional[float] = None

    def __post_init__(self) -> None:
        if self.action not in LOW_VALUE_ACTIONS:
            raise UsageError(f"low values: {self.action!r} is not one of {', '.join(LOW_VALUE_ACTIONS)}")
        if self.action != "keep" and self.at_most is None:
            raise UsageError(f"low values: to {self.action} them, say at or below which value",
                             "Give the highest value that counts as low, e.g. 2 on a 5-star scale.")

    def low(self, values: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """Which of ``values`` are low; None when low values are kept as they are."""
        if self.action == "keep" or values is None:
            return None
        with np.errstate(invalid="ignore"):
            return values <= self.at_most  # a missing value (NaN) is never low


_UPSERT = """
INSERT INTO {table}(id, external_id{columns}) VALUES (?, ?{marks})
ON CONFLICT(external_id) DO UPDATE SET {updates}
attributes = CASE WHEN excluded.attributes IS NULL THEN {table}.attributes
                  ELSE json_patch(coalesce({table}.attributes, '{{}}'), excluded.attributes) END
"""


@dataclass
class _Checks:
    """Per-row verdicts for one block: the first failed check of a row is its reason. A row
    on a line that is not text in the file's encoding fails before any other check."""

    block: Block
    bad: np.ndarray = field(init=False)
    column: list = field(init=False)
    reason: list = field(init=False)

    def __post_init__(self) -> None:
        rows = self.block.table.num_rows
        self.bad = np.zeros(rows, dtype=bool)
        self.column, self.reason = [None] * rows, [""] * rows
        for row, reason in self.block.undecodable_rows().items():
            self.bad[row], self.reason[row] = True, reason

    def fail(self, mask: np.ndarray, column: str, reason_of) -> None:
        for row in np.flatnonzero(mask & ~self.bad):
            self.column[row], self.reason[row] = column, reason_of(row)
        self.bad |= mask

    def rejected(self) -> list[RejectedRow]:
        rows = np.flatnonzero(self.bad)
        return self.block.rejected(rows, [self.column[r] for r in rows], [self.reason[r] for r in rows])


def column_text(table: pa.Table, column: Optional[str]) -> Optional[pa.Array]:
    """The column's cells as trimmed text (None without the column)."""
    if column is None:
        return None
    return pc.utf8_trim_whitespace(table.column(column).combine_chunks())


def _require_ids(checks: _Checks, table: pa.Table, column: str, what: str) -> pa.Array:
    """Trimmed ids; an empty one or one written as a missing value ("NA", "null") is refused: stored,
    every such row would be one made-up shopper or product holding all of them."""
    ids = column_text(table, column)
    empty = pc.fill_null(pc.equal(ids, ""), True).to_numpy(zero_copy_only=False)
    checks.fail(empty, column, lambda _r: f"missing {what} id")
    written = pc.is_in(pc.utf8_lower(ids), value_set=pa.array(MISSING_MARKERS)).to_numpy(zero_copy_only=False)
    checks.fail(written, column, lambda row: f"missing {what} id (written {ids[row].as_py()})")
    return ids


class EventsLoader:
    """user, item, time, event type, value -> events (creating unknown users and items)."""

    def __init__(self, path, roles: dict[str, str], low_values: LowValues = LowValues(),
                 decimal_comma: bool = False, date_order: Optional[str] = None,
                 event_type: Optional[str] = None) -> None:
        """decimal_comma: read a value written "20,08" as 20.08. For semicolon-separated files: the
        CSV of spreadsheets whose decimal mark is a comma, where "1,5" cannot mean anything else.
        date_order: how slashed dates read ("mdy", "dmy"); None = as the file's dates show (``TimeColumn``).
        event_type: the type of the events that name none (``ImportOptions.event_type``)."""
        self.path = path
        self.event_type = (event_type or "").strip() or DEFAULT_EVENT
        self.roles = roles
        self.decimal_comma = decimal_comma
        self.date_order = date_order
        self.time = TimeColumn(roles.get("time"), date_order=date_order)
        if low_values.action != "keep" and "value" not in roles:
            raise CsvImportError(path, None, None, f"low values are to be {_DONE_TO[low_values.action]}, but the "
                                                   "file has no value (rating) column: name one, or keep low values")
        self.low_values = low_values
        self.low_count = 0  # events dropped or marked negative for their low value, so far
        self._blocks = 0  # blocks loaded so far

    def load(self, target: Target, block: Block, strict: bool) -> tuple[int, list[RejectedRow]]:
        table, checks = block.table, _Checks(block)
        users = _require_ids(checks, table, self.roles["user"], "user")
        items = _require_ids(checks, table, self.roles["item"], "item")
        raw_time = column_text(table, self.roles.get("time"))
        if raw_time is None and not self._blocks and table.num_rows and target.time_kind != UNIX:
            self.time.start_at(_file_order_start(target, users[0].as_py(), items[0].as_py()))
        self._blocks += 1
        self.time.usual_order = target.date_order
        times = self.time.parse(raw_time, table.num_rows)
        self._check_time_kind(target)
        self._keep_date_order(target)
        if raw_time is not None:
            column = self.roles["time"]
            checks.fail(times.out_of_range, column,
                        lambda r: self.time.out_of_range_reason(raw_time[r].as_py(), times.read_as[r]))
            if times.dated is not None:
                checks.fail(times.dated, column, lambda r: _dated_in_order_reason(raw_time[r].as_py()))
            checks.fail(np.isnan(times.seconds), column, lambda r: self.time.unparseable_reason(raw_time[r].as_py()))
        ts = self._with_time_of_day(table, times.seconds, raw_time, checks)
        values = self._values(table, checks)
        rejected = checks.rejected()
        if strict and rejected:
            raise rejected[0].as_error(self.path)
        low = self.low_values.low(values)
        stored = ~checks.bad if low is None or self.low_values.action != "drop" else ~checks.bad & ~low
        if low is not None:
            self.low_count += int((low & ~checks.bad).sum())
        keep = pa.array(stored)
        user_ids, new_users = target.users.resolve(users.filter(keep))
        item_ids, new_items = target.items.resolve(items.filter(keep))
        insert_rows(target.raw, "INSERT INTO users(id, external_id) VALUES ", "(?, ?)", new_users)
        insert_rows(target.raw, "INSERT INTO items(id, external_id) VALUES ", "(?, ?)", new_items)
        columns = {"user_id": user_ids.tolist(), "item_id": item_ids.tolist(), "ts": ts[stored].tolist()}
        if self.roles.get("event"):
            columns["event_type"] = self._event_types(table, keep)
        if values is not None:
            columns["value"] = _nullable(values, stored)
        negative = low[stored] if low is not None and self.low_values.action == "negative" else None
        if negative is not None:
            columns["negative"] = negative.astype(int).tolist()
        insert_rows(target.raw, *self._insert_sql(columns, target.import_id, self.event_type),
                    list(columns.values()), per_statement=1 if target.events_indexed else UNINDEXED_ROWS)
        if target.written is not None:
            target.written.add(user_ids, item_ids, ts[stored],
                               np.zeros(len(user_ids), dtype=bool) if negative is None else negative)
        return len(user_ids), rejected

    @staticmethod
    def _insert_sql(columns: dict[str, list], import_id: int, event_type: str) -> tuple[str, str]:
        """The statement's head and one row's values (``insert_rows``). Values the same for every
        row are literals in the statement: every parameter bound per row costs executemany time."""
        constants = {"import_id": str(int(import_id))}
        if "event_type" not in columns:
            constants["event_type"] = "'" + event_type.replace("'", "''") + "'"
        names = ", ".join([*columns, *constants])
        marks = ", ".join(["?"] * len(columns) + list(constants.values()))
        return f"INSERT INTO events({names}) VALUES ", f"({marks})"

    def _with_time_of_day(self, table: pa.Table, seconds: np.ndarray, raw_time: Optional[pa.Array],
                          checks: _Checks) -> np.ndarray:
        """``seconds`` (of the dates in the time column) plus each row's time of day from the
        ``time_of_day`` column, where the file has one; a row whose time of day is missing or
        unreadable, or whose time already tells one, is refused."""
        column = self.roles.get("time_of_day")
        clock = column_text(table, column) if raw_time is not None else None
        if clock is None:
            return seconds
        time_column = self.roles["time"]
        if self.time.kind == ORDER:
            checks.fail(np.ones(len(seconds), dtype=bool), time_column,
                        lambda r: f"time {raw_time[r].as_py()!r} is a position, but a time of day ({column}) needs a date")
            return seconds
        of_day = seconds_of_day(clock)
        missing = pc.fill_null(pc.equal(clock, ""), True).to_numpy(zero_copy_only=False)
        checks.fail(missing, column, lambda _r: "missing time of day")
        checks.fail(np.isnan(of_day), column,
                    lambda r: f"unreadable time of day {clock[r].as_py()!r}: write it as 14:05, 14:05:30 or 2:05 PM")
        checks.fail(np.nan_to_num(seconds) % 86_400 != 0, time_column,
                    lambda r: f"time {raw_time[r].as_py()!r} tells its time of day already; beside a time-of-day "
                              f"column ({column}) the time column holds dates")
        return seconds + np.nan_to_num(of_day)

    def _keep_date_order(self, target: Target) -> None:
        """The order this file's slashed dates were read in, for the workspace's later files whose own
        dates cannot tell (a week's export: 03/05/2025 is March or May)."""
        if self.time.date_order is not None and self.time.date_order != target.date_order:
            target.date_order = self.time.date_order
            target.raw.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('date_order', ?)", (target.date_order,))

    def _check_time_kind(self, target: Target) -> None:
        if self.time.kind is None:
            return  # no row of the file so far has a time: all are rejected
        if target.time_kind is None:
            target.time_kind = self.time.kind
            target.raw.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('time_kind', ?)", (self.time.kind,))
        elif target.time_kind != self.time.kind:
            raise CsvImportError(
                self.path, None, self.roles.get("time"),
                f"this file's events {_TIME_KINDS[self.time.kind]}, but the workspace's {_TIME_KINDS[target.time_kind]}: "
                "the two cannot be put on one timeline", _TIME_KIND_HINT)

    def _values(self, table: pa.Table, checks: _Checks) -> Optional[np.ndarray]:
        column = self.roles.get("value")
        if column is None:
            return None
        cells = column_text(table, column)
        values = to_numbers(number_text(cells, self.decimal_comma))
        given = pc.not_equal(cells, "").to_numpy(zero_copy_only=False)
        checks.fail(np.isnan(values) & given, column, lambda r: f"value {cells[r].as_py()!r} is not a number")
        return values

    def _event_types(self, table: pa.Table, keep: pa.Array) -> list[str]:
        types = column_text(table, self.roles["event"])
        kept = types.filter(keep)
        encoded = pc.dictionary_encode(pc.if_else(pc.equal(kept, ""), pa.scalar(self.event_type), kept))
        names = np.array(encoded.dictionary.to_pylist(), dtype=object)
        return names[encoded.indices.to_numpy(zero_copy_only=False)].tolist()


_DONE_TO = {"drop": "dropped", "negative": "marked negative"}
# A currency mark before or after an amount, as spreadsheets format prices: "$12.50", "9,99 €", "£1,200".
_CURRENCY = r"^[$€£¥₹]\s*|\s*[$€£¥₹]$"
# Thousands marks: "1,200" and "1,200.50" where the decimal mark is a point; "1.200,50" where it is a comma
# (only beside a decimal comma: "1.234" alone there may be a point decimal, as "0.125" is).
_THOUSANDS = {False: r"^[+-]?[1-9]\d{0,2}(,\d{3})+(\.\d+)?$", True: r"^[+-]?[1-9]\d{0,2}(\.\d{3})+,\d+$"}
_DECIMAL_COMMA = r"^([+-]?\d+),(\d+)$"  # "20,08", "-3,5" (after the thousands marks are gone)
# A workspace's time kind (meta "time_kind") in words, to say why a file's times cannot join it.
_TIME_KINDS = {"unix": "have clock times", "order": "are only in an order (positions or file order, no clock)"}
_TIME_KIND_HINT = ("Import this file into a workspace of its own, or import every file of the "
                   "log with the same kind of times. Nothing was imported.")


def number_text(cells: pa.Array, decimal_comma: bool) -> pa.Array:
    """Values as a price or amount column of a shop's export writes them, as plain numbers: a currency
    mark dropped, thousands marks dropped, a decimal comma read as a point where the file uses one
    (``decimal_comma``). Three of four orders were refused for "$12.50", "$1,200.00" and "€9.99"."""
    plain = pc.replace_substring_regex(cells, _CURRENCY, "")
    mark = "." if decimal_comma else ","
    plain = pc.if_else(pc.match_substring_regex(plain, _THOUSANDS[decimal_comma]),
                       pc.replace_substring(plain, mark, ""), plain)
    return pc.replace_substring_regex(plain, _DECIMAL_COMMA, r"\1.\2") if decimal_comma else plain


def _file_order_start(target: Target, first_user: str, first_item: str) -> int:
    """The position of a time-less file's first row. After every stored event, so day 2's file
    follows day 1's instead of being slotted among it; but 0 when the file starts as the stored log
    does (an export holding every event so far, then new ones): its repeats then fall on their
    stored positions and are skipped, and its new rows follow."""
    first = target.raw.execute(
        "SELECT u.external_id, i.external_id FROM events e JOIN users u ON u.id = e.user_id "
        "JOIN items i ON i.id = e.item_id WHERE e.ts = 0 ORDER BY e.id LIMIT 1").fetchone()
    if first is None or first == (first_user, first_item):
        return 0
    last = target.raw.execute("SELECT max(ts) FROM events").fetchone()[0]
    return 0 if last is None else int(last) + 1


def _dated_in_order_reason(cell: str) -> str:
    """A date is not unparseable, it just has no place among positions: say that instead."""
    return f"time {cell!r} is a date, but these events' times are positions in an order (no clock): give a position"


def _nullable(values: np.ndarray, keep: np.ndarray) -> list[Optional[float]]:
    kept = values[keep]
    return np.where(np.isnan(kept), None, kept).tolist()


class ProfileLoader:
    """items or users: id, (title, categories for items) and every other column as attributes."""

    def __init__(self, path, kind: str, roles: dict[str, str], attributes: list[str],
                 flags: list[str], flag_names: list[str]) -> None:
        self.path, self.kind, self.roles = path, kind, roles
        self.id_role = "item" if kind == "items" else "user"
        self.attributes, self.flags, self.flag_names = attributes, flags, flag_names
        self._given = np.zeros(0, dtype=bool)  # by store id: given by a row of this file already
        self.repeated = 0  # rows whose id an earlier row of this file gave (the last one's values are kept)
        extra = ("title", "categories") if kind == "items" else ()
        self.sql = _UPSERT.format(
            table=kind,
            columns="".join(f", {c}" for c in extra) + ", attributes",
            marks=", ?" * (len(extra) + 1),
            updates="".join(f"{c} = coalesce(excluded.{c}, {kind}.{c}), " for c in extra),
        )

    def load(self, target: Target, block: Block, strict: bool) -> tuple[int, list[RejectedRow]]:
        table, checks = block.table, _Checks(block)
        ids = _require_ids(checks, table, self.roles[self.id_role], self.id_role)
        rejected = checks.rejected()
        if strict and rejected:
            raise rejected[0].as_error(self.path)
        keep = pa.array(~checks.bad)
        table = table.filter(keep)
        ids = ids.filter(keep)
        store_ids, _new = (target.items if self.kind == "items" else target.users).resolve(ids)
        self._count_repeats(np.asarray(store_ids, dtype=np.int64))
        columns = [store_ids.tolist(), ids.to_pylist()]
        if self.kind == "items":
            columns += [_optional_text(table, self.roles.get("title")), self._categories(table)]
        columns.append(self._attributes(table))
        target.raw.executemany(self.sql, zip(*columns))
        return len(store_ids), rejected

    def _count_repeats(self, store_ids: np.ndarray) -> None:
        """A catalogue export that lists an item twice keeps only its last row, silently: counted, so
        the report can say so. One flag per store id, not a set of the ids' text (a million users)."""
        if not len(store_ids):
            return
        if store_ids.max() >= len(self._given):
            self._given = np.concatenate([self._given, np.zeros(int(store_ids.max()) + 1 - len(self._given), bool)])
        unique = np.unique(store_ids)
        self.repeated += len(store_ids) - len(unique) + int(self._given[unique].sum())
        self._given[unique] = True

    def _categories(self, table: pa.Table) -> list[Optional[str]]:
        if self.roles.get("categories"):
            return [_category_list(c) for c in column_text(table, self.roles["categories"]).to_pylist()]
        if not self.flags:
            return [None] * table.num_rows
        on = np.column_stack([_flag_set(column_text(table, f)) for f in self.flags])
        names = self.flag_names
        return ["|".join(names[j] for j in np.flatnonzero(row)) or None for row in on]

    def _attributes(self, table: pa.Table) -> list[Optional[str]]:
        if not self.attributes:
            return [None] * table.num_rows
        columns = [_typed_cells(column_text(table, c)) for c in self.attributes]
        objects = ({k: v for k, v in zip(self.attributes, cells) if v not in ("", None)} for cells in zip(*columns))
        return [json.dumps(o, ensure_ascii=False) if o else None for o in objects]


def _optional_text(table: pa.Table, column: Optional[str]) -> list[Optional[str]]:
    if column is None:
        return [None] * table.num_rows
    return [c or None for c in column_text(table, column).to_pylist()]


def _category_list(cell: Optional[str]) -> Optional[str]:
    parts = [p.strip() for p in (cell or "").split("|")]
    return "|".join(p for p in parts if p) or None


def _flag_set(cells: pa.Array) -> np.ndarray:
    return pc.is_in(cells, value_set=pa.array(["1", "1.0", "true", "True", "yes"])).to_numpy(zero_copy_only=False)


def _typed_cells(cells: pa.Array) -> list:
    """A column of numbers is stored as numbers (ages, prices), anything else as text."""
    numbers = to_numbers(cells)
    texts = cells.to_pylist()
    given = np.array([t != "" for t in texts])
    leading_zero = any(len(t) > 1 and t[0] == "0" and t[1] != "." for t in texts)  # zip codes
    if not given.any() or leading_zero or np.isnan(numbers[given]).any():
        return texts
    integral = np.all(numbers[given] == np.round(numbers[given])) and not any("." in t for t in texts)
    return [(int(n) if integral else float(n)) if t != "" else None for n, t in zip(numbers, texts)]
