"""``nextpick`` end to end: real files in, exit codes and printed numbers out."""

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.cli import ProgressBar, format_progress, main
from cli_run import run
from core.demo import CATEGORY_NAMES, DemoConfig, write_demo_csv
from core.progress import Progress

TINY_DEMO = ["--users", "300", "--items", "120", "--seed", "3"]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("cli") / "demo.sqlite"
    assert main(["demo", "--db", str(db), *TINY_DEMO]) == 0
    return db


def test_demo_then_stats_json_reports_the_generated_shop(demo_db, tmp_path, capsys):
    files = write_demo_csv(tmp_path, DemoConfig(n_users=300, n_items=120, seed=3))
    events = pd.read_csv(files.events)
    code, out, err = run(capsys, "stats", "--db", demo_db, "--json")
    assert code == 0 and err == ""
    stats = json.loads(out)
    assert (stats["users"], stats["items"], stats["events"]) == (300, 120, len(events))
    assert stats["users_with_events"] == events.user_id.nunique()
    assert stats["event_types"] == events.event_type.value_counts().to_dict()
    assert stats["events_per_user"]["max"] == events.groupby("user_id").size().max()
    assert stats["time_kind"] == "unix" and stats["time_min"] == events.timestamp.min()


def test_stats_text_names_the_numbers_a_person_looks_for(demo_db, capsys):
    code, out, _ = run(capsys, "stats", "--db", demo_db, "--top", "3")
    assert code == 0
    assert "users      300 (" in out and "items      120 (" in out
    assert re.search(r"events per user: min \d+, median \d+", out) and "long tail: the top 10% of items get" in out
    assert "UTC" in out and out.count(" items\n") == 3  # three category lines


def test_stats_keeps_category_counts_in_one_column_whatever_the_names_length():
    from core.cli.data_commands import _stats_lines

    names = ["Bio-Produkte aus der Region und vom Hof", "Tee"]
    stats = {"workspace": "w", "users": 1, "users_with_events": 1, "items": 2, "items_with_events": 2, "events": 10,
             "event_types": {}, "time_min": None, "categories": [{"name": n, "events": 5, "items": 1} for n in names],
             "named_categories": 2, "top_decile_share": 0.5}
    stats["events_per_user"] = {"min": 10, "median": 10, "mean": 10, "p90": 10, "max": 10, "bin_edges": [10, 20],
                                "counts": [1]}
    rows = [line for line in _stats_lines(stats, top=2) if line.endswith(" items")]
    assert len(rows) == 2 and len({row.index(" 5 ") for row in rows}) == 1


def test_stats_histogram_keeps_its_bars_in_line_and_folds_empty_lengths():
    """One shopper with 81,603 events drew ten empty rows, their wide labels pushing the bars right."""
    from core.cli.data_commands import _stats_lines

    stats = {"workspace": "w", "users": 3, "users_with_events": 3, "items": 2, "items_with_events": 2,
             "events": 81_700, "event_types": {}, "time_min": None, "categories": [], "named_categories": 0,
             "top_decile_share": 0.5}
    edges = [1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000]
    stats["events_per_user"] = {"min": 2, "median": 50, "mean": 1, "p90": 1, "max": 81603, "bin_edges": edges,
                                "counts": [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]}
    rows = [line for line in _stats_lines(stats, top=2) if re.match(r"^ +\d", line)]
    assert [row.split()[0] for row in rows] == ["2", "3-49", "50-99", "100-49999", "50000-99999"]
    assert len({row.index("#") for row in rows if "#" in row}) == 1


def test_demo_reruns_quietly_but_never_mixes_shops(demo_db, capsys):
    code, out, _ = run(capsys, "demo", "--db", demo_db, *TINY_DEMO, "--json")
    assert code == 0 and json.loads(out)["users"] == 300
    code, out, err = run(capsys, "demo", "--db", demo_db, *TINY_DEMO[:-1], "4")
    assert code == 1 and out == ""
    assert "already holds" in err and str(demo_db) in err


