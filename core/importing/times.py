"""Turning a time column into float seconds (or positions), one block at a time.

A file's numbers are either a clock (unix seconds, milliseconds, microseconds) or a plain
order such as a ``step`` column. That is decided once per file, from the column name and the
first block, so every block of one file is read the same way; ISO-8601 text is always a clock.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.importing.roles import ORDER_NAMES, UNIX_MIN, normalise

UNIX, ORDER = "unix", "order"


# What pd.to_numeric reads as a number: decimals with optional exponent, inf/infinity/nan.
_NUMBER = r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:inf|infinity|nan))$"


def to_numbers(strings: pa.Array) -> np.ndarray:
    """Text to float64; empty or non-numeric text becomes NaN.

    Cells that do not look like numbers are nulled by a regex before the cast, all in Arrow
    kernels, which release the GIL. The former fallback, ``pd.to_numeric`` over a whole block
    whenever one cell was not a number (an empty value, a text attribute), held the GIL for
    130 ms per 200k-row block and 270 ms per 100k text cells: the studio's window froze that
    long during an import (found with ``benchmarks/bench_gui.py --watchdog``). This is also
    ~10x faster. The regex admits only forms Arrow's parser reads, so the cast cannot fail.
    """
    trimmed = pc.utf8_trim_whitespace(strings)
    if pc.all(pc.ascii_is_decimal(trimmed)).as_py() is not False:  # plain integers (unix times): cast at once
        return pc.cast(trimmed, pa.float64()).to_numpy(zero_copy_only=False)
    numeric = pc.if_else(pc.match_substring_regex(trimmed, _NUMBER), trimmed, pa.scalar(None, pa.string()))
    return pc.cast(numeric, pa.float64()).to_numpy(zero_copy_only=False)


class TimeColumn:
    """Reads one file's time column; without one, file order is the time."""

    def __init__(self, column: Optional[str]) -> None:
        self.column = column
        self.kind: Optional[str] = None if column else ORDER
        self._position = 0

    def parse(self, strings: Optional[pa.Array], rows: int) -> np.ndarray:
        """float64 times for ``rows`` rows; NaN where the text is missing or unparseable."""
        if strings is None:
            times = np.arange(self._position, self._position + rows, dtype=np.float64)
            self._position += rows
            return times
        numbers = to_numbers(strings)
        numbers = np.where(np.isfinite(numbers), numbers, np.nan)  # "inf" is no time
        clock = self._parse_iso(strings, np.isnan(numbers))
        if self.kind is None:
            self.kind = self._decide_kind(numbers, clock)
        if self.kind == UNIX:
            numbers = _as_seconds(numbers)
        return np.where(np.isnan(numbers), clock, numbers)

    def _decide_kind(self, numbers: np.ndarray, clock: np.ndarray) -> str:
        if np.any(~np.isnan(clock)):
            return UNIX
        if normalise(self.column or "") in ORDER_NAMES:
            return ORDER
        present = numbers[~np.isnan(numbers)]
        return UNIX if len(present) and np.max(np.abs(present)) >= UNIX_MIN else ORDER

    @staticmethod
    def _parse_iso(strings: pa.Array, candidates: np.ndarray) -> np.ndarray:
        """Unix seconds for ISO-8601 dates/times among the non-numeric cells, NaN elsewhere."""
        out = np.full(len(strings), np.nan)
        if not candidates.any():
            return out
        text = pd.Series(strings.to_numpy(zero_copy_only=False)[candidates], dtype=object).str.strip()
        parsed = pd.to_datetime(text.where(text != ""), format="ISO8601", utc=True, errors="coerce")
        seconds = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        out[candidates] = seconds.to_numpy(dtype=np.float64, na_value=np.nan)
        return out


def _as_seconds(numbers: np.ndarray) -> np.ndarray:
    """Unix times given in microseconds or milliseconds, told apart by magnitude."""
    magnitude = np.abs(np.nan_to_num(numbers))
    return np.where(magnitude >= 1e14, numbers / 1e6, np.where(magnitude >= 1e11, numbers / 1e3, numbers))
