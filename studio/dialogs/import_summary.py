"""What the import dialog says while an import runs and once it is done, in sentences a person reads
(the CLI says the same in its own terms: ``core.cli.data_commands``)."""

from __future__ import annotations

from core.importing import NO_TIME_NOTE, ImportReport, describe_time_unit, duplicates_text, repeated_rows
from core.progress import Progress
from studio.dialogs.import_reading import KEEP_DUPLICATES


def progress_text(report: Progress) -> str:
    """"120,000 rows · 85,000 rows/s · 4 s left"."""
    parts = [f"{report.done:,} rows"]
    if report.rate:
        parts.append(f"{report.rate:,.0f} rows/s")
    if report.eta_s is not None:
        parts.append(f"{report.eta_s:,.0f} s left")
    return " · ".join(parts)


LOW_VALUES_DONE = {"drop": "dropped", "negative": "marked as dislikes (not counted as interactions)"}


def summary_text(report: ImportReport, action: str = "keep") -> str:
    """What the import did, per file; ``action`` is what was done with low values (``LowValues.action``)."""
    lines = []
    for file in report.files:
        if file.duplicate:
            lines.append(f"{file.name}: already imported earlier, nothing added.")
            continue
        lines.append(f"{file.name}: {file.rows_accepted:,} rows imported, {file.rows_rejected:,} rejected "
                     f"(of {file.rows_read:,} read).")
        lines.extend(f"  The header repeats “{old}”: that column is read as “{new}”." for new, old in file.renamed.items())
        if file.time_unit:
            lines.append(f"  Times read as {describe_time_unit(file.time_unit, file.roles.get('time_of_day'))}.")
        elif file.in_file_order:
            lines.append(f"  {NO_TIME_NOTE[0].upper()}{NO_TIME_NOTE[1:]} (choose its Time column to read one).")
        if file.ids_repeated:
            lines.append(f"  {repeated_rows(file.ids_repeated)} an id an earlier row gave: the last row of each id "
                         "is what is kept.")
        if file.duplicates:
            keep = f"“{KEEP_DUPLICATES}” keeps them"
            lines.append(f"  {duplicates_text(file.duplicates, file.whole_days, keep)}.")
        if file.low_values:
            lines.append(f"  {file.low_values:,} events with a low value were {LOW_VALUES_DONE[action]}.")
    return "\n".join(lines)
