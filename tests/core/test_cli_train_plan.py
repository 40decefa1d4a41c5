"""``nextpick train``: flags generated from TrainConfig's typed metadata, ``--estimate``, the time budget
and the popularity check in the output."""

import inspect
import json
import re
import time

import pytest

import core.training  # noqa: F401  (torch reads its own sources on import: load it before hiding sources)
from cli_run import run
from core.cli import main

TINY_DEMO = ["--users", "300", "--items", "120", "--seed", "3"]
SMALL_GRU = ["--model", "gru", "--hidden", "8", "--layers", "1", "--max-len", "20", "--device", "cpu"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    db = tmp_path_factory.mktemp("plan") / "shop.sqlite"
    assert main(["demo", "--db", str(db), *TINY_DEMO]) == 0
    return db


def test_train_help_comes_from_field_metadata_without_reading_sources(monkeypatch, capsys):
    def no_sources(*args, **kwargs):
        raise OSError("could not get source code")  # as in a wheel installed without .py files

    monkeypatch.setattr(inspect, "getsource", no_sources)
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--time-budget MIN minutes the whole run may take" in text
    assert "--loss {softmax,sampled}" in text and "--device {auto,cpu,cuda}" in text
    assert "--dropout DROPOUT share of the model's signals hidden" in text and "(base default: 0.3)" in text
    assert "--model {sasrec,gru,lstm,pop,recentpop,itemknn,markov}" in text


def test_a_choice_outside_the_literal_is_refused(shop, capsys):
    code, _, err = run(capsys, "train", "--db", shop, "--loss", "bpr")
    assert code == 2 and "invalid choice: 'bpr'" in err


def test_estimate_prints_the_plan_and_trains_nothing(shop, capsys):
    code, out, _ = run(capsys, "train", "--db", shop, *SMALL_GRU, "--epochs", "40", "--time-budget", "0", "--estimate",
                       "--json")
    assert code == 0
    estimate = json.loads(out)["estimate"]
    assert estimate["planned_epochs"] == 40 and estimate["budget_s"] is None and estimate["step_s"] > 0
    code, out, _ = run(capsys, "train", "--db", shop, *SMALL_GRU, "--estimate")
    assert code == 0 and re.match(r"gru: about [\d.]+ s per epoch on CPU", out)
    assert run(capsys, "runs", "--db", shop)[1].startswith("no runs yet")


def test_a_binding_budget_is_reported_and_the_popularity_check_flags_a_worse_run(shop, capsys):
    code, out, _ = run(capsys, "train", "--db", shop, *SMALL_GRU, "--lr", "1e-9", "--time-budget", "0.00001")
    assert code == 0
    assert "stopped by time budget" in out and "the time budget (0.0006 s) cut training short" in out
    assert "WARNING: does not beat popularity on validation (served lists' cross-fitted validation NDCG@10" in out
    assert re.search(r"^popularity valid \(generator\)(\s+0\.\d{4}){9}$", out, re.M)
    code, out, _ = run(capsys, "runs", "--db", shop, "--json")
    (flagged,) = json.loads(out)["runs"]
    assert flagged["beats_popularity"] is False and flagged["training"]["budget_cut"] is True
    code, out, _ = run(capsys, "runs", "--db", shop)
    # untrained, the network is popularity itself (its item bias starts there): no significant difference
    assert re.search(r"^\s+1\s+gru\s+done.*tie", out, re.M)
    assert ("tie: did not beat popularity on validation (served lists' cross-fitted figures, as the run records), "
            "though not shown below it either") in out
    code, _, err = run(capsys, "recommend", "--db", shop, "--user", "U000002")
    assert code == 0 and "did not beat popularity" in err


def test_the_budget_clock_starts_before_the_log_is_read(shop, capsys, monkeypatch):
    from core.engine import Engine

    read = Engine.sequence_data

    def slow_read(self):  # as a 25M-event log: reading takes a while, and the budget counts it
        time.sleep(0.5)
        return read(self)

    monkeypatch.setattr(Engine, "sequence_data", slow_read)
    code, out, _ = run(capsys, "train", "--db", shop, *SMALL_GRU, "--epochs", "1", "--time-budget", "5", "--json")
    assert code == 0
    recorded = json.loads(out)
    # The CLI reads the log to size the defaults, then the engine reads it again (cached): both count.
    assert recorded["training"]["estimate"]["before_s"] >= 1.0
    timing = recorded["timing"]["seconds"]
    assert list(timing) == ["reading", "popularity", "training", "re-ranker", "test", "saving"]
    rounding = 0.005 * (len(timing) + 1)  # each figure, the duration too, is rounded to hundredths
    assert timing["reading"] >= 1.0 and sum(timing.values()) <= recorded["duration_s"] + rounding
    assert set(recorded["timing"]["peak_rss_mb"]) == set(timing)


def test_popularity_s_test_rows_set_served_beside_served_and_plain_beside_the_generator():
    """The gate weighs what each side serves (popularity's co-occurrence re-ranker makes it item-kNN-like),
    but the table set the model's served test beside plain popularity's: a German shop read "test 0.0585,
    popularity test 0.0149" above a warning that the model did not beat popularity."""
    from core.cli.run_commands import run_lines

    figures = {name: 0.1 for name in ("hr@10", "ndcg@10")}
    run = {"run": 1, "model": "sasrec", "status": "done", "device": "CPU", "training": {}, "timing": None,
           "gate": None, "error": None, "protocol": None, "text_model": None, "valid": figures,
           "test": {"hr@10": 0.3, "ndcg@10": 0.2}, "test_generator_only": figures, "test_intervals": {},
           "test_users": None, "test_sampled_from": None, "beyond": {},
           "popularity": {"valid": figures, "test": {"hr@10": 0.05, "ndcg@10": 0.04},
                          "served_test": {"hr@10": 0.25, "ndcg@10": 0.19}}}
    lines = run_lines(run, 1.0)
    assert any(re.match(r"popularity test\s+0\.2500\s+0\.1900$", line) for line in lines)
    assert any(re.match(r"popularity test \(generator only\)\s+0\.0500\s+0\.0400$", line) for line in lines)
    run["popularity"].pop("served_test")  # its re-ranker was left out: it serves plain popularity
    lines = run_lines(run, 1.0)
    assert any(re.match(r"popularity test\s+0\.0500\s+0\.0400$", line) for line in lines)
    assert not any(line.startswith("popularity test (") for line in lines)


def test_an_update_that_kept_its_starting_weights_says_so_in_one_readable_line():
    """It read "no epoch of 1 run, stopped by time budget beat the weights it started from on validation"."""
    from core.cli.run_commands import run_lines

    run = {"run": 4, "model": "lstm", "status": "done", "device": "CPU", "gate": None, "error": None,
           "training": {"best_epoch": 0, "epochs": [{}], "stopped_by": "time budget"}, "timing": None,
           "protocol": None, "text_model": None, "valid": {}, "test": {}, "test_generator_only": {},
           "test_intervals": {}, "test_users": None, "test_sampled_from": None, "beyond": {}, "popularity": {}}
    assert ("no epoch beat the weights it started from on validation (1 run, stopped by time budget): it kept them"
            in run_lines(run, 1.0))
