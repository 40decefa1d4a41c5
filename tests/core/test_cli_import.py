"""`nextpick import`: what it says about the files it read, the rows it kept and the ones it could not."""

import json
import sqlite3

import pandas as pd
import pytest

from cli_run import run
from core.demo import DemoConfig, write_demo_csv
from core.errors import UsageError
from core.importing import ImportOptions


def test_an_import_without_a_time_column_says_the_files_order_is_used(tmp_path, capsys):
    events = tmp_path / "e.csv"
    events.write_text("user_id,product_id,seen\nu1,a,yesterday\nu1,b,today\n")
    code, out, err = run(capsys, "import", events, "--db", tmp_path / "w.sqlite")
    assert code == 0, err
    assert "no time column: events kept in the file's order (name one with --map time=COLUMN)" in out
    events.write_text("user_id,product_id,event_time_ms\nu1,a,1702339244763\nu1,b,1702339245763\n")
    code, out, err = run(capsys, "import", events, "--db", tmp_path / "w2.sqlite")
    assert code == 0 and "times read as unix milliseconds" in out and "no time column" not in out


def test_an_items_file_listing_an_id_twice_says_which_row_is_kept(tmp_path, capsys):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\np1,First\np1,Second\n")
    code, out, err = run(capsys, "import", "--items", items, "--db", tmp_path / "w.sqlite")
    assert code == 0, err
    assert "1 row repeats an id an earlier row gave: the last row of each id is what is kept" in out


def test_import_of_generated_files_reports_every_row(tmp_path, capsys):
    files = write_demo_csv(tmp_path / "csv", DemoConfig(n_users=200, n_items=80, seed=9))
    db = tmp_path / "shop.sqlite"
    code, out, err = run(capsys, "import", files.events, "--items", files.items, "--users", files.users,
                         "--db", db, "--json")
    assert code == 0, err
    report = json.loads(out)
    by_kind = {f["kind"]: f for f in report["files"]}
    assert by_kind["events"]["rows_accepted"] == files.n_events and by_kind["events"]["rows_rejected"] == 0
    assert by_kind["events"]["time_unit"] == "seconds" and by_kind["events"]["duplicates_skipped"] == 0
    assert by_kind["items"]["rows_accepted"] == 80 and by_kind["users"]["rows_accepted"] == 200
    assert report["counts"] == {"users": 200, "items": 80, "events": files.n_events}
    code, out, _ = run(capsys, "import", files.events, "--db", db)
    assert code == 0 and "already imported" in out


def test_import_caches_the_users_and_sequences_the_studio_reads_first(tmp_path, capsys):
    from core.engine import Engine

    files = write_demo_csv(tmp_path / "csv", DemoConfig(n_users=60, n_items=60, seed=4))
    db = tmp_path / "shop.sqlite"
    assert run(capsys, "import", files.events, "--db", db, "--json")[0] == 0
    engine = Engine.open(db)
    assert engine.prepared()  # the studio's Explore maps them instead of preparing in its job process
    assert engine.user_count() == engine.workspace.counts()["users"]
    engine.workspace.close()


def test_rejected_rows_are_listed_and_exported(tmp_path, capsys):
    source = tmp_path / "log.csv"
    source.write_text("customer,sku,when\nc1,s1,2026-01-01T10:00:00\nc1,s2,yesterday\nc2,s1,2026-01-02\n")
    rejected = tmp_path / "rejected.csv"
    code, out, _ = run(capsys, "import", source, "--map", "user=customer", "--map", "item=sku",
                       "--map", "time=when", "--db", tmp_path / "ws.sqlite", "--rejected-out", rejected)
    assert code == 0
    assert "3 rows read, 2 accepted, 1 rejected" in out and "line 3, column 'when'" in out
    rows = pd.read_csv(rejected)
    assert rows.line.tolist() == [3] and rows.column.tolist() == ["when"]


