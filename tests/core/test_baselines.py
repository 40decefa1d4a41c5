import numpy as np
import pytest
import torch

from core.baselines import fit_baseline
from core.baselines.item_knn import ItemKNNScorer
from core.baselines.markov import MarkovScorer
from core.baselines.popularity import PopularityScorer, RecentPopularityScorer
from core.baselines.train_log import TrainLog
from core.evaluation import evaluate_scorer
from engine_data import demo_sequences, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

# 6 items; categories: 1, 2 -> cat 1; 3, 4 -> cat 2; 5, 6 -> cat 3.
CATEGORY = np.array([0, 1, 1, 2, 2, 3, 3])


def _log(histories, segments=None, ts=None):
    return TrainLog.from_histories([np.array(h) for h in histories], 6, CATEGORY, 4, segments=segments,
                                   ts=None if ts is None else [np.array(t, dtype=float) for t in ts])


def test_popularity_orders_by_count_and_by_segment():
    log = _log([[1, 2, 1], [1, 3], [5, 5, 5], [5, 6]], segments=[1, 1, 2, 2])
    pop = PopularityScorer.fit(log)
    global_row = pop.score([np.array([], dtype=np.int64)])[0]
    assert torch.argmax(global_row[1:]).item() + 1 == 5  # 4 events of item 5, 3 of item 1
    by_segment = pop.score([np.array([2]), np.array([2])], segments=np.array([1, 2]))
    assert torch.argmax(by_segment[0, 1:]).item() + 1 == 1
    assert torch.argmax(by_segment[1, 1:]).item() + 1 == 5
    unknown_segment = pop.score([np.array([2])], segments=np.array([99]))
    assert torch.equal(unknown_segment[0], global_row)


def test_recent_popularity_prefers_what_sells_now():
    # item 1 was popular long ago, item 4 recently
    log = _log([[1, 1, 1, 4], [1, 4]], ts=[[0, 1, 2, 100], [3, 99]])
    old, recent = PopularityScorer.fit(log), RecentPopularityScorer.fit(log)
    assert old.score([np.array([])])[0, 1] > old.score([np.array([])])[0, 4]
    assert recent.score([np.array([])])[0, 4] > recent.score([np.array([])])[0, 1]


def test_itemknn_recommends_co_occurring_items_and_attributes_them():
    log = _log([[1, 3], [1, 3], [1, 3, 5], [2, 6], [2, 6], [4, 5]])
    knn = ItemKNNScorer.fit(log, window=1)
    scores = knn.score([np.array([1]), np.array([2])])
    assert torch.argmax(scores[0, 2:]).item() + 2 == 3  # item 1 excluded from the argmax: its own row is empty
    assert torch.argmax(scores[1, 1:]).item() + 1 == 6
    weights = knn.attributions(np.array([4, 2]), np.array([6, 5]))
    assert weights.shape == (2, 2)
    assert weights[0, 1] > 0 and weights[0, 0] == 0  # item 6 came from history item 2 only
    assert weights[1, 0] > 0 and weights[1, 1] == 0  # item 5 from history item 4 only


def test_markov_follows_last_item_and_backs_off_to_popularity():
    log = _log([[1, 2], [1, 2], [1, 2], [3, 4], [5, 5, 5, 5]])
    markov = MarkovScorer.fit(log, alpha=1.0)
    after_1 = markov.score([np.array([3, 1])])[0]
    assert torch.argmax(after_1[1:]).item() + 1 == 2
    nothing_known = markov.score([np.array([6])])[0]  # item 6 was never followed by anything
    assert torch.argmax(nothing_known[1:]).item() + 1 == 5
    cold = markov.score([np.array([], dtype=np.int64)])[0]
    assert torch.argmax(cold[1:]).item() + 1 == 5
    weights = markov.attributions(np.array([3, 1]), np.array([2]))
    assert weights[0, 0] == 0 and weights[0, 1] > 0


def test_attributions_look_up_the_weighing_events_only(monkeypatch):
    rng = np.random.default_rng(2)
    log = _log([rng.integers(1, 7, 12).tolist() for _ in range(20)])
    history, items = rng.integers(1, 7, 30), np.arange(1, 7)
    for scorer, weighing in ((ItemKNNScorer.fit(log, max_history=4), 4), (MarkovScorer.fit(log), 1)):
        every_pair = scorer.row_values(history, np.tile(items, (len(history), 1))).T
        expected = every_pair * scorer.history_weights(history).astype(np.float32)
        asked = []
        lookup = scorer.row_values
        monkeypatch.setattr(scorer, "row_values", lambda rows, *more: asked.append(len(rows)) or lookup(rows, *more))
        assert np.array_equal(scorer.attributions(history, items), expected) and expected[:, -1].any()
        assert asked == [weighing]


