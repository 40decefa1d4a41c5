"""Typed tables (Parquet files, database rows) read as the text cells a CSV file would give.

The loaders judge every row by one set of rules written for text: an id is its text, a time
is unix numbers or ISO-8601, a value is a number. Turning a typed column into that text, the
way a shop's CSV export would write it, lets Parquet and SQL rows pass through the very same
checks and be rejected with the same reasons, instead of a second copy of the rules for typed
data. Timestamps and dates become ISO-8601 text (a naive timestamp is taken as UTC), so a bad
one is reported as the date it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.importing.errors import CsvImportError, RejectedRow
from core.importing.roles import guess_roles


def text_table(table: pa.Table) -> pa.Table:
    """Every column as text, missing values as empty cells."""
    return pa.table({name: text_cells(table.column(name)) for name in table.column_names})


def text_cells(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One column as text: numbers as written, booleans as true/false, times as ISO-8601; values
    Arrow cannot write as text (lists, structs, durations) as JSON."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_timestamp(array.type):
        # Without its zone a timestamp holds the UTC instant (a naive one is taken as UTC); written
        # with "Z". 25x faster than Arrow's own text for zoned timestamps, which looks up the zone per value.
        utc = pc.cast(array.cast(pa.timestamp(array.type.unit)), pa.string())
        array = pc.binary_join_element_wise(utc, pa.scalar("Z"), "")
    elif not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        try:
            array = pc.cast(array, pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            array = pa.array([None if v is None else json.dumps(v, default=str, ensure_ascii=False)
                              for v in array.to_pylist()], pa.string())
    return pc.fill_null(array.cast(pa.string()), "")


@dataclass
class TableBlock:
    """A block of rows from a typed source, as the loaders read a CSV block: its rows as a text
    table, and rejected rows numbered by their row in the source (1-based).

    file:        the file inside a folder the rows come from (named in each rejected row's
                 text and in a strict import's error); None when the source is one file or a query.
    rows_before: rows of the whole source before this block, for progress.
    """

    table: pa.Table
    first_row: int
    file: Optional[str] = None
    rows_before: int = 0

    @property
    def records(self) -> int:
        return self.table.num_rows

    def undecodable_rows(self) -> dict[int, str]:
        return {}  # typed sources hold text already

    def rejected(self, rows: np.ndarray, columns: list[Optional[str]], reasons: list[str]) -> list[RejectedRow]:
        cells = self.table.take(pa.array(np.asarray(rows, dtype=np.int64))).to_pylist()
        return [RejectedRow(self.first_row + int(row), column, reason, self._raw(cell), unit="row", file=self.file)
                for row, column, reason, cell in zip(rows, columns, reasons, cells)]

    def _raw(self, cells: dict) -> str:
        """The row as a JSON object of its cells, after its file when the source is a folder."""
        row = json.dumps(cells, ensure_ascii=False)
        return f"{self.file}: {row}" if self.file else row


class TypedSource:
    """What a Parquet file or folder and a database query share as import sources: named columns
    (so roles are guessed from names), a text preview, rows counted from 1.

    Subclasses set ``label`` (the file, folder or URL), ``name``, ``columns``, ``preview``,
    ``identity`` and ``rows_expected`` (None when unknown), and their ``read(chunk_rows,
    columns)`` yields the rows (only ``columns`` when not None) as ``TableBlock`` s.
    """

    label: Path | str
    name: str
    columns: list[str]
    preview: list[list[str]]
    identity: str
    rows_expected: Optional[int]
    path: Optional[Path] = None  # a file or folder beside which side files (``<stem>.genre``) are looked for
    named_columns = True  # roles follow the columns' names
    unit = "row"

    @property
    def roles(self) -> dict[str, str]:
        return guess_roles(self.columns, self.preview, True)

    @property
    def renamed(self) -> dict[str, str]:
        return {}  # columns have distinct names: no header line repeats one

    def blocks(self, chunk_rows: int, roles: dict[str, str], every_column: bool) -> Iterator[TableBlock]:
        """Blocks of about ``chunk_rows`` rows, of every column or only those the roles use."""
        return self.read(chunk_rows, None if every_column else list(dict.fromkeys(roles.values())))

    def fraction(self, block: TableBlock) -> Optional[float]:
        if not self.rows_expected:
            return None
        return (block.rows_before + block.records) / self.rows_expected

    def no_rows_error(self) -> CsvImportError:
        return CsvImportError(self.label, None, None, "no data rows", unit=self.unit)


def preview_rows(table: pa.Table) -> list[list[str]]:
    """The first rows of a typed table as text cells, as the import dialog shows a CSV file's."""
    return [list(row.values()) for row in text_table(table).to_pylist()]
