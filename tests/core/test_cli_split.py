"""``nextpick train --split``: a time split chosen on the command line, recorded, shown and re-evaluated."""

import json
import re
from datetime import datetime, timezone

import pandas as pd
import pytest

from core.cli import main
from cli_run import run
from core.demo import DemoConfig, write_demo_csv


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A tiny demo shop with a popularity run on the default time split (#1) and one on leave-one-out (#2)."""
    db = tmp_path_factory.mktemp("split") / "shop.sqlite"
    assert main(["demo", "--db", db, "--users", "200", "--items", "80", "--seed", "5"]) == 0
    assert main(["train", "--db", db, "--model", "pop", "--split", "time"]) == 0
    assert main(["train", "--db", db, "--model", "pop"]) == 0
    return db


def _runs(capsys, db):
    code, out, _ = run(capsys, "runs", "--db", db, "--json")
    assert code == 0
    return {r["run"]: r for r in json.loads(out)["runs"]}


def test_time_split_run_is_recorded_and_listed_with_its_cutoff(shop, capsys):
    runs = _runs(capsys, shop)
    timed, loo = runs[1], runs[2]
    assert timed["config"]["split"]["kind"] == "time" and timed["config"]["split"]["test_fraction"] == 0.1
    assert timed["split"].startswith("time split at ") and loo["split"] == "leave-one-out"
    assert timed["split"] in timed["protocol"] and "leave-one-out" in loo["protocol"]
    code, out, _ = run(capsys, "runs", "--db", shop)
    assert code == 0 and re.search(r"^\s+1\s+pop\s+done.*time split at ", out, re.M)
    assert re.search(r"^\s+2\s+pop\s+done.*leave-one-out$", out, re.M)


def test_evaluate_a_time_split_run_on_its_split(shop, capsys):
    trained = _runs(capsys, shop)[1]
    code, out, _ = run(capsys, "evaluate", "1", "--db", shop, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["split"] == trained["split"] and report["protocol"] == trained["protocol"]
    assert report["metrics"] == pytest.approx({k: v for k, v in trained["test"].items() if k != "new_items"})
    code, out, _ = run(capsys, "evaluate", "1", "--db", shop)
    assert code == 0 and out.startswith(f"run #1: full-catalogue ranking, {trained['split']}, new items (")


def test_eval_mode_and_validation_are_chosen_recorded_and_shown(shop, capsys):
    code, out, err = run(capsys, "train", "--db", shop, "--model", "pop", "--eval", "repeat", "--validation", "all",
                         "--json")
    assert code == 0, err
    trained = json.loads(out)
    assert (trained["eval"], trained["validation"]) == ("repeat", "all") and trained["not_evaluated"] == 0
    assert trained["config"]["split"]["eval_mode"] == "repeat" and "repeats allowed" in trained["protocol"]
    loo = _runs(capsys, shop)[2]
    assert (loo["eval"], loo["validation"]) == ("new", "sample") and "new items" in loo["protocol"]
    code, out, _ = run(capsys, "runs", "--db", shop)
    assert re.search(rf"^\s+{trained['run']}\s+pop\s+done.*\brepeat\s+leave-one-out$", out, re.M)
    code, out, _ = run(capsys, "evaluate", str(trained["run"]), "--db", shop, "--eval", "new", "--json")
    report = json.loads(out)
    assert report["eval"] == "new" and report["protocol"] == loo["protocol"]  # the test items of run #2
    again = _runs(capsys, shop)[trained["run"]]
    assert again["protocol"] == trained["protocol"] and again["test"] == trained["test"]  # its own report stays
    code, out, _ = run(capsys, "evaluate", str(trained["run"]), "--db", shop)
    assert "repeats allowed" in out.splitlines()[0]
    assert main(["runs", "--db", shop]) == 0 and capsys.readouterr()


def test_the_clis_mode_choices_are_the_engines():
    from core.cli.run_commands import EVAL_MODES
    from core.data import EvalMode, Validation

    assert EVAL_MODES == tuple(mode.value for mode in EvalMode)
    assert [v.value for v in Validation] == ["sample", "all"]


def test_cutoff_date_is_read_as_utc_midnight_and_implies_the_time_split(shop, tmp_path, capsys):
    code, out, _ = run(capsys, "stats", "--db", shop, "--json")
    stats = json.loads(out)
    late = stats["time_min"] + 0.7 * (stats["time_max"] - stats["time_min"])
    day = datetime.fromtimestamp(late, tz=timezone.utc).strftime("%Y-%m-%d")
    code, out, err = run(capsys, "train", "--db", shop, "--model", "markov", "--cutoff", day, "--json")
    assert code == 0, err
    result = json.loads(out)
    midnight = datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp()
    assert result["config"]["split"]["cutoff_ts"] == midnight and result["split"] == f"time split at {day}"


@pytest.mark.parametrize("flags, words, exit_code", [
    (["--split", "loo", "--cutoff", "2026-01-01"], "belong to the time split", 2),
    (["--cutoff", "2026-01-01", "--test-fraction", "0.2"], "either --cutoff or --test-fraction", 2),
    (["--cutoff", "next tuesday"], "--cutoff 'next tuesday' is not a date", 2),
    (["--cutoff", "2100-01-01"], "nothing to test on", 1),
    (["--test-fraction", "1.5"], "between 0 and 1", 1),
    (["--resume", "1", "--split", "time"], "keeps the split it was started with", 2),
    (["--resume", "1", "--eval", "repeat"], "leave out --split, --cutoff, --test-fraction, --eval, --validation and", 2),
    (["--resume", "1", "--eval-users", "all"], "--validation and --eval-users", 2),
])
def test_bad_split_flags_fail_with_a_message(shop, flags, words, exit_code, capsys):
    """Flags that contradict each other are bad usage (2); a split this log cannot make fails (1)."""
    before = len(_runs(capsys, shop))
    code, out, err = run(capsys, "train", "--db", shop, "--model", "pop", *flags)
    assert code == exit_code and out == "" and words in err and "Traceback" not in err
    assert len(_runs(capsys, shop)) == before


def test_a_log_without_times_refuses_the_time_split(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("user,item\n" + "".join(f"u{u},i{(u * 7 + k) % 11}\n" for u in range(6) for k in range(5)))
    db = tmp_path / "ws.sqlite"
    assert run(capsys, "import", log, "--db", db)[0] == 0
    code, _, err = run(capsys, "train", "--db", db, "--model", "pop", "--split", "time")
    assert code == 1 and "no real timestamps" in err and "leave-one-out" in err


def test_help_explains_the_split_options(capsys):
    assert main(["train", "--help"]) == 0
    text = re.sub(r"(\w-)\s+", r"\1", " ".join(capsys.readouterr().out.split()))  # argparse wraps at hyphens
    assert "--split {loo,time}" in text and "--cutoff DATE" in text and "--test-fraction SHARE" in text
    assert "leave-one-out" in text and "first event after it" in text
    assert "--eval {new,repeat}" in text and "--validation {sample,all}" in text and "published leave-one-out" in text


def test_recommend_shows_every_category_and_refuses_unknown_users(shop, tmp_path, capsys):
    files = write_demo_csv(tmp_path, DemoConfig(n_users=200, n_items=80, seed=5))
    labels = pd.read_csv(files.items, dtype=str).set_index("item_id")["categories"]
    code, out, _ = run(capsys, "recommend", "--db", shop, "--user", "U000003", "--run", "2", "-k", "20", "--json")
    assert code == 0
    recs = json.loads(out)["recommendations"]
    assert all(r["categories"] == labels[r["item"]].split("|") for r in recs)
    two = next(r for r in recs if len(r["categories"]) == 2)
    code, out, _ = run(capsys, "recommend", "--db", shop, "--user", "U000003", "--run", "2", "-k", "20")
    assert ", ".join(two["categories"]) in out
    code, out, err = run(capsys, "interests", "--db", shop, "--user", "nobody", "--run", "2")
    assert code == 1 and out == "" and "unknown user 'nobody' in shop.sqlite" in err


def test_eval_users_samples_the_test_and_every_metric_shows_its_interval(shop, capsys):
    code, out, err = run(capsys, "train", "--db", shop, "--model", "pop", "--eval-users", "50", "--json")
    assert code == 0, err
    sampled = json.loads(out)
    assert sampled["config"]["split"]["test_users"] == 50 and sampled["test_users"] == 50
    assert sampled["test_sampled_from"] > 50 and "tested on 50 of" in sampled["protocol"]
    assert set(sampled["test_intervals"]) == {name for name in sampled["test"] if "@" in name}  # accuracy metrics
    code, out, _ = run(capsys, "evaluate", str(sampled["run"]), "--db", shop)
    assert f"users: 50 of {sampled['test_sampled_from']:,} (seeded sample)" in out
    assert re.search(r"ndcg@10\s+\d\.\d{4}  \[\d\.\d{4}, \d\.\d{4}\] 95%", out)
    code, out, _ = run(capsys, "train", "--db", shop, "--model", "pop", "--eval-users", "all")
    assert code == 0 and "test 95% interval +-" in out
    assert f"test users: {sampled['test_sampled_from']:,} (all with an event to hold out)" in out
    code, _, err = run(capsys, "train", "--db", shop, "--model", "pop", "--eval-users", "none")
    assert code == 2 and "give a number of users (e.g. 20000) or all" in err


def test_a_log_too_short_to_test_shows_no_figures_rather_than_zeros(tmp_path, capsys):
    """Three shoppers with one or two orders each: `train` printed a table of 0.0000 (intervals nan),
    `runs` and `evaluate` 0.0000 too, as if the model had failed every test; no user was tested."""
    log = tmp_path / "orders.csv"
    log.write_text("user,item,date\nu1,a,2024-03-01\nu1,b,2024-03-02\nu2,a,2024-03-01\nu3,b,2024-03-03\n")
    db = tmp_path / "shop.sqlite"
    assert run(capsys, "import", log, "--db", db)[0] == 0
    code, out, _ = run(capsys, "train", "--db", db, "--model", "pop")
    assert code == 0 and "3 users with fewer than 3 steps" in out
    assert "test users: none: no user has an event to hold out" in out and "0.0000" not in out and "nan" not in out
    code, out, _ = run(capsys, "runs", "--db", db)
    assert code == 0 and "0.0000" not in out
    code, out, _ = run(capsys, "evaluate", "1", "--db", db)
    assert code == 0 and "users: none" in out and "0.0000" not in out
