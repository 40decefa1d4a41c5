"""Generated sequence data with a learnable rule, shared by the sequence-model tests.

Each user starts at a random item and mostly moves by a fixed permutation (next = f(previous)),
so a sequence model can be much better than popularity, which is nearly uniform here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data import SequenceData, sequences_from_arrays


# A model small enough to train in seconds on ``rule_sequences``.
TINY_TRAINING = dict(hidden=16, layers=1, heads=1, dropout=0.1, max_len=12, batch_size=64, lr=5e-3, warmup_steps=5,
                     epochs=6, patience=3, device="cpu")


def rule_sequences(n_users: int = 300, n_items: int = 30, min_len: int = 5, max_len: int = 15,
                   noise: float = 0.1, categories: int = 3, seed: int = 0) -> SequenceData:
    """Users following ``next = rule[previous]`` with probability 1 - noise (store ids = 100 + index)."""
    rng = np.random.default_rng(seed)
    rule = rng.permutation(n_items)
    users, items, ts = [], [], []
    for user in range(n_users):
        item = int(rng.integers(n_items))
        for step in range(int(rng.integers(min_len, max_len + 1))):
            users.append(user)
            items.append(item)
            ts.append(step)
            item = int(rule[item]) if rng.random() > noise else int(rng.integers(n_items))
    catalogue = pd.DataFrame({
        "id": 100 + np.arange(n_items),
        "external_id": [f"item{i}" for i in range(n_items)],
        "title": [f"Item {i}" for i in range(n_items)],
        "categories": [f"cat{i % categories}|extra" if categories else None for i in range(n_items)],
    })
    people = pd.DataFrame({"id": np.arange(n_users), "external_id": [f"u{u}" for u in range(n_users)]})
    return sequences_from_arrays(np.array(users), 100 + np.array(items), np.array(ts, dtype=float), catalogue, people)