def test_strict_import_of_a_bad_row_fails_naming_file_and_line(tmp_path, capsys):
    source = tmp_path / "broken.csv"
    source.write_text("user_id,item_id,timestamp\nu1,i1,1767225600\nu1,i2,soon\n")
    db = tmp_path / "new.sqlite"
    code, out, err = run(capsys, "import", source, "--db", db, "--strict")
    assert code == 1 and out == ""
    assert "broken.csv, line 3" in err and "Traceback" not in err
    assert not db.exists()  # a failed first import leaves no empty workspace behind


def test_a_failed_first_import_removes_the_folders_it_made_for_the_workspace(tmp_path, capsys):
    source = tmp_path / "broken.csv"
    source.write_text("user_id,item_id,timestamp\nu1,i1,1767225600\nu1,i2,soon\n")
    (tmp_path / "shop").mkdir()
    code, _, err = run(capsys, "import", source, "--db", tmp_path / "shop" / "2026" / "december" / "ws.sqlite", "--strict")
    assert code == 1 and "broken.csv, line 3" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.csv", "shop"]
    assert not any((tmp_path / "shop").iterdir())  # the folder that was there stays; the two made are gone


def test_binary_garbage_fails_with_a_message(tmp_path, capsys):
    source = tmp_path / "garbage.csv"
    source.write_bytes(b"\x00\x01\x02\xff\xfe garbage")
    code, _, err = run(capsys, "import", source, "--db", tmp_path / "ws.sqlite")
    assert code == 1 and "garbage.csv, line 1" in err and "Traceback" not in err


def test_headerless_files_get_column_names_from_the_command_line(tmp_path, capsys):
    events, users = tmp_path / "log.tsv", tmp_path / "people.tsv"
    events.write_text("1\t10\t5\t881250949\n1\t11\t3\t881250950\n2\t10\t4\t881250951\n")
    users.write_text("1\t24\tM\n2\t53\tF\n")
    db = tmp_path / "ws.sqlite"
    code, _, err = run(capsys, "import", events, "--users", users, "--columns", "users=user,age,gender", "--db", db)
    assert code == 0, err
    from core.store import Workspace

    with Workspace.open(db) as workspace:
        profile = json.loads(workspace.users_frame().set_index("external_id").loc["2", "attributes"])
    assert profile == {"age": 53, "gender": "F"}
    code, _, err = run(capsys, "import", events, "--columns", "people=a,b", "--db", tmp_path / "other.sqlite")
    assert code == 2 and "argument --columns: expects KIND=" in err


def test_import_says_which_column_was_read_in_which_role(tmp_path, capsys):
    """A guess gone wrong (the quantity left unread, a category column kept as a mere attribute) showed
    only later, in the models; the report now says how each file's columns were read."""
    events, items = tmp_path / "log.csv", tmp_path / "catalogue.csv"
    events.write_text("ts,customer,sku,action,qty,value\n1700000000,c1,s1,view,2,9.5\n")
    items.write_text("sku,name,category_path,brand\ns1,Mug,Home > Kitchen,Acme\n")
    code, out, _ = run(capsys, "import", events, "--items", items, "--db", tmp_path / "a.sqlite")
    assert code == 0
    assert "columns read as user=customer, item=sku, time=ts, event=action, value=value; not read: qty" in out
    assert "columns read as item=sku, title=name; kept as attributes: category_path, brand" in out


def test_import_says_which_columns_became_categories(tmp_path, capsys):
    """An items file's trailing 0/1 genre columns become its categories; the report listed them as
    attributes kept, the opposite of what the import did with them."""
    events, items = tmp_path / "log.csv", tmp_path / "films.csv"
    events.write_text("user,item,time\nu1,m1,1700000000\nu1,m2,1700000100\n")
    items.write_text("item,title,year,action,comedy,drama\nm1,Heat,1995,1,0,1\nm2,Babe,1995,0,1,0\n")
    code, out, _ = run(capsys, "import", events, "--items", items, "--db", tmp_path / "a.sqlite")
    assert code == 0
    assert ("columns read as item=item, title=title; categories from 3 0/1 columns, action to drama; "
            "kept as attributes: year") in out


