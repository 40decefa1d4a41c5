"""Every CSV the product writes is safe to open in a spreadsheet and is written whole or not at all."""

import csv

import pytest

from core.importing import export_rejected, import_files, read_rejected_rows
from core.safe_csv import neutralise, write_csv
from core.store import Workspace


@pytest.mark.parametrize("cell", ["=1+1", "+A1", "-A1+2", "@SUM(A1)", "\t=1", "\r=1", "\n=1", "\0=1", "  =HYPERLINK(1)",
                                  "=HYPERLINK(\"http://x\",\"click\")", "-", "--1", "+-1"])
def test_formula_like_text_gets_a_leading_apostrophe(cell):
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("value", ["Board game", "", "a=b", "x@y.com", "'=already text", "0", "-0.5", "+3", "-1e-05",
                                   ".5", -0.5, 3, 1.25e-7])
def test_plain_text_and_numbers_stay_as_they_are(value):
    assert neutralise(value) == value


def test_every_text_cell_is_quoted_so_no_separator_can_start_a_cell(tmp_path):
    path = tmp_path / "out.csv"
    assert write_csv(path, ["name", "score"], [["a;=cmd|' /C calc'!A0", -0.25], [None, 2]]) == 2
    text = path.read_text(encoding="utf-8")
    assert text.splitlines() == ['"name","score"', '''"a;=cmd|' /C calc'!A0",-0.25''', '"",2']


def test_a_failure_while_writing_leaves_the_earlier_file_untouched(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("earlier\n")

    def rows():
        yield ["one"]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_csv(path, ["name"], rows())
    assert path.read_text() == "earlier\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_rejected_rows_are_exported_neutralised(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text('user,item,timestamp\nu1,i1,1767225600\n=HYPERLINK("http://evil"),i2,soon\n'
                      "@SUM(1),i3,later\nu2,i1,1767225601\n")
    with Workspace.open(tmp_path / "ws.sqlite") as workspace:
        report = import_files(workspace, events=source)
        out = tmp_path / "rejected.csv"
        assert export_rejected(workspace, report.file("events").import_id, out) == 2
        first, total = read_rejected_rows(workspace, report.file("events").import_id, limit=1)
        assert total == 2 and len(first) == 1 and first[0][:2] == (3, "timestamp")
        assert first[0][3] == '=HYPERLINK("http://evil"),i2,soon'  # stored as read; neutralised only on export
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["raw"] for row in rows] == ["'=HYPERLINK(\"http://evil\"),i2,soon", "'@SUM(1),i3,later"]
    assert [row["line"] for row in rows] == ["3", "4"]
