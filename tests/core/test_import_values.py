"""Values stopped at their row: wild times, undecodable bytes, NUL bytes, stray quotes, repeated
header names and repeated events. Each names its file, line and column and leaves the rest of
the file imported (or, in strict mode, the workspace unchanged)."""

import json
import sqlite3

import pytest

from core.importing import CsvImportError, ImportOptions, import_files, sniff
from core.importing import run as import_run, sources as import_sources
from core.importing import sniffing
from core.importing.scanning import Utf8Tally
from core.store import Workspace

HEADER = "user,item,timestamp\n"


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _events(workspace, path, **options):
    return import_files(workspace, events=path, options=ImportOptions(**options)).file("events")


def _rejected(report):
    return [(r.line, r.column, r.reason) for r in report.rejected]


def _ts(workspace):
    with sqlite3.connect(workspace.path) as raw:
        return [row[0] for row in raw.execute("SELECT ts FROM events ORDER BY id")]


# -- times ---------------------------------------------------------------------------------------

WILD_TIMES = (HEADER + "u1,a,1600000000\n" "u2,b,99999999999999999999\n" "u3,c,1e300\n" "u4,d,9999-12-31\n"
              "u5,e,2262-04-12\n" "u6,f,-5\n" "u7,g,1600000100\n" "u8,h,2020-01-02T03:04:05Z\n")


def test_times_out_of_range_are_rejected_at_their_row_in_skip_mode(workspace, tmp_path):
    report = _events(workspace, _write(tmp_path, "wild.csv", WILD_TIMES))
    assert (report.rows_read, report.rows_accepted, report.time_unit) == (8, 3, "seconds")
    assert [(line, column) for line, column, _ in _rejected(report)] == [(3, "timestamp"), (4, "timestamp"),
                                                                          (5, "timestamp"), (6, "timestamp"),
                                                                          (7, "timestamp")]
    reasons = [reason for _, _, reason in _rejected(report)]
    assert reasons[0].startswith("time '99999999999999999999' is out of range: read as seconds since 1970, "
                                 "it falls after the year 9999")
    assert "'1e300'" in reasons[1] and "in the year 9999" in reasons[2] and "in the year 2262" in reasons[3]
    assert "'-5'" in reasons[4] and "before 1970" in reasons[4]
    assert all("times must fall between 1973-03-03 and 2100-01-01" in reasons[i] for i in (0, 1, 4))  # numbers
    assert all("dates must fall between 1900-01-01 and 2100-01-01" in reasons[i] for i in (2, 3))  # ISO dates
    assert _ts(workspace) == [1600000000.0, 1600000100.0, 1577934245.0]


def test_an_out_of_range_time_fails_a_strict_import_at_its_line(workspace, tmp_path):
    path = _write(tmp_path, "wild.csv", WILD_TIMES)
    with pytest.raises(CsvImportError) as error:
        _events(workspace, path, strict=True)
    assert (error.value.line, error.value.column) == (3, "timestamp") and "out of range" in error.value.reason
    assert workspace.counts()["events"] == 0


@pytest.mark.parametrize("scale, unit", [(1, "seconds"), (1e3, "milliseconds"), (1e6, "microseconds"),
                                         (1e9, "nanoseconds")])
def test_the_unit_of_integer_times_is_decided_by_magnitude_and_reported(workspace, tmp_path, scale, unit):
    rows = "".join(f"u{i},i{i},{int(1_700_000_000 + i) * int(scale)}\n" for i in range(5))
    report = _events(workspace, _write(tmp_path, "t.csv", HEADER + rows))
    assert report.time_unit == unit and report.rows_accepted == 5
    assert _ts(workspace) == [1_700_000_000.0 + i for i in range(5)]


