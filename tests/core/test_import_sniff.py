"""Sniffing and column roles: delimiters, headers, encodings, time formats, category flags."""

import datetime
import json

import pytest

from core.importing import CsvImportError, ImportOptions, import_files, sniff
from core.store import Workspace


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.mark.parametrize("delimiter", [",", "\t", "|", ";"])
def test_delimiter_header_and_roles(tmp_path, delimiter):
    rows = [["customer_id", "sku", "date", "action", "price"], ["c1", "s1", "2024-01-02", "buy", "9.5"],
            ["c2", "s2", "2024-01-03", "view", ""]]
    path = _write(tmp_path, "e.csv", "\n".join(delimiter.join(r) for r in rows) + "\n")
    result = sniff(path)
    assert result.delimiter == delimiter and result.has_header and result.encoding == "utf-8"
    assert result.roles == {"user": "customer_id", "item": "sku", "time": "date", "event": "action", "value": "price"}
    assert result.preview == rows[1:]


@pytest.mark.parametrize("header, row, roles", [
    ("review_id,user_id,business_id,stars,date", "KU_O5,mh_-eM,XQfwV,3.0,2018-07-07 22:09:11",
     {"user": "user_id", "item": "business_id", "value": "stars", "time": "date"}),  # Yelp
    ("reviewerID,asin,overall,unixReviewTime", "A2SUAM1J3GNN3B,0000013714,5.0,1393545600",
     {"user": "reviewerID", "item": "asin", "time": "unixReviewTime"}),  # Amazon reviews
    ("session_id,timestamp,item_id", "1,2014-04-07T10:51:09.277Z,214536502",
     {"user": "session_id", "item": "item_id", "time": "timestamp"}),  # a session-based log
    ("User-ID;ISBN;Book-Rating", "276725;034545104X;0", {"user": "User-ID", "item": "ISBN", "value": "Book-Rating"}),
    ("session_id,user_id,track_id,ts", "1,u1,t1,1700000000", {"user": "user_id", "item": "track_id", "time": "ts"}),
    ("order_id,customer_email,sku,quantity,created_at", "1001,a@example.com,SKU-1,2,2024-03-01 10:15:00 -0500",
     {"user": "customer_email", "item": "sku", "value": "quantity", "time": "created_at"}),  # an order export
])
def test_public_logs_own_names_for_shopper_and_item_are_guessed(tmp_path, header, row, roles):
    """Each of these had to be mapped by hand (--map), though their names leave no doubt."""
    assert sniff(_write(tmp_path, "log.csv", f"{header}\n{row}\n")).roles == roles


def test_a_user_column_mostly_written_na_gives_way_to_the_session(workspace, tmp_path):
    """Diginetica's item views: userId is NA for most rows, so all of them became one shopper "NA"
    (81,603 events of 159,366 in a like file) and their repeats on a day were skipped as duplicates."""
    views = _write(tmp_path, "train-item-views.csv", "sessionId;userId;itemId;timeframe;eventdate\n"
                   "1;NA;81766;526309;2016-05-09\n1;NA;31331;1031018;2016-05-09\n2;NA;32118;243569;2016-05-09\n"
                   "3;78;12345;0;2016-05-10\n")
    assert sniff(views).roles["user"] == "sessionId"
    import_files(workspace, events=views)
    assert workspace.user_sequence("1")["item"].tolist() == ["81766", "31331"] and workspace.counts()["users"] == 3
    mostly_filled = _write(tmp_path, "log.csv", "session_id,user_id,item_id\ns1,u1,a\ns2,NA,b\ns3,u2,c\n")
    assert sniff(mostly_filled).roles["user"] == "user_id"


