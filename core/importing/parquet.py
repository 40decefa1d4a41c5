"""Parquet files, or a folder of them, as an import source (pyarrow datasets).

A folder is read as one dataset: its Parquet files in path order, with the keys of a
hive-partitioned layout (``day=2026-03-01/part-0.parquet``) as columns, so a partition key can
play a role (an event type kept in the folder names). Files whose names start with ``.`` or
``_`` (``_SUCCESS``, ``.crc``) are not data. Rows are counted from 1 within each file, and a
rejected row names its file. Only the columns the roles need are read from an events source;
items and users keep every column as an attribute.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pyarrow as pa
import pyarrow.dataset as ds

from core.importing.errors import CsvImportError
from core.importing.tables import TableBlock, TypedSource, preview_rows, text_table

MAGIC = b"PAR1"
_PREVIEW_ROWS = 20
_READ_BYTES = 1 << 20


def is_parquet(path: Path) -> bool:
    """A folder (read as a dataset of Parquet files) or a file that starts as Parquet does."""
    if path.is_dir():
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except OSError:
        return False  # the CSV reader says what is wrong with it


class ParquetSource(TypedSource):
    """One Parquet file or a folder of them."""

    def __init__(self, path: Path) -> None:
        self.path = self.label = path
        self.name = path.name
        try:
            self.dataset = ds.dataset(path, format="parquet", partitioning="hive")
            self.fragments = sorted(self.dataset.get_fragments(), key=lambda f: f.path)
            self.columns = list(self.dataset.schema.names)
            self.preview = preview_rows(self.dataset.head(_PREVIEW_ROWS))
            self.rows_expected = self.dataset.count_rows()
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
            raise CsvImportError(path, None, None, f"cannot read it as Parquet: {exc}") from None
        if not self.fragments:
            raise CsvImportError(path, None, None, "no Parquet files in this folder")

    def settings(self) -> dict:
        return {"format": "parquet", "files": len(self.fragments), "columns": self.columns}

    def read(self, chunk_rows: int, columns: Optional[Sequence[str]] = None) -> Iterator[TableBlock]:
        """Blocks of about ``chunk_rows`` rows, file after file; only ``columns`` when given."""
        done = 0
        for fragment in self.fragments:
            file = self._file_name(fragment.path)
            row = 1
            try:
                for batch in fragment.to_batches(schema=self.dataset.schema, columns=columns, batch_size=chunk_rows):
                    if batch.num_rows:
                        yield TableBlock(text_table(pa.Table.from_batches([batch])), row, file, done)
                        row += batch.num_rows
                        done += batch.num_rows
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
                raise CsvImportError(fragment.path, row, None, f"cannot read this part of the file: {exc}",
                                     unit="row") from None

    def _file_name(self, path: str) -> Optional[str]:
        """A file's place inside the folder; None when the source is the file itself."""
        return Path(path).relative_to(self.path).as_posix() if self.path.is_dir() else None

    @cached_property
    def identity(self) -> str:
        """The file's sha256; for a folder, one over each file's place and sha256, so the same
        files again are recognised as imported and a folder that gained a file is not. Read
        when importing, not for a preview."""
        if not self.path.is_dir():
            return _file_sha256(Path(self.fragments[0].path))
        digest = hashlib.sha256()
        for fragment in self.fragments:
            digest.update(f"{self._file_name(fragment.path)}\0{_file_sha256(Path(fragment.path))}\n".encode())
        return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(_READ_BYTES), b""):
            digest.update(piece)
    return digest.hexdigest()
