"""Reading a CSV file as a stream of parsed blocks that know their own line numbers.

The file is cut into byte blocks at record boundaries (a newline outside quotes), each
block is transcoded to UTF-8 if needed and parsed by pyarrow. We cut the blocks ourselves,
rather than using pyarrow's streaming reader, because a rejected row must be reported at
its real file line, and only the block's bytes can tell which line a record started on.
Memory is bounded by the block size, not the file size.

Two faults are caught here, at their line, so the rest of the file still reads: a line
holding bytes that are not text in the file's encoding, and a quote that opens a field and
is never closed where it should be, which would otherwise swallow the lines after it into
one record. The line after the stray quote is read afresh, as if the quote were not there.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from core.importing.errors import CsvImportError, RejectedRow
from core.importing.packed import open_table_bytes
from core.importing.scanning import ESCAPED
from core.importing.sniffing import SniffResult, line_offset

_QUOTE, _NEWLINE = 34, 10
_RETRY_BYTES = 1 << 16  # the first block read again after a stray quote: small, then doubling


@dataclass
class InvalidRecord:
    """A record pyarrow could not fit to the columns (wrong number of fields)."""

    number: int  # 1-based record number within the block
    text: str
    reason: str
    column: Optional[str] = None


@dataclass
class Block:
    """One parsed block: its valid rows as a table, its invalid records, and where it sits.

    undecodable: 0-based line within the block -> the first byte on it that is not text in
    the file's encoding (the block's UTF-8 holds U+FFFD there).
    """

    table: pa.Table
    data: bytes  # the block as UTF-8
    delimiter: str
    first_line: int  # file line of the block's first byte
    end_offset: int  # file byte offset just after the block
    invalid: list[InvalidRecord] = field(default_factory=list)
    undecodable: dict[int, int] = field(default_factory=dict)
    encoding: str = "utf-8"
    starts: Optional[np.ndarray] = None  # 0-based line where each record starts, once known

    @property
    def records(self) -> int:
        return self.table.num_rows + len(self.invalid)

    def record_starts(self) -> np.ndarray:
        if self.starts is None:
            self.starts = _record_lines(self.data, self.delimiter, self.records)
        return self.starts

    def undecodable_rows(self) -> dict[int, str]:
        """Table row -> reason, for the rows on a line with bytes that are not text."""
        if not self.undecodable:
            return {}
        starts, row_of = self.record_starts(), self.row_of_record()
        rows: dict[int, str] = {}
        for line, byte in sorted(self.undecodable.items()):
            record = int(np.searchsorted(starts, line, side="right")) - 1
            if record >= 0 and row_of[record] >= 0:
                rows.setdefault(int(row_of[record]), f"not valid {_display(self.encoding)} text (byte 0x{byte:02x}); "
                                                     "if the file is in another encoding, choose it (--encoding)")
        return rows

    def rejected(self, rows: np.ndarray, columns: list[Optional[str]], reasons: list[str]) -> list[RejectedRow]:
        """RejectedRows, sorted by line, for table ``rows`` (with blame) plus every invalid record."""
        if not len(rows) and not self.invalid:
            return []
        starts = self.record_starts()
        line_starts = np.concatenate(([0], np.flatnonzero(np.frombuffer(self.data, dtype=np.uint8) == _NEWLINE) + 1))
        row_records = np.flatnonzero(self.row_of_record() >= 0)[rows]
        found = [
            RejectedRow(self.first_line + int(starts[rec]), col, why, self._line_text(line_starts, int(starts[rec])))
            for rec, col, why in zip(row_records, columns, reasons)
        ]
        found += [
            RejectedRow(self.first_line + int(starts[r.number - 1]), r.column, r.reason, r.text) for r in self.invalid
        ]
        return sorted(found, key=lambda r: r.line)

    def row_of_record(self) -> np.ndarray:
        """Table row of each record, -1 for the invalid ones."""
        valid = np.ones(self.records, dtype=bool)
        valid[[r.number - 1 for r in self.invalid]] = False
        return np.where(valid, np.cumsum(valid) - 1, -1)

    def _line_text(self, line_starts: np.ndarray, line: int) -> str:
        start = int(line_starts[line])
        end = int(line_starts[line + 1]) if line + 1 < len(line_starts) else len(self.data)
        return self.data[start:end].decode("utf-8", "replace").rstrip("\r\n")


def read_blocks(sniffed: SniffResult, block_bytes: int, single_line: Sequence[str] = ()) -> Iterator[Block]:
    """Parse the data rows of a sniffed file, about ``block_bytes`` at a time.

    single_line: columns whose values cannot hold a line break (ids, times): a record with
    one there, or with the wrong number of columns, that spans lines is a stray quote.
    """
    transcoder = _Transcoder(sniffed)
    line, offset, size = sniffed.first_data_line, sniffed.data_offset, block_bytes
    with open_table_bytes(sniffed.path) as handle:
        handle.seek(offset)
        feed = _RecordFeed(handle)
        while True:
            raw = feed.take(size)
            if not raw:
                return
            block = None
            if raw.strip():
                utf8, undecodable = transcoder.to_utf8(raw)
                table, invalid = _parse(sniffed, utf8, line)
                block = Block(table, utf8, sniffed.delimiter, line, 0, invalid, undecodable, transcoder.encoding)
                stray = _stray_quote(block, single_line)
                if stray is not None:
                    block = _cut_at_stray_quote(block, stray, sniffed.columns, at_end=feed.done)
                    raw = raw[: line_offset(raw, int(block.record_starts()[-1]) + 1)]
                    feed.push_back_after(len(raw))
                    size = _RETRY_BYTES  # stray quotes come in clusters: read the next lines in small blocks
                else:
                    size = min(2 * size, block_bytes)
            offset += len(raw)
            line += raw.count(b"\n")
            if block is not None:
                block.end_offset = offset
                yield block


class _RecordFeed:
    """The file's bytes in pieces that end at a record boundary; the tail of a piece that was
    not used can be handed back to start the next one."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.pending = b""
        self.eof = False
        self._taken = b""

    @property
    def done(self) -> bool:
        return self.eof and not self.pending

    def take(self, size: int) -> bytes:
        """About ``size`` bytes (more when no record ends sooner), ending at a record boundary."""
        self._read(size - len(self.pending))
        while True:
            head = self.pending[:size]
            last = self.eof and size >= len(self.pending)
            cut = len(head) if last else _record_boundary(head)
            if cut > 0 or last:
                break
            size *= 2
            self._read(size - len(self.pending))
        self._taken, self.pending = self.pending[:cut], self.pending[cut:]
        return self._taken

    def push_back_after(self, used: int) -> None:
        """Only the first ``used`` bytes of the last piece were used."""
        self.pending = self._taken[used:] + self.pending

    def _read(self, size: int) -> None:
        if self.eof or size <= 0:
            return
        chunk = self.handle.read(size)
        self.eof = not chunk
        self.pending += chunk


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
    """Turns raw blocks into UTF-8, noting the lines that hold bytes that are not text in the
    file's encoding (decided on the whole file before the import, see ``scanning``)."""

    def __init__(self, sniffed: SniffResult) -> None:
        self.encoding = sniffed.encoding

    def to_utf8(self, raw: bytes) -> tuple[bytes, dict[int, int]]:
        """(the block as UTF-8, 0-based line -> first undecodable byte on it)."""
        if self.encoding == "utf-8":
            if raw.isascii():
                return raw, {}
            try:
                raw.decode("utf-8")
                return raw, {}
            except UnicodeDecodeError:
                pass
        text = raw.decode(self.encoding, "surrogateescape")
        undecodable: dict[int, int] = {}
        line, position = 0, 0
        for match in ESCAPED.finditer(text):
            line += text.count("\n", position, match.start())
            position = match.start()
            undecodable.setdefault(line, ord(match.group()) - 0xDC00)
        return (ESCAPED.sub("\ufffd", text) if undecodable else text).encode("utf-8"), undecodable


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
    if len(lines) < records:
        lines = np.concatenate((lines, np.full(records - len(lines), lines[-1] if len(lines) else 0)))
    return lines[:records]