def test_names_we_do_not_know_still_find_the_times_and_category_lists_the_values_show(tmp_path):
    events = _write(tmp_path, "e.csv", "zeit;kunde;artikel;aktion\n2025-05-05T16:38:02.67+01:00;k1;a1;view\n"
                                       "2025-05-05T16:41:58+01:00;k1;a2;cart\n")
    assert sniff(events).roles == {"time": "zeit"}  # the ids and the event type are for the user to name
    rows = [f"A{n},Artikel {n},{('Molkerei|Bio', 'Backwaren', 'Obst|Bio')[n % 3]},2024-01-0{n + 1}" for n in range(6)]
    items = _write(tmp_path, "i.csv", "sku,name,rubrik,seit\n" + "\n".join(rows) + "\n")
    assert sniff(items).roles == {"item": "sku", "title": "name", "categories": "rubrik", "time": "seit"}
    millis = _write(tmp_path, "m.csv", "user_id,product_id,event_time_ms,store_nr\n7,5,1702339244763,123456789\n")
    assert sniff(millis).roles == {"user": "user_id", "item": "product_id", "time": "event_time_ms"}
    titles = _write(tmp_path, "t.csv", "sku,bezeichnung\n" + "".join(f"A{n},Hofladen | Sorte {n}\n" for n in range(6)))
    assert "categories" not in sniff(titles).roles  # a brand before each name: text, not categories


def test_a_date_and_a_time_of_day_in_two_columns_are_read_as_one_time(tmp_path):
    """Till and web-shop exports write the date and the time of day apart: "time" (an alias) held only
    14:05s, so every row was refused, and an order_date beside its order_time kept each day in file order."""
    till = _write(tmp_path, "till.csv", "user,item,date,time\nu1,a,2025-03-01,10:15:00\nu1,b,2025-03-01,9:05 AM\n")
    assert sniff(till).roles == {"user": "user", "item": "item", "time": "date", "time_of_day": "time"}
    shop = _write(tmp_path, "shop.csv", "order_date;order_time;customer;sku\n01.03.2025;09:15;c1;A\n"
                                        "02.03.2025;bad;c1;B\n03.03.2025;18:40;c2;A\n")
    assert sniff(shop).roles == {"user": "customer", "item": "sku", "time": "order_date", "time_of_day": "order_time"}
    digits = _write(tmp_path, "d.csv", "user,item,date,at\nu1,a,20250301,14:05\n")
    assert sniff(digits).roles["time_of_day"] == "at"
    moments = _write(tmp_path, "m.csv", "user,item,timestamp,slot\nu1,a,2025-03-01T10:00:00,10:00\n")
    assert "time_of_day" not in sniff(moments).roles  # the time tells its time of day already
    days = _write(tmp_path, "days.csv", "user,item,date,store\nu1,a,2025-03-01,12\n")
    assert sniff(days).roles == {"user": "user", "item": "item", "time": "date"}


def test_a_time_named_by_hand_drops_the_guessed_time_of_day(workspace, tmp_path):
    path = _write(tmp_path, "t.csv", "user,item,date,time,created\nu1,a,2025-03-01,10:15,2025-03-01T10:15:07\n")
    report = import_files(workspace, events=path, options=ImportOptions(roles={"time": "created"})).file("events")
    assert report.roles == {"user": "user", "item": "item", "time": "created"} and report.rows_accepted == 1


def test_a_header_of_words_above_ids_with_digits_is_a_header(tmp_path):
    """A users file with names no alias knows and no numbers nor times below: its first line was a user."""
    users = _write(tmp_path, "kunden.csv", "kunden_nr,segment\nK1,gold\nK2,silber\nK3,gold\n")
    assert sniff(users).has_header and sniff(users).columns == ["kunden_nr", "segment"]
    headerless = _write(tmp_path, "pairs.csv", "alice,apple\nbob,pear\ncarol,fig\n")  # words all the way down
    assert not sniff(headerless).has_header


def test_headerless_file_gets_generated_names_and_value_based_roles(tmp_path):
    path = _write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    result = sniff(path)
    assert not result.has_header and result.columns == ["col1", "col2", "col3", "col4"]
    assert result.roles == {"user": "col1", "item": "col2", "time": "col4", "value": "col3"}