def test_baseline_interests_are_the_category_mix_of_their_top_items():
    log = _log([[1, 2, 1, 2], [1, 2], [5]])
    mix = PopularityScorer.fit(log).interests(np.array([], dtype=np.int64))
    assert mix.shape == (3,) and np.isclose(mix.sum(), 1.0)
    assert np.argmax(mix) == 0  # interest 0 = category 1, which holds items 1 and 2


def test_sequence_baselines_beat_popularity_on_demo_data():
    """Item-kNN reads the recent history, so it wins on new items; Markov reads only the last event,
    which on the demo tells most when repeats count (view → cart → purchase of one item)."""
    from core.data import EvalMode, leave_one_out

    data, split = demo_sequences()
    ndcg = {name: evaluate_scorer(fit_baseline(name, data, split), data, split.valid).metrics["ndcg@10"]
            for name in ("pop", "itemknn")}
    assert ndcg["itemknn"] > ndcg["pop"]
    repeats = leave_one_out(data, EvalMode.REPEAT)
    ndcg = {name: evaluate_scorer(fit_baseline(name, data, repeats), data, repeats.valid).metrics["ndcg@10"]
            for name in ("pop", "markov")}
    assert ndcg["markov"] > ndcg["pop"]


def test_baselines_fit_only_on_training_prefixes():
    data, split = demo_sequences()
    pop = fit_baseline("pop", data, split)
    train_counts = np.bincount(np.concatenate(split.train), minlength=data.n_items + 1)
    all_counts = np.bincount(data.items, minlength=data.n_items + 1)
    global_row = pop.score([np.array([])])[0, 1:].numpy()
    assert np.allclose(global_row, train_counts[1:] / train_counts.sum(), atol=1e-7)
    assert not np.allclose(global_row, all_counts[1:] / all_counts.sum(), atol=1e-7)


def test_interests_of_many_users_are_scored_a_bounded_batch_at_a_time(monkeypatch):
    import core.baselines.base as base

    knn = ItemKNNScorer.fit(_log([[1, 3, 5], [2, 4, 6], [1, 2], [5, 6, 3]]))
    histories = [np.array([1 + u % 6, 1 + (u * 5) % 6]) for u in range(7)]
    one_by_one = np.stack([knn.interests_batch([h])[0] for h in histories])
    monkeypatch.setattr(base, "INTEREST_BATCH", 3)
    sizes = []
    score = knn.score
    monkeypatch.setattr(knn, "score", lambda h, s=None: sizes.append(len(h)) or score(h, s))
    assert np.allclose(knn.interests_batch(histories), one_by_one)
    assert sizes == [3, 3, 1]


def test_popularity_interests_are_worked_out_once_per_segment(monkeypatch):
    log = _log([[1, 2, 1], [1, 3], [5, 5, 5], [5, 6]], segments=[1, 1, 2, 2])
    pop = PopularityScorer.fit(log)
    segments = np.array([1, 2, 1, 99, 2, 0, 1])
    histories = [np.array([1 + u % 6]) for u in range(len(segments))]
    one_by_one = np.stack([pop.interests_batch([h], segments[u:u + 1])[0] for u, h in enumerate(histories)])
    scored = []
    score = pop.score
    monkeypatch.setattr(pop, "score", lambda h, s=None: scored.append(len(h)) or score(h, s))
    assert np.allclose(pop.interests_batch(histories, segments), one_by_one)
    assert scored == [3]  # the global row (segments 0 and 99), segments 1 and 2
    assert not np.allclose(one_by_one[0], one_by_one[1])


def test_item_knn_counted_in_row_blocks_equals_counted_at_once(monkeypatch):
    import core.baselines.item_knn as item_knn

    rng = np.random.default_rng(3)
    log = _log([rng.integers(1, 7, rng.integers(2, 9)).tolist() for _ in range(40)])
    whole = ItemKNNScorer.fit(log, neighbours=3)
    monkeypatch.setattr(item_knn, "PAIRS_PER_BLOCK", 50)
    assert len(item_knn._row_blocks(np.bincount(log.items, minlength=7).astype(float), 5)) > 2
    blocked = ItemKNNScorer.fit(log, neighbours=3)
    assert np.array_equal(blocked.indptr, whole.indptr) and np.array_equal(blocked.indices, whole.indices)
    assert np.allclose(blocked.values, whole.values)
    assert np.diff(whole.indptr).max() <= 3  # the bounded neighbourhood


