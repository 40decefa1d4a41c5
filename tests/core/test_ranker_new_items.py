"""The re-ranker of a model that reads item text serves new items: it learns how they fare from the
log's latest items (made new for its training) and from candidates that existed at each held-out event."""

import numpy as np
import pandas as pd
import pytest
import torch

from core.baselines.train_log import TrainLog
from core.data import sequences_from_arrays, time_split
from core.evaluation import evaluate_scorer, metrics_from_ranks
from core.pipeline import NeuralScorer
from core.ranker import RankedScorer
from core.ranker_training import _candidates, _released_after, latest_items, train_ranker
from core.runs.new_items import known_items
from core.runs.ranker_inputs import target_times
from core.text.search import TextIndex
from core.training import TrainConfig
from core.training.network import model_for_data
from engine_data import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")
LINES, OLD, USERS_PER_LINE = 8, 8, 40  # product lines, their early items, the users following each
CUT = 100.0


def line_shop(seed: int = 0):
    """Each user follows one product line: all its early items, then the line's two latest editions (one
    released just before the user's last event before the cut), then after the cut its newest edition,
    which no one took before the cut. An item's text is its line's plus a little of its own."""
    rng = np.random.default_rng(seed)
    per_line = OLD + 3  # early items, two latest editions, the newest (after the cut)
    line_of = np.repeat(np.arange(LINES), per_line)
    users, items, ts = [], [], []
    for user in range(LINES * USERS_PER_LINE):
        line = user % LINES
        first = line * per_line + 1
        early = rng.permutation(np.arange(first, first + OLD))
        latest = first + OLD + rng.permutation(2)
        sequence = [*early, *latest, first + OLD + 2]
        times = [*np.sort(rng.uniform(0, 80, OLD)), rng.uniform(85, 90), rng.uniform(92, 99), rng.uniform(101, 110)]
        users += [user + 1] * len(sequence)
        items += sequence
        ts += times
    n_items = LINES * per_line
    catalogue = pd.DataFrame({"id": np.arange(1, n_items + 1), "external_id": [f"i{i}" for i in range(1, n_items + 1)],
                              "title": [f"item {i}" for i in range(1, n_items + 1)], "categories": ["Toys"] * n_items})
    data = sequences_from_arrays(np.array(users), np.array(items), np.array(ts, dtype=np.float64), catalogue)
    own = rng.standard_normal((n_items, 16)) * 0.3
    lines = rng.standard_normal((LINES, 16))
    vectors = np.zeros((data.n_items + 1, 16), dtype=np.float32)
    store = np.asarray(data.item_store_id[1:], dtype=np.int64)  # the catalogue's ids on SequenceData's indices
    vectors[1:] = lines[line_of[store - 1]] + own[store - 1]
    vectors[1:] /= np.linalg.norm(vectors[1:], axis=1, keepdims=True)
    has_text = np.arange(data.n_items + 1) > 0
    return data, TextIndex("lines v1", vectors, has_text)


def served_new_item_hr(text: bool) -> tuple[float, dict]:
    data, index = line_shop()
    split = time_split(data, CUT)
    torch.manual_seed(0)
    config = TrainConfig.for_data(data, model="sasrec", hidden=16, layers=1, text=text)
    scorer = NeuralScorer(model_for_data(data, config, index if text else None, split.train).eval(), "sasrec")
    log = TrainLog.from_split(data, split)
    item_interest = np.full(data.n_items + 1, -1)
    ranker = train_ranker(scorer, log, split.valid, data.user_segment, item_interest, epochs=40,
                          target_times=target_times(data, split.valid))
    new = ~known_items(split, data.n_items)[split.test.targets]
    assert new.all()  # every test event is on an item nobody took before the cut
    ranks = evaluate_scorer(RankedScorer(scorer, ranker, item_interest), data, split.test).ranks
    return metrics_from_ranks(ranks[new], ks=(10,))["hr@10"], ranker.report


def test_a_text_models_ranker_serves_new_items_of_the_lines_users_follow_and_one_without_text_does_not():
    with_text, report = served_new_item_hr(text=True)
    without_text, _ = served_new_item_hr(text=False)
    assert report["kept"]
    assert with_text >= 0.8 and without_text <= 0.4, (with_text, without_text)


def test_the_latest_items_are_those_first_taken_in_the_logs_latest_tenth():
    data, _ = line_shop()
    log = TrainLog.from_split(data, time_split(data, CUT))
    latest = latest_items(log)
    first = np.full(data.n_items + 1, np.inf)
    np.minimum.at(first, log.items, log.ts)
    assert len(latest) and first[latest].min() >= np.quantile(log.ts, 0.9) - 1e-9
    others = first[np.setdiff1d(np.arange(1, data.n_items + 1), latest)]
    assert (others[np.isfinite(others)] < first[latest].min()).all()  # items the log never saw are not its latest


def test_the_held_out_events_times_are_read_from_the_log():
    data, _ = line_shop()
    valid = time_split(data, CUT).valid
    times = target_times(data, valid)
    assert ((times >= 92) & (times < 99)).all()  # every validation event is a user's last before the cut


def test_the_rankers_training_lists_hold_only_items_released_by_each_held_out_event():
    log = TrainLog.from_histories([np.array([1, 2]), np.array([2, 3])], 4, np.zeros(5, np.int64), 1,
                                  ts=[np.array([10.0, 20.0]), np.array([20.0, 50.0])])  # item 3 first at 50; 4 never
    scores = torch.tensor([[float("-inf"), 1.0, 2.0, 4.0, 3.0]]).repeat(2, 1)
    scorer = type("Fixed", (), {"score": lambda self, histories, segments=None: scores[:len(histories)].clone()})()
    items, _ = _candidates(scorer, [np.zeros(0, np.int64)] * 2, None, False, None,
                           _released_after(log, np.array([40.0, 60.0])))
    assert items[0, :3].tolist() == [2, 1, 0] and items[1, :4].tolist() == [3, 2, 1, 0]
