"""``train --json`` reports the test events on new items (no event before the test) under both splits."""

import json

import numpy as np

from cli_run import run
from core.engine import Engine

TINY_DEMO = ["--users", "300", "--events", "6000", "--items", "200"]  # 5 of its 63 time-split test events are new items


def train_json(capsys, db, *options) -> dict:
    code, out, err = run(capsys, "train", "--db", db, "--model", "pop", "--json", *options)
    assert code == 0, err
    return json.loads(out)


def test_a_time_split_counts_the_test_items_first_taken_after_its_cutoff(capsys, tmp_path):
    db = tmp_path / "shop.sqlite"
    assert run(capsys, "demo", "--db", db, *TINY_DEMO)[0] == 0  # the demo releases items over time
    result = train_json(capsys, db, "--split", "time")
    engine = Engine.open(db)
    run_record, data = engine.run(result["run"]), engine.sequence_data()
    targets = np.asarray(run_record.split.split(data).test.targets)
    with engine.workspace.engine.connect() as conn:
        first_seen = dict(conn.exec_driver_sql("SELECT item_id, min(ts) FROM events GROUP BY item_id").all())
    released_after = sum(first_seen[int(store_id)] >= run_record.split.cutoff_ts
                         for store_id in data.item_store_id[targets])
    engine.workspace.close()
    new_items = result["test"]["new_items"]
    assert new_items["events"] == released_after > 0
    assert 0.0 <= new_items["ndcg@10"] <= new_items["hr@10"] <= 1.0


def test_no_new_item_in_the_test_is_reported_as_none_not_as_a_score_of_zero(capsys, tmp_path):
    rows = ["user,item,timestamp"] + [f"u{u},i{(u + step) % 4},{1_600_000_000 + 3600 * (u * 10 + step)}"
                                      for u in range(30) for step in range(6)]  # four items, all taken early on
    (tmp_path / "events.csv").write_text("\n".join(rows) + "\n")
    db = tmp_path / "ws.sqlite"
    assert run(capsys, "import", tmp_path / "events.csv", "--db", db, "--keep-duplicates")[0] == 0
    for split in ("time", "loo"):
        result = train_json(capsys, db, "--split", split, "--eval", "repeat")
        assert result["test"]["new_items"] == {"events": 0, "hr@10": None, "ndcg@10": None}, split
