"""Small real data sets shared by the engine-side tests (baselines, ranker, evaluation, bundles, engine).

The demo shop is generated to CSV and read straight into ``SequenceData``, so these tests
exercise real sequences with categories and profile segments without going through the
importer (whose own tests cover that path).
"""

from __future__ import annotations

import functools
import json
import tempfile

import numpy as np
import pandas as pd

from core.data import leave_one_out, sequences_from_arrays
from core.demo import DemoConfig, write_demo_csv


@functools.lru_cache(maxsize=4)
def demo_sequences(n_users: int = 800, n_items: int = 300, seed: int = 7):
    """(SequenceData, leave-one-out Split) of a small demo shop; cached per session."""
    with tempfile.TemporaryDirectory() as folder:
        files = write_demo_csv(folder, DemoConfig(n_users=n_users, n_items=n_items, n_categories=8, seed=seed,
                                                  mean_events_per_user=15.0))
        events = pd.read_csv(files.events, dtype={"user_id": str, "item_id": str})
        items = pd.read_csv(files.items, dtype={"item_id": str})
        users = pd.read_csv(files.users, dtype={"user_id": str})
    item_ids = {external: i + 1 for i, external in enumerate(items["item_id"])}
    user_ids = {external: i + 1 for i, external in enumerate(users["user_id"])}
    items_frame = pd.DataFrame({"id": np.arange(1, len(items) + 1), "external_id": items["item_id"],
                                "title": items["title"], "categories": items["categories"]})
    attributes = users.drop(columns=["user_id"]).to_dict("records")
    users_frame = pd.DataFrame({"id": np.arange(1, len(users) + 1), "external_id": users["user_id"],
                                "attributes": [json.dumps(a) for a in attributes]})
    data = sequences_from_arrays(events["user_id"].map(user_ids).to_numpy(), events["item_id"].map(item_ids).to_numpy(),
                                 events["timestamp"].to_numpy(np.float64), items_frame, users_frame)
    return data, leave_one_out(data)
