"""Generated shop logs with every kind of fault mixed in, checked against what they should give.

Each file is built row by row from a known plan: good events (in seconds, milliseconds,
microseconds, nanoseconds or ISO dates), exact repeats, times out of range or unreadable,
missing ids, rows of the wrong width, stray quotes, bytes that are not UTF-8, NUL bytes, empty
lines, CRLF endings, a header that repeats a name, blocks of a few rows. The import must never
crash; it either refuses the file naming the line (the workspace unchanged), or names every
rejected row at its line and column and adds exactly the accepted events.

``NEXTPICK_FUZZ_EXAMPLES`` sets how many files are tried (default 60, a few seconds); pytest's
``--hypothesis-show-statistics`` reports how many ran.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.importing import CsvImportError, ImportOptions, import_files
from core.importing import sources as import_sources
from core.store import Workspace

EXAMPLES = int(os.environ.get("NEXTPICK_FUZZ_EXAMPLES", "60"))
UNITS = {"seconds": 1, "milliseconds": 10**3, "microseconds": 10**6, "nanoseconds": 10**9, "ISO-8601": None}
USERS, ITEMS = ("u1", "u2", "zoë"), ("a", "b", "ë")
COLUMNS = ("user", "item", "timestamp", "event", "value")
SEED = [("u1", "a", 1_600_000_000, "view", None), ("zoë", "ë", 1_600_000_002, "buy", 2.5)]
WILD_TIMES = ("99999999999999999999", "1e300", "9999-12-31", "2262-04-12", "-5", "yesterday", "")
FAULTS = ("time", "no user", "no item", "width", "quote", "byte", "nul", "empty")

Event = tuple  # (user, item, seconds, event type, value or None)


@dataclass
class Plan:
    """A file and what importing it must give."""

    data: bytes
    events: list[Event] = field(default_factory=list)  # good rows, in file order (repeats included)
    rejected: dict[int, Optional[str]] = field(default_factory=dict)  # line -> blamed column
    rows: int = 0
    unit: str = "seconds"  # how the good rows write their times
    nul_line: Optional[int] = None
    renamed: dict[str, str] = field(default_factory=dict)


def _time_text(seconds: int, unit: str) -> str:
    if UNITS[unit] is None:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(seconds * UNITS[unit])


@st.composite
def shop_logs(draw) -> Plan:
    unit = draw(st.sampled_from(sorted(UNITS)))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    repeat_header = draw(st.booleans())
    header = list(COLUMNS) + (["event"] if repeat_header else [])
    plan = Plan(b"", unit=unit, renamed={"event_2": "event"} if repeat_header else {})
    lines = [",".join(header).encode()]
    kinds = ["good"] + draw(st.lists(st.sampled_from(("good",) * 4 + ("repeat",) * 2 + FAULTS), max_size=30))
    for kind in kinds:
        line = len(lines) + 1
        event = (draw(st.sampled_from(USERS)), draw(st.sampled_from(ITEMS)),
                 1_600_000_000 + draw(st.integers(0, 3)), draw(st.sampled_from(["view", "buy"])),
                 draw(st.sampled_from([None, 1.0, 2.5])))
        if kind == "repeat":
            event = draw(st.sampled_from(plan.events + SEED))
        cells = [event[0], event[1], _time_text(event[2], unit), event[3], "" if event[4] is None else f"{event[4]:g}"]
        cells += ["extra"] if repeat_header else []
        text = ",".join(cells).encode()
        if kind == "empty":
            lines.append(b"")
            continue
        plan.rows += 1
        if kind in ("good", "repeat"):
            plan.events.append(event)
        elif kind == "time":
            text = ",".join(cells[:2] + [draw(st.sampled_from(WILD_TIMES))] + cells[3:]).encode()
            plan.rejected[line] = "timestamp"
        elif kind in ("no user", "no item"):
            column = 0 if kind == "no user" else 1
            text = ",".join(cells[:column] + [""] + cells[column + 1:]).encode()
            plan.rejected[line] = COLUMNS[column]
        elif kind == "width":
            text = ",".join(cells[:-1] if draw(st.booleans()) else cells + ["more"]).encode()
            plan.rejected[line] = None
        elif kind == "quote":
            text = ",".join([cells[0], '"' + cells[1]] + cells[2:]).encode()
            plan.rejected[line] = "item"
        elif kind == "byte":
            text = ",".join(["zoë", "b\udcff"] + cells[2:]).encode("utf-8", "surrogateescape")  # one good, one bad
            plan.rejected[line] = None
        elif kind == "nul":
            text = ",".join([cells[0], "it\x00em"] + cells[2:]).encode()
            plan.nul_line = plan.nul_line or line
        lines.append(text)
    plan.data = newline.encode().join(lines) + newline.encode()
    return plan


def _added_events(path: Path, after: int) -> list[Event]:
    with sqlite3.connect(path) as raw:
        return [tuple(row) for row in raw.execute(
            "SELECT u.external_id, i.external_id, e.ts, e.event_type, e.value FROM events e "
            "JOIN users u ON u.id = e.user_id JOIN items i ON i.id = e.item_id WHERE e.id > ? ORDER BY e.id", (after,))]


def _snapshot(path: Path) -> dict:
    with sqlite3.connect(path) as raw:
        return {t: raw.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("users", "items", "events", "imports", "rejected_rows", "meta")}


def _expected_accepted(plan: Plan, keep_duplicates: bool) -> list[Event]:
    seen, accepted = set(SEED), []
    for event in plan.events:
        if keep_duplicates or event not in seen:
            accepted.append(event)
        seen.add(event)
    return accepted


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """A workspace holding the SEED events, copied for each generated file (opening a new one
    costs more than the import under test)."""
    folder = tmp_path_factory.mktemp("fuzz-seed")
    seed = folder / "seed.csv"
    seed.write_text(",".join(COLUMNS) + "\n" + "".join(
        f"{u},{i},{t},{e},{'' if v is None else v}\n" for u, i, t, e, v in SEED), encoding="utf-8")
    with Workspace.open(folder / "ws.sqlite") as workspace:
        import_files(workspace, events=seed)
    return folder / "ws.sqlite"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=shop_logs(), strict=st.booleans(), keep_duplicates=st.booleans(), rows_per_block=st.integers(1, 12))
def test_generated_logs_with_mixed_faults_import_exactly_what_they_should(seeded, plan, strict, keep_duplicates,
                                                                          rows_per_block):
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(import_sources, "_MIN_BLOCK_BYTES", 1):
        folder = Path(folder)
        shutil.copyfile(seeded, folder / "ws.sqlite")
        workspace = Workspace.open(folder / "ws.sqlite")
        before = _snapshot(workspace.path)
        path = folder / "log.csv"
        path.write_bytes(plan.data)
        options = ImportOptions(strict=strict, keep_duplicates=keep_duplicates, chunk_rows=rows_per_block)
        first_fault = min(plan.rejected, default=None)
        try:
            report = import_files(workspace, events=path, options=options).file("events")
        except CsvImportError as error:
            assert str(path) in str(error)
            expected_line = plan.nul_line if plan.nul_line else first_fault
            assert (plan.nul_line or strict) and error.line == expected_line, error
            if not plan.nul_line:
                assert error.column == plan.rejected[first_fault]
            assert _snapshot(workspace.path) == before
        else:
            assert plan.nul_line is None and not (strict and plan.rejected)
            assert {r.line: r.column for r in report.rejected} == plan.rejected
            assert all(r.reason and r.raw for r in report.rejected)
            accepted = _expected_accepted(plan, keep_duplicates)
            assert (report.rows_read, report.rows_rejected) == (plan.rows, len(plan.rejected))
            assert report.rows_accepted == len(accepted)
            assert report.rows_read == report.rows_accepted + report.rows_rejected + report.duplicates
            assert (report.renamed, report.time_unit) == (plan.renamed, plan.unit)
            assert _added_events(workspace.path, len(before["events"])) == [
                (u, i, float(t), e, v) for u, i, t, e, v in accepted]
        finally:
            workspace.close()
