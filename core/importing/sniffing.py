"""Looking at the start of a file: encoding, delimiter, header, columns and likely roles.

The import dialog shows this before anything is written, and the import itself starts
from it, so what the user confirmed is what gets imported.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from core.importing import roles as roles_
from core.importing.errors import BINARY_HINT, CsvImportError
from core.importing.packed import READ_ERRORS, open_table_bytes, table_size
from core.importing.scanning import Utf8Tally

SAMPLE_BYTES = 1 << 16
ENCODING_PROBE_BYTES = 1 << 22  # the preview decides UTF-8 or latin-1 on this much; the import on all
PREVIEW_ROWS = 20
DELIMITERS = (",", "\t", "|", ";")
_UNSUPPORTED_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32", codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16", codecs.BOM_UTF16_BE: "UTF-16",
}
# Control characters other than tab/newline/carriage return: text files have (almost) none.
_CONTROL = bytes(set(range(32)) - {9, 10, 13}) + b"\x7f"


@dataclass
class SniffResult:
    """What a file looks like.

    delimiter / encoding / has_header: as detected, or as the caller forced them.
    columns:       column names; ``col1, col2, ...`` when the file has no header.
    renamed:       name given -> name in the header, for a header that repeats a name.
    roles:         role -> column guessed from names (or values, without a header).
    preview:       the first data rows, as text, for display.
    data_offset:   byte offset of the first data row (after BOM and header).
    first_data_line: 1-based file line of the first data row.
    size_bytes:    file size, for progress ETA.
    bytes_per_row: average data row length in the sample, to turn a chunk size in rows into bytes.
    """

    path: Path
    delimiter: str
    encoding: str
    has_header: bool
    columns: list[str]
    roles: dict[str, str]
    renamed: dict[str, str] = field(default_factory=dict)
    preview: list[list[str]] = field(default_factory=list)
    data_offset: int = 0
    first_data_line: int = 1
    size_bytes: int = 0
    bytes_per_row: float = 64.0


def sniff(path: Path | str, encoding: Optional[str] = None, delimiter: Optional[str] = None,
          has_header: Optional[bool] = None) -> SniffResult:
    """Detect how ``path`` is written; raises CsvImportError for files that are not CSV text."""
    path = Path(path)
    raw = _read_sample(path)
    encoding, bom = _detect_encoding(path, raw, encoding)
    text = raw[bom:].decode(encoding, errors="replace")
    lines = _split_lines(text)
    if len(raw) >= SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the sample may end in the middle of a line
    delimiter = delimiter or _detect_delimiter(lines)
    records = _records(lines, delimiter)
    if not records:
        raise CsvImportError(path, None, None, "file is empty (no rows)")
    first_start, first_end, first = records[0]
    if has_header is None:
        has_header = _looks_like_header(first, [r for _, _, r in records[1:]])
    if has_header:
        columns, renamed = unique_names([c.strip() or f"col{i + 1}" for i, c in enumerate(first)])
        data = records[1:]
        offset_lines = first_end
    else:
        columns, renamed = [f"col{i + 1}" for i in range(len(first))], {}
        data = records
        offset_lines = first_start - 1
    preview = [row for _, _, row in data[:PREVIEW_ROWS]]
    preview_end = data[len(preview) - 1][1] if preview else offset_lines
    return SniffResult(
        path=path,
        delimiter=delimiter,
        encoding=encoding,
        has_header=has_header,
        columns=columns,
        roles=roles_.guess_roles(columns, preview, has_header),
        renamed=renamed,
        preview=preview,
        data_offset=bom + line_offset(raw[bom:], offset_lines),
        first_data_line=offset_lines + 1,
        size_bytes=table_size(path),
        bytes_per_row=max(1.0, (line_offset(raw[bom:], preview_end) - line_offset(raw[bom:], offset_lines)) / max(len(preview), 1)),
    )


def _split_lines(text: str) -> list[str]:
    """Lines ending in "\n" only: other characters str.splitlines breaks on (\x85, \x1c...)
    are data in a CSV file."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def line_offset(raw: bytes, lines: int) -> int:
    """Byte offset just after the first ``lines`` lines of ``raw``."""
    offset = 0
    for _ in range(lines):
        found = raw.find(b"\n", offset)
        if found < 0:
            return len(raw)
        offset = found + 1
    return offset


def _read_sample(path: Path) -> bytes:
    try:
        with open_table_bytes(path) as handle:
            raw = handle.read(SAMPLE_BYTES)
    except READ_ERRORS as exc:
        raise CsvImportError(path, None, None, f"cannot read the file: {getattr(exc, 'strerror', None) or exc}") from exc
    if not raw.strip():
        raise CsvImportError(path, None, None, "file is empty")
    return raw


