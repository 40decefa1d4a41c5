"""Small real data sets shared by the engine-side tests (baselines, ranker, evaluation, bundles, engine).

The demo shop is generated to CSV and read straight into ``SequenceData``, so these tests
exercise real sequences with categories and profile segments without going through the
importer (whose own tests cover that path).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import tempfile

import numpy as np
import pandas as pd
import pytest
import torch

from core.data import leave_one_out, sequences_from_arrays
from core.demo import DemoConfig, write_demo_csv


def events_in_the_file(path) -> int:
    """Events in the database file itself, without what is still only in its WAL (``immutable``)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return connection.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        connection.close()


def _demo_frames(n_users: int, n_items: int, seed: int):
    """Events, items and users of a small demo shop as read from its CSVs, with 1-based store ids."""
    with tempfile.TemporaryDirectory() as folder:
        files = write_demo_csv(folder, DemoConfig(n_users=n_users, n_items=n_items, n_categories=8, seed=seed,
                                                  mean_events_per_user=15.0))
        events = pd.read_csv(files.events, dtype={"user_id": str, "item_id": str})
        items = pd.read_csv(files.items, dtype={"item_id": str})
        users = pd.read_csv(files.users, dtype={"user_id": str})
    user_ids = {external: i + 1 for i, external in enumerate(users["user_id"])}
    item_ids = {external: i + 1 for i, external in enumerate(items["item_id"])}
    return events, items, users, user_ids, item_ids


@functools.lru_cache(maxsize=4)
def demo_sequences(n_users: int = 800, n_items: int = 300, seed: int = 7):
    """(SequenceData, leave-one-out Split) of a small demo shop; cached per session."""
    events, items, users, user_ids, item_ids = _demo_frames(n_users, n_items, seed)
    items_frame = pd.DataFrame({"id": np.arange(1, len(items) + 1), "external_id": items["item_id"],
                                "title": items["title"], "categories": items["categories"]})
    attributes = users.drop(columns=["user_id"]).to_dict("records")
    users_frame = pd.DataFrame({"id": np.arange(1, len(users) + 1), "external_id": users["user_id"],
                                "attributes": [json.dumps(a) for a in attributes]})
    data = sequences_from_arrays(events["user_id"].map(user_ids).to_numpy(), events["item_id"].map(item_ids).to_numpy(),
                                 events["timestamp"].to_numpy(np.float64), items_frame, users_frame)
    return data, leave_one_out(data)


def demo_workspace(path, n_users: int = 500, n_items: int = 200, seed: int = 7):
    """A workspace holding a small demo shop, written with plain inserts.

    The importer has its own tests; engine tests only need a realistic workspace, quickly.
    """
    from core.store import Workspace

    events, items, users, user_ids, item_ids = _demo_frames(n_users, n_items, seed)
    workspace = Workspace.open(path)
    attributes = [json.dumps(a) for a in users.drop(columns=["user_id"]).to_dict("records")]
    with workspace.engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("INSERT INTO imports (id, kind, source_path, source_sha256, rows_read, rows_accepted, "
                    "rows_rejected, duration_s, created_at) VALUES (1, 'events', 'demo', ?, ?, ?, 0, 0, 0)",
                    (f"demo-{seed}-{n_users}-{n_items}", len(events), len(events)))
        raw.executemany("INSERT INTO users (id, external_id, attributes) VALUES (?, ?, ?)",
                        [(i + 1, u, a) for i, (u, a) in enumerate(zip(users["user_id"], attributes))])
        raw.executemany("INSERT INTO items (id, external_id, title, categories) VALUES (?, ?, ?, ?)",
                        [(i + 1, row.item_id, row.title, row.categories) for i, row in enumerate(items.itertuples())])
        raw.executemany("INSERT INTO events (user_id, item_id, ts, event_type, value, import_id) VALUES (?, ?, ?, ?, ?, 1)",
                        list(zip(events["user_id"].map(user_ids).tolist(), events["item_id"].map(item_ids).tolist(),
                                 events["timestamp"].astype(float).tolist(), events["event_type"].tolist(),
                                 [None if v != v else float(v) for v in events["value"]])))
    workspace.set_meta("time_kind", "unix")
    return workspace


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A folder holding a small demo workspace (shop.sqlite) with one trained popularity run."""
    from core.engine import Engine
    from core.training import TrainConfig

    folder = tmp_path_factory.mktemp("trained")
    engine = Engine(demo_workspace(folder / "shop.sqlite", 200, 80))
    engine.train(TrainConfig.for_data(engine.sequence_data(), model="pop"))
    engine.workspace.close()
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """Run torch single-threaded for a test module: the tiny tensors here lose more to thread
    hand-offs on a shared 2-core machine than they gain (measured 5x slower with 2 threads under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def baseline_with_ranker(model: str, max_users: int, epochs: int):
    """A baseline fitted on the demo sequences and a ranker trained over it with category interests.

    Returns (data, split, log, scorer, item_interest, ranker).
    """
    from core.baselines import fit_baseline
    from core.baselines.train_log import TrainLog
    from core.ranker_training import train_ranker

    data, split = demo_sequences()
    log = TrainLog.from_split(data, split)
    scorer = fit_baseline(model, data, split)
    item_interest = data.item_category - 1
    ranker = train_ranker(scorer, log, split.valid, data.user_segment, item_interest,
                          max_users=max_users, epochs=epochs)
    return data, split, log, scorer, item_interest, ranker
