"""CSV files as shops and data portals hand them out packed: gzip (``events.csv.gz``) or a zip archive
holding one table (``export.zip``), read as the text they hold without unpacking them to disk.

Every reader of a CSV file's bytes (sniffing, the checksum scan, the block reader) opens it
through ``open_table_bytes``, so a packed file is sniffed, checked and imported exactly like
the text it holds; its identity is that text's checksum, so the same log imported packed and
unpacked is one import. Which packing is told by the file's first bytes, not its name.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Optional

from core.importing.errors import CsvImportError

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
# What reading a damaged file raises: a truncated or corrupt gzip stream, an archive that is none.
READ_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile)
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".data")  # a zip member read as the table


def packing(path: Path) -> Optional[str]:
    """"gzip", "zip" or None (a plain file, or one that cannot be read: its reader says why)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return None
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return "zip" if head == ZIP_MAGIC else None


def open_table_bytes(path: Path) -> BinaryIO:
    """The file's bytes, unpacked when it is packed; a seek forward reads up to the place."""
    kind = packing(path)
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "zip":
        with zipfile.ZipFile(path) as archive:  # the member keeps the file open until it is closed itself
            return archive.open(_table_member(path, archive))
    return open(path, "rb")


def table_size(path: Path) -> int:
    """Bytes of text the file holds, for progress and the expected row count: a gzip file's own
    record of it (modulo 4 GiB: raised until it is at least what the packed size implies), a zip
    member's size, a plain file's size."""
    packed = path.stat().st_size
    kind = packing(path)
    if kind == "gzip":
        with open(path, "rb") as handle:
            handle.seek(-4, 2)
            recorded = struct.unpack("<I", handle.read(4))[0]
        while recorded < _least_text(packed):
            recorded += 1 << 32
        return recorded
    if kind == "zip":
        with zipfile.ZipFile(path) as archive:
            return archive.getinfo(_table_member(path, archive)).file_size
    return packed


def _least_text(packed: int) -> int:
    """The fewest bytes of text a gzip file of ``packed`` bytes can hold: deflate stores text it cannot
    shrink with 5 bytes more per 64 KiB block, and the header and trailer take a few dozen (a name
    at most a few hundred). A small file's text may be shorter than the file itself."""
    return packed - packed // 10_000 - 1024


def _table_member(path: Path, archive: zipfile.ZipFile) -> str:
    """The one table an archive holds (folders and macOS's resource forks aside); several are refused,
    naming them: which of them is the events is the user's to say."""
    members = [info.filename for info in archive.infolist()
               if not info.is_dir() and not info.filename.startswith("__MACOSX/")]
    if "[Content_Types].xml" in members and any(name.startswith("xl/") for name in members):
        raise CsvImportError(path, None, None, "an Excel workbook, not a table of text: save the sheet as CSV "
                             "(File > Save As > CSV) and import that file")
    tables = [name for name in members if name.lower().endswith(TABLE_SUFFIXES)] or members
    if len(tables) != 1:
        raise CsvImportError(path, None, None,
                             f"the archive holds {len(tables)} files ({', '.join(tables[:5]) or 'none'}): "
                             "unpack it and choose the table to import")
    return tables[0]

