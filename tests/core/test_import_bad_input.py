"""Bad files and bad rows: clear errors naming file, line and column; strict vs skip policy;
atomicity (failure or cancel leaves the workspace as it was); re-import dedup."""

import csv
import sqlite3

import pytest

from core.importing import CsvImportError, ImportOptions, export_rejected, import_files
from core.progress import CancelToken, Cancelled

GOOD = "user_id,item_id,timestamp,event\nu1,a,1600000000,view\nu1,b,1600000060,cart\nu2,a,1600000120,view\n"


def _write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def _snapshot(workspace):
    """Every row of every table the import writes, to compare byte for byte."""
    with sqlite3.connect(workspace.path) as raw:
        return {t: raw.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("users", "items", "events", "imports", "rejected_rows", "meta")}


@pytest.fixture
def seeded(workspace, tmp_path):
    import_files(workspace, events=_write(tmp_path, "first.csv", GOOD))
    return workspace


BAD_ROWS = (
    "user_id,item_id,timestamp,event\n"
    "u1,a,1600000000,view\n"
    ",b,1600000001,view\n"             # line 3: missing user id
    "u2,c,yesterday,view\n"             # line 4: unparseable time
    "u3,d,1600000002\n"                 # line 5: wrong column count
    "\n"                                # line 6: empty, ignored
    "u4,e,1600000003,view,extra\n"      # line 7: wrong column count
    "u5,,1600000004,view\n"             # line 8: missing item id
    "u6,f,2020-09-13T12:26:40Z,cart\n"  # line 9: ISO time, fine
)


def test_skip_mode_reports_each_bad_row_with_line_column_reason(workspace, tmp_path):
    path = _write(tmp_path, "bad.csv", BAD_ROWS)
    report = import_files(workspace, events=path)
    events = report.file("events")
    assert (events.rows_read, events.rows_accepted, events.rows_rejected) == (7, 2, 5)
    assert [(r.line, r.column) for r in events.rejected] == [
        (3, "user_id"), (4, "timestamp"), (5, None), (7, None), (8, "item_id")]
    reasons = [r.reason for r in events.rejected]
    assert reasons[0] == "missing user id" and reasons[4] == "missing item id"
    assert "unparseable time 'yesterday'" == reasons[1]
    assert "wrong number of columns: expected 4, found 3" == reasons[2] and "found 5" in reasons[3]
    assert events.rejected[2].raw == "u3,d,1600000002"
    assert workspace.counts()["events"] == 2
    assert workspace.user_sequence("u6")["ts"].tolist() == [1600000000.0]


def test_an_id_written_as_a_missing_value_is_refused_as_missing(workspace, tmp_path):
    """Stored, every "NA" row would be one made-up shopper holding all of them."""
    text = "user_id,item_id,timestamp\nu1,a,1600000000\nNA,b,1600000001\nu2,null,1600000002\nu3,N/A,1600000003\n"
    events = import_files(workspace, events=_write(tmp_path, "na.csv", text)).file("events")
    assert [(r.line, r.column, r.reason) for r in events.rejected] == [
        (3, "user_id", "missing user id (written NA)"), (4, "item_id", "missing item id (written null)"),
        (5, "item_id", "missing item id (written N/A)")]
    assert workspace.counts()["events"] == 1


def test_rejected_rows_are_kept_and_exported(workspace, tmp_path):
    report = import_files(workspace, events=_write(tmp_path, "bad.csv", BAD_ROWS))
    out = tmp_path / "rejected.csv"
    assert export_rejected(workspace, report.file("events").import_id, out) == 5
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["line"]) for r in rows] == [3, 4, 5, 7, 8]
    assert rows[1]["column"] == "timestamp" and rows[1]["raw"] == "u2,c,yesterday,view"
    with pytest.raises(ValueError):
        export_rejected(workspace, 999, out)