def test_headerless_written_dates_are_the_time_wherever_they_stand(workspace, tmp_path):
    """YooChoose's clicks (session, time, item, category) were read as user, item = the times and time =
    the item ids (unix seconds in 1976): 159,362 items from 159,366 clicks."""
    clicks = _write(tmp_path, "yoochoose-clicks.dat", "1,2014-04-07T10:51:09.277Z,214536502,0\n"
                    "1,2014-04-07T10:54:09.868Z,214536500,S\n2,2014-04-07T13:56:37.614Z,214536502,0\n")
    result = sniff(clicks)
    assert not result.has_header and result.roles["user"] == "col1" and result.roles["item"] == "col3"
    assert result.roles["time"] == "col2" and "value" not in result.roles
    import_files(workspace, events=clicks)
    assert workspace.user_sequence("1")["item"].tolist() == ["214536502", "214536500"]
    first = _write(tmp_path, "time_first.csv", "03.01.2025 10:15,u1,p1\n03.01.2025 10:16,u1,p2\n")
    assert {r: sniff(first).roles[r] for r in ("user", "item", "time")} == {"user": "col2", "item": "col3",
                                                                           "time": "col1"}


def test_utf8_bom_and_latin1_fallback(workspace, tmp_path):
    bom = _write(tmp_path, "bom.csv", "\ufeffuserId,movieId,title\nu1,m1,Amélie\n".encode("utf-8"))
    assert sniff(bom).columns == ["userId", "movieId", "title"] and sniff(bom).encoding == "utf-8"
    latin = _write(tmp_path, "latin.csv", "item_id,title\nm1,Amélie\nm2,Café\n".encode("latin-1"))
    assert sniff(latin).encoding == "latin-1"
    import_files(workspace, items=latin)
    assert workspace.items_frame()["title"].tolist() == ["Amélie", "Café"]


def test_time_formats_unix_seconds_iso_dates(workspace, tmp_path):
    text = ("user,item,time\n" "a,x,1600000000\n" "a,y,1600000001\n" "a,z,2020-09-13T12:26:42Z\n"
            "a,w,2020-09-14\n" "a,v,2020-09-13 14:26:43+02:00\n")
    report = import_files(workspace, events=_write(tmp_path, "t.csv", text))
    assert workspace.get_meta("time_kind") == "unix" and report.file("events").time_unit == "seconds"
    ts = workspace.user_sequence("a").set_index("item")["ts"]
    assert ts["x"] == 1600000000.0 and ts["y"] == 1600000001.0 and ts["z"] == 1600000002.0
    assert ts["v"] == 1600000003.0 and ts["w"] == 1600041600.0


def _utc(*when) -> float:
    return datetime.datetime(*when, tzinfo=datetime.timezone.utc).timestamp()