def test_one_unit_per_column_so_a_value_in_another_unit_is_rejected_not_guessed(workspace, tmp_path):
    text = HEADER + "u1,a,1700000000000\nu2,b,1700000001000\nu3,c,1700000002\nu4,d,1700000003000\n"
    report = _events(workspace, _write(tmp_path, "ms.csv", text))
    assert report.time_unit == "milliseconds"
    assert _rejected(report) == [(4, "timestamp", "time '1700000002' is out of range: read as milliseconds since "
                                  "1970, it falls in the year 1970; times must fall between 1973-03-03 and 2100-01-01 (UTC)")]


def test_iso_dates_before_1973_are_imported_while_small_numbers_still_are_no_clock(workspace, tmp_path):
    """1973 bounds numbers only (a smaller one would be a step counter); an ISO date says its year."""
    text = (HEADER + "u1,a,1965-03-01\nu1,b,1965-03-02T10:00:00Z\nu2,c,1899-12-31\nu2,d,1972-12-31\n"
            "u3,e,1700000000\nu3,f,5\n")
    report = _events(workspace, _write(tmp_path, "old.csv", text))
    assert report.time_kind == "unix" and report.rows_accepted == 4
    assert _ts(workspace) == [-152_668_800.0, -152_546_400.0, 94_608_000.0, 1_700_000_000.0]
    (line, column, old), (_, _, small) = _rejected(report)
    assert (line, column) == (4, "timestamp")
    assert old == ("time '1899-12-31' is out of range: it falls before 1900; dates must fall between 1900-01-01 "
                   "and 2100-01-01 (UTC)")
    assert small.startswith("time '5' is out of range: read as seconds since 1970, it falls in the year 1970; "
                            "times must fall between 1973-03-03")


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few rows, so a small file crosses many block boundaries."""
    monkeypatch.setattr(import_sources, "_MIN_BLOCK_BYTES", 1)
    return ImportOptions().chunk_rows


def test_a_first_block_without_usable_times_decides_nothing(workspace, tmp_path, small_blocks):
    text = HEADER + "u1,a,yesterday\nu2,b,\nu3,c,1700000000000\nu4,d,1700000001000\n"
    report = _events(workspace, _write(tmp_path, "late.csv", text), chunk_rows=1)  # a block per row
    assert (report.time_kind, report.time_unit, report.rows_accepted) == ("unix", "milliseconds", 2)
    assert [line for line, _, _ in _rejected(report)] == [2, 3]


def test_iso_dates_are_reported_as_such_and_orders_have_no_unit(workspace, tmp_path):
    iso = _events(workspace, _write(tmp_path, "iso.csv", HEADER + "u1,a,2024-05-01\nu1,b,2024-05-02T10:00:00Z\n"))
    assert iso.time_unit == "ISO-8601"
    import_run_path = _write(tmp_path, "steps.csv", "user,item,step\nu1,a,1\nu1,b,1e300\nu1,c,3\n")

    with Workspace.open(tmp_path / "order.sqlite") as other:
        steps = _events(other, import_run_path)
    assert (steps.time_kind, steps.time_unit, steps.rows_accepted) == ("order", None, 2)
    assert _rejected(steps)[0][:2] == (3, "step") and "as a position it is beyond" in _rejected(steps)[0][2]


def test_bigquery_s_timestamps_ending_in_utc_are_read_and_found_by_their_values(workspace, tmp_path):
    """BigQuery's CSV export writes a TIMESTAMP "2024-03-01 10:15:00 UTC": every row was refused as an
    unparseable time, and under a name no alias knows the column was not found at all."""
    text = "user_id,item_id,visited_at\nu1,a,2024-03-01 10:15:00 UTC\nu1,b,2024-03-01 10:15:30.5 GMT\n"
    report = _events(workspace, _write(tmp_path, "bq.csv", text))
    assert (report.roles["time"], report.time_unit, report.rows_accepted) == ("visited_at", "ISO-8601", 2)
    assert _ts(workspace) == [1709288100.0, 1709288130.5]


def test_dates_that_name_their_month_are_read(workspace, tmp_path):
    """"Mar 1, 2024 10:15 AM", as spreadsheets and analytics exports write dates: every row was refused."""
    text = ('user,item,date\nu1,a,"Mar 1, 2024 10:15 AM"\nu1,b,"Mar 2, 2024 9:00 PM"\nu2,a,"March 3, 2024"\n'
            "u2,b,not a date\n")
    report = _events(workspace, _write(tmp_path, "sheet.csv", text))
    assert report.time_unit == "with the month's name" and report.rows_accepted == 3
    assert _rejected(report) == [(5, "date", "unparseable time 'not a date'")]
    day = 1709251200.0  # 2024-03-01 UTC
    assert _ts(workspace) == [day + 10.25 * 3600, day + 86400 + 21 * 3600, day + 2 * 86400]
    with Workspace.open(tmp_path / "other.sqlite") as other:
        assert _events(other, _write(tmp_path, "short.csv", "user,item,date\nu1,a,01-Mar-24\nu1,b,2 Apr 2024 14:05\n")
                       ).rows_accepted == 2
        assert _ts(other) == [day, day + 32 * 86400 + 14 * 3600 + 5 * 60]


def test_dates_written_as_digits_are_a_clock_not_positions(workspace, tmp_path):
    """A warehouse export's date column of 20250301 (or 20250301093000) numbers was read as positions:
    the log lost its clock (no time split) without a rejected row."""
    text = ("user,item,event_date\nu1,a,20250302\nu1,b,20250301\nu2,c,20250301093000\nu2,d,20250231\n"
            "u2,e,2025-03-04\n")
    report = _events(workspace, _write(tmp_path, "dates.csv", text))
    assert (report.time_kind, report.time_unit, report.rows_accepted) == ("unix", "YYYYMMDD", 4)
    assert _rejected(report) == [(5, "event_date", "unparseable time '20250231'")]
    day = 1740787200.0  # 2025-03-01 UTC
    assert _ts(workspace) == [day + 86400, day, day + 9.5 * 3600, day + 3 * 86400]

    with Workspace.open(tmp_path / "steps.sqlite") as other:  # a column named as an order stays one
        steps = _events(other, _write(tmp_path, "steps.csv", "user,item,step\nu1,a,20250301\nu1,b,20250302\n"))
    assert steps.time_kind == "order"


def test_day_first_dotted_dates_of_a_german_spreadsheet_are_read(workspace, tmp_path):
    """'01.03.2025 10:15', how a German spreadsheet's CSV writes times, rejected every row as unparseable."""
    text = ("Kunde;Artikel;Zeitpunkt;Preis\nu1;a;01.03.2025 10:15;19,99\nu1;b;1.3.2025 9:05:07;5\n"
            "u2;a;31.12.2024;7,5\nu2;b;31.02.2025 10:00;1\n")
    report = _events(workspace, _write(tmp_path, "de.csv", text),
                     roles={"user": "Kunde", "item": "Artikel", "value": "Preis"})
    assert (report.roles["time"], report.time_unit, report.rows_accepted) == ("Zeitpunkt", "DD.MM.YYYY", 3)
    assert _rejected(report) == [(5, "Zeitpunkt", "unparseable time '31.02.2025 10:00'")]
    day = 1740787200.0  # 2025-03-01 UTC
    assert _ts(workspace) == [day + 10.25 * 3600, day + 9 * 3600 + 5 * 60 + 7, day - 60 * 86400]
    with sqlite3.connect(workspace.path) as raw:
        assert [row[0] for row in raw.execute("SELECT value FROM events ORDER BY id")] == [19.99, 5.0, 7.5]