def test_import_says_when_events_have_no_clock(tmp_path, capsys):
    """Without a time column the log is kept in file order: a user whose time column went unread must be told."""
    plain, steps = tmp_path / "plain.csv", tmp_path / "steps.csv"
    plain.write_text("user,item,visited\nu1,a,yesterday\nu1,b,today\n")
    steps.write_text("user,item,step\nu1,a,1\nu1,b,2\n")
    code, out, _ = run(capsys, "import", plain, "--db", tmp_path / "a.sqlite")
    assert code == 0 and "no time column: events kept in the file's order (name one with --map time=COLUMN)" in out
    code, out, _ = run(capsys, "import", steps, "--db", tmp_path / "b.sqlite")
    assert code == 0 and "times read as positions in an order (no clock)" in out


def test_import_of_a_file_whose_every_row_is_rejected_says_what_to_do(tmp_path, capsys):
    log = tmp_path / "till.csv"
    log.write_text("date,shop,customer,product\n2025-03-01,10:15,u1,p1\n2025-03-02,11:15,u1,p2\n")
    code, out, _ = run(capsys, "import", log, "--db", tmp_path / "t.sqlite", "--map", "time=shop")
    assert code == 0 and "2 rows read, 0 accepted, 2 rejected" in out
    assert ("no row of this file was stored: fix what the lines above say (a column read in the wrong role: "
            "import it again with --map ROLE=COLUMN)") in out
    assert "columns read as user=customer, item=product, time=shop; not read: date" in out


def test_import_reads_a_date_and_a_time_of_day_kept_in_two_columns(tmp_path, capsys):
    """A till export's date and time columns: every row was refused ("10:15:00" read as the time), and
    an order_date beside its order_time put each day's events in file order."""
    log = tmp_path / "till.csv"
    log.write_text("date,time,customer,product\n2025-03-01,10:15:00,u1,p1\n2025-03-01,9:05 AM,u1,p2\n"
                   "2025-03-02,half past,u1,p3\n")
    code, out, _ = run(capsys, "import", log, "--db", tmp_path / "t.sqlite")
    assert code == 0 and "3 rows read, 2 accepted, 1 rejected" in out
    assert "columns read as user=customer, item=product, time=date, time_of_day=time" in out
    assert "times read as ISO-8601 dates, each with its time of day from 'time'" in out
    assert "line 4, column 'time': unreadable time of day 'half past': write it as 14:05, 14:05:30 or 2:05 PM" in out
    with sqlite3.connect(tmp_path / "t.sqlite") as db:
        stored = db.execute("SELECT i.external_id, e.ts FROM events e JOIN items i ON i.id = e.item_id ORDER BY e.ts").fetchall()
    assert stored == [("p2", 1740819900.0), ("p1", 1740824100.0)]  # 2025-03-01 09:05 and 10:15 UTC