def test_slashed_dates_read_in_the_order_the_file_shows_else_the_workspace_s_else_the_one_named(workspace, tmp_path):
    """A US shop's export (12/31/2024 2:05 PM) had every row refused as unparseable."""
    us = _write(tmp_path, "us.csv", "customer,sku,order_date\nc1,a,03/01/2025 10:15\nc1,b,03/15/2025\n"
                                     "c2,a,12/31/2024 2:05 PM\nc2,c,02/30/2025\nc3,d,13/13/2025\nc5,a,3/9/25 9:05 AM\n")
    report = import_files(workspace, events=us).file("events")
    assert report.roles["time"] == "order_date" and report.time_unit == "MM/DD/YYYY"  # one wrong date does not decide
    assert (report.rows_accepted, [r.line for r in report.rejected]) == (4, [5, 6])
    assert workspace.user_sequence("c5")["ts"].tolist() == [_utc(2025, 3, 9, 9, 5)]  # a two-digit year is 20xx
    ts = workspace.user_sequence("c1").set_index("item")["ts"]
    assert ts["a"] == _utc(2025, 3, 1, 10, 15) and ts["b"] == _utc(2025, 3, 15)
    assert workspace.user_sequence("c2")["ts"].tolist() == [_utc(2024, 12, 31, 14, 5)]
    assert workspace.get_meta("date_order") == "mdy"
    week = _write(tmp_path, "week.csv", "customer,sku,order_date\nc1,e,03/05/2025\nc4,a,04/06/2025\n")
    assert import_files(workspace, events=week).file("events").rows_accepted == 2  # read as the workspace's
    assert workspace.user_sequence("c4")["ts"].tolist() == [_utc(2025, 4, 6)]
    with Workspace.open(tmp_path / "fresh.sqlite") as fresh:
        unsure = import_files(fresh, events=week).file("events")
        assert unsure.rows_accepted == 0 and unsure.rejected[0].reason == (
            "time '03/05/2025' could be month first or day first, and no date read so far says which: "
            "name the order (--date-order mdy or dmy; Dates in the import dialog)")
        named = import_files(fresh, events=week, options=ImportOptions(date_order="dmy")).file("events")
        assert not named.duplicate and named.rows_accepted == 2 and named.time_unit == "DD/MM/YYYY"
        assert fresh.user_sequence("c4")["ts"].tolist() == [_utc(2025, 6, 4)]
    european = _write(tmp_path, "eu.csv", "user,item,date\nu1,a,31/12/2024\nu1,b,05/01/2025 18:30\n")
    with Workspace.open(tmp_path / "eu.sqlite") as other:
        assert import_files(other, events=european).file("events").time_unit == "DD/MM/YYYY"
        assert other.user_sequence("u1")["ts"].tolist() == [_utc(2024, 12, 31), _utc(2025, 1, 5, 18, 30)]


def test_a_later_block_s_dates_decide_the_order_of_a_first_block_that_tells_none(workspace, tmp_path):
    """A log whose first weeks fall on days 1 to 12 of their months told no order in its first block
    (64 KiB at least), whose every row was refused as ambiguous, though the file went on to 25/05."""
    rows = [f"u{n % 50},i{n},{1 + n % 12:02d}/05/2025" for n in range(6000)] + ["u1,i1,25/05/2025"]
    path = _write(tmp_path, "may.csv", "user,item,date\n" + "\n".join(rows) + "\n")
    report = import_files(workspace, events=path, options=ImportOptions(chunk_rows=1000)).file("events")
    assert (report.rows_accepted, report.rows_rejected, report.time_unit) == (6001, 0, "DD/MM/YYYY")
    assert workspace.user_sequence("u0")["ts"].tolist()[0] == _utc(2025, 5, 1)
    assert workspace.get_meta("date_order") == "dmy"
    unsure = _write(tmp_path, "unsure.csv", "user,item,date\n" + "\n".join(rows[:6000]) + "\n")
    with Workspace.open(tmp_path / "fresh.sqlite") as fresh:  # nothing further on tells: refused, as before
        assert import_files(fresh, events=unsure).file("events").rows_accepted == 0


def test_a_header_of_names_no_alias_knows_above_a_column_of_times_is_a_header(workspace, tmp_path):
    """A German header above ISO times was read as an event: user 'kunde', item 'artikel'."""
    german = _write(tmp_path, "de.csv", "kunde,artikel,zeitpunkt\nu1,p2,2025-03-01T11:00:00Z\n"
                                        "u1,p1,2025-03-01T10:00:00Z\nu2,p1,2025-03-01T12:00:00+01:00\n")
    assert sniff(german).has_header
    import_files(workspace, events=german,
                 options=ImportOptions(roles={"user": "kunde", "item": "artikel", "time": "zeitpunkt"}))
    assert workspace.counts()["users"] == 2 and workspace.get_meta("time_kind") == "unix"
    assert workspace.user_sequence("u1")["item"].tolist() == ["p1", "p2"]
    headerless = _write(tmp_path, "h.csv", "u1,p1,\nu1,p2,2025-03-01T11:00:00Z\n")  # an empty first time is no header
    assert not sniff(headerless).has_header


