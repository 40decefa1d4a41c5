"""What the CLI writes can be read safely: control characters from the shop's data are escaped,
K is checked, and progress reaches a log file as plain timed lines."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli_run import run
from core.cli import main
from core.cli.common import Output, ProgressLog, cell, terminal_safe
from core.progress import Progress
from hostile_shop import FRESH_USER, LINK, hostile_workspace


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return hostile_workspace(tmp_path_factory.mktemp("hostile"))


def _no_raw_controls(text: str) -> bool:
    return not any(ord(c) < 32 and c != "\n" or 0x7f <= ord(c) < 0xa0 or c == "\u202e" for c in text)


def test_a_table_cell_is_padded_or_cut_with_an_ellipsis_never_wider():
    """Categories cut at the width ("Adventure, Animation, Children, ") pulled the next column in."""
    assert cell("Comedy", 8) == "Comedy  " and cell("Adventure, Animation", 12) == "Adventure, …"
    assert {len(cell(text, 10)) for text in ("", "x" * 10, "x" * 11, "x" * 50)} == {10}


def test_terminal_safe_shows_every_control_character_as_an_escape():
    assert terminal_safe(LINK) == "\\x1b]8;;http://evil.example\\x07click me\\x1b]8;;\\x07"
    assert terminal_safe("a\tb\r\nc\x00\x9b\u202ed") == "a\\tb\\r\\nc\\x00\\x9b\\u202ed"
    assert terminal_safe("Café — ünïcode ✓") == "Café — ünïcode ✓"


def test_recommend_text_escapes_titles_and_categories(shop, capsys):
    # the whole catalogue, so every hostile item is listed whatever order the run's re-ranker serves
    code, out, err = run(capsys, "recommend", "--db", shop, "--user", FRESH_USER, "-k", "30")
    assert code == 0, err
    assert _no_raw_controls(out)
    assert "\\x1b]8;;http://evil.example\\x07click me" in out and "\\x1b[2J" in out and "\\x1b[31mRed" in out


def test_recommend_json_carries_the_data_exactly_with_escapes_on_the_wire(shop, capsys):
    code, out, _ = run(capsys, "recommend", "--db", shop, "--user", FRESH_USER, "-k", "30", "--json")
    assert code == 0 and _no_raw_controls(out)
    titles = [rec["title"] for rec in json.loads(out)["recommendations"]]
    assert any("\x1b" in title for title in titles)  # the reader of the JSON gets the data as it is


def test_stats_escapes_category_names(shop, capsys):
    code, out, _ = run(capsys, "stats", "--db", shop)
    assert code == 0 and _no_raw_controls(out) and "\\x1b[31mRed" in out


def test_error_messages_escape_what_the_user_typed(shop, capsys):
    code, _, err = run(capsys, "recommend", "--db", shop, "--user", "\x1b[2Jnobody")
    assert code == 1 and "unknown user" in err and _no_raw_controls(err)


@pytest.mark.parametrize("k, words", [("31", "a list holds at most 30 items (the catalogue's size), not 31"),
                                      ("100000", "a list holds at most 30 items (the catalogue's size), not 100,000")])
def test_a_list_longer_than_the_catalogue_is_refused_as_bad_usage(shop, k, words, capsys):
    code, out, err = run(capsys, "recommend", "--db", shop, "--user", "U001", "-k", k)
    assert code == 2 and out == "" and f"-k {k}:" in err and words in err and "hint: Ask for 30 items or fewer." in err


@pytest.mark.parametrize("k", ["0", "-5"])
def test_a_list_of_no_items_is_refused(shop, k, capsys):
    code, out, err = run(capsys, "recommend", "--db", shop, "--user", "U001", "-k", k)
    assert code == 2 and out == "" and "argument -k: must be at least 1" in err


def test_fewer_items_than_asked_are_said_to_be_fewer(shop, capsys):
    code, out, _ = run(capsys, "recommend", "--db", shop, "--user", "U001", "-k", "30")
    seen = 6 + 4  # the six hostile items and four plain ones
    assert code == 0 and f"only {30 - seen} of the 30 asked: every other item is in the user's history" in out


def test_progress_in_a_log_is_a_line_per_stage_and_every_few_seconds():
    clock = iter([1.0, 2.0, 7.5, 8.0, 9.0]).__next__
    log = io.StringIO()
    progress = ProgressLog(log, started=0.0, interval_s=5.0, clock=clock)
    for done in (100, 200, 300):  # at 1.0 s (new stage), 2.0 s (too soon), 7.5 s (5 s later)
        progress(Progress("import events", done, 1000, message="a.csv"))
    progress(Progress("rebuild indexes", 0, 3, message="ix_events_user"))  # 8.0 s: a new stage at once
    progress(Progress("rebuild indexes", 1, 3, message="ix_events_item"))  # 9.0 s: too soon
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 3
    assert lines[0].startswith("[0:01] import events") and "100/1,000" in lines[0]
    assert lines[1].startswith("[0:08] import events") and "300/1,000" in lines[1]  # 7.5 s rounds to 0:08
    assert lines[2].startswith("[0:08] rebuild indexes") and "ix_events_user" in lines[2]


def test_a_command_writing_to_a_log_reports_progress_there(tmp_path):
    err = io.StringIO()
    assert main(["demo", "--db", str(tmp_path / "d.sqlite"), "--users", "300", "--items", "120"],
                stdout=io.StringIO(), stderr=err) == 0
    assert "\r" not in err.getvalue() and re.match(r"\[\d+:\d\d\] demo  \[#", err.getvalue())


def test_output_times_the_whole_command():
    ticks = iter([10.0, 33.5]).__next__
    out = Output(False, io.StringIO(), io.StringIO(), started=0.0, clock=ticks)
    assert out.elapsed() == 10.0 and out.elapsed() == 33.5


def test_import_prints_the_whole_commands_time_and_names_the_index_rebuild(tmp_path, monkeypatch):
    import core.importing.run as import_run

    monkeypatch.setattr(import_run, "_REBUILD_MIN_ROWS", 10)  # rebuild indexes even for a small file
    source = tmp_path / "log.csv"
    source.write_text("user,item,timestamp\n" + "".join(f"u{n % 7},i{n % 11},{1767225600 + n}\n" for n in range(60)))
    out, err = io.StringIO(), io.StringIO()
    assert main(["import", str(source), "--db", str(tmp_path / "ws.sqlite")], stdout=out, stderr=err) == 0
    assert "] rebuild indexes" in err.getvalue() and "] count" in err.getvalue()
    assert out.getvalue().rstrip().endswith(" s in all)") and "(read in " in out.getvalue()


def test_a_console_run_counts_its_time_from_process_start(tmp_path, monkeypatch, capsys):
    import core.cli

    assert core.cli.common.process_age_s() > 0 or not Path("/proc/self/stat").exists()
    monkeypatch.setattr(core.cli, "process_age_s", lambda: 100.0)  # started (and imported) 100 s ago
    monkeypatch.setattr(sys, "argv", ["nextpick", "demo", "--db", str(tmp_path / "d.sqlite"), "--users", "300",
                                      "--items", "120", "--json"])
    capsys.readouterr()
    assert main() == 0
    assert json.loads(capsys.readouterr().out)["elapsed_s"] >= 100.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_console_run_keeps_freed_blocks_instead_of_faulting_them_in_again():
    probe = ("import resource, sys\n"
             "from core.memory import keep_freed_memory\n"
             "if sys.argv[1] == 'keep': keep_freed_memory()\n"  # as main() does, before torch is imported
             "import torch\n"
             "def batch(): (torch.ones(256, 100_000) > 0).sum()\n"  # an evaluation batch's scores, made and freed
             "batch(); batch()\n"
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
             "for _ in range(8): batch()\n"  # kept blocks still fault 25,000-100,000 times in all, so enough batches
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    probes = {mode: subprocess.Popen([sys.executable, "-c", probe, mode], stdout=subprocess.PIPE, text=True, env=env)
              for mode in ("keep", "default")}  # side by side: each is one thread, mostly importing torch
    faults = {mode: int(process.communicate()[0]) for mode, process in probes.items()}
    assert faults["keep"] * 3 < faults["default"]  # here 25,000-80,000 page faults against 620,000
