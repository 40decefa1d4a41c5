"""Parquet files and folders: the same roles, checks, rejected rows, progress, cancel and one
transaction as a CSV file, with typed columns read as the text a CSV export would hold."""

import datetime as dt
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.importing import CsvImportError, ImportOptions, export_rejected, import_files, preview_source
from core.progress import CancelToken, Cancelled
from core.importing.tables import text_table
from core.store import Workspace
from tests.core.cli_run import run

UTC = dt.timezone.utc


def _events_table(n=60):
    """Typed columns: integer users, text items, millisecond timestamps, float values."""
    start = dt.datetime(2026, 3, 1, tzinfo=UTC)
    return pa.table({
        "user_id": pa.array([u % 7 for u in range(n)], pa.int64()),
        "item_id": [f"P{(u * 5) % 11}" for u in range(n)],
        "ts": pa.array([start + dt.timedelta(minutes=u) for u in range(n)], pa.timestamp("ms")),
        "event": ["view" if u % 3 else "purchase" for u in range(n)],
        "price": pa.array([u + 0.5 for u in range(n)], pa.float64()),
    })


def _as_csv(table, path):
    """The same rows as a shop's CSV export would write them (unix seconds)."""
    rows = ["user_id,item_id,ts,event,price"]
    for r in table.to_pylist():
        rows.append(f"{r['user_id']},{r['item_id']},{int(r['ts'].replace(tzinfo=UTC).timestamp())},{r['event']},{r['price']}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _content(workspace):
    with sqlite3.connect(workspace.path) as raw:
        return raw.execute("SELECT u.external_id, i.external_id, e.ts, e.event_type, e.value FROM events e "
                           "JOIN users u ON u.id = e.user_id JOIN items i ON i.id = e.item_id ORDER BY e.id").fetchall()


def _snapshot(workspace):
    with sqlite3.connect(workspace.path) as raw:
        return {t: raw.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("users", "items", "events", "imports", "rejected_rows", "meta")}


def _with_bad_rows(table):
    """Row 3: no user; row 5: a time in 1850; row 6: a value that is not a number (as text)."""
    rows = table.to_pylist()
    rows[2]["user_id"] = None
    rows[4]["ts"] = dt.datetime(1850, 1, 1)
    rows = [{**r, "price": str(r["price"])} for r in rows]
    rows[5]["price"] = "n/a"
    schema = table.schema.set(table.schema.get_field_index("price"), pa.field("price", pa.string()))
    return pa.Table.from_pylist(rows, schema)


def test_a_parquet_file_imports_what_the_same_rows_as_csv_do(workspace, tmp_path):
    table = _events_table()
    pq.write_table(table, tmp_path / "events.parquet")
    report = import_files(workspace, events=tmp_path / "events.parquet").file("events")
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (60, 60, 0)
    assert report.roles == {"user": "user_id", "item": "item_id", "time": "ts", "event": "event", "value": "price"}
    with Workspace.open(tmp_path / "from-csv.sqlite") as other:
        import_files(other, events=_as_csv(table, tmp_path / "events.csv"))
        assert _content(workspace) == _content(other)
    assert _content(workspace)[0] == ("0", "P0", dt.datetime(2026, 3, 1, tzinfo=UTC).timestamp(), "purchase", 0.5)


def test_typed_date_and_time_of_day_columns_are_read_as_one_time(workspace, tmp_path):
    table = pa.table({"customer": ["c1", "c1", "c2"], "sku": ["A", "B", "A"],
                      "order_date": pa.array([dt.date(2026, 3, 2), dt.date(2026, 3, 1), dt.date(2026, 3, 1)], pa.date32()),
                      "order_time": pa.array([dt.time(8, 0), dt.time(17, 30, 15), dt.time(9, 0)], pa.time64("us"))})
    pq.write_table(table, tmp_path / "orders.parquet")
    report = import_files(workspace, events=tmp_path / "orders.parquet").file("events")
    assert report.rows_accepted == 3 and report.roles["time_of_day"] == "order_time"
    stamps = [row[2] for row in _content(workspace)]
    assert sorted(stamps) == [dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC).timestamp(),
                              dt.datetime(2026, 3, 1, 17, 30, 15, tzinfo=UTC).timestamp(),
                              dt.datetime(2026, 3, 2, 8, 0, tzinfo=UTC).timestamp()]


