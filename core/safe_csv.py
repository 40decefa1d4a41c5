"""Every CSV file the product writes: safe to open in a spreadsheet, written whole or not at all.

Ids, titles, categories and rejected rows come from the shop's own files, and the files we
write are opened in spreadsheets, which run a cell starting with ``=``, ``+``, ``-`` or ``@``
(or a tab, carriage return, line feed or NUL before one) as a formula: ``=HYPERLINK(...)``
phones home, ``=cmd|...`` runs a program. Following OWASP's CSV-injection guidance, such a
text cell gets a leading apostrophe (shown as text, never evaluated), and every text cell is
quoted so a separator inside it cannot start a new cell in a spreadsheet that splits on
another character. Numbers stay numbers: a value passed as ``int``/``float``, or text that
is just a number (``-0.5``), is written as it is, since no spreadsheet runs a bare number.
"""

from __future__ import annotations

import contextlib
import csv
import numbers
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from core.errors import user_file

FORMULA_TRIGGERS = ("=", "+", "-", "@")
LEADING_CONTROLS = "\t\r\n\0"  # OWASP names tab and carriage return, ASVS also NUL; line feed is treated alike
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralise(value):
    """The cell a spreadsheet shows as written: numbers as numbers, formula-like text as text."""
    if value is None:
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return value
    text = str(value)
    if _runs_as_formula(text) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _runs_as_formula(text: str) -> bool:
    if text[:1] and text[0] in LEADING_CONTROLS:
        return True
    return text.lstrip(" ").startswith(FORMULA_TRIGGERS)


def write_csv(path: Path | str, header: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Write ``header`` and ``rows`` (every cell neutralised); returns the data rows written.

    The file is written under a temporary name and renamed at the end, so an error or a
    cancel raised while ``rows`` is consumed leaves no half-written file (and an earlier file
    of that name untouched).
    """
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    count = 0
    try:
        with user_file(path, "write"):
            with open(partial, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
                writer.writerow([neutralise(cell) for cell in header])
                for row in rows:
                    writer.writerow([neutralise(cell) for cell in row])
                    count += 1
            os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the error that stopped the write is the one to report
            partial.unlink(missing_ok=True)
        raise
    return count
