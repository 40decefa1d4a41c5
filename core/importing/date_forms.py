"""Dates written in the forms spreadsheets and exports use besides ISO-8601, rewritten as ISO text for
``core.importing.times``' one ISO reader: day-first dotted dates, and dates that name their month."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.importing.roles import DOTTED_DATE

# A cell naming a month in English beside digits: "Mar 1, 2024", "1 March 2024 10:15", "01-Mar-24".
_MONTH_NAME = r"(?i)(^|[^a-z])(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?([^a-z]|$)"


def dotted_dates_as_iso(strings: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The cells with day-first dotted dates ("1.3.2025 9:05") rewritten as ISO-8601 text
    ("2025-03-01T09:05") for the ISO reader, the others as they are; and which cells were dotted.
    Dots are only ever day-first (never month-first, unlike slashes), so reading them is no guess."""
    dotted = pc.match_substring_regex(strings, DOTTED_DATE)
    mask = dotted.to_numpy(zero_copy_only=False)
    if not mask.any():
        return strings, mask
    text = pc.utf8_trim_whitespace(strings)
    for pattern, replacement in ((r"^(\d)\.", r"0\1."), (r"^(\d\d)\.(\d)\.", r"\1.0\2."),
                                 (r"^(\d\d)\.(\d\d)\.(\d{4})", r"\3-\2-\1"), (r"^(\S+)[ T](\d):", r"\1T0\2:"),
                                 (r"^(\S+) (\d\d):", r"\1T\2:")):
        text = pc.replace_substring_regex(text, pattern, replacement)
    return pc.if_else(dotted, text, strings), mask


def month_named_dates_as_iso(strings: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The cells that name their month in English ("Mar 1, 2024 10:15 AM", "1 March 2024", "01-Mar-24",
    as spreadsheets and analytics exports write dates) rewritten as ISO-8601 text for the ISO reader,
    the others as they are; and which cells were so written. The month is named, so no day-month
    order is guessed. Read with the format the first such cell shows (one format per column, fast),
    then the cells it does not fit one by one; a cell neither reads stays as it was, to be refused."""
    named = pc.fill_null(pc.match_substring_regex(strings, _MONTH_NAME), False)
    mask = named.to_numpy(zero_copy_only=False)
    if not mask.any():
        return strings, mask
    cells = pd.Series(strings.filter(named).to_pylist(), dtype=object).str.strip()
    shown = pd.tseries.api.guess_datetime_format(cells.iloc[0])
    parsed = pd.to_datetime(cells, format=shown, errors="coerce") if shown else pd.Series(pd.NaT, index=cells.index)
    unread = parsed.isna()
    if unread.any():
        parsed[unread] = pd.to_datetime(cells[unread], format="mixed", errors="coerce")
    iso = parsed.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").where(parsed.notna(), cells)
    rewritten = np.asarray(strings.to_numpy(zero_copy_only=False), dtype=object)
    rewritten[mask] = iso.to_numpy(dtype=object)
    return pa.array(rewritten, type=pa.string()), mask