def _detect_encoding(path: Path, raw: bytes, forced: Optional[str]) -> tuple[str, int]:
    """(encoding, BOM length). UTF-8 (BOM optional), else latin-1 (``Utf8Tally`` decides);
    binary data is refused."""
    for bom, name in _UNSUPPORTED_BOMS.items():
        if raw.startswith(bom):
            raise CsvImportError(path, None, None, f"{name} text is not supported (unknown encoding); save the file as UTF-8")
    if forced is not None:
        return _checked_encoding(path, forced), len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise CsvImportError(path, line, None, "binary data (NUL bytes): not a CSV text file", BINARY_HINT)
    controls = sum(raw.count(bytes([c])) for c in _CONTROL)
    if controls > max(4, len(raw) // 100):
        raise CsvImportError(path, None, None, "binary data (control characters): not a CSV text file", BINARY_HINT)
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8", len(codecs.BOM_UTF8)
    with open_table_bytes(path) as handle:
        probe = handle.read(ENCODING_PROBE_BYTES)
    tally = Utf8Tally()
    tally.add(probe)
    if len(probe) < ENCODING_PROBE_BYTES:
        tally.finish()
    return tally.encoding, 0


def _checked_encoding(path: Path, name: str) -> str:
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise CsvImportError(path, None, None, f"unknown encoding {name!r}") from None
    if "\n,;|\t\"".encode(info.name, errors="replace") != b"\n,;|\t\"":
        raise CsvImportError(path, None, None, f"encoding {name!r} is not supported; save the file as UTF-8")
    return "utf-8" if info.name in ("utf-8", "utf-8-sig") else info.name


def _detect_delimiter(lines: list[str]) -> str:
    """The candidate that splits the most lines into the same number (>1) of fields."""
    best, best_score = ",", (0.0, 0)
    sample = [line for line in lines[:200] if line.strip()]
    for candidate in DELIMITERS:
        widths = [len(row) for _, _, row in _records(sample, candidate)]
        if not widths:
            continue
        width, hits = Counter(widths).most_common(1)[0]
        score = (hits / len(widths), width)
        if width > 1 and score > best_score:
            best, best_score = candidate, score
    return best


def _records(lines: list[str], delimiter: str) -> list[tuple[int, int, list[str]]]:
    """(first line, last line, fields) of every non-empty record; lines are 1-based."""
    reader = csv.reader(io.StringIO("".join(lines)), delimiter=delimiter)
    records, previous = [], 0
    try:
        for row in reader:
            start, previous = previous + 1, reader.line_num
            if row:
                records.append((start, previous, row))
    except csv.Error:
        pass  # an unterminated quote near the end of the sample: the import reports it
    return records


def _looks_like_header(first: list[str], rest: list[list[str]]) -> bool:
    """A header names a known role or an "id", or is text above a column of numbers or of times (a header
    in another language, "kunde,artikel,zeitpunkt", above ISO dates: else it is read as an event), or
    a word above a column of ids that all carry digits ("kunden_nr" above K1, K2...: a profile file
    has no times, and its ids need not be numbers)."""
    if any(roles_.known_alias(cell) or roles_.normalise(cell) == "id" for cell in first):
        return True
    for i, cell in enumerate(first):
        below = [row[i] for row in rest if i < len(row) and row[i].strip()]
        if below and not roles_.is_number(cell) and all(roles_.is_number(v) for v in below):
            return True
        if below and cell.strip() and not roles_.looks_like_time([cell]) and roles_.looks_like_time(below):
            return True
        if len(below) >= 2 and _word(cell) and all(_has_digit(v) for v in below):
            return True
    return False


def _word(cell: str) -> bool:
    """Letters (and _ - . or spaces between them), no digit: how a column is named, not how an id is written."""
    return bool(re.fullmatch(r"[^\W\d_]+(?:[ _.\-][^\W\d_]+)*\.?", cell.strip()))


def _has_digit(cell: str) -> bool:
    return any(character.isdigit() for character in cell)


def unique_names(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """Names with every repeat given a distinct one (``name_2``, ``name_3``... never one the
    header already uses), and new name -> the name as written, so no column is lost."""
    taken = set(names)
    unique, renamed, seen = [], {}, set()
    for name in names:
        if name in seen:
            number = 2
            while f"{name}_{number}" in taken:
                number += 1
            renamed[f"{name}_{number}"] = name
            taken.add(f"{name}_{number}")
            name = f"{name}_{number}"
        seen.add(name)
        unique.append(name)
    return unique, renamed
