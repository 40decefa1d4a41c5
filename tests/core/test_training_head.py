"""The default loss and batch size follow what scoring the catalogue costs (``TrainConfig.for_data``)."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from core.data import leave_one_out, sequences_from_arrays
from core.data.batches import training_windows
from core.training import CPU_LOGITS_MEMORY, CPU_SAMPLED_LOGITS_MEMORY, LOGIT_BYTES, TrainConfig, window_positions
from core.training.loop import train_sequence_model

from neural_data import rule_sequences


@pytest.fixture(scope="module")
def huge_catalogue():
    """A shop with a 200k-item catalogue (most items never bought) and long histories."""
    n_items, n_users, events_per_user = 200_000, 300, 60
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users), events_per_user)
    items = np.minimum(rng.zipf(1.3, len(users)) + rng.integers(0, 50, len(users)), n_items)
    catalogue = pd.DataFrame({"id": np.arange(1, n_items + 1), "external_id": np.arange(1, n_items + 1).astype(str)})
    ts = np.tile(np.arange(events_per_user, dtype=float), n_users)
    return sequences_from_arrays(users, items, ts, catalogue)


def test_a_small_catalogue_gets_full_softmax_and_its_usual_batch():
    config = TrainConfig.for_data(rule_sequences(), device="cpu")
    assert config.loss == "softmax" and config.batch_size == 16


@pytest.mark.slow
def test_a_huge_catalogue_gets_sampled_softmax_with_a_batch_whose_logits_fit_and_it_trains(huge_catalogue):
    data = huge_catalogue
    config = TrainConfig.for_data(data, device="cpu")
    assert config.loss == "sampled"
    windows = training_windows(leave_one_out(data).train, config.max_len)
    longest = (windows.targets > 0).sum(axis=1).max() * config.batch_size  # a batch of the longest windows
    assert longest * (longest + config.n_negatives) * LOGIT_BYTES <= CPU_SAMPLED_LOGITS_MEMORY < CPU_LOGITS_MEMORY
    assert longest * data.n_items * LOGIT_BYTES > CPU_LOGITS_MEMORY  # full softmax's would not fit

    small = dataclasses.replace(config, hidden=16, layers=1, epochs=1, time_budget=0)
    result = train_sequence_model(data, leave_one_out(data), small)
    assert len(result.history) == 1 and math.isfinite(result.history[0].loss)


def test_settings_given_stay_as_given(huge_catalogue):
    data = huge_catalogue
    assert TrainConfig.for_data(data, device="cpu", loss="softmax").loss == "softmax"
    assert TrainConfig.for_data(data, device="cpu", batch_size=100).batch_size == 100


def test_full_softmax_gives_way_when_its_epochs_would_not_fit_the_time_budget():
    base = TrainConfig(device="cpu", batch_size=16)
    # 2,000 items: one batch's logits are small, but 5M positions x 2,000 items take hours per epoch on a CPU.
    assert base.with_head_for(100_000, 2_000, 20).loss == "softmax"
    assert base.with_head_for(5_000_000, 2_000, 20).loss == "sampled"
    assert dataclasses.replace(base, time_budget=0).with_head_for(5_000_000, 2_000, 20).loss == "softmax"


def test_windows_are_counted_as_training_cuts_them():
    sequences = [np.arange(1, n + 1) for n in (1, 2, 5, 12, 25)]
    cut = training_windows(sequences, 10)
    assert sorted(window_positions(np.array([1, 2, 5, 12, 25]), 10)) == sorted((cut.targets > 0).sum(axis=1))
