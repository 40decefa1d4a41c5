"""Import: sniff a behaviour log, map its columns to roles, and stream it into a workspace.

Sources are CSV files, Parquet files or folders, and database queries (``SqlQuery``).
``sniff`` shows what a CSV file looks like, ``preview_source`` what any source holds;
``import_files`` writes events, items and users in one transaction; ``read_rejected_rows`` and ``export_rejected``
show and write the rows an import skipped; ``import_history`` lists past imports.
"""

from core.importing.errors import CsvImportError, FileReport, ImportReport, RejectedRow, duplicates_text, repeated_rows
from core.importing.history import import_history
from core.importing.loaders import LOW_VALUE_ACTIONS, LowValues
from core.importing.rejected import export_rejected, read_rejected_rows
from core.importing.plan import ImportOptions
from core.importing.run import import_files
from core.importing.sniffing import SniffResult, sniff
from core.importing.sources import preview_source
from core.importing.sql import SqlQuery
from core.importing.times import NO_TIME_NOTE, describe_time_unit

__all__ = [
    "CsvImportError", "FileReport", "ImportOptions", "ImportReport", "LOW_VALUE_ACTIONS", "LowValues", "NO_TIME_NOTE",
    "RejectedRow", "SniffResult", "SqlQuery",
    "describe_time_unit", "duplicates_text", "export_rejected", "import_files", "import_history", "preview_source",
    "read_rejected_rows", "repeated_rows", "sniff",
]
