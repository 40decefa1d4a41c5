"""Recommendations to CSV (``core.export``, ``nextpick export``): every user or a list, neutralised, whole or absent."""

import csv
import json

import pytest

from cli_run import run
from core.engine import Engine
from core.export import HEADER, parse_user_list, read_user_file, write_recommendations_csv
from core.progress import CancelToken, Cancelled
from core.safe_csv import neutralise
from hostile_shop import FORMULA, FRESH_USER, N_USERS, hostile_workspace


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return hostile_workspace(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def engine(shop):
    engine = Engine.open(shop)
    yield engine
    engine.workspace.close()


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_user_gets_k_rows_with_formulas_neutralised(engine, tmp_path):
    target = tmp_path / "all.csv"
    reports = []
    report = write_recommendations_csv(engine, 1, None, target, k=3, progress=reports.append)
    assert (report.users, report.rows, report.path) == (N_USERS, 3 * N_USERS, target)
    rows = _rows(target)
    assert list(rows[0]) == list(HEADER) and len(rows) == 3 * N_USERS
    assert reports[-1].done == reports[-1].total == N_USERS
    fresh = [row for row in rows if row["user"] == FRESH_USER]
    assert [row["item"] for row in fresh] == [neutralise(rec.item) for rec in engine.recommend(1, FRESH_USER, k=3)]
    cells = [value for row in rows for key, value in row.items() if key != "score"]
    assert not any(value.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")) for value in cells)
    whole = tmp_path / "fresh.csv"  # the fresh user's whole list holds the hostile items, whatever the order served
    write_recommendations_csv(engine, 1, [FRESH_USER], whole, k=30)
    assert "'=1+1" in {row["item"] for row in _rows(whole)} and "'" + FORMULA in {row["title"] for row in _rows(whole)}


def test_scores_stay_numbers(engine, tmp_path):
    target = tmp_path / "few.csv"
    write_recommendations_csv(engine, 1, [FRESH_USER], target, k=2)
    with open(target, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, quoting=csv.QUOTE_NONNUMERIC))  # bare cells read back as floats
    assert all(isinstance(row[HEADER.index("score")], float) for row in rows[1:])


def test_a_list_with_unknown_users_fails_before_anything_is_written(engine, tmp_path):
    target = tmp_path / "some.csv"
    with pytest.raises(ValueError, match=r"2 of the 3 users are not in the workspace: 'nobody', 'ghost'"):
        write_recommendations_csv(engine, 1, ["U001", "nobody", "ghost", "U001"], target)
    assert not target.exists()


def test_a_cancelled_export_leaves_no_file(engine, tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        write_recommendations_csv(engine, 1, None, tmp_path / "cancelled.csv", cancel=token)
    assert list(tmp_path.iterdir()) == []


def test_the_engine_refuses_a_list_length_no_answer_can_have(engine):
    assert engine.max_list_length() == 30  # a catalogue smaller than the ranker's 100 candidates
    for k in (0, -5, 31):
        with pytest.raises(ValueError, match="a list holds at"):
            engine.recommend(1, "U001", k=k)
        with pytest.raises(ValueError, match="a list holds at"):
            next(engine.recommend_many(1, ["U001"], k=k))
    assert len(engine.recommend(1, FRESH_USER, k=30, exclude_seen=False)) == 30


def test_user_lists_from_a_box_or_a_file(tmp_path):
    assert parse_user_list("U1, U2;U3\nU4  U5") == ["U1", "U2", "U3", "U4", "U5"]
    listed = tmp_path / "users.txt"
    listed.write_text("\ufeffU001\n\n  Jane Doe \nU002\n", encoding="utf-8")
    assert read_user_file(listed) == ["U001", "Jane Doe", "U002"]


def test_cli_export_of_every_user(shop, tmp_path, capsys):
    target = tmp_path / "recs.csv"
    code, out, err = run(capsys, "export", "--db", shop, "--out", target, "-k", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["run"], result["users"], result["rows"], result["k"]) == (1, N_USERS, 2 * N_USERS, 2)
    assert len(_rows(target)) == 2 * N_USERS


def test_cli_export_of_listed_users(shop, tmp_path, capsys):
    listed = tmp_path / "users.txt"
    listed.write_text("U001\nU002\n")
    target = tmp_path / "listed.csv"
    code, out, _ = run(capsys, "export", "--db", shop, "--out", target, "--users", listed, "--run", "1")
    assert code == 0 and out.startswith(f"wrote 20 recommendations for 2 users (run #1) to {target}")
    assert {row["user"] for row in _rows(target)} == {"U001", "U002"}
    code, _, _ = run(capsys, "export", "--db", shop, "--out", target, "--user", FRESH_USER, "--user", "U003", "-k", "4")
    assert code == 0 and [row["user"] for row in _rows(target)] == [FRESH_USER] * 4 + ["U003"] * 4


def test_cli_export_refusals(shop, tmp_path, capsys):
    target = tmp_path / "x.csv"
    code, _, err = run(capsys, "export", "--db", shop, "--out", target, "--user", "nobody")
    assert code == 1 and "1 of the 1 users are not in the workspace: 'nobody'" in err
    code, _, err = run(capsys, "export", "--db", shop, "--out", target, "-k", "31")
    assert code == 2 and "-k 31: a list holds at most 30 items" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    code, _, err = run(capsys, "export", "--db", shop, "--out", target, "--users", empty)
    assert code == 2 and "holds no user ids" in err
    assert not target.exists()
