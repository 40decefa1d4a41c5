"""One streaming pass over a whole file before anything is written: its sha256 (to spot a
file imported before), NUL bytes (refused wherever they are) and whether it is UTF-8.

The pass reads the file a megabyte at a time, so memory does not grow with the file; the
checks ride on the read the checksum needs anyway (an ASCII megabyte costs one ``isascii``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.importing.errors import BINARY_HINT, CsvImportError
from core.importing.packed import READ_ERRORS, open_table_bytes

_READ_BYTES = 1 << 20
ESCAPED = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of bytes that are not UTF-8


class Utf8Tally:
    """Counts, over text fed in pieces, the characters that are valid UTF-8 beyond ASCII and
    the bytes that are not UTF-8 at all.

    The verdict: a file is UTF-8 unless its invalid bytes outnumber its valid multi-byte
    characters. A UTF-8 file with a stray byte stays UTF-8 (the line holding it is rejected);
    a latin-1 file, whose accented letters are almost never valid UTF-8, is read as latin-1.
    """

    def __init__(self) -> None:
        self.multibyte = 0
        self.invalid = 0
        self._carry = b""

    def add(self, piece: bytes) -> None:
        data = self._carry + piece
        if data.isascii():
            self._carry = b""
            return
        whole = _complete_length(data)
        data, self._carry = data[:whole], data[whole:]
        try:
            text = data.decode("utf-8")
            invalid = 0
        except UnicodeDecodeError:
            text = data.decode("utf-8", "surrogateescape")
            invalid = sum(1 for _ in ESCAPED.finditer(text))
        ascii_bytes = int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) < 0x80))
        self.multibyte += len(text) - ascii_bytes - invalid
        self.invalid += invalid

    def finish(self) -> None:
        """The end of the text: a character cut short there is invalid."""
        self.invalid += len(self._carry)
        self._carry = b""

    @property
    def encoding(self) -> str:
        return "latin-1" if self.invalid > self.multibyte else "utf-8"


def _complete_length(data: bytes) -> int:
    """Length of ``data`` without a multi-byte character cut off at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for its lead byte
        needs = 2 if 0xC0 <= byte < 0xE0 else 3 if 0xE0 <= byte < 0xF0 else 4 if byte >= 0xF0 else 1
        return len(data) - back if needs > back else len(data)
    return len(data)


@dataclass(frozen=True)
class FileScan:
    """sha256: hex digest of the file. encoding: "utf-8" or "latin-1" by ``Utf8Tally``."""

    sha256: str
    encoding: str


def scan_file(path: Path) -> FileScan:
    """Checksum and encoding of ``path``; a NUL byte anywhere refuses the file, naming its line."""
    digest, tally, offset = hashlib.sha256(), Utf8Tally(), 0
    try:
        with open_table_bytes(path) as handle:
            for piece in iter(lambda: handle.read(_READ_BYTES), b""):
                nul = piece.find(b"\x00")
                if nul >= 0:
                    raise CsvImportError(path, _line_at(path, offset + nul), None,
                                         "binary data (a NUL byte): not a CSV text file", BINARY_HINT)
                digest.update(piece)
                tally.add(piece)
                offset += len(piece)
    except READ_ERRORS as exc:
        raise CsvImportError(path, None, None, f"cannot read the file: {exc}") from exc
    tally.finish()
    return FileScan(digest.hexdigest(), tally.encoding)


def _line_at(path: Path, offset: int) -> int:
    """1-based line holding byte ``offset``."""
    newlines = 0
    with open_table_bytes(path) as handle:
        while offset > 0:
            piece = handle.read(min(_READ_BYTES, offset))
            newlines += piece.count(b"\n")
            offset -= len(piece)
    return newlines + 1
