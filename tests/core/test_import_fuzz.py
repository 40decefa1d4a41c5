"""Fuzzed CSV content: an import either succeeds with a consistent report or raises
CsvImportError and leaves the workspace exactly as it was; it never half-writes."""

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.importing import CsvImportError, ImportOptions, import_files
from core.store import Workspace

SEED = "user_id,item_id,timestamp\nu1,a,1600000000\nu2,b,1600000100\n"
CELL = st.text(alphabet=st.sampled_from(list('ab1,;|\t"\r\n é-:T.0\x85')), max_size=12)
CSV_TEXT = st.lists(st.lists(CELL, min_size=1, max_size=5), max_size=12).map(
    lambda rows: "\n".join(",".join(r) for r in rows)
)
HEADER = st.sampled_from(["", "user_id,item_id,timestamp\n", "user,item\n", "user,item,ts,event,rating\n"])


def _tables(path: Path):
    with sqlite3.connect(path) as raw:
        return {t: raw.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("users", "items", "events", "imports", "rejected_rows", "meta")}


def _check_import(data: bytes, strict: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        workspace = Workspace.open(folder / "ws.sqlite")
        (folder / "seed.csv").write_text(SEED)
        import_files(workspace, events=folder / "seed.csv")
        before = _tables(workspace.path)
        path = folder / "fuzz.csv"
        path.write_bytes(data)
        try:
            report = import_files(workspace, events=path, options=ImportOptions(strict=strict))
        except CsvImportError as error:
            assert str(path) in str(error)
            assert _tables(workspace.path) == before
        else:
            events = report.file("events")
            assert events.rows_read == events.rows_accepted + events.rows_rejected + events.duplicates
            assert workspace.counts()["events"] == len(before["events"]) + events.rows_accepted
            assert not (strict and events.rows_rejected)
            assert all(r.line >= 1 for r in events.rejected)
        finally:
            workspace.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=HEADER, body=CSV_TEXT, strict=st.booleans())
def test_fuzzed_text_never_half_writes(header, body, strict):
    _check_import((header + body).encode("utf-8"), strict)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200))
def test_fuzzed_bytes_never_crash(data):
    _check_import(data, strict=False)