def test_strict_mode_aborts_on_first_bad_row_and_changes_nothing(seeded, tmp_path):
    before = _snapshot(seeded)
    with pytest.raises(CsvImportError) as error:
        import_files(seeded, events=_write(tmp_path, "bad.csv", BAD_ROWS), options=ImportOptions(strict=True))
    assert (error.value.line, error.value.column, error.value.reason) == (3, "user_id", "missing user id")
    assert str(error.value) == f"{tmp_path / 'bad.csv'}, line 3, column 'user_id': missing user id"
    assert _snapshot(seeded) == before


def test_strict_failure_late_in_a_multi_block_import_rolls_everything_back(seeded, tmp_path):
    rows = "".join(f"user{i % 97},item{i % 31},{1600000000 + i}\n" for i in range(3000))
    events = _write(tmp_path, "late.csv", "user,item,ts\n" + rows + "u,i,not-a-time\n")
    items = _write(tmp_path, "items.csv", "item_id,title,genres\nitem1,One,A|B\nnew,New,C\n")
    before = _snapshot(seeded)
    with pytest.raises(CsvImportError) as error:
        import_files(seeded, events=events, items=items, options=ImportOptions(strict=True, chunk_rows=500))
    assert error.value.line == 3002 and error.value.column == "ts"
    assert _snapshot(seeded) == before
    with seeded.engine.connect() as conn:  # the pooled connection has its usual settings back
        assert conn.connection.dbapi_connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_cancel_from_the_progress_callback_rolls_back(seeded, tmp_path):
    rows = "".join(f"user{i % 50},item{i % 20},{1600000000 + i}\n" for i in range(4000))
    path = _write(tmp_path, "big.csv", "user,item,ts\n" + rows)
    token, reports = CancelToken(), []

    def listen(progress):
        reports.append(progress)
        if progress.done >= 1000:
            token.cancel()

    before = _snapshot(seeded)
    with pytest.raises(Cancelled):
        import_files(seeded, events=path, options=ImportOptions(chunk_rows=400), progress=listen, cancel=token)
    assert _snapshot(seeded) == before
    assert 1000 <= reports[-1].done < 4000 and reports[-1].rate > 0
    assert reports[-1].total >= reports[-1].done and reports[-1].eta_s is not None


def test_reimporting_the_same_file_adds_nothing(seeded, tmp_path):
    report = import_files(seeded, events=tmp_path / "first.csv")
    assert report.file("events").duplicate and report.file("events").rows_accepted == 0
    assert seeded.counts()["events"] == 3
    copy = _write(tmp_path, "copy.csv", GOOD)  # same content, other name: still the same file
    assert import_files(seeded, events=copy).file("events").duplicate
    assert seeded.counts()["events"] == 3


def test_the_same_file_read_another_way_is_imported_again(workspace, tmp_path):
    """A first try that read a column wrongly (every row rejected, or a title left as an attribute)
    is fixed by importing again with --map: that retry must not be 'already imported, nothing added'."""
    events = _write(tmp_path, "till.csv", "date,time,customer,product\n2025-03-01,10:15:00,u1,p1\n"
                                          "2025-03-02,11:15:00,u1,p2\n2025-03-03,09:00:00,u2,p1\n")
    first = import_files(workspace, events=events, options=ImportOptions(roles={"time": "time"})).file("events")
    assert (first.rows_accepted, first.rows_rejected) == (0, 3)  # "10:15:00" alone is no time
    retry = import_files(workspace, events=events).file("events")  # the date with its time of day
    assert (retry.duplicate, retry.rows_accepted, workspace.counts()["events"]) == (False, 3, 3)
    again = import_files(workspace, events=events).file("events")
    assert again.duplicate and workspace.counts()["events"] == 3

    items = _write(tmp_path, "items.csv", "product,label\np1,Blue mug\n")
    import_files(workspace, items=items)
    import_files(workspace, items=items, options=ImportOptions(roles={"items.title": "label"}))
    assert workspace.item("p1")["title"] == "Blue mug"