def test_bad_values_are_rejected_with_row_column_and_reason_and_kept(workspace, tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(_with_bad_rows(_events_table(10)), path)
    report = import_files(workspace, events=path).file("events")
    assert (report.rows_read, report.rows_accepted) == (10, 7)
    assert [(r.line, r.column, r.unit, r.file) for r in report.rejected] == [
        (3, "user_id", "row", None), (5, "ts", "row", None), (6, "price", "row", None)]
    assert report.rejected[0].reason == "missing user id"
    assert "falls before 1900" in report.rejected[1].reason and "1850-01-01" in report.rejected[1].reason
    assert report.rejected[2].reason == "value 'n/a' is not a number"
    assert '"item_id": "P9"' in report.rejected[1].raw
    out = tmp_path / "rejected.csv"
    assert export_rejected(workspace, report.import_id, out) == 3


def test_strict_names_the_file_row_and_column_and_changes_nothing(workspace, tmp_path):
    import_files(workspace, events=_as_csv(_events_table(5), tmp_path / "first.csv"))
    before = _snapshot(workspace)
    path = tmp_path / "events.parquet"
    pq.write_table(_with_bad_rows(_events_table(10)), path)
    with pytest.raises(CsvImportError) as error:
        import_files(workspace, events=path, options=ImportOptions(strict=True))
    assert str(error.value) == f"{path}, row 3, column 'user_id': missing user id"
    assert error.value.hint.startswith("Fix that row at its source, or import again letting bad rows be skipped")
    assert _snapshot(workspace) == before


def _partitioned(tmp_path, table):
    """A hive-partitioned folder: the event type is in the folder names, not in the files."""
    folder = tmp_path / "events"
    for event in ("purchase", "view"):
        part = folder / f"event={event}"
        part.mkdir(parents=True)
        rows = table.filter(pa.compute.equal(table.column("event"), event)).drop_columns(["event"])
        pq.write_table(rows, part / "part-0.parquet")
    (folder / "_SUCCESS").write_text("")  # a marker, not data
    return folder


def test_a_partitioned_folder_is_one_import_with_its_partition_keys_as_columns(workspace, tmp_path):
    folder = _partitioned(tmp_path, _events_table())
    report = import_files(workspace, events=folder).file("events")
    assert (report.rows_read, report.rows_accepted, report.roles["event"]) == (60, 60, "event")
    types = dict(sqlite3.connect(workspace.path).execute("SELECT event_type, count(*) FROM events GROUP BY 1").fetchall())
    assert types == {"purchase": 20, "view": 40}
    again = import_files(workspace, events=folder).file("events")
    assert again.duplicate and workspace.counts()["events"] == 60
    extra = folder / "event=view" / "part-1.parquet"
    new = _events_table(3).drop_columns(["event"])
    pq.write_table(new.set_column(0, "user_id", pa.array([100, 101, 102])), extra)
    grown = import_files(workspace, events=folder).file("events")
    assert not grown.duplicate and grown.rows_read == 63 and grown.duplicates == 60  # only the new file's rows are new


def test_a_bad_row_in_a_folder_names_its_file(workspace, tmp_path):
    folder = _partitioned(tmp_path, _with_bad_rows(_events_table(10)))
    report = import_files(workspace, events=folder).file("events")
    first = report.rejected[0]
    assert (first.file, first.line, first.column) == ("event=view/part-0.parquet", 2, "user_id")  # the file's 2nd row
    assert first.raw.startswith("event=view/part-0.parquet: {")
    with Workspace.open(tmp_path / "strict.sqlite") as other, pytest.raises(CsvImportError) as error:
        import_files(other, events=folder, options=ImportOptions(strict=True))
    assert str(error.value).startswith(f"{folder / 'event=view' / 'part-0.parquet'}, row 2, column 'user_id'")


def test_roles_mapped_by_name_and_items_with_attributes(workspace, tmp_path):
    events = _events_table().rename_columns(["who", "what", "when", "kind", "amount"])
    pq.write_table(events, tmp_path / "events.parquet")
    items = pa.table({"sku": [f"P{i}" for i in range(11)], "name": [f"Item {i}" for i in range(11)],
                      "genres": ["Tools|Garden"] * 11, "weight_g": pa.array(range(100, 111), pa.int32())})
    pq.write_table(items, tmp_path / "items.parquet")
    roles = {"user": "who", "events.item": "what", "time": "when", "event": "kind", "value": "amount", "items.title": "name"}
    report = import_files(workspace, events=tmp_path / "events.parquet", items=tmp_path / "items.parquet",
                          options=ImportOptions(roles=roles))
    assert report.rows_accepted == 60 + 11
    frame = workspace.items_frame().set_index("external_id")
    assert frame.loc["P3", "title"] == "Item 3" and frame.loc["P3", "categories"] == "Tools|Garden"
    attributes = sqlite3.connect(workspace.path).execute("SELECT attributes FROM items WHERE external_id = 'P3'").fetchone()
    assert attributes == ('{"weight_g": 103}',)  # a number stays a number, as from a CSV file


def test_progress_counts_rows_and_cancel_rolls_back(workspace, tmp_path):
    import_files(workspace, events=_as_csv(_events_table(5), tmp_path / "first.csv"))
    before = _snapshot(workspace)
    pq.write_table(_events_table(200), tmp_path / "events.parquet", row_group_size=50)
    seen, token = [], CancelToken()

    def listen(report):
        if report.stage == "import events":
            seen.append(report)
            if report.done >= 100:
                token.cancel()

    with pytest.raises(Cancelled):
        import_files(workspace, events=tmp_path / "events.parquet", options=ImportOptions(chunk_rows=50),
                     progress=listen, cancel=token)
    assert [(r.done, r.total) for r in seen] == [(50, 200), (100, 200)]
    assert _snapshot(workspace) == before


def test_low_ratings_are_treated_as_in_a_csv_file(workspace, tmp_path):
    from core.importing import LowValues

    table = _events_table(10)  # prices 0.5 .. 9.5: two of them at most 2
    pq.write_table(table, tmp_path / "events.parquet")
    report = import_files(workspace, events=tmp_path / "events.parquet",
                          options=ImportOptions(low_values=LowValues("drop", 2))).file("events")
    assert (report.rows_accepted, report.low_values) == (8, 2)


def test_preview_shows_columns_rows_and_guessed_roles(tmp_path):
    pq.write_table(_events_table(), tmp_path / "events.parquet")
    preview = preview_source(tmp_path / "events.parquet", ImportOptions())
    assert preview.columns == ["user_id", "item_id", "ts", "event", "price"]
    assert preview.preview[0] == ["0", "P0", "2026-03-01 00:00:00.000Z", "purchase", "0.5"] and len(preview.preview) == 20
    assert preview.roles["time"] == "ts"


def test_files_that_are_not_parquet_in_a_folder_are_refused_by_name(workspace, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "notes.txt").write_text("not parquet\n")
    with pytest.raises(CsvImportError) as error:
        import_files(workspace, events=folder)
    assert str(folder) in str(error.value) and "Parquet" in str(error.value)
    assert workspace.counts()["events"] == 0


def test_cli_imports_a_folder_and_says_which_file_and_row_was_bad(capsys, tmp_path):
    folder = _partitioned(tmp_path, _with_bad_rows(_events_table(10)))
    code, out, err = run(capsys, "import", folder, "--db", tmp_path / "ws.sqlite")
    assert code == 0, err
    assert "10 rows read, 7 accepted, 3 rejected" in out
    assert "event=view/part-0.parquet row 2, column 'user_id': missing user id" in out


def test_zoned_and_naive_timestamps_and_dates_are_stored_as_their_utc_instant(workspace, tmp_path):
    tokyo = dt.timezone(dt.timedelta(hours=9))
    moment = dt.datetime(2026, 3, 1, 18, 30, tzinfo=tokyo)  # 09:30 UTC
    table = pa.table({
        "user_id": ["zoned", "naive", "dated"],
        "item_id": ["a", "b", "c"],
        "when": pa.array([moment, None, None], pa.timestamp("us", tz="Asia/Tokyo")),
        "naive": pa.array([None, dt.datetime(2026, 3, 1, 9, 30), None], pa.timestamp("ns")),
        "day": pa.array([None, None, dt.date(2026, 3, 1)], pa.date32()),
    })
    assert text_table(table).column("when")[0].as_py() == "2026-03-01 09:30:00.000000Z"
    for column in ("when", "naive", "day"):
        pq.write_table(table.filter(pa.compute.is_valid(table.column(column))), tmp_path / f"{column}.parquet")
        import_files(workspace, events=tmp_path / f"{column}.parquet", options=ImportOptions(roles={"time": column}))
    expected = moment.timestamp()
    assert workspace.user_sequence("zoned")["ts"].tolist() == [expected]
    assert workspace.user_sequence("naive")["ts"].tolist() == [expected]
    assert workspace.user_sequence("dated")["ts"].tolist() == [dt.datetime(2026, 3, 1, tzinfo=UTC).timestamp()]
