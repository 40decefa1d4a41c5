"""How far a run is behind the behaviour log: where the log ended when the run was trained
(``LogPosition``, recorded with the run) and what the log gained since (``RunLag``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from core.runs import RunSummary


@dataclass(frozen=True)
class LogPosition:
    """Where the behaviour log ended: its newest event and item ids (both only ever grow)."""

    last_event_id: int
    last_item_id: int

    @classmethod
    def of(cls, workspace) -> "LogPosition":
        with workspace.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            return cls(*(raw.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
                         for table in ("events", "items")))


@dataclass(frozen=True)
class RunLag:
    """How far a run is behind the log: when it was trained, and what the log gained since
    (None for a run recorded before runs noted their log position)."""

    trained_at: float
    newer_events: Optional[int]
    new_items: Optional[int]

    def describe(self, now: Optional[float] = None) -> str:
        """"trained 2 days ago · 12,480 newer events · 37 new items"."""
        parts = [f"trained {_ago((now if now is not None else time.time()) - self.trained_at)}"]
        if self.newer_events is not None:
            parts.append(f"{self.newer_events:,} newer event{'' if self.newer_events == 1 else 's'}"
                         if self.newer_events else "no newer events")
        if self.new_items:
            parts.append(f"{self.new_items:,} new item{'' if self.new_items == 1 else 's'}")
        return " · ".join(parts)


def run_lag(workspace, run: RunSummary) -> RunLag:
    """What the log gained after ``run`` was trained: two counts over id ranges of the primary keys."""
    trained_at = run.created_at + (run.duration_s or 0.0)
    recorded = run.config.get("log")
    if not recorded:
        return RunLag(trained_at, None, None)
    since = LogPosition(**recorded)
    with workspace.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        events = raw.execute("SELECT count(*) FROM events WHERE id > ? AND negative = 0", (since.last_event_id,)).fetchone()[0]
        items = raw.execute("SELECT count(*) FROM items WHERE id > ?", (since.last_item_id,)).fetchone()[0]
    return RunLag(trained_at, int(events), int(items))


def _ago(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"
