"""Turning a time column into float seconds (or positions), one block at a time.

A file's numbers are either a clock (unix seconds, milliseconds, microseconds, nanoseconds) or
a plain order such as a ``step`` column. Both the kind and the clock's unit are decided once per
file, from the column name and the typical magnitude of the first numbers, so every row of one
file is read the same way; ISO-8601 text is always a clock. A time outside the range a shop's
log can hold (a number before 1973, a date before 1900, either from 2100 on) is the row's fault
and rejects it: it would otherwise be stored, and break every chart and split computed later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.importing.date_forms import dotted_dates_as_iso, month_named_dates_as_iso
from core.importing.roles import (DIGIT_DATE, ORDER_NAMES, SLASHED_DATE, TIME_OF_DAY, UNIX_MIN, UTC_WORDS,
                                  normalise)

UNIX, ORDER = "unix", "order"


# What pd.to_numeric reads as a number: decimals with optional exponent, inf/infinity/nan.
_NUMBER = r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:inf|infinity|nan))$"


def to_numbers(strings: pa.Array) -> np.ndarray:
    """Text to float64; empty or non-numeric text becomes NaN.

    Cells that do not look like numbers are nulled by a regex before the cast, all in Arrow
    kernels: ~10x faster than the former fallback, ``pd.to_numeric`` over a whole block whenever
    one cell was not a number (an empty value, a text attribute), which took 130 ms per 200k-row
    block. The regex admits only forms Arrow's parser reads, so the cast cannot fail.
    """
    trimmed = pc.utf8_trim_whitespace(strings)
    if pc.all(pc.ascii_is_decimal(trimmed)).as_py() is not False:  # plain integers (unix times): cast at once
        return pc.cast(trimmed, pa.float64()).to_numpy(zero_copy_only=False)
    numeric = pc.if_else(pc.match_substring_regex(trimmed, _NUMBER), trimmed, pa.scalar(None, pa.string()))
    return pc.cast(numeric, pa.float64()).to_numpy(zero_copy_only=False)


# Clock times a behaviour log can hold, UTC, up to 2100-01-01 (exclusive). A number from UNIX_MIN
# (1973-03-03; smaller numbers are an order, see roles); an ISO date, which says its year, from
# 1900-01-01: a 1965 purchase history is no one's step counter.
CLOCK_START, CLOCK_END = UNIX_MIN, 4_102_444_800.0
ISO_START = -2_208_988_800.0
_ISO_YEARS = (1900, 2100)
_RANGE_TEXT = "times must fall between 1973-03-03 and 2100-01-01 (UTC)"
_ISO_RANGE_TEXT = "dates must fall between 1900-01-01 and 2100-01-01 (UTC)"
ORDER_LIMIT = 2.0 ** 53  # positions beyond this are not whole numbers any more in a float
# Units of a numeric clock column: (name, units per second).
UNITS = (("seconds", 1.0), ("milliseconds", 1e3), ("microseconds", 1e6), ("nanoseconds", 1e9))
ISO = "ISO-8601"
_UTC_SUFFIX = r"(?<=\d)\s+(" + UTC_WORDS + ")$"
DIGIT_DATES = "YYYYMMDD"  # the unit of a column of dates written as digits (roles.DIGIT_DATE)
DOTTED_DATES = "DD.MM.YYYY"  # the unit of a column of day-first dotted dates (roles.DOTTED_DATE)
MONTH_NAMED = "with the month's name"  # the unit of a column of dates such as "Mar 1, 2024 10:15 AM"
FILE_ORDER_HINT = "name the order (--date-order mdy or dmy; Dates in the import dialog)"
# How slashed dates (roles.SLASHED_DATE) are read, by ``ImportOptions.date_order``, and the unit each makes.
DATE_ORDERS = {"mdy": "MM/DD/YYYY", "dmy": "DD/MM/YYYY"}
_SLASHED_PARTS = r"^\s*(?P<first>\d{1,2})/(?P<second>\d{1,2})/(?P<year>\d{4}|\d{2})(?:[ T](?P<clock>.*?))?\s*$"
CENTURY_PIVOT = 69  # a two-digit year below this is 20xx, from it 19xx (as C's and Python's %y read it)
_ISO_YEAR = r"^\s*(?P<year>\d{4,})-\d\d"
_YEAR_SECONDS = 365.2425 * 86_400


@dataclass
class Times:
    """One block's times. ``seconds`` is NaN wherever a row cannot be used; ``out_of_range``
    marks the rows that had a time, but one outside the range; ``read_as`` is what each was
    read as (seconds, or a position), to say so in the reason."""

    seconds: np.ndarray
    out_of_range: np.ndarray
    read_as: np.ndarray
    dated: Optional[np.ndarray] = None  # rows holding an ISO date where the times are an order (no clock)


class TimeColumn:
    """Reads one file's time column; without one, file order is the time.

    kind: "unix" or "order", once decided. unit: how the clock was read, for the report:
    a name from ``UNITS`` for numbers, ``ISO`` when only ISO-8601 text was seen, None for an order.
    """

    def __init__(self, column: Optional[str], unit_per_value: bool = False, date_order: Optional[str] = None,
                 order_hint: str = FILE_ORDER_HINT) -> None:
        """unit_per_value: read each number of a clock in the unit that makes it a time in the clock's
        range, instead of one unit for the whole column. For events posted to the service, whose
        clients each send their own kind of clock and whose requests are written together.
        date_order: how slashed dates read ("mdy": 12/31/2025, "dmy": 31/12/2025); None = decided by the
        file's first date that can only be read one way (a 13 or more before or after the first slash),
        else by ``usual_order`` (the workspace's, from an earlier file): a daily export's 03/05/2025
        says nothing itself.
        order_hint: what the reader of a row refused for an unknown order can do about it (a service
        client cannot name the order as an import can)."""
        self.column = column
        self.kind: Optional[str] = None if column else ORDER
        self.unit: Optional[str] = None
        self.unit_per_value = unit_per_value
        self.date_order = date_order
        self.order_hint = order_hint
        self.usual_order: Optional[str] = None
        self._position = 0

    def start_at(self, position: int) -> None:
        """Where the positions of a file without a time column begin (before its first block)."""
        self._position = position

    def parse(self, strings: Optional[pa.Array], rows: int) -> Times:
        """Times for ``rows`` rows; NaN where the text is missing, unparseable or out of range."""
        if strings is None:
            times = np.arange(self._position, self._position + rows, dtype=np.float64)
            self._position += rows
            return Times(times, np.zeros(rows, dtype=bool), times)
        numbers = to_numbers(strings)
        numbers = np.where(np.isfinite(numbers), numbers, np.nan)  # "inf" is no time
        text = np.isnan(numbers)
        if text.any():  # only text can be a dotted, named or slashed date: a column of unix times skips the look
            written, dotted = dotted_dates_as_iso(strings)
            written, named = month_named_dates_as_iso(written)
            slashed, slashed_seconds, slashed_out = self._slashed_dates(strings)
        else:
            written, dotted = strings, np.zeros(len(numbers), dtype=bool)
            named = slashed = dotted
            slashed_seconds, slashed_out = np.full(len(numbers), np.nan), dotted
        clock, clock_out = self._parse_iso(written, text & ~slashed)
        clock, clock_out = np.where(slashed, slashed_seconds, clock), clock_out | slashed_out
        iso = ~np.isnan(clock) | clock_out
        if self.kind is None:
            self.kind = self._decide_kind(numbers, iso, strings)
        if self.kind == UNIX:
            written_as = (DOTTED_DATES if dotted[iso].all() else MONTH_NAMED if named[iso].all()
                          else DATE_ORDERS[self.date_order] if slashed[iso].all() else ISO) if iso.any() else ISO
            numbers = self._clock_seconds(strings, numbers, iso, written_as)
            read_as = np.where(np.isnan(numbers), clock, numbers)
            start = np.where(np.isnan(numbers) | (self.unit == DIGIT_DATES), ISO_START, CLOCK_START)
            out = clock_out | ((read_as < start) | (read_as >= CLOCK_END))
        else:  # an order, or undecided while no row has a time
            read_as = numbers
            out = np.abs(numbers) > ORDER_LIMIT
            return Times(np.where(out, np.nan, read_as), out, read_as, dated=iso)
        return Times(np.where(out, np.nan, read_as), out, read_as)

    def out_of_range_reason(self, cell: str, read_as: float) -> str:
        """Why a row's time is refused, saying how it was read."""
        if self.kind == ORDER:
            return f"time {cell!r} is out of range: as a position it is beyond ±{ORDER_LIMIT:,.0f}"
        if not _is_number(cell):
            return f"time {cell!r} is out of range: it falls {_when(read_as)}; {_ISO_RANGE_TEXT}"
        how = "" if self.unit in (None, ISO, DIGIT_DATES, DOTTED_DATES, *DATE_ORDERS.values()) else \
            f" read as {self.unit} since 1970,"
        return f"time {cell!r} is out of range:{how} it falls {_when(read_as)}; {_RANGE_TEXT}"

    def unparseable_reason(self, cell: Optional[str]) -> str:
        """Why a row's time could not be read at all."""
        if not cell:
            return "missing time"
        if self.date_order is None and re.match(SLASHED_DATE, cell):
            return (f"time {cell!r} could be month first or day first, and no date read so far says which: "
                    + self.order_hint)
        return f"unparseable time {cell!r}"

    def _slashed_dates(self, strings: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(which cells are slashed dates, their unix seconds: NaN where the date is impossible or the order
        is not known yet, which of them fall in years outside the clock's range). The first call that
        meets a date only one order reads decides the order (``date_order``)."""
        seconds, outside = np.full(len(strings), np.nan), np.zeros(len(strings), dtype=bool)
        parts, slashed = _slashed_parts(strings)
        if not slashed.any():
            return slashed, seconds, outside
        first, second, year = (to_numbers(pc.struct_field(parts, name)) for name in ("first", "second", "year"))
        if self.date_order is None:
            self.date_order = _date_order_shown(first[slashed], second[slashed]) or self.usual_order
        if self.date_order is None:
            return slashed, seconds, outside
        month, day = (first, second) if self.date_order == "mdy" else (second, first)
        year = np.where(year < 100, year + np.where(year < CENTURY_PIVOT, 2000, 1900), year)
        outside = slashed & ((year < _ISO_YEARS[0]) | (year >= _ISO_YEARS[1]))
        seconds[outside] = (year[outside] - 1970 + 0.5) * _YEAR_SECONDS  # roughly: enough to say when
        read = slashed & ~outside
        clock = pc.fill_null(pc.struct_field(parts, "clock"), "")
        of_day = np.where(pc.equal(clock, "").to_numpy(zero_copy_only=False), 0.0, seconds_of_day(clock))
        seconds[read] = (_days_since_1970(year[read], month[read], day[read]) * 86_400.0 + of_day[read])
        return slashed, seconds, outside

    def _decide_kind(self, numbers: np.ndarray, iso: np.ndarray, strings: pa.Array) -> Optional[str]:
        """A clock when a block holds ISO dates, a number that reads as a clock time in some unit,
        or only dates written as digits; an order when it holds only other numbers or the column is
        named like one. A block without either leaves it open. (Rather a clock by mistake, whose
        rows are then rejected, than real times silently stored as positions.)"""
        if np.any(iso):
            return UNIX
        if normalise(self.column or "") in ORDER_NAMES:
            return ORDER
        present = numbers[~np.isnan(numbers)]
        if not len(present):
            return None
        return UNIX if max(_clock_readings(present)) or _numbers_are_digit_dates(strings, numbers) else ORDER

    def _decide_unit(self, numbers: np.ndarray, iso: np.ndarray, strings: pa.Array, written_as: str) -> None:
        """The unit of a numeric clock, once per file, by magnitude: the one that reads most
        numbers of the first block that has any clock time as times in the clock's range (the
        first on a tie), else dates written as digits when every number is one. So one wild
        value cannot change how the whole column is read."""
        if self.unit not in (None, ISO):
            return
        readings = _clock_readings(numbers[~np.isnan(numbers)])
        if max(readings):
            self.unit = UNITS[int(np.argmax(readings))][0]
        elif _numbers_are_digit_dates(strings, numbers):
            self.unit = DIGIT_DATES
        elif np.any(iso):
            self.unit = written_as

    def _clock_seconds(self, strings: pa.Array, numbers: np.ndarray, iso: np.ndarray,
                       written_as: str) -> np.ndarray:
        """Unix seconds of the numbers (NaN elsewhere): in the column's unit, or each in its own.
        ``written_as``: the unit text dates would give the column (``ISO``, ``DOTTED_DATES``...)."""
        if self.unit_per_value:
            return numbers / _unit_of_each(numbers)
        self._decide_unit(numbers, iso, strings, written_as)
        if self.unit == DIGIT_DATES:
            return np.where(np.isnan(numbers), np.nan, _digit_date_seconds(strings))
        return numbers / dict(UNITS).get(self.unit, 1.0)

    @staticmethod
    def _parse_iso(strings: pa.Array, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(unix seconds for ISO-8601 dates/times among the non-numeric cells, NaN elsewhere;
        the cells that are ISO dates of a year outside the clock's range). Those years are
        kept from the parser, whose own range ends in 2262 and which raises beyond it; their
        seconds are only roughly right, to say when they fall."""
        out = np.full(len(strings), np.nan)
        outside = np.zeros(len(strings), dtype=bool)
        if not candidates.any():
            return out, outside
        year = to_numbers(pc.extract_regex(strings, _ISO_YEAR).field("year"))  # "" (NaN) where none
        outside = candidates & ((year < _ISO_YEARS[0] - 1) | (year > _ISO_YEARS[1]))
        out[outside] = (year[outside] - 1970 + 0.5) * _YEAR_SECONDS  # mid-year, roughly: enough to say when
        parse = candidates & ~outside
        if not parse.any():
            return out, outside
        text = pd.Series(strings.to_numpy(zero_copy_only=False)[parse], dtype=object).str.strip()
        text = text.str.replace(_UTC_SUFFIX, "Z", regex=True)  # BigQuery writes "2024-03-01 10:15:00 UTC"
        parsed = pd.to_datetime(text.where(text != ""), format="ISO8601", utc=True, errors="coerce")
        seconds = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        out[parse] = seconds.to_numpy(dtype=np.float64, na_value=np.nan)
        return out, outside


def seconds_of_day(strings: pa.Array) -> np.ndarray:
    """Seconds since midnight of times of day written 14:05, 14:05:30(.25) or 2:05 PM (``roles.TIME_OF_DAY``);
    NaN for any other cell, an impossible time (25:00, 13:00 PM) included."""
    parts = pc.extract_regex(strings, TIME_OF_DAY)  # null where a cell is no time of day
    hour, minute, second = (to_numbers(pc.struct_field(parts, name)) for name in ("hour", "minute", "second"))
    half = pc.utf8_lower(pc.fill_null(pc.struct_field(parts, "half"), "")).to_numpy(zero_copy_only=False).astype(str)
    afternoon, twelve_hour = np.char.startswith(half, "p"), half != ""
    valid = np.where(twelve_hour, (hour >= 1) & (hour <= 12), hour <= 23) & (minute <= 59) & ~(second >= 61)
    hour = np.where(twelve_hour, hour % 12 + 12 * afternoon, hour)
    seconds = hour * 3600 + minute * 60 + np.nan_to_num(second)
    return np.where(valid, seconds, np.nan)


def _clock_readings(numbers: np.ndarray) -> list[int]:
    """For each unit in ``UNITS``, how many of ``numbers`` it reads as times in the clock's range."""
    return [int(np.count_nonzero((numbers / per >= CLOCK_START) & (numbers / per < CLOCK_END))) for _, per in UNITS]


def _days_since_1970(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days from 1970-01-01 to each (proleptic Gregorian) date; NaN for an impossible one (02/30, 13/01).
    Arithmetic on whole arrays: a quarter of pandas' time for a block of dates given as numbers."""
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_days = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    valid = (month >= 1) & (month <= 12) & (day >= 1)
    whole_month = np.where(valid, month, 1).astype(np.int64)
    valid &= day <= month_days[whole_month] + ((whole_month == 2) & leap)
    shifted = year - (whole_month <= 2)  # years from March, so that a leap day ends its year
    era = np.floor_divide(shifted, 400)
    of_era = shifted - era * 400
    of_year = (153 * (whole_month + np.where(whole_month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146_097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719_468
    return np.where(valid, days, np.nan)


def _slashed_parts(strings: pa.Array) -> tuple[Optional[pa.StructArray], np.ndarray]:
    """(the parts of each cell written as a slashed date: null where a cell is none, which cells are)."""
    if not pc.any(pc.match_substring(strings, "/")).as_py():  # a tenth of the regex's time on an ISO block
        return None, np.zeros(len(strings), dtype=bool)
    parts = pc.extract_regex(strings, _SLASHED_PARTS)
    return parts, pc.is_valid(parts).to_numpy(zero_copy_only=False)


def slashed_dates_shown(strings: pa.Array) -> tuple[bool, Optional[str]]:
    """(whether any cell is a slashed date, the order those dates show: None where none tells)."""
    parts, slashed = _slashed_parts(strings)
    if not slashed.any():
        return False, None
    first, second = (to_numbers(pc.struct_field(parts, name))[slashed] for name in ("first", "second"))
    return True, _date_order_shown(first, second)


def _date_order_shown(first: np.ndarray, second: np.ndarray) -> Optional[str]:
    """The order more of the slashed dates (their numbers before and after the first slash) can only be
    read in: a 13 or more first is a day (31/12), second a day (12/31); one wrong date among many
    does not decide. None where none tells, or as many tell each way."""
    day_first = int(np.count_nonzero((first > 12) & (second <= 12)))
    month_first = int(np.count_nonzero((second > 12) & (first <= 12)))
    return None if day_first == month_first else "dmy" if day_first > month_first else "mdy"


def _numbers_are_digit_dates(strings: pa.Array, numbers: np.ndarray) -> bool:
    """The block has numbers and every one is a date written as digits (``roles.DIGIT_DATE``)."""
    given = ~np.isnan(numbers)
    if not given.any():
        return False
    cells = pc.utf8_trim_whitespace(strings.filter(pa.array(given)))
    return pc.all(pc.match_substring_regex(cells, DIGIT_DATE)).as_py() is True


def _digit_date_seconds(strings: pa.Array) -> np.ndarray:
    """Unix seconds (UTC) of dates written YYYYMMDD or YYYYMMDDhhmmss; NaN for other cells and
    impossible dates (20250231)."""
    text = pd.Series(pc.utf8_trim_whitespace(strings).to_numpy(zero_copy_only=False), dtype=object)
    valid = text.str.match(DIGIT_DATE, na=False)
    days = pd.to_datetime(text.where(valid & (text.str.len() == 8)), format="%Y%m%d", utc=True, errors="coerce")
    moments = pd.to_datetime(text.where(valid & (text.str.len() == 14)), format="%Y%m%d%H%M%S", utc=True,
                             errors="coerce")
    seconds = (days.where(days.notna(), moments) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.float64, na_value=np.nan)


def _unit_of_each(numbers: np.ndarray) -> np.ndarray:
    """Units per second of the first unit in ``UNITS`` that reads each number as a time in the
    clock's range (the ranges of the units do not overlap); seconds for a number none reads."""
    per_second = np.ones(len(numbers))
    for _, per in reversed(UNITS):
        per_second[(numbers / per >= CLOCK_START) & (numbers / per < CLOCK_END)] = per
    return per_second


# What an events file without a time column means for its sequences: said after its import, so a time
# column that went unrecognised is noticed before training on the file's order.
NO_TIME_NOTE = "no time column: events kept in the file's order"


def describe_time_unit(unit: str, time_of_day: Optional[str] = None) -> str:
    """A ``FileReport.time_unit`` in words: "unix milliseconds", "ISO-8601 dates"; with the column that
    gave each date its time of day (the ``time_of_day`` role), where one did."""
    if unit in (DIGIT_DATES, DOTTED_DATES, MONTH_NAMED, *DATE_ORDERS.values()):
        words = f"dates written {unit} (UTC)"
    else:
        words = "ISO-8601 dates" if unit == ISO else f"unix {unit}"
    return words if time_of_day is None else f"{words}, each with its time of day from {time_of_day!r}"


def _is_number(cell: str) -> bool:
    return not np.isnan(to_numbers(pa.array([cell]))[0])


def _when(seconds: float) -> str:
    if seconds < ISO_START:
        return "before 1900"
    if seconds < 0:
        return "before 1970"
    if seconds >= 253_402_300_800:  # year 10000
        return "after the year 9999"
    return f"in the year {datetime.fromtimestamp(seconds, timezone.utc).year}"
