"""The rows an import skipped, as the workspace keeps them: read a page to show, or write them all.

Both the studio (its rejected-rows table and "Export rejected…") and the CLI
(``--rejected-out``) come here, so the query and the CSV rules live in one place.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from core.errors import UsageError
from core.safe_csv import write_csv
from core.store import Workspace, schema

REJECTED_HEADER = ("line", "column", "reason", "raw")


def read_rejected_rows(workspace: Workspace, import_id: int, limit: int) -> tuple[list[tuple], int]:
    """The first ``limit`` rejected rows of one import (line order) and how many there are."""
    table = schema.rejected_rows
    with workspace.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(table).where(table.c.import_id == import_id)).scalar_one()
        rows = conn.execute(_rejected_query(import_id).limit(limit)).all()
    return [tuple(row) for row in rows], total


def export_rejected(workspace: Workspace, import_id: int, path: Path | str) -> int:
    """Write every rejected row of one import to a CSV file (line, column, reason, raw); returns the count.

    The raw rows are the shop's own text, so cells a spreadsheet would run are neutralised.
    """
    with workspace.engine.connect() as conn:
        if conn.execute(select(schema.imports.c.id).where(schema.imports.c.id == import_id)).first() is None:
            raise UsageError(f"no import with id {import_id} in {workspace.path}")
        rows = conn.execute(_rejected_query(import_id)).all()
    return write_csv(path, REJECTED_HEADER, rows)


def _rejected_query(import_id: int):
    table = schema.rejected_rows
    return (select(table.c.line, table.c.column, table.c.reason, table.c.raw)
            .where(table.c.import_id == import_id).order_by(table.c.line, table.c.id))