def _record_lines_by_csv(data: bytes, delimiter: str) -> np.ndarray:
    """Slow path for blocks with quotes (a record may span lines) or bare carriage returns.
    pyarrow ends a record at a bare carriage return, the csv module skips such a line: a
    record after one may be reported a line off, but every record gets a line."""
    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace")), delimiter=delimiter, strict=False)
    lines, previous = [], 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            previous = reader.line_num
            continue
        start, previous = previous, reader.line_num
        if row:
            lines.append(start)
    return np.asarray(lines, dtype=np.int64)


def _stray_quote(block: Block, single_line: Sequence[str]) -> Optional[int]:
    """0-based number of the block's first record that a stray quote ran over several lines
    or to the end: one with the wrong number of columns that spans lines or holds an odd
    number of quotes, or a line break in a single-line column."""
    if b'"' not in block.data:
        return None
    spans = [r.number - 1 for r in block.invalid if "\n" in r.text or r.text.count('"') % 2]
    broken = np.zeros(block.table.num_rows, dtype=bool)
    for column in single_line:
        cells = pc.match_substring(block.table.column(column), "\n")
        broken |= pc.fill_null(cells, False).to_numpy(zero_copy_only=False)
    if broken.any():
        spans.append(int(np.flatnonzero(block.row_of_record() >= 0)[np.flatnonzero(broken)[0]]))
    return min(spans) if spans else None


