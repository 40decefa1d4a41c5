"""Reading a CSV file as a stream of parsed blocks that know their own line numbers.

The file is cut into byte blocks at record boundaries (a newline outside quotes), each
block is transcoded to UTF-8 if needed and parsed by pyarrow. We cut the blocks ourselves,
rather than using pyarrow's streaming reader, because a rejected row must be reported at
its real file line, and only the block's bytes can tell which line a record started on.
Memory is bounded by the block size, not the file size.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from core.importing.errors import CsvImportError, RejectedRow
from core.importing.sniffing import SniffResult

_QUOTE, _NEWLINE = 34, 10


@dataclass
class InvalidRecord:
    """A record pyarrow could not fit to the columns (wrong number of fields)."""

    number: int  # 1-based record number within the block
    text: str
    reason: str


@dataclass
class Block:
    """One parsed block: its valid rows as a table, its invalid records, and where it sits."""

    table: pa.Table
    data: bytes  # the block as UTF-8
    delimiter: str
    first_line: int  # file line of the block's first byte
    end_offset: int  # file byte offset just after the block
    invalid: list[InvalidRecord] = field(default_factory=list)

    @property
    def records(self) -> int:
        return self.table.num_rows + len(self.invalid)

    def rejected(self, rows: np.ndarray, columns: list[Optional[str]], reasons: list[str]) -> list[RejectedRow]:
        """RejectedRows, sorted by line, for table ``rows`` (with blame) plus every invalid record."""
        if not len(rows) and not self.invalid:
            return []
        starts = _record_lines(self.data, self.delimiter, self.records)  # 0-based line in block of each record
        line_starts = np.concatenate(([0], np.flatnonzero(np.frombuffer(self.data, dtype=np.uint8) == _NEWLINE) + 1))
        valid = np.ones(self.records, dtype=bool)
        valid[[r.number - 1 for r in self.invalid]] = False
        row_records = np.flatnonzero(valid)[rows]
        found = [
            RejectedRow(self.first_line + int(starts[rec]), col, why, self._line_text(line_starts, int(starts[rec])))
            for rec, col, why in zip(row_records, columns, reasons)
        ]
        found += [
            RejectedRow(self.first_line + int(starts[r.number - 1]), None, r.reason, r.text) for r in self.invalid
        ]
        return sorted(found, key=lambda r: r.line)

    def _line_text(self, line_starts: np.ndarray, line: int) -> str:
        start = int(line_starts[line])
        end = int(line_starts[line + 1]) if line + 1 < len(line_starts) else len(self.data)
        return self.data[start:end].decode("utf-8", "replace").rstrip("\r\n")


def read_blocks(sniffed: SniffResult, block_bytes: int) -> Iterator[Block]:
    """Parse the data rows of a sniffed file, ``block_bytes`` at a time."""
    decoder = _Transcoder(sniffed)
    line = sniffed.first_data_line
    offset = sniffed.data_offset
    with open(sniffed.path, "rb") as handle:
        handle.seek(offset)
        carry = b""
        while True:
            chunk = handle.read(block_bytes)
            data = carry + chunk
            if not data:
                return
            cut = _record_boundary(data) if chunk else len(data)
            if cut <= 0:
                carry = data
                continue
            raw, carry = data[:cut], data[cut:]
            offset += len(raw)
            if raw.strip():
                utf8 = decoder.to_utf8(raw, line)
                table, invalid = _parse(sniffed, utf8, line)
                yield Block(table, utf8, sniffed.delimiter, line, offset, invalid)
            line += raw.count(b"\n")
            if not chunk:
                return


def _record_boundary(data: bytes) -> int:
    """Index just after the last newline that is not inside a quoted field (0: none)."""
    last = data.rfind(b"\n")
    if last < 0 or b'"' not in data:
        return last + 1
    view = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(view == _NEWLINE)
    quotes_before = np.cumsum(view == _QUOTE)[newlines]
    outside = newlines[quotes_before % 2 == 0]
    # A stray quote inside an unquoted field would hide every boundary: cut at the last line then.
    return int(outside[-1]) + 1 if len(outside) else last + 1


class _Transcoder:
    """Turns raw blocks into UTF-8. A file guessed as UTF-8 that turns out to hold latin-1
    bytes after an all-ASCII start switches to latin-1, which reads that start identically."""

    def __init__(self, sniffed: SniffResult) -> None:
        self.path = sniffed.path
        self.encoding = sniffed.encoding
        self.ascii_so_far = True

    def to_utf8(self, raw: bytes, first_line: int) -> bytes:
        if self.encoding == "utf-8":
            if raw.isascii():
                return raw
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if not self.ascii_so_far:
                    line = first_line + raw[: exc.start].count(b"\n")
                    raise CsvImportError(
                        self.path, line, None,
                        f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); give the file's encoding, e.g. latin-1",
                    ) from None
                self.encoding = "latin-1"
            else:
                self.ascii_so_far = False
                return raw
        return raw.decode(self.encoding, errors="replace").encode("utf-8")


def _parse(sniffed: SniffResult, data: bytes, first_line: int) -> tuple[pa.Table, list[InvalidRecord]]:
    """Every column as text (ids stay exactly as written; the loaders convert the rest)."""
    invalid: list[InvalidRecord] = []
    expected = len(sniffed.columns)

    def on_invalid(row) -> str:
        reason = f"wrong number of columns: expected {expected}, found {row.actual_columns}"
        invalid.append(InvalidRecord(row.number, row.text, reason))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=sniffed.columns, use_threads=False, block_size=max(len(data), 1 << 20) + 1),
            parse_options=pacsv.ParseOptions(
                delimiter=sniffed.delimiter, invalid_row_handler=on_invalid, newlines_in_values=b'"' in data
            ),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in sniffed.columns}),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CsvImportError(sniffed.path, first_line, None, f"cannot parse this part of the file: {exc}") from None
    return table, invalid


def _record_lines(data: bytes, delimiter: str, records: int) -> np.ndarray:
    """0-based line (within the block) where each of the block's records starts."""
    if b'"' not in data and data.count(b"\r") == data.count(b"\r\n"):
        view = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(view == _NEWLINE)
        starts = np.concatenate(([0], ends + 1))
        stops = np.concatenate((ends, [len(data)]))
        length = stops - starts
        blank = (length == 0) | ((length == 1) & (view[np.minimum(starts, len(data) - 1)] == 13))
        lines = np.flatnonzero(~blank)
    else:
        lines = _record_lines_by_csv(data, delimiter)
    return lines[:records]


def _record_lines_by_csv(data: bytes, delimiter: str) -> np.ndarray:
    """Slow path for blocks with quotes (a record may span lines) or bare carriage returns."""
    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace")), delimiter=delimiter, strict=False)
    lines, previous = [], 0
    try:
        for row in reader:
            start, previous = previous, reader.line_num
            if row:
                lines.append(start)
    except csv.Error:
        pass
    return np.asarray(lines, dtype=np.int64)
