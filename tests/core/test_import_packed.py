"""CSV logs handed out packed (``events.csv.gz``, a zip of one table) import as the text they hold."""

import gzip
import zipfile

import pytest

from core.importing import CsvImportError, import_files, sniff
from core.store import Workspace

LOG = "customer,sku,ts\n" + "".join(f"c{n % 7},s{n % 13},{1_700_000_000 + 60 * n}\n" for n in range(500))


def _plain_gzip_and_zip(folder):
    plain = folder / "events.csv"
    plain.write_text(LOG)
    packed = folder / "events.csv.gz"
    packed.write_bytes(gzip.compress(LOG.encode()))
    archive = folder / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__MACOSX/._events.csv", b"\x00\x05")  # a Mac's zip: the resource fork is no table
        z.writestr("export/events.csv", LOG)
    return plain, packed, archive


def test_a_gzip_or_zip_log_imports_as_its_text_and_is_the_same_import_as_the_plain_file(tmp_path):
    """A .csv.gz was refused as "binary data", though pandas and every data portal hand logs out so."""
    plain, packed, archive = _plain_gzip_and_zip(tmp_path)
    for path in (packed, archive):
        sniffed = sniff(path)
        assert sniffed.roles == {"user": "customer", "item": "sku", "time": "ts"}
        assert sniffed.size_bytes == len(LOG)  # the text's size: progress and the row estimate follow it
        with Workspace.open(tmp_path / f"{path.name}.sqlite") as workspace:
            report = import_files(workspace, events=path).file("events")
            assert (report.rows_read, report.rows_accepted, report.time_unit) == (500, 500, "seconds")
            assert workspace.user_sequence("c3")["item"].tolist()[:2] == ["s3", "s10"]
            assert import_files(workspace, events=plain).file("events").duplicate  # one log, however packed
    tiny = tmp_path / "tiny.csv.gz"  # smaller than its own packing: its size is still the text's
    tiny.write_bytes(gzip.compress(b"user,item\nu1,i1\n"))
    assert tiny.stat().st_size > 16 and sniff(tiny).size_bytes == 16


def test_a_damaged_or_ambiguous_archive_is_refused_naming_the_file_and_nothing_is_stored(tmp_path):
    _plain, packed, _archive = _plain_gzip_and_zip(tmp_path)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(packed.read_bytes()[:-40])
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as z:
        z.writestr("events.csv", LOG)
        z.writestr("items.csv", "sku,name\ns1,Mug\n")
    with Workspace.open(tmp_path / "w.sqlite") as workspace:
        with pytest.raises(CsvImportError, match="cannot read the file") as cut_error:
            import_files(workspace, events=cut)
        with pytest.raises(CsvImportError, match=r"the archive holds 2 files \(events.csv, items.csv\): unpack it"):
            import_files(workspace, events=two)
        assert str(cut_error.value).startswith(f"{cut}") and workspace.counts()["events"] == 0


def test_an_excel_workbook_is_refused_saying_to_save_it_as_csv(tmp_path):
    """An .xlsx is a zip of XML parts: it was refused as "the archive holds 2 files ...: unpack it"."""
    workbook = tmp_path / "orders.xlsx"
    with zipfile.ZipFile(workbook, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    with Workspace.open(tmp_path / "w.sqlite") as workspace:
        with pytest.raises(CsvImportError, match=r"an Excel workbook, not a table of text: save the sheet as CSV"):
            import_files(workspace, events=workbook)
        assert workspace.counts()["events"] == 0
