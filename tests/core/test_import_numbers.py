"""Number cells of an import read exactly as pandas would read them, odd forms included."""

import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from core.importing.times import _days_since_1970, seconds_of_day, to_numbers

CELLS = ["", " ", "1", "-1", "+1", "1.", ".5", "-.5", "1e5", "1E+05", "1e-3", "1e400", "inf", "-inf",
         "Infinity", "NaN", "-nan", "INF", "abc", "1,000", "1_000", "0x10", "1.2.3", "e5", ".", "+", "-",
         "12abc", " 3.5 ", "00012", "1e", "1e+", "١٢", "²", "1d5", "∞", "True", "1 2", "\t7\t", "9" * 40, None]


def test_to_numbers_matches_pandas_to_numeric():
    got = to_numbers(pa.array(CELLS, pa.string()))
    cells = [None if c is None else c.strip() for c in CELLS]
    expected = pd.to_numeric(pd.Series(cells, dtype=object), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    np.testing.assert_array_equal(got, expected)  # NaN == NaN here


def test_to_numbers_reads_a_column_with_empty_cells_as_numbers_and_nan():
    got = to_numbers(pa.array(["2.5", "", "7", "x"] * 1000))
    np.testing.assert_array_equal(got[:4], [2.5, np.nan, 7.0, np.nan])
    assert got.dtype == np.float64 and len(got) == 4000


def test_to_numbers_reads_a_column_of_plain_integers_with_missing_cells():
    got = to_numbers(pa.array([" 1700000000", None, "0012"]))
    np.testing.assert_array_equal(got, [1_700_000_000.0, np.nan, 12.0])


def test_times_of_day_are_seconds_since_midnight_and_impossible_ones_are_nan():
    cells = ["14:05", "9:15:30.5", "2:05 PM", "12:00 AM", "12:30 p.m.", " 07:00:00.000000 ", "25:00", "13:00 PM",
             "7:60", "noon", "", None]
    expected = [50700, 33330.5, 50700, 0, 45000, 25200] + [np.nan] * 6
    np.testing.assert_array_equal(seconds_of_day(pa.array(cells, pa.string())), np.array(expected, dtype=float))


def test_dates_given_as_numbers_count_their_days_as_the_calendar_does():
    rng = np.random.default_rng(0)
    year, month, day = rng.integers(1900, 2100, 2000), rng.integers(0, 14, 2000), rng.integers(0, 33, 2000)
    expected = []
    for y, m, d in zip(year.tolist(), month.tolist(), day.tolist()):
        try:
            expected.append((datetime.date(y, m, d) - datetime.date(1970, 1, 1)).days)
        except ValueError:  # 02/30, month 13, day 0: no such date
            expected.append(np.nan)
    got = _days_since_1970(year.astype(float), month.astype(float), day.astype(float))
    np.testing.assert_array_equal(got, np.array(expected, dtype=float))