# -- encoding and NUL bytes ---------------------------------------------------------------------


def test_a_stray_byte_in_a_utf8_file_rejects_its_line_and_keeps_the_rest_utf8(workspace, tmp_path):
    data = (HEADER + "zoë,a,1600000000\nu2,caf\xe9,1600000001\nu3,b,1600000002\n").encode("utf-8")
    path = _write(tmp_path, "mixed.csv", data.replace("caf\xe9".encode("utf-8"), b"caf\xe9"))
    report = _events(workspace, path)
    assert _rejected(report) == [(3, None, "not valid UTF-8 text (byte 0xe9); if the file is in another encoding, "
                                           "choose it (--encoding)")]
    assert report.rows_accepted == 2 and workspace.user_sequence("zoë")["item"].tolist() == ["a"]
    with pytest.raises(CsvImportError, match="line 3: not valid UTF-8"):
        _events(workspace, _write(tmp_path, "mixed2.csv", path.read_bytes() + b"\n"), strict=True)


def test_a_latin1_file_is_read_as_latin1_even_when_its_first_accent_is_past_the_preview(workspace, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setattr(sniffing, "ENCODING_PROBE_BYTES", 4096)
    rows = "".join(f"u{i},item{i},{1600000000 + i}\n" for i in range(2000)) + "u9999,Amélie,1600009999\n"
    path = _write(tmp_path, "latin.csv", (HEADER + rows).encode("latin-1"))
    assert sniff(path).encoding == "utf-8"  # the preview saw only ASCII
    report = _events(workspace, path)
    assert report.rows_rejected == 0 and workspace.user_sequence("u9999")["item"].tolist() == ["Amélie"]


def test_a_given_encoding_is_obeyed(workspace, tmp_path):
    path = _write(tmp_path, "latin.csv", (HEADER + "u1,Amélie,1600000000\nu2,b,1600000001\n").encode("latin-1"))
    report = _events(workspace, path, encoding="utf-8")
    assert [line for line, _, _ in _rejected(report)] == [2] and report.rows_accepted == 1
    utf8 = _write(tmp_path, "utf8.csv", HEADER + "u3,zoë,1600000002\n")
    assert _events(workspace, utf8, encoding="latin-1").rows_accepted == 1
    assert workspace.user_sequence("u3")["item"].tolist() == ["zoÃ«"]  # as asked, though wrong


def test_a_nul_byte_far_into_the_file_refuses_it_naming_the_line(workspace, tmp_path):
    rows = [f"u{i},item{i},{1600000000 + i}\n" for i in range(6000)]
    rows[5000] = "u5000,it\x00em,1600005000\n"  # file line 5,002, well past the first 64 KB
    path = _write(tmp_path, "nul.csv", HEADER + "".join(rows))
    for options in ({}, {"encoding": "latin-1"}):
        with pytest.raises(CsvImportError, match="NUL byte") as error:
            _events(workspace, path, **options)
        assert error.value.line == 5002
    assert workspace.counts()["events"] == 0


@pytest.mark.parametrize("cut", range(1, 12))
def test_utf8_tally_counts_a_character_split_between_pieces_once_and_as_valid(cut):
    data = "zoë ü €𝄞 x".encode("utf-8")
    tally = Utf8Tally()
    tally.add(data[:cut])
    tally.add(data[cut:])
    tally.finish()
    assert (tally.multibyte, tally.invalid, tally.encoding) == (4, 0, "utf-8")


def test_utf8_tally_calls_a_file_latin1_only_when_bad_bytes_outnumber_good_characters():
    for text, expected in ((b"caf\xe9 ol\xe9", "latin-1"), ("zoë ".encode() + b"caf\xe9", "utf-8"),
                           ("zoë".encode() + b"\xe9\xe9", "latin-1"), (b"plain", "utf-8"), (b"cut \xc3", "latin-1")):
        tally = Utf8Tally()
        tally.add(text)
        tally.finish()
        assert tally.encoding == expected, text


# -- quotes -------------------------------------------------------------------------------------


def _thirty_rows(stray_lines):
    rows = [f"u{i},it{i},{1600000000 + i}\n" for i in range(30)]
    for line in stray_lines:
        i = line - 2
        rows[i] = f'u{i},"it{i},{1600000000 + i}\n'
    return HEADER + "".join(rows)


def test_a_stray_quote_rejects_its_line_naming_where_it_ran_to_and_the_rows_after_it_read(workspace, tmp_path):
    report = _events(workspace, _write(tmp_path, "quotes.csv", _thirty_rows([5, 25])))
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (30, 28, 2)
    assert _rejected(report) == [
        (5, "item", 'a quoted field opened here is not closed before line 25 (a quote inside a value is written "")'),
        (25, "item", 'a quoted field opened here is not closed before the end of the file '
                     '(a quote inside a value is written "")'),
    ]
    assert report.rejected[0].raw == 'u3,"it3,1600000003'
    assert workspace.counts()["events"] == 28


def test_stray_quotes_across_small_blocks_count_every_row(workspace, tmp_path, small_blocks):
    report = _events(workspace, _write(tmp_path, "quotes.csv", _thirty_rows([3, 4, 12, 13, 29])), chunk_rows=3)
    assert report.rows_read == 30
    assert (report.rows_read, report.rows_accepted) == (30, 25)
    assert [line for line, _, _ in _rejected(report)] == [3, 4, 12, 13, 29]


def test_a_stray_quote_fails_a_strict_import_at_its_line(workspace, tmp_path):
    with pytest.raises(CsvImportError) as error:
        _events(workspace, _write(tmp_path, "quotes.csv", _thirty_rows([5])), strict=True)
    assert (error.value.line, error.value.column) == (5, "item") and "not closed" in error.value.reason


def test_a_quoted_value_over_several_lines_is_still_one_value_in_a_free_text_column(workspace, tmp_path):
    items = _write(tmp_path, "items.csv", 'item,title\na,"Two\nlines"\nb,"Say ""hi"""\n')
    import_files(workspace, items=items)
    assert workspace.items_frame().set_index("external_id")["title"].to_dict() == {"a": "Two\nlines", "b": 'Say "hi"'}


# -- header names -------------------------------------------------------------------------------


def test_a_repeated_header_name_keeps_both_columns_under_distinct_names(workspace, tmp_path):
    users = _write(tmp_path, "users.csv", "user,age,age,age_2\nu1,20,30,40\n")
    assert sniff(users).columns == ["user", "age", "age_3", "age_2"]
    report = import_files(workspace, users=users).file("users")
    assert report.renamed == {"age_3": "age"}
    attributes = workspace.users_frame().set_index("external_id")["attributes"]["u1"]
    assert json.loads(attributes) == {"age": 20, "age_3": 30, "age_2": 40}


# -- repeated events ----------------------------------------------------------------------------

DAY1 = "user,item,timestamp,event,rating\nu1,a,1600000000,view,\nu1,b,1600000000,view,4\nu2,a,1600000100,buy,5\n"
DAY2 = DAY1 + "u2,a,1600000100,buy,4\nu1,a,1600000000,cart,\nu3,c,1600000200,view,\nu3,c,1600000200,view,\n"


def test_a_semicolon_file_reads_decimal_commas_in_its_values(workspace, tmp_path):
    """A spreadsheet saved as CSV where the decimal mark is a comma separates with semicolons and writes
    '20,08': every row of such a log was rejected ("value '20,08' is not a number")."""
    path = _write(tmp_path, "eu.csv", "user;item;timestamp;price\nu1;a;1600000000;20,08\nu1;b;1600000001;-3,5\n"
                                      "u2;a;1600000002;7\nu2;b;1600000003;1.234,5 €\nu2;c;1600000004;0.125\n"
                                      "u2;d;1600000005;12,5x\n")
    report = _events(workspace, path)
    assert (report.rows_accepted, _rejected(report)) == (5, [(7, "price", "value '12,5x' is not a number")])
    with sqlite3.connect(workspace.path) as raw:
        assert [row[0] for row in raw.execute("SELECT value FROM events ORDER BY id")] == [20.08, -3.5, 7.0, 1234.5,
                                                                                           0.125]
    comma = _write(tmp_path, "us.csv", 'user,item,timestamp,price\nu3,a,1600000004,"20,08"\n')
    assert _rejected(_events(workspace, comma)) == [(2, "price", "value '20,08' is not a number")]  # "20,08" is ambiguous there


def test_amounts_written_with_a_currency_mark_or_thousands_marks_are_numbers(workspace, tmp_path):
    """A shop's order export: three of four orders were refused for "$12.50", "$1,200.00" and "€9.99"."""
    text = ('Customer ID,Product,Order Date,Amount\r\nC001,A,2024-03-01 10:15:00,$12.50\r\n'
            'C001,B,2024-03-02 11:00:00,"$1,200.00"\r\nC002,A,2024-03-02 12:30:00,€9.99\r\n'
            'C003,C,2024-03-03 09:00:00,£ 3\r\nC003,D,2024-03-03 09:01:00,"-1,234"\r\nC004,E,2024-03-04 09:00:00,"0,125"\r\n')
    report = _events(workspace, _write(tmp_path, "orders.csv", text))
    assert _rejected(report) == [(7, "Amount", "value '0,125' is not a number")]  # a decimal comma is ambiguous there
    with sqlite3.connect(workspace.path) as raw:
        assert [row[0] for row in raw.execute("SELECT value FROM events ORDER BY id")] == [12.5, 1200.0, 9.99, 3.0,
                                                                                           -1234.0]


def test_an_overlapping_export_adds_only_the_new_events_and_counts_the_repeats(workspace, tmp_path):
    import_files(workspace, events=_write(tmp_path, "day1.csv", DAY1))
    report = _events(workspace, _write(tmp_path, "day2.csv", DAY2))
    # 3 rows repeat day 1, the second "u3,c" repeats the first; a value or type that differs is a new event.
    assert (report.rows_read, report.rows_accepted, report.duplicates) == (7, 3, 4)
    assert workspace.counts()["events"] == 6
    with sqlite3.connect(workspace.path) as raw:
        options = raw.execute("SELECT options FROM imports WHERE id = ?", (report.import_id,)).fetchone()[0]
    assert '"duplicates_skipped":4' in options and '"time_unit":"seconds"' in options


def test_keep_duplicates_keeps_every_row(workspace, tmp_path):
    import_files(workspace, events=_write(tmp_path, "day1.csv", DAY1))
    report = _events(workspace, _write(tmp_path, "day2.csv", DAY2), keep_duplicates=True)
    assert (report.rows_accepted, report.duplicates) == (7, 0) and workspace.counts()["events"] == 10


def test_repeats_are_found_when_the_indexes_are_rebuilt_after_a_big_import(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(import_run, "_REBUILD_MIN_ROWS", 1)
    report = _events(workspace, _write(tmp_path, "day2.csv", DAY2))
    assert (report.rows_accepted, report.duplicates) == (6, 1)
    with sqlite3.connect(workspace.path) as raw:
        names = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ix_events_user_ts" in names


def test_an_id_repeated_in_a_profile_file_is_counted_and_its_last_row_kept(workspace, tmp_path):
    """A catalogue export listing an item twice kept only its last row without a word."""
    from core.importing import import_files

    items = tmp_path / "items.csv"
    items.write_text("item_id,title\np1,First\np2,Other\np1,Second\n")
    report = import_files(workspace, items=items).file("items")
    assert report.rows_accepted == 3 and report.ids_repeated == 1
    assert workspace.items_frame().set_index("external_id").loc["p1", "title"] == "Second"
    again = tmp_path / "items2.csv"
    again.write_text("item_id,title\np2,Renamed\np3,New\n")  # an id from an earlier file is an update, not a repeat
    assert import_files(workspace, items=again).file("items").ids_repeated == 0
