"""Where an import reads from: a CSV file, a Parquet file or folder, or a database query.

Every source offers the same face to ``run.import_files``: its columns, a preview and guessed
roles (for the role mapping), an identity (a file's sha256, to recognise one imported before),
the rows it expects (for progress and the index rebuild), and its rows in blocks that the one
set of loaders checks and writes. ``open_source`` picks the kind from what it is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

from core.importing import roles as roles_
from core.importing.blocks import Block, read_blocks
from core.importing.errors import CsvImportError
from core.importing.parquet import ParquetSource, is_parquet
from core.importing.scanning import scan_file
from core.importing.sniffing import SniffResult, sniff
from core.importing.sql import SqlQuery, SqlSource

_MIN_BLOCK_BYTES = 1 << 16


def open_source(kind: str, spec: Path | str | SqlQuery, options) -> "Source":
    """The source for ``spec``: a query, a folder or Parquet file, else a CSV file."""
    if isinstance(spec, SqlQuery):
        return SqlSource(spec)
    path = Path(spec)
    if is_parquet(path):
        return ParquetSource(path)
    return CsvSource.open(kind, path, options)


def preview_source(spec: Path | str | SqlQuery, options) -> "Preview":
    """What the import dialog shows before importing: a CSV file sniffed (its first 64 KiB), a
    Parquet source's schema and first rows, or a query's first rows. Each has ``columns``,
    ``preview`` and guessed ``roles``."""
    if isinstance(spec, SqlQuery):
        return SqlSource(spec)
    path = Path(spec)
    if is_parquet(path):
        return ParquetSource(path)
    return sniff(path, options.encoding, options.delimiter, options.has_header)


class CsvSource:
    """A CSV file, sniffed and scanned (checksum, encoding) before anything is written."""

    unit = "line"

    def __init__(self, sniffed: SniffResult, sha256: str, named_columns: bool) -> None:
        self.sniffed = sniffed
        self.identity = sha256
        self.named_columns = named_columns  # a header, or names the user gave: roles follow names
        self.path = self.label = sniffed.path
        self.name = sniffed.path.name

    @classmethod
    def open(cls, kind: str, path: Path, options) -> "CsvSource":
        sniffed = sniff(path, options.encoding, options.delimiter, options.has_header)
        scan = scan_file(path)
        if options.encoding is None and sniffed.encoding != scan.encoding:
            sniffed = sniff(path, scan.encoding, options.delimiter, options.has_header)  # the preview saw too little
        if _names_mapped_columns(sniffed, options):
            sniffed = sniff(path, sniffed.encoding, sniffed.delimiter, True)
        names = options.column_names.get(kind)
        if names is not None and not sniffed.has_header:
            if len(names) != len(sniffed.columns):
                raise CsvImportError(path, None, None, f"{len(names)} column names given for {len(sniffed.columns)} columns")
            sniffed.columns = list(names)
            sniffed.roles = roles_.guess_roles(names, sniffed.preview, True)
        return cls(sniffed, scan.sha256, sniffed.has_header or names is not None)

    columns = property(lambda self: self.sniffed.columns)
    preview = property(lambda self: self.sniffed.preview)
    roles = property(lambda self: self.sniffed.roles)
    renamed = property(lambda self: self.sniffed.renamed)

    @property
    def rows_expected(self) -> int:
        return round(self.sniffed.size_bytes / self.sniffed.bytes_per_row)

    def settings(self) -> dict:
        sniffed = self.sniffed
        return {"delimiter": sniffed.delimiter, "encoding": sniffed.encoding, "has_header": sniffed.has_header,
                "columns": sniffed.columns}

    def blocks(self, chunk_rows: int, roles: dict[str, str], every_column: bool) -> Iterator[Block]:
        """Parsed blocks of about ``chunk_rows`` rows (every column is parsed anyway). Only a
        title may hold a line break: in any other role's column one is a stray quote."""
        block_bytes = max(_MIN_BLOCK_BYTES, int(chunk_rows * self.sniffed.bytes_per_row))
        return read_blocks(self.sniffed, block_bytes, [column for role, column in roles.items() if role != "title"])

    def fraction(self, block: Block) -> Optional[float]:
        return block.end_offset / max(self.sniffed.size_bytes, 1)

    def no_rows_error(self) -> CsvImportError:
        return CsvImportError(self.path, self.sniffed.first_data_line, None, "no data rows")


def _names_mapped_columns(sniffed: SniffResult, options) -> bool:
    """A first line holding a column the user mapped a role to is a header, whatever it looks like."""
    if sniffed.has_header or options.has_header is not None or not sniffed.preview:
        return False
    return bool(set(options.roles.values()) & {cell.strip() for cell in sniffed.preview[0]})


Source = CsvSource | ParquetSource | SqlSource
Preview = SniffResult | ParquetSource | SqlSource  # what preview_source gives: columns, preview, roles