@pytest.mark.parametrize(
    "content, line, reason",
    [
        (b"", None, "file is empty"),
        (b"\n\n  \n", None, "file is empty"),
        (b"user,item\n", 2, "no data rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", 3, "binary data"),  # first NUL on line 3
        (bytes(range(1, 9)) * 40, None, "binary data"),
        ("\ufeffuser,item\n1,2\n".encode("utf-16"), None, "UTF-16 text is not supported"),
    ],
)
@pytest.mark.parametrize("whole_log", [False, True], ids=["plain", "whole log"])  # the CLI's and studio's import
def test_whole_file_problems_are_clear_errors(workspace, tmp_path, content, line, reason, whole_log):
    path = _write(tmp_path, "bad.csv", content)
    with pytest.raises(CsvImportError) as error:
        import_files(workspace, events=path, on_whole_log=(lambda log: None) if whole_log else None)
    assert error.value.path == path and error.value.line == line
    assert reason in error.value.reason and str(path) in str(error.value)
    assert "skipped" not in (error.value.hint or "")  # skipping bad rows cannot help a whole-file problem
    assert workspace.counts() == {"users": 0, "items": 0, "events": 0}


def test_unknown_encoding_and_missing_required_column(workspace, tmp_path):
    path = _write(tmp_path, "ok.csv", GOOD)
    with pytest.raises(CsvImportError, match="unknown encoding 'klingon'"):
        import_files(workspace, events=path, options=ImportOptions(encoding="klingon"))
    no_item = _write(tmp_path, "no_item.csv", "user_id,price\nu1,3\n")
    with pytest.raises(CsvImportError, match="no item column") as error:
        import_files(workspace, events=no_item)
    assert error.value.path == no_item
    with pytest.raises(CsvImportError, match="'sku' is not in the file"):
        import_files(workspace, events=path, options=ImportOptions(roles={"item": "sku"}))


def test_a_missing_column_of_one_file_is_named_by_a_map_aimed_at_that_file(workspace, tmp_path):
    """'name it with --map item=COLUMN' for an items file, followed, broke the events file (whose item
    column is another): the advice names the file's kind, and a map that misses a file says how to aim it."""
    events = _write(tmp_path, "e.csv", "user,product,ts\nu1,p1,1600000000\n")
    items = _write(tmp_path, "i.csv", "code,name\np1,Mug\n")
    with pytest.raises(CsvImportError, match=r"name it with --map items\.item=COLUMN"):
        import_files(workspace, events=events, items=items)
    with pytest.raises(CsvImportError, match="'code' is not in the file") as error:
        import_files(workspace, events=events, items=items, options=ImportOptions(roles={"item": "code"}))
    assert "--map items.item=code" in error.value.hint
    import_files(workspace, events=events, items=items, options=ImportOptions(roles={"items.item": "code"}))
    assert workspace.item("p1")["title"] == "Mug"


def test_invalid_utf8_after_utf8_text_rejects_its_line_or_refuses_in_strict_mode(workspace, tmp_path, monkeypatch):
    from core.importing import sniffing

    monkeypatch.setattr(sniffing, "ENCODING_PROBE_BYTES", 4096)  # the bad byte lies past the probe, as in a big file
    text = "user,item,ts\n" + "".join(f"ü{i},i,{1600000000 + i}\n" for i in range(5000))
    path = _write(tmp_path, "mixed.csv", text.encode() + b"x,\xff\xfe,1600005001\n")
    with pytest.raises(CsvImportError, match="not valid UTF-8") as error:
        import_files(workspace, events=path, options=ImportOptions(chunk_rows=1000, strict=True))
    assert error.value.line == 5002
    events = import_files(workspace, events=path, options=ImportOptions(chunk_rows=1000)).file("events")
    assert (events.rows_accepted, [(r.line, r.reason[:31]) for r in events.rejected]) == (5000, [(5002, "not valid UTF-8 text (byte 0xff")])


def test_time_kind_mismatch_is_refused(seeded, tmp_path):
    path = _write(tmp_path, "steps.csv", "user_id,item_id,step\nu1,a,0\nu1,b,1\n")
    with pytest.raises(CsvImportError, match=r"events are only in an order \(positions or file order, no clock\), "
                                             "but the workspace's have clock times") as error:
        import_files(seeded, events=path)
    assert "workspace of its own" in error.value.hint
