"""The import history, read for display. The studio's Data page lists it; the query lives here so
no page builds queries on the workspace's tables."""

from __future__ import annotations

from sqlalchemy import select

from core.store import schema
from core.store.workspace import Workspace


def import_history(workspace: Workspace) -> list[dict]:
    """Rows of the ``imports`` table, newest first, as plain dicts."""
    with workspace.engine.connect() as conn:
        rows = conn.execute(select(schema.imports).order_by(schema.imports.c.id.desc())).mappings().all()
    return [dict(row) for row in rows]