def test_a_time_column_with_a_name_no_alias_knows_is_found_by_its_times(tmp_path):
    """'visited_at' or 'event_timestamp' were left unread: the log was silently imported in file order."""
    named = _write(tmp_path, "n.csv", "user_id,item_id,order_id,visited_at\nu1,a,1234567890,2025-03-01 10:00:00\n")
    assert sniff(named).roles == {"user": "user_id", "item": "item_id", "time": "visited_at"}
    ms = _write(tmp_path, "ms.csv", "user_id,item_id,order_id,event_timestamp\nu1,a,1234567890,1740823200000\n")
    assert sniff(ms).roles == {"user": "user_id", "item": "item_id", "time": "event_timestamp"}  # not the order id
    ids = _write(tmp_path, "ids.csv", "user_id,item_id,order_id\nu1,a,1234567890\n")
    assert "time" not in sniff(ids).roles  # a big number under another name is no clock
    both = _write(tmp_path, "both.csv", "user_id,item_id,event_date,event_timestamp\nu1,a,20250301,1740823200000000\n")
    assert sniff(both).roles["time"] == "event_timestamp"  # the time of day, not the day alone


def test_an_items_or_users_file_whose_id_column_is_just_id_is_read_by_it(workspace, tmp_path):
    """'id,name,category' is how most catalogue exports start: it was refused ('no item column')."""
    items = _write(tmp_path, "i.csv", "id,name,category\np1,Mug,Kitchen\n")
    users = _write(tmp_path, "u.csv", "id,segment\nu1,gold\n")
    events = _write(tmp_path, "e.csv", "id,user_id,item_id,timestamp\n9,u1,p1,1600000000\n")
    import_files(workspace, events=events, items=items, users=users)
    assert workspace.item("p1")["title"] == "Mug" and workspace.user_attributes("u1") == {"segment": "gold"}
    assert workspace.counts()["items"] == 1  # an events file's "id" is an event's, never the item


def test_common_export_names_take_their_roles(tmp_path):
    """An analytics export (GA4's user_pseudo_id, event_name) lost its users or its event types."""
    ga = _write(tmp_path, "ga.csv", "event_timestamp,user_pseudo_id,item_id,event_name,qty\n"
                                    "1740823200000000,u.1,a,view_item,2\n")
    assert sniff(ga).roles == {"user": "user_pseudo_id", "item": "item_id", "time": "event_timestamp",
                               "event": "event_name", "value": "qty"}
    shop = _write(tmp_path, "shop.csv", "member_id,product_code,created_at\nm1,p1,2025-03-01T10:00:00Z\n")
    assert sniff(shop).roles == {"user": "member_id", "item": "product_code", "time": "created_at"}


def test_no_time_column_means_file_order(workspace, tmp_path):
    import_files(workspace, events=_write(tmp_path, "e.csv", "user,item\na,x\na,y\nb,x\n"))
    assert workspace.get_meta("time_kind") == "order"
    assert workspace.user_sequence("a")["item"].tolist() == ["x", "y"]


def test_a_second_file_without_times_follows_the_first_unless_it_repeats_it(workspace, tmp_path):
    """Day 2's file restarted at position 0: its events were slotted among day 1's ('a, c, b')."""
    import_files(workspace, events=_write(tmp_path, "day1.csv", "user,item\nu1,a\nu1,b\nu2,a\n"))
    import_files(workspace, events=_write(tmp_path, "day2.csv", "user,item\nu1,c\nu2,d\n"))
    assert workspace.user_sequence("u1")["item"].tolist() == ["a", "b", "c"]
    assert workspace.user_sequence("u2")["item"].tolist() == ["a", "d"]
    # An export that holds everything so far, then new rows: the repeats are skipped, the new rows follow.
    both = "user,item\nu1,a\nu1,b\nu2,a\nu1,c\nu2,d\nu1,e\n"
    report = import_files(workspace, events=_write(tmp_path, "all.csv", both)).file("events")
    assert (report.duplicates, report.rows_accepted) == (5, 1)
    assert workspace.user_sequence("u1")["item"].tolist() == ["a", "b", "c", "e"]


