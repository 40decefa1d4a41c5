"""Posted events as the loader reads a CSV block: JSON rows made text cells a field at a time, rows of the
wrong shape refused (naming the first wrong field), rejected rows numbered by their place in the
service's stream."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa

from core.importing.errors import RejectedRow

FIELDS = ("user", "item", "time", "event_type", "value")
MAX_ID_CHARS = 256  # a user or item id longer than this is refused at its row


@dataclass
class PostedBlock:
    """What ``EventsLoader.load`` reads from a CSV block, for posted rows: the rows as a text
    table, and rejected rows numbered by their place in the service's stream."""

    table: pa.Table
    positions: np.ndarray  # index in the request of each table row
    rows: list
    first_row: int

    def undecodable_rows(self) -> dict[int, str]:
        return {}  # posted JSON is text already

    def rejected(self, rows: np.ndarray, columns: list, reasons: list[str]) -> list[RejectedRow]:
        at = self.positions[np.asarray(rows, dtype=np.int64)]
        return [RejectedRow(self.first_row + int(i), column, reason, raw_text(self.rows[i]))
                for i, column, reason in zip(at, columns, reasons)]


def text_cells(rows: list, time_kind: Optional[str]
               ) -> tuple[pa.Table, np.ndarray, list[tuple[int, Optional[str], str]]]:
    """The rows as a table of text cells (as a CSV reader gives them), the request index of each
    table row, and the rows refused for their JSON shape (index, field, reason: the first field
    in FIELDS' order that is wrong).

    A missing time is the moment of arrival, in a workspace whose times are a clock (``time_kind``
    "unix" or none yet). The cells are made a field at a time: a posted batch's fields are
    nearly always all text, all numbers or all missing, each made in one step, not a row at a time.
    """
    now = repr(time.time()) if time_kind is None or time_kind == "unix" else ""
    refused: dict[int, tuple[Optional[str], str]] = {
        index: (None, "an event must be a JSON object with user, item, time, event_type, value")
        for index, row in enumerate(rows) if not isinstance(row, dict)}
    objects = [{} if index in refused else row for index, row in enumerate(rows)] if refused else rows
    columns = {name: _field_cells([row.get(name) for row in objects], name, now, refused) for name in FIELDS}
    for name in ("user", "item"):
        if max(map(len, columns[name]), default=0) > MAX_ID_CHARS:
            for index, cell in enumerate(columns[name]):
                if len(cell) > MAX_ID_CHARS:
                    refused.setdefault(index, (name, f"{name} id longer than {MAX_ID_CHARS} characters"))
    positions = [index for index in range(len(rows)) if index not in refused] if refused else range(len(rows))
    if refused:
        columns = {name: [cells[index] for index in positions] for name, cells in columns.items()}
    table = pa.table({name: pa.array(cells, pa.string()) for name, cells in columns.items()})
    return (table, np.asarray(positions, dtype=np.int64),
            [(index, *refused[index]) for index in sorted(refused)])


def _field_cells(values: list, name: str, now: str, refused: dict[int, tuple[Optional[str], str]]) -> list[str]:
    """One field's values as text cells; a value that is neither text nor a number refuses its row
    (unless an earlier field did) and leaves an empty cell."""
    kinds = set(map(type, values))
    if kinds == {str}:
        return values
    if kinds <= {int, float}:
        return list(map(_number_text, values))
    cells = []
    for index, value in enumerate(values):
        if value is None:
            cells.append(now if name == "time" else "")
        elif isinstance(value, str):
            cells.append(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            cells.append(_number_text(value))
        else:
            refused.setdefault(index, (name, f"expected text or a number, not {type(value).__name__}"))
            cells.append("")
    return cells


def _number_text(value: int | float) -> str:
    """A JSON number as a typed column's number is written (``core.importing.tables.text_cells``): a
    whole float without its ".0", so an id posted as 7.0 (a pandas integer column with a gap) is the
    user "7" a file gives, not a second one called "7.0"."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2.0 ** 53:
        return str(int(value))
    return repr(value)


def raw_text(row) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)[:1000]
