"""An import into a workspace without events keeps what it wrote (``WholeLog``), and the caches built
from it are the ones a read of the store gives: same sequences, same user directory."""

import shutil
import sqlite3

import numpy as np
import pytest

from core.caches import import_and_prepare as prepare_import
from core.data.sequence_cache import cache_folder
from core.data.sequences import SequenceData
from core.engine import Engine
from core.importing import ImportOptions, LowValues
from core.jobs import import_and_prepare
from core.store import Workspace

# Repeats (u1's second view of a at 100, in the file twice), a low rating stored as negative,
# times out of order within a user, ties broken by file order, a user listed only in the users file.
EVENTS = ("user,item,timestamp,rating\n"
          "u1,a,100,5\n" "u2,b,50,4\n" "u1,c,90,3\n" "u1,a,100,5\n" "u3,b,70,1\n"
          "u2,c,50,4\n" "u2,d,50,4\n" "u1,b,300,2\n" "u3,c,80,5\n" "u1,a,100,5\n" "7,a,10,4\n")
USERS = "user,region\nu9,north\nu1,south\n"


def _import_then_prepare(folder, whole_log: bool, monkeypatch=None):
    (folder / "events.csv").write_text(EVENTS)
    (folder / "users.csv").write_text(USERS)
    workspace = Workspace.open(folder / "shop.sqlite")
    engine = Engine(workspace)
    options = ImportOptions(low_values=LowValues("negative", 2))
    if whole_log:
        monkeypatch.setattr(Workspace, "event_arrays", _not_read_back)
        report = import_and_prepare(engine, folder / "events.csv", users=folder / "users.csv", options=options)
    else:
        report = engine.import_files(folder / "events.csv", users=folder / "users.csv", options=options)
        engine.prepare()
    monkeypatch and monkeypatch.undo()
    return engine, report


def _not_read_back(*_args, **_kwargs):
    raise AssertionError("the events were read back from the store")


def _directory(engine):
    return [(row.user, row.events, row.last_seen) for row in engine.users_page(0, 100, order_by="user")]


def test_caches_from_the_whole_log_equal_those_read_from_the_store(tmp_path, monkeypatch):
    (tmp_path / "kept").mkdir()
    (tmp_path / "read").mkdir()
    kept, report = _import_then_prepare(tmp_path / "kept", whole_log=True, monkeypatch=monkeypatch)
    read, _ = _import_then_prepare(tmp_path / "read", whole_log=False)
    assert report.file("events").duplicates == 2
    fresh = [Engine(Workspace.open(folder / "shop.sqlite")) for folder in (tmp_path / "kept", tmp_path / "read")]
    for engine in fresh:  # each rebuilt from its store, in a new engine without the cached folders
        shutil.rmtree(cache_folder(engine.workspace.path))
    expected = fresh[1].sequence_data()
    for engine in (kept, read, fresh[0]):
        data = engine.sequence_data()
        for name in SequenceData.__dataclass_fields__:
            assert np.array_equal(getattr(data, name), getattr(expected, name)), name
    assert _directory(kept) == _directory(fresh[1]) == _directory(read)
    assert ("u1", 3, 300.0) in _directory(kept) and ("u9", 0, None) in _directory(kept)


def test_no_whole_log_when_the_workspace_had_events(tmp_path):
    """A second import adds to stored events: its caches are read from the store."""
    (tmp_path / "events.csv").write_text(EVENTS)
    (tmp_path / "more.csv").write_text("user,item,timestamp,rating\nu1,d,400,5\n")
    engine = Engine(Workspace.open(tmp_path / "shop.sqlite"))
    logs = []
    engine.import_files(tmp_path / "events.csv", on_whole_log=logs.append)
    engine.import_files(tmp_path / "more.csv", on_whole_log=logs.append)
    assert len(logs) == 1 and len(logs[0].user_id) == 9
    import_and_prepare(engine, tmp_path / "more.csv")  # the same file again: nothing added, nothing prepared
    engine.prepare()
    assert engine.sequence_data().history(engine.sequence_data().user_index_of("u1")).tolist()[-1] == \
        engine.sequence_data().item_index_of(["d"])[0]


@pytest.mark.parametrize("strict", [False, True])
def test_a_failed_import_hands_nothing_on(tmp_path, strict):
    (tmp_path / "bad.csv").write_text("user,item,timestamp\nu1,a,100\nu2,b,notatime\n")
    engine = Engine(Workspace.open(tmp_path / "shop.sqlite"))
    logs = []
    try:
        engine.import_files(tmp_path / "bad.csv", options=ImportOptions(strict=strict), on_whole_log=logs.append)
    except Exception:
        assert strict
    assert len(logs) == (0 if strict else 1)
    if logs:
        assert logs[0].user_id.tolist() == [1]


def test_repeats_within_one_shopper_s_day_are_found_alike_by_a_first_and_a_later_import(tmp_path):
    """Times in whole days: one shopper's views of a day share (user, time). A first import sorts its
    shared groups; a later one sorts its large ones and looks each other new event's twin up. All skip
    exactly the repeats: same item, type and value (a missing value equal to a missing one), never a
    view beside a cart."""
    rows = [f"s7,i{n % 40},2014-05-0{1 + n // 40 % 2},view," for n in range(300)]  # 80 distinct of 300
    rows += ["s7,i1,2014-05-01,cart,", "s7,i1,2014-05-01,cart,2", "s7,i1,2014-05-01,cart,2", "s8,i1,2014-05-01,view,",
             "s8,i1,2014-05-01,view,"]  # a later import sorts its large groups (over HEAVY_GROUP) and looks s8's up
    header = "user,item,date,event,value\n"
    (tmp_path / "all.csv").write_text(header + "\n".join(rows) + "\n")
    (tmp_path / "first.csv").write_text(header + "\n".join(rows[:150]) + "\n")
    (tmp_path / "later.csv").write_text(header + "\n".join(rows[150:]) + "\n")
    once = Workspace.open(tmp_path / "once.sqlite")
    skipped_once = prepare_import(once, events=tmp_path / "all.csv").file("events").duplicates
    twice = Workspace.open(tmp_path / "twice.sqlite")
    skipped_twice = sum(prepare_import(twice, events=tmp_path / name).file("events").duplicates
                        for name in ("first.csv", "later.csv"))
    assert skipped_once == skipped_twice == 220 + 2
    once.close(), twice.close()
    kept = [sqlite3.connect(tmp_path / name).execute("SELECT i.external_id, e.event_type, e.value FROM events e "
                                                     "JOIN items i ON i.id = e.item_id ORDER BY 1, 2, 3").fetchall()
            for name in ("once.sqlite", "twice.sqlite")]
    assert kept[0] == kept[1] and len(kept[0]) == 305 - 222