@pytest.mark.parametrize("cells", [None, 20, 1])  # one block; 32-bit keys over blocks of 3 rows; 64-bit keys
def test_item_knn_counts_every_pair_within_the_window_whatever_its_blocks_and_keys(monkeypatch, cells):
    import core.baselines.item_knn as item_knn

    rng = np.random.default_rng(5)
    histories = [rng.integers(1, 7, rng.integers(1, 12)).tolist() for _ in range(30)]
    if cells is not None:
        monkeypatch.setattr(item_knn, "UINT32_CELLS", cells)
        monkeypatch.setattr(item_knn, "PAIRS_PER_BLOCK", 40)
    knn = ItemKNNScorer.fit(_log(histories), window=2, neighbours=7)
    counts, taken = np.zeros((7, 7)), np.bincount(np.concatenate(histories), minlength=7)
    for h in histories:
        for i, a in enumerate(h):
            for j in range(max(0, i - 2), min(len(h), i + 3)):
                counts[a, h[j]] += j != i and h[j] != a
    expected = counts / np.sqrt(np.maximum(np.outer(taken, taken), 1))
    assert np.allclose(knn.row_values(np.arange(7), np.tile(np.arange(7), (7, 1))), expected, atol=1e-6)
    assert np.array_equal(np.diff(knn.indptr), (counts > 0).sum(axis=1))


def test_row_values_read_the_matrix_at_each_rows_own_or_its_groups_columns():
    """Rows asked against a shared list of columns (``groups``), columns asked twice, rows asked twice,
    rows without entries and padding columns all read the stored matrix as a dense one would."""
    rng = np.random.default_rng(5)
    knn = ItemKNNScorer.fit(_log([rng.integers(1, 7, 10).tolist() for _ in range(25)]), neighbours=3)
    dense = np.zeros((7, 7), dtype=np.float32)
    for row in range(7):
        span = slice(knn.indptr[row], knn.indptr[row + 1])
        dense[row, knn.indices[span]] = knn.values[span]
    rows = np.array([3, 3, 0, 6, 1, 5])
    cols = np.array([[2, 2, 0, 6, 4], [1, 5, 3, 3, 6]])
    groups = np.array([0, 1, 1, 0, 0, 1])
    assert np.array_equal(knn.row_values(rows, cols, groups), dense[rows[:, None], cols[groups]])
    assert np.array_equal(knn.row_values(rows, cols[groups]), dense[rows[:, None], cols[groups]])
    assert dense[rows[:, None], cols[groups]].any() and knn.row_values(rows[:0], cols).shape == (0, 5)


def test_item_knn_remapped_to_another_catalogue_keeps_every_known_pair():
    data, split = demo_sequences(300, 120)
    knn = fit_baseline("itemknn", data, split)
    # the new catalogue: the old items in reverse order, old item 7 gone, one new item in its place
    new_to_old = np.concatenate([[0], np.arange(data.n_items, 7, -1), [0], np.arange(6, 0, -1)])
    moved = knn.remapped(new_to_old, np.zeros(len(new_to_old), np.int64))
    items = np.arange(1, len(new_to_old))
    expected = np.where((new_to_old[items][:, None] > 0) & (new_to_old[items][None, :] > 0),
                        knn.row_values(new_to_old[items], np.tile(new_to_old[items], (len(items), 1))), 0.0)
    assert np.array_equal(moved.row_values(items, np.tile(items, (len(items), 1))), expected) and expected.sum() > 0
    new = np.flatnonzero(new_to_old == 0)[1]
    assert moved.indptr[new + 1] == moved.indptr[new]  # the new item has no partners yet


def test_item_knn_narrowed_equals_fitted_with_fewer_neighbours():
    rng = np.random.default_rng(5)
    log = _log([rng.integers(1, 7, rng.integers(2, 12)).tolist() for _ in range(60)])
    wide, narrow = ItemKNNScorer.fit(log, neighbours=5), ItemKNNScorer.fit(log, neighbours=2)
    assert np.diff(wide.indptr).max() > 2  # something to drop
    narrowed = wide.narrowed(2)
    assert np.array_equal(narrowed.indptr, narrow.indptr) and np.array_equal(narrowed.indices, narrow.indices)
    assert np.allclose(narrowed.values, narrow.values)


def test_segment_counts_read_a_chunk_of_events_at_a_time_equal_one_pass(monkeypatch):
    import core.baselines.train_log as train_log

    rng = np.random.default_rng(2)
    histories = [rng.integers(1, 7, size=n) for n in rng.integers(0, 9, size=40)]
    log = _log(histories, segments=rng.integers(0, 3, size=40))
    weights = rng.random(len(log.items))
    whole = log.segment_counts(7, weights=weights), log.segment_counts(4, item_values=CATEGORY)
    monkeypatch.setattr(train_log, "EVENT_CHUNK", 5)
    chunked = log.segment_counts(7, weights=weights), log.segment_counts(4, item_values=CATEGORY)
    assert np.allclose(whole[0], chunked[0]) and np.array_equal(whole[1], chunked[1])
    segment_of_event = np.repeat(log.segments, np.diff(log.offsets))
    expected = np.zeros((log.n_segments, 4))
    np.add.at(expected, (segment_of_event, CATEGORY[log.items]), 1)
    assert np.array_equal(chunked[1], expected)