@pytest.mark.parametrize("argv", [["frobnicate"], ["stats", "--top", "many"], [], ["stats", "--top", "-1"],
                                  ["import", "x.csv", "--map", "user"], ["import", "x.csv", "--columns", "people=a,b"],
                                  ["import", "x.csv", "--delimiter", "ab"],
                                  ["demo", "--users", "0"], ["recommend", "--user", "u", "-k", "0"],
                                  ["recommend", "--user", "u", "-k", "-5"],
                                  ["recommend", "--user", "u", "--diversity", "2"],
                                  ["export", "--out", "x.csv", "--user", "u", "--users", "list.txt"]])
def test_bad_usage_exits_2(argv, tmp_path, capsys):
    assert main([*argv, "--db", str(tmp_path / "ws.sqlite")] if argv else argv) == 2
    assert "usage: nextpick" in capsys.readouterr().err
    assert not (tmp_path / "ws.sqlite").exists()


@pytest.mark.parametrize("flag, value, problem", [("--batch-size", "0", "must be at least 1"),
                                                   ("--hidden", "-3", "must be at least 1"),
                                                   ("--dropout", "1.5", "must be at most 0.95"),
                                                   ("--time-budget", "-1", "must be at least 0")])
def test_train_settings_out_of_range_are_usage_errors(flag, value, problem, tmp_path, capsys):
    code, _, err = run(capsys, "train", "--db", tmp_path / "ws.sqlite", flag, value)
    assert code == 2 and f"argument {flag}: {problem}, got {value}" in err and "Traceback" not in err


def test_usage_errors_found_after_parsing_exit_2_too(tmp_path, capsys):
    code, _, err = run(capsys, "import", "--db", tmp_path / "ws.sqlite")
    assert code == 2 and "nothing to import" in err
    code, _, err = run(capsys, "demo", "--db", tmp_path / "bad.sqlite", "--items", "5")
    assert code == 2 and "n_items must be at least" in err and not (tmp_path / "bad.sqlite").exists()
    code, _, err = run(capsys, "train", "--db", tmp_path / "ws.sqlite", "--split", "loo", "--cutoff", "2026-01-01")
    assert code == 2 and "belong to the time split" in err
    code, _, err = run(capsys, "train", "--db", tmp_path / "ws.sqlite", "--device", "tpu")
    assert code == 2 and "--device: invalid choice: 'tpu' (choose from 'auto', 'cpu', 'cuda')" in err  # the Literal