def test_explicit_roles_and_kind_scoped_roles(workspace, tmp_path):
    events = _write(tmp_path, "e.csv", "who,what,when,kind\nu1,i1,5,view\nu1,i2,7,buy\n")
    items = _write(tmp_path, "i.csv", "what,label,colour\ni1,Ball,red\n")
    options = ImportOptions(roles={"user": "who", "item": "what", "time": "when", "event": "kind", "items.title": "label"})
    report = import_files(workspace, events=events, items=items, options=options)
    assert report.file("events").roles == {"user": "who", "item": "what", "time": "when", "event": "kind"}
    seq = workspace.user_sequence("u1")
    assert seq["event_type"].tolist() == ["view", "buy"] and seq["title"].fillna("").tolist() == ["Ball", ""]
    item = workspace.items_frame().set_index("external_id").loc["i1"]
    assert json.loads(item["attributes"]) == {"colour": "red"}


def test_category_flags_named_by_side_file_and_attribute_upsert(workspace, tmp_path):
    _write(tmp_path, "shop.genre", "Toys|0\nGames|1\nBooks|2\n\n")
    items = _write(tmp_path, "shop.item", "7|Chess|1999|0|1|1\n8|Atlas|2001|0|0|1\n9|Blank|2001|0|0|0\n")
    import_files(workspace, items=items)
    frame = workspace.items_frame().set_index("external_id")
    assert frame["categories"].fillna("").to_dict() == {"7": "Games|Books", "8": "Books", "9": ""}
    assert json.loads(frame.loc["7", "attributes"]) == {"col3": 1999}
    again = _write(tmp_path, "more.csv", "item_id,title,stock\n7,Chess deluxe,3\n")
    import_files(workspace, items=again)
    frame = workspace.items_frame().set_index("external_id")
    assert frame.loc["7", "title"] == "Chess deluxe" and frame.loc["7", "categories"] == "Games|Books"
    assert json.loads(frame.loc["7", "attributes"]) == {"col3": 1999, "stock": 3}


def test_quoted_fields_with_newlines_keep_real_line_numbers(workspace, tmp_path):
    text = 'item_id,title,genres\n1,"Two\nlines",A\n,"Also\ntwo",B\n3,"x, y",C|D\n'
    report = import_files(workspace, items=_write(tmp_path, "q.csv", text))
    items = report.file("items")
    assert items.rows_accepted == 2 and [(r.line, r.column) for r in items.rejected] == [(4, "item_id")]
    assert workspace.items_frame().set_index("external_id").loc["1", "title"] == "Two\nlines"


def test_sniff_refuses_what_is_not_text(tmp_path):
    with pytest.raises(CsvImportError, match="binary data"):
        sniff(_write(tmp_path, "x.bin", b"\x00\x01\x02garbage\x00"))
    with pytest.raises(CsvImportError, match="cannot read the file"):
        sniff(tmp_path / "missing.csv")


def test_ids_are_trimmed_the_same_way_in_every_file(workspace, tmp_path):
    import_files(workspace, events=_write(tmp_path, "e.csv", "user,item,step\nu1 , 7 ,0\n"))
    import_files(workspace, items=_write(tmp_path, "i.csv", "item_id,title,price\n 7,Kite , 9.5\n8,Ball,\n"))
    frame = workspace.items_frame().set_index("external_id")
    assert frame["title"].to_dict() == {"7": "Kite", "8": "Ball"}
    assert json.loads(frame.loc["7", "attributes"]) == {"price": 9.5}
    assert workspace.user_sequence("u1")["title"].tolist() == ["Kite"]