def _cut_at_stray_quote(block: Block, record: int, columns: list[str], at_end: bool) -> Block:
    """The block up to the line where ``record`` starts, that line rejected as a stray quote."""
    starts = block.record_starts()
    first = int(starts[record])
    line_start = line_offset(block.data, first)
    data = block.data[: line_offset(block.data, first + 1)]
    text = data[line_start:].decode("utf-8").rstrip("\r\n")
    if block.data[line_start:].count(b'"') % 2 and at_end:
        where = "the end of the file"
    else:
        where = f"line {block.first_line + first + _line_breaks(block, record)}"
    reason = f'a quoted field opened here is not closed before {where} (a quote inside a value is written "")'
    rows_before = int(np.count_nonzero(block.row_of_record()[:record] >= 0))
    invalid = [r for r in block.invalid if r.number - 1 < record]
    invalid.append(InvalidRecord(record + 1, text, reason, _quoted_column(text, block.delimiter, columns)))
    undecodable = {line: byte for line, byte in block.undecodable.items() if line <= first}
    return Block(block.table.slice(0, rows_before), data, block.delimiter, block.first_line, 0, invalid,
                 undecodable, block.encoding, starts[: record + 1])


def _line_breaks(block: Block, record: int) -> int:
    """Line breaks inside a record, as parsed: the lines it spans, less one."""
    row = int(block.row_of_record()[record])
    if row < 0:
        return next(r.text.count("\n") for r in block.invalid if r.number - 1 == record)
    cells = (block.table.column(c)[row].as_py() for c in block.table.column_names)
    return sum(cell.count("\n") for cell in cells if cell)


def _quoted_column(text: str, delimiter: str, columns: list[str]) -> Optional[str]:
    """The column whose value the stray quote opens."""
    opening = re.search(f'(?:^|{re.escape(delimiter)})[ \t]*"', text)
    if opening is None:
        return None
    index = text[: opening.start()].count(delimiter) + (1 if opening.start() else 0)
    return columns[index] if index < len(columns) else None


def _display(encoding: str) -> str:
    return "UTF-8" if encoding == "utf-8" else encoding
