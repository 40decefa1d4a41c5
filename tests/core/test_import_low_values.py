"""Low ratings at import: kept (the default), dropped, or stored marked negative, which training and
evaluation never count as interactions."""

import json
import sqlite3

import pytest

from cli_run import run
from core.data import build_sequences
from core.errors import UsageError
from core.importing import CsvImportError, ImportOptions, LowValues, import_files
from core.store import Workspace, schema
from core.store.stats import quality_notes, workspace_stats

RATINGS = ("user,item,timestamp,rating\n"
           "u1,a,1600000000,5\n" "u1,b,1600000100,1\n" "u1,c,1600000200,4\n"
           "u2,a,1600000000,2\n" "u2,c,1600000100,\n" "u2,d,1600000200,3\n")


@pytest.fixture
def ratings(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(RATINGS)
    return path


def _import(workspace, path, action, at_most=2.0):
    options = ImportOptions(low_values=LowValues(action, None if action == "keep" else at_most))
    return import_files(workspace, events=path, options=options).file("events")


def _stored(workspace):
    with sqlite3.connect(workspace.path) as raw:
        return raw.execute("SELECT u.external_id, i.external_id, e.value, e.negative FROM events e "
                           "JOIN users u ON u.id = e.user_id JOIN items i ON i.id = e.item_id ORDER BY e.id").fetchall()


def test_low_values_are_kept_by_default(workspace, ratings):
    report = _import(workspace, ratings, "keep")
    assert report.rows_accepted == 6 and report.low_values == 0
    assert all(negative == 0 for *_, negative in _stored(workspace))
    assert len(build_sequences(workspace).items) == 6


def test_dropped_low_values_are_not_stored_and_are_counted(workspace, ratings):
    report = _import(workspace, ratings, "drop")
    assert report.low_values == 2 and report.rows_accepted == 4  # 1 and 2 stars; a missing value is not low
    assert [(user, item) for user, item, *_ in _stored(workspace)] == [("u1", "a"), ("u1", "c"), ("u2", "c"),
                                                                       ("u2", "d")]


def test_negative_low_values_are_stored_as_such_and_never_learned_or_tested_on(workspace, ratings):
    report = _import(workspace, ratings, "negative")
    assert report.low_values == 2 and report.rows_accepted == 6
    marked = {(user, item) for user, item, _, negative in _stored(workspace) if negative}
    assert marked == {("u1", "b"), ("u2", "a")}
    data = build_sequences(workspace)  # what training and evaluation read
    items = {data.item_external[i] for i in data.items}
    assert len(data.items) == 4 and "b" not in items
    assert workspace_stats(workspace).quality.low_values == 0  # no longer counted as interactions
    assert workspace.user_items("u1") == ["a", "c"]  # what a live request is scored from
    assert workspace.user_sequence("u1")["negative"].tolist() == [0, 1, 0]  # shown, marked
    options = json.loads(sqlite3.connect(workspace.path).execute("SELECT options FROM imports").fetchone()[0])
    assert options["low_values"] == {"action": "negative", "at_most": 2.0, "events": 2}


def test_the_data_note_on_low_ratings_points_to_the_import_option(workspace, ratings):
    _import(workspace, ratings, "keep")
    note = next(note for note in quality_notes(workspace_stats(workspace)) if "ratings of 2 or less" in note)
    assert "--low-values negative --low-at-most 2" in note and "Low ratings" in note


def test_nextpick_stats_says_the_data_pages_notes(workspace, ratings, capsys):
    """A person working from the command line was never told what the Data page warns of."""
    _import(workspace, ratings, "keep")
    code, out, _ = run(capsys, "stats", "--db", workspace.path)
    assert code == 0 and "\nnote: 2 ratings of 2 or less count as interactions" in out
    assert "(nextpick import --low-values negative --low-at-most 2)" in " ".join(out.split())  # wrapped whole
    assert "\\n" not in out and max(map(len, out.splitlines())) <= 100
    code, out, _ = run(capsys, "stats", "--db", workspace.path, "--json")
    assert code == 0 and any("ratings of 2 or less" in note for note in json.loads(out)["notes"])


def test_a_threshold_is_required_and_a_value_column_too(workspace, tmp_path):
    with pytest.raises(UsageError, match="at or below which value"):
        LowValues("drop")
    with pytest.raises(UsageError, match="not one of"):
        LowValues("hide", 2)
    plain = tmp_path / "plain.csv"
    plain.write_text("user,item,timestamp\nu1,a,1600000000\n")
    with pytest.raises(CsvImportError, match="no value"):
        _import(workspace, plain, "drop")
    assert workspace.counts()["events"] == 0


def test_import_cli_flags(tmp_path, ratings, capsys):
    db = tmp_path / "cli.sqlite"
    code, out, _ = run(capsys, "import", "--db", db, ratings, "--low-values", "negative", "--low-at-most", "2")
    assert code == 0 and "2 events with a low value stored as negative (dislikes)" in out
    code, _, err = run(capsys, "import", "--db", tmp_path / "other.sqlite", ratings, "--low-values", "drop")
    assert code == 2 and "needs --low-at-most" in err


def test_a_workspace_from_before_negatives_gains_the_column(tmp_path, ratings):
    path = tmp_path / "old.sqlite"
    with Workspace.open(path) as workspace:
        _import(workspace, ratings, "keep")
    with sqlite3.connect(path) as raw:  # as release 1 left it
        raw.execute("ALTER TABLE events DROP COLUMN negative")
        raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with Workspace.open(path) as workspace:
        assert workspace.schema_version == schema.SCHEMA_VERSION
        assert len(workspace.event_arrays()) == 6


def test_dislikes_imported_after_a_run_are_not_news_to_it(tmp_path, ratings):
    from core.engine import Engine
    from core.training import TrainConfig

    engine = Engine.open(tmp_path / "lag.sqlite")
    _import(engine.workspace, ratings, "keep")
    run = engine.train(TrainConfig(model="pop"))
    later = tmp_path / "later.csv"
    later.write_text("user,item,timestamp,rating\nu1,d,1600000300,1\nu2,b,1600000300,2\n")
    _import(engine.workspace, later, "negative")
    assert engine.run_lag(run.id).newer_events == 0
    engine.workspace.close()