def test_a_missing_workspace_exits_1(tmp_path, capsys):
    code, _, err = run(capsys, "stats", "--db", tmp_path / "absent.sqlite")
    assert code == 1 and "no workspace at" in err


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_draws_one_overwritten_line():
    stream = FakeTerminal()
    bar = ProgressBar(stream, min_interval_s=0.0)
    bar(Progress("import events", done=500, total=1000, rate=2500.0, eta_s=0.2, message="a.csv"))
    bar(Progress("import events", done=1000, total=1000, rate=2600.0, eta_s=0.0))
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[############------------]  50%" in text and "500/1,000" in text and "2.5k/s" in text
    assert "ETA 0:00" in text and "a.csv" in text


def test_progress_line_without_a_known_total():
    line = format_progress(Progress("import events", done=1_234_567, rate=1.5e6))
    assert line == "import events  1,234,567  1.5M/s"


def test_demo_on_a_terminal_shows_progress_on_stderr_only(tmp_path):
    out, err = io.StringIO(), FakeTerminal()
    assert main(["demo", "--db", str(tmp_path / "d.sqlite"), *TINY_DEMO, "--json"], stdout=out, stderr=err) == 0
    assert json.loads(out.getvalue())["users"] == 300
    assert "\r" in err.getvalue() and "demo" in err.getvalue()


def test_the_installed_console_script_runs(demo_db):
    script = Path(sys.executable).with_name("nextpick")
    done = subprocess.run([str(script), "stats", "--db", str(demo_db), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["users"] == 300
    failed = subprocess.run([str(script), "stats", "--db", str(demo_db.with_name("none.sqlite"))],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and failed.stdout == "" and "no workspace at" in failed.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny demo shop with a popularity run (#1, its JSON output) and a one-epoch GRU run (#2, its text)."""
    db = tmp_path_factory.mktemp("train") / "shop.sqlite"
    assert main(["demo", "--db", db, *TINY_DEMO]) == 0
    pop_json, gru_text = io.StringIO(), io.StringIO()
    assert main(["train", "--db", db, "--model", "pop", "--json"], stdout=pop_json) == 0
    assert main(["train", "--db", db, "--model", "gru", "--epochs", "1", "--hidden", "16", "--max-len", "20",
                 "--batch-size", "64", "--device", "cpu", "--no-text"], stdout=gru_text) == 0
    return db, json.loads(pop_json.getvalue()), gru_text.getvalue()


def test_train_text_ends_with_run_id_and_a_metrics_table(trained):
    text = trained[2]
    assert text.startswith("run #2 (gru): done in ") and "best validation epoch 1 of 1 run" in text
    assert re.search(r"^valid \(generator\)(\s+0\.\d{4}){9}$", text, re.M)
    assert re.search(r"^test(\s+0\.\d{4}){9}$", text, re.M) and "coverage@10" in text


def test_train_json_holds_run_id_and_validation_and_test_metrics(trained):
    _, result, _ = trained
    assert result["run"] == 1 and result["model"] == "pop" and result["status"] == "done"
    for split in ("valid", "test"):
        assert set(result[split]) >= {"hr@10", "ndcg@10", "mrr@10"}
        assert 0.0 <= result[split]["ndcg@10"] <= result[split]["hr@10"] <= 1.0
    new_items = result["test"].pop("new_items")  # figures on test items nobody took before (few in leave-one-out)
    assert set(new_items) == {"events", "hr@10", "ndcg@10"} and 0 <= new_items["events"] < 0.05 * result["test_users"]
    if new_items["events"]:
        assert 0.0 <= new_items["ndcg@10"] <= new_items["hr@10"] <= 1.0
    else:
        assert new_items["hr@10"] is None and new_items["ndcg@10"] is None
    assert "leave-one-out" in result["protocol"] and set(result["test_generator_only"]) == set(result["test"])


@pytest.fixture
def trained_db(trained):
    return trained[0]


def test_train_flags_reach_the_config(trained_db, capsys):
    code, out, _ = run(capsys, "runs", "--db", trained_db, "--json")
    assert code == 0
    gru = next(r for r in json.loads(out)["runs"] if r["model"] == "gru")
    assert (gru["config"]["epochs"], gru["config"]["hidden"], gru["config"]["max_len"]) == (1, 16, 20)
    assert gru["config"]["batch_size"] == 64 and gru["training"]


def test_runs_lists_every_run_as_text(trained_db, capsys):
    code, out, _ = run(capsys, "runs", "--db", trained_db)
    assert code == 0 and re.search(r"^\s+1\s+pop\s+done", out, re.M) and re.search(r"^\s+2\s+gru\s+done", out, re.M)
    # columns never run together
    assert re.search(r"^\s+2\s+gru.*\(\d+ threads?\)\s{2,}new\s{2,}leave-one-out$", out, re.M)


def test_runs_activate_chooses_the_run_the_other_commands_use(trained_db, capsys):
    """A CLI user had no way to keep serving a chosen run once a later one became the latest."""
    from core.engine import Engine

    try:
        code, out, err = run(capsys, "runs", "--db", trained_db, "--activate", "1")
        assert code == 0 and "run #1 (pop) is now the active model" in err
        assert re.search(r"^\*\s+1\s+pop\s+done", out, re.M) and json.loads(
            run(capsys, "runs", "--db", trained_db, "--json")[1])["active_run"] == 1
        code, out, _ = run(capsys, "recommend", "--db", trained_db, "--user", "U000002", "-k", "1")
        assert code == 0 and "(run #1)" in out
        code, _, err = run(capsys, "runs", "--db", trained_db, "--activate", "99")
        assert code == 1 and "no run #99" in err
    finally:
        engine = Engine.open(trained_db)
        engine.set_active_run(None)  # the module's other tests expect the latest run
        engine.workspace.close()


def test_runs_on_a_workspace_without_runs_says_so(tmp_path, capsys):
    db = tmp_path / "empty.sqlite"
    assert main(["demo", "--db", str(db), *TINY_DEMO]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "runs", "--db", db)
    assert code == 0 and out.startswith("no runs yet")


def test_recommend_json_lists_k_explained_unseen_items(trained_db, capsys):
    code, out, _ = run(capsys, "recommend", "--db", trained_db, "--user", "U000002", "-k", "5",
                       "--run", "2", "--json")
    assert code == 0
    result = json.loads(out)
    recs = result["recommendations"]
    assert result["run"] == 2 and [r["rank"] for r in recs] == [1, 2, 3, 4, 5]
    # An id pasted with spaces around it is the id the import stored (trimmed), not an unknown user.
    code, padded, _ = run(capsys, "recommend", "--db", trained_db, "--user", " U000002 ", "-k", "5", "--run", "2", "--json")
    assert code == 0 and json.loads(padded)["recommendations"] == recs
    assert all(r["item"].startswith("SKU") and r["title"] and r["reason"] for r in recs)
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)


def test_recommend_text_with_explanations(trained_db, capsys):
    runs = json.loads(run(capsys, "runs", "--db", trained_db, "--json")[1])["runs"]
    default = max(r["run"] for r in runs if r["beats_popularity"] is not False)
    code, out, _ = run(capsys, "recommend", "--db", trained_db, "--user", "U000002", "-k", "3", "--explain")
    assert code == 0 and f"(run #{default})" in out  # the latest finished run not worse than popularity
    assert re.search(r"^\s+1\. SKU\d+", out, re.M)


def test_interests_are_a_probability_distribution(trained_db, capsys):
    code, out, _ = run(capsys, "interests", "--db", trained_db, "--user", "U000002", "--run", "2", "--json")
    assert code == 0
    interests = json.loads(out)["interests"]
    assert {i["name"] for i in interests} <= set(CATEGORY_NAMES) and len(interests) >= 2
    assert sum(i["probability"] for i in interests) == pytest.approx(1.0, abs=1e-3)


def test_interests_without_categories_say_why_there_are_none(tmp_path, capsys):
    events, db = tmp_path / "log.csv", tmp_path / "bare.sqlite"
    events.write_text("user,item,timestamp\n" + "".join(f"u{i % 5},i{i % 7},{1700000000 + i}\n" for i in range(60)))
    assert run(capsys, "import", events, "--db", db)[0] == 0
    code, out, _ = run(capsys, "stats", "--db", db)
    assert code == 0 and "categories: none (import an items file with a category column)" in out
    assert "(none)" not in out  # not one category called "(none)"
    assert run(capsys, "train", "--model", "markov", "--db", db)[0] == 0
    code, out, _ = run(capsys, "interests", "--user", "u1", "--db", db)
    assert code == 0 and "predicts no interests: interests are item categories, and its items had none" in out


def test_evaluate_reproduces_the_test_metrics_of_training(trained_db, capsys):
    _, out, _ = run(capsys, "runs", "--db", trained_db, "--json")
    trained = next(r for r in json.loads(out)["runs"] if r["run"] == 1)["test"]
    trained.pop("new_items")
    code, out, _ = run(capsys, "evaluate", "1", "--db", trained_db, "--json")
    assert code == 0
    assert json.loads(out)["metrics"] == pytest.approx(trained)


def test_model_commands_fail_cleanly_on_unknown_user_and_run(trained_db, tmp_path, capsys):
    code, _, err = run(capsys, "recommend", "--db", trained_db, "--user", "nobody")
    assert code == 1 and "unknown user 'nobody'" in err
    code, _, err = run(capsys, "interests", "--db", trained_db, "--user", "U000002", "--run", "99")
    assert code == 1 and "no run #99" in err
    code, _, err = run(capsys, "evaluate", "99", "--db", trained_db)
    assert code == 1 and "no run #99" in err
    code, _, err = run(capsys, "train", "--db", trained_db, "--model", "nonsense")
    assert code == 2 and "invalid choice" in err


def test_demo_sized_by_events(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--db", tmp_path / "e.sqlite", "--events", "20000", "--items", "100", "--json")
    assert code == 0 and 16_000 < json.loads(out)["events"] < 24_000


