"""What an import tells its caller: the error for whole-file problems and the per-file report.

Every problem names the file, the 1-based line (header = line 1) and the column, so a user
can open the file in an editor and go straight to the cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.errors import NextPickError

# A report keeps at most this many rejected rows in memory; the workspace keeps them all.
REPORT_REJECTED_LIMIT = 1000
# Only for a bad row that stopped a strict import: skipping helps there. {place}: "line in the file" or "row".
BAD_ROW_HINT = ("Fix that {place}, or import again letting bad rows be skipped (they are kept for "
                "review). Nothing was imported.")
BINARY_HINT = ("Choose the CSV file itself: this one holds binary data (a spreadsheet, image or archive?). "
               "Save or export it as CSV first. Nothing was imported.")


class CsvImportError(NextPickError):
    """A source that cannot be imported (or, in strict mode, its first bad row): a CSV or Parquet
    file, a folder of Parquet files, or a database query.

    path: the file, or (a str) the database URL without its password. unit: what ``line``
    counts: lines of a text file, or rows of a Parquet file or a query's result.
    """

    def __init__(self, path: Path | str, line: Optional[int], column: Optional[str], reason: str,
                 hint: Optional[str] = None, unit: str = "line") -> None:
        self.path = path if isinstance(path, str) and "://" in path else Path(path)
        self.line = line
        self.column = column
        self.reason = reason
        self.unit = unit
        super().__init__(self._message(), hint)

    def _message(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f", {self.unit} {self.line}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class RejectedRow:
    """One skipped row: where it is, which column is to blame (if one is) and why.

    line: the 1-based line of a text file, or (unit "row") the row of a Parquet file or a query.
    file: the file inside an imported folder that holds the row; None for the import's own file.
    """

    line: int
    column: Optional[str]
    reason: str
    raw: str
    unit: str = "line"
    file: Optional[str] = None

    def as_error(self, path: Path | str) -> CsvImportError:
        where = Path(path) / self.file if self.file else path
        place = "line in the file" if self.unit == "line" else "row at its source"
        return CsvImportError(where, self.line, self.column, self.reason, BAD_ROW_HINT.format(place=place), self.unit)


def repeated_rows(count: int) -> str:
    """"1 row repeats", "3 rows repeat": the start of the report's line on ``FileReport.ids_repeated``."""
    return f"{count:,} row repeats" if count == 1 else f"{count:,} rows repeat"


def duplicates_text(count: int, whole_days: bool, keep: str) -> str:
    """The report's sentence on ``FileReport.duplicates``; ``keep`` names the way to keep them (the CLI's
    flag, the import dialog's checkbox). Where the file's times are whole days, two real events of
    one day read the same, so the sentence says so: a shop's date-only export bought twice a day."""
    days = "; times are whole days, so two real events on one day read the same" if whole_days else ""
    events = "duplicate event" if count == 1 else "duplicate events"
    return f"{count:,} {events} already in the workspace or the file skipped ({keep}{days})"


@dataclass
class FileReport:
    """The outcome of one file.

    kind:          "events" | "items" | "users".
    path:          the file or folder; for a query, the database's URL without its password (a str).
    import_id:     the row in ``imports`` (for a duplicate: the earlier import of the same file).
    duplicate:     True when this exact file (same sha256, same kind, read the same way) was imported before;
                   nothing was added.
    rows_read:     data rows seen (header excluded, empty lines ignored).
    rejected:      the first ``REPORT_REJECTED_LIMIT`` rejected rows; ``export_rejected``
                   writes all of them.
    roles:         role -> column actually used.
    columns:       every column of the source, in its order (those without a role: an events file's
                   are not read, a profile file's are kept as attributes, but for its category flags).
    category_flags: an items file's one-hot (0/1) columns read as its categories.
    renamed:       name given -> name in the header, for each repeat of a header name.
    time_kind:     "unix" | "order" for an events file, else None.
    time_unit:     how an events file's clock times were read: "seconds", "milliseconds",
                   "microseconds" or "nanoseconds" (since 1970) for numbers, "ISO-8601" for
                   dates written out, "YYYYMMDD" for dates written as digits; None for an order
                   or without a time column.
    duplicates:    events skipped because they repeat one already in the workspace or
                   earlier in the file exactly (not counted in rows_accepted).
    whole_days:    an events file's clock times are all midnights (dates without a time of day).
    low_values:    events whose value was at or below ``ImportOptions.low_values``' threshold:
                   dropped (not counted in rows_accepted) or stored marked negative.
    ids_repeated:  rows of an items or users file whose id an earlier row of the same file gave: each
                   replaced what that row stored (the last row of an id is what the workspace keeps).
    """

    kind: str
    path: Path | str
    sha256: str
    import_id: Optional[int] = None
    duplicate: bool = False
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    category_flags: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    time_kind: Optional[str] = None
    time_unit: Optional[str] = None
    duplicates: int = 0
    whole_days: bool = False
    low_values: int = 0
    ids_repeated: int = 0
    duration_s: float = 0.0

    @property
    def name(self) -> str:
        """What to call the source in a sentence: the file's or folder's name, or "shop query"."""
        return self.path.name if isinstance(self.path, Path) else query_name(self.path)

    @property
    def in_file_order(self) -> bool:
        """Events stored without a time column, in the file's order (``NO_TIME_NOTE``): said after the
        import, since an unread time column otherwise goes unnoticed until a time split is refused."""
        return self.kind == "events" and "time" not in self.roles and self.rows_accepted > 0


@dataclass
class ImportReport:
    """Everything one ``import_files`` call did, in the order the files were imported."""

    files: list[FileReport] = field(default_factory=list)
    duration_s: float = 0.0

    def file(self, kind: str) -> FileReport:
        """The report of the (first) file of this kind."""
        for report in self.files:
            if report.kind == kind:
                return report
        raise KeyError(f"no {kind} file in this import")

    @property
    def rows_accepted(self) -> int:
        return sum(f.rows_accepted for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)


def query_name(url: str) -> str:
    """A query's source in a few words, where a file's name would stand: "shop query"."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "query"
    return f"{Path(parsed.database).name if parsed.database else parsed.host or parsed.drivername} query"
