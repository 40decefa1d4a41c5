"""How far a run is behind the log: recorded when it is trained, counted on demand, said by `nextpick runs`."""

import json

import pytest

from cli_run import run
from core.importing.live import EventFeed
from core.runs import update_run
from core.runs.lag import RunLag
from service_data import pair_shop_engine


@pytest.fixture
def engine(tmp_path):
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    yield engine
    engine.workspace.close()


def test_a_run_records_where_the_log_ended_and_counts_what_came_after(engine, capsys):
    run_id = engine.serving_run()
    assert engine.run_lag(run_id).describe() == "trained just now · no newer events"
    EventFeed(engine.workspace, "test").post([{"user": "U01", "item": "P00"}, {"user": "NEW", "item": "NEW-ITEM"},
                                              {"user": "NEW", "item": "NEW-ITEM-2"}])
    lag = engine.run_lag(run_id)
    assert (lag.newer_events, lag.new_items) == (3, 2)
    code, out, _ = run(capsys, "runs", "--db", engine.workspace.path)
    assert code == 0 and out.splitlines()[-1] == f"active run #{run_id}: trained just now · 3 newer events · 2 new items"
    code, out, _ = run(capsys, "runs", "--db", engine.workspace.path, "--json")
    behind = json.loads(out)["behind"]
    assert (behind["run"], behind["newer_events"], behind["new_items"]) == (run_id, 3, 2)


def test_a_run_recorded_before_runs_noted_the_log_says_only_when_it_was_trained(engine):
    run_id = engine.serving_run()
    config = {k: v for k, v in engine.run(run_id).config.items() if k != "log"}
    update_run(engine.workspace, run_id, config=json.dumps(config))
    lag = engine.run_lag(run_id)
    assert (lag.newer_events, lag.new_items) == (None, None)
    assert lag.describe(now=lag.trained_at + 2 * 86400 + 5) == "trained 2 days ago"


@pytest.mark.parametrize("seconds, text", [(30, "just now"), (60, "1 minute ago"), (7200, "2 hours ago"),
                                           (86400, "1 day ago")])
def test_ages_read_as_a_person_says_them(seconds, text):
    lag = RunLag(1_000_000.0, 12_480, 37)
    assert lag.describe(now=1_000_000.0 + seconds) == f"trained {text} · 12,480 newer events · 37 new items"