def test_import_says_how_times_were_read_and_skips_repeated_events_unless_kept(tmp_path, capsys):
    day1 = tmp_path / "day1.csv"
    day1.write_text("user,item,timestamp,event\nu1,a,1700000000000,view\nu2,b,1700000060000,view\n")
    day2 = tmp_path / "day2.csv"
    day2.write_text(day1.read_text() + "u1,a,1700000000000,view\nu3,c,1700000120000,buy\n")
    db = tmp_path / "ws.sqlite"
    assert run(capsys, "import", day1, "--db", db)[0] == 0
    code, out, _ = run(capsys, "import", day2, "--db", db)
    assert code == 0 and "times read as unix milliseconds" in out
    assert "4 rows read, 1 accepted, 0 rejected" in out
    assert "3 duplicate events already in the workspace or the file skipped (--keep-duplicates keeps them)" in out
    dates = tmp_path / "orders.csv"  # a date-only export: a second order of one item on one day reads as a repeat
    dates.write_text("user,item,date\nu1,a,2024-03-01\nu1,a,2024-03-01\nu2,b,2024-03-02\n")
    code, out, _ = run(capsys, "import", dates, "--db", tmp_path / "dates.sqlite")
    assert ("1 duplicate event already in the workspace or the file skipped (--keep-duplicates keeps them; times "
            "are whole days, so two real events on one day read the same)") in out
    day3 = tmp_path / "day3.csv"
    day3.write_text(day2.read_text() + "u4,d,1700000180000,view\n")
    code, out, _ = run(capsys, "import", day3, "--db", db, "--keep-duplicates", "--json")
    assert code == 0 and json.loads(out)["counts"]["events"] == 3 + 5


def test_a_map_to_no_role_is_refused_naming_the_roles(tmp_path, capsys):
    """``--map items.text=description`` (or a misspelt role) was ignored without a word: the column was
    imported as a mere attribute and the user believed it mapped."""
    events, items = tmp_path / "log.csv", tmp_path / "catalogue.csv"
    events.write_text("customer,sku,ts\nc1,s1,1700000000\n")
    items.write_text("sku,name,about\ns1,Mug,A mug\n")
    db = tmp_path / "a.sqlite"
    code, _, err = run(capsys, "import", events, "--items", items, "--map", "items.text=about", "--db", db)
    assert code == 1 and not db.exists()
    assert "cannot use the column 'about' as 'items.text': 'text' is no role of the items file; the roles are item, " \
           "title, categories" in err
    code, _, err = run(capsys, "import", events, "--map", "custmer=customer", "--db", db)
    assert code == 1 and "'custmer' is no role of any file; the roles are user, item, time, time_of_day" in err
    code, _, err = run(capsys, "import", events, "--map", "event.value=ts", "--db", db)
    assert code == 1 and "'event' is no kind of file (events, items or users): write events.value" in err
    with pytest.raises(UsageError):
        ImportOptions(roles={"users.item": "sku"})
    assert ImportOptions(roles={"items.title": "name", "time": "ts"}).roles == {"items.title": "name", "time": "ts"}


def test_a_log_shipped_as_one_file_per_event_type_names_each_file_s_type(tmp_path, capsys):
    """YooChoose ships clicks and buys, Diginetica views, clicks and purchases, in files without a type
    column: every file imported as "interaction", and a purchase could not be told from a view."""
    clicks, buys = tmp_path / "clicks.dat", tmp_path / "buys.dat"
    clicks.write_text("1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:54:09.868Z,214536500,0\n")
    buys.write_text("1,2014-04-07T11:00:00.000Z,214536500,12462,1\n")
    db = tmp_path / "shop.sqlite"
    assert run(capsys, "import", clicks, "--db", db, "--event-type", "click")[0] == 0
    assert run(capsys, "import", buys, "--db", db, "--event-type", "buy")[0] == 0
    code, out, _ = run(capsys, "stats", "--db", db, "--json")
    assert code == 0 and json.loads(out)["event_types"] == {"click": 2, "buy": 1}
    code, out, _ = run(capsys, "import", buys, "--db", db, "--event-type", "purchase")  # read another way: a new import
    assert code == 0 and "already imported" not in out
    with_types = tmp_path / "typed.csv"
    with_types.write_text("user,item,event\nu1,a,view\nu1,b,\n")
    assert run(capsys, "import", with_types, "--db", tmp_path / "typed.sqlite", "--event-type", "view")[0] == 0
    code, out, _ = run(capsys, "stats", "--db", tmp_path / "typed.sqlite", "--json")
    assert json.loads(out)["event_types"] == {"view": 2}  # its empty cell took the file's type
