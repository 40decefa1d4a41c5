"""The import history, read for display. The studio's Data page lists it; the query lives here so
no page builds queries on the workspace's tables."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from core.importing.errors import query_name
from core.store import schema
from core.store.workspace import Workspace


def import_history(workspace: Workspace) -> list[dict]:
    """Rows of the ``imports`` table, newest first, as plain dicts, each with ``source_name``: the
    file's or folder's name, or "shop query" for a query on a database."""
    with workspace.engine.connect() as conn:
        rows = conn.execute(select(schema.imports).order_by(schema.imports.c.id.desc())).mappings().all()
    return [{**row, "source_name": _source_name(row["source_path"])} for row in rows]


def _source_name(source_path: str) -> str:
    return query_name(source_path) if "://" in source_path else Path(source_path).name

