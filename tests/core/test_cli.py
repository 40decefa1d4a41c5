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


def test_demo_reruns_quietly_but_never_mixes_shops(demo_db, capsys):
    code, out, _ = run(capsys, "demo", "--db", demo_db, *TINY_DEMO, "--json")
    assert code == 0 and json.loads(out)["users"] == 300
    code, out, err = run(capsys, "demo", "--db", demo_db, *TINY_DEMO[:-1], "4")
    assert code == 1 and out == ""
    assert "already holds" in err and str(demo_db) in err


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
                 "--batch-size", "64", "--device", "cpu"], stdout=gru_text) == 0
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
    log.write_text("date,time,customer,product\n2025-03-01,10:15:00,u1,p1\n2025-03-02,11:15:00,u1,p2\n")
    code, out, _ = run(capsys, "import", log, "--db", tmp_path / "t.sqlite")
    assert code == 0 and "2 rows read, 0 accepted, 2 rejected" in out
    assert ("no row of this file was stored: fix what the lines above say (a column read in the wrong role: "
            "import it again with --map ROLE=COLUMN)") in out
    assert "columns read as user=customer, item=product, time=time; not read: date" in out


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
    day3 = tmp_path / "day3.csv"
    day3.write_text(day2.read_text() + "u4,d,1700000180000,view\n")
    code, out, _ = run(capsys, "import", day3, "--db", db, "--keep-duplicates", "--json")
    assert code == 0 and json.loads(out)["counts"]["events"] == 3 + 5
