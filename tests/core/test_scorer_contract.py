"""One contract every scorer honours, neural, baseline or wrapper: the typed protocol, shapes,
padding, finiteness, interests, state round-trip."""

import inspect

import numpy as np
import pytest
import torch

from core.baselines import BASELINES, fit_baseline_on_log
from core.baselines.train_log import TrainLog
from core.scorer import Scorer
from engine_data import demo_sequences, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def _baseline(name):
    data, split = demo_sequences(400, 200)
    return fit_baseline_on_log(name, TrainLog.from_split(data, split)), BASELINES[name].from_state


def _neural():
    from core.pipeline import NeuralScorer
    from core.training import TrainConfig
    from core.training.network import data_dims
    from core.training.loop import train_sequence_model

    data, split = demo_sequences(400, 200)
    config = TrainConfig.for_data(data, model="gru", hidden=16, layers=1, epochs=1, max_len=20)
    scorer = train_sequence_model(data, split, config).scorer
    return scorer, lambda state: NeuralScorer.from_state(config, state, data_dims(data, config))


def _neural_reading_text():
    """A GRU whose item embeddings add projected text vectors (``WordEncoder`` stands in for the language model)."""
    from core.pipeline import NeuralScorer
    from core.text.catalogue import ItemVectors, item_text
    from core.text.search import TextIndex
    from core.training import TrainConfig
    from core.training.network import data_dims
    from core.training.loop import train_sequence_model
    from text_data import WordEncoder

    data, split = demo_sequences(400, 200)
    texts = [item_text(t, c, None) for t, c in zip(data.item_title[1:], data.item_categories[1:])]
    text = TextIndex.build(data, ItemVectors("words v1", data.item_store_id[1:], WordEncoder().encode(texts)))
    config = TrainConfig.for_data(data, model="gru", hidden=16, layers=1, epochs=1, max_len=20)
    scorer = train_sequence_model(data, split, config, text=text).scorer
    return scorer, lambda state: NeuralScorer.from_state(config, state, data_dims(data, config, text))


def _ranked():
    """Markov behind an (untrained) re-ranker: what the engine serves when the ranker is kept."""
    from core.ranker import RankedScorer, Ranker, RankerNet
    from core.ranker_features import ItemFacts

    data, split = demo_sequences(400, 200)
    inner, restore_inner = _baseline("markov")
    ranker = Ranker(ItemFacts.from_log(TrainLog.from_split(data, split)), RankerNet())
    item_interest = data.item_category - 1
    return (RankedScorer(inner, ranker, item_interest),
            lambda state: RankedScorer(restore_inner(state), ranker, item_interest))


def _mapped():
    """Item-kNN served on a catalogue where item 1 is new to it (a bundle loaded with item mapping)."""
    from core.bundles import MappedScorer

    data, _ = demo_sequences(400, 200)
    inner, restore_inner = _baseline("itemknn")
    new_to_old = np.arange(data.n_items + 1)
    new_to_old[1] = 0
    segment_map = np.arange(len(data.segment_names))

    def wrap(scorer):
        return MappedScorer(scorer, new_to_old, data.item_category, segment_map)

    return wrap(inner), lambda state: wrap(restore_inner(state))


SCORERS = {**{name: (lambda n=name: _baseline(n)) for name in BASELINES}, "gru": _neural,
           "gru+text": _neural_reading_text, "markov+ranker": _ranked, "mapped itemknn": _mapped}


@pytest.fixture(scope="module", params=sorted(SCORERS))
def scorer_and_restore(request):
    return SCORERS[request.param]()


PROTOCOL_METHODS = ("score", "interests", "interests_batch", "attributions", "state_tensors")


def _parameters(function):
    """(name, default) of each parameter but ``self``: what a caller of the protocol may pass."""
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values() if p.name != "self"]


def test_scorer_is_the_protocol_with_its_exact_signatures(scorer_and_restore):
    scorer, _ = scorer_and_restore
    assert isinstance(scorer, Scorer)
    assert isinstance(scorer.name, str) and scorer.name
    for method in PROTOCOL_METHODS:
        assert _parameters(getattr(type(scorer), method)) == _parameters(getattr(Scorer, method)), method


def test_protocol_check_rejects_a_scorer_without_batched_interests():
    class PerUserOnly:
        name = "old"

        def score(self, histories, segments=None): ...
        def interests(self, history): ...
        def attributions(self, history, items): ...
        def state_tensors(self): ...

    assert not isinstance(PerUserOnly(), Scorer)


def _histories():
    data, split = demo_sequences(400, 200)
    return data, list(split.test.histories[:7]) + [np.zeros(0, dtype=np.int64)]


def test_scores_have_catalogue_shape_padding_minus_inf_and_finite_items(scorer_and_restore):
    scorer, _ = scorer_and_restore
    data, histories = _histories()
    segments = data.user_segment[:len(histories)]
    scores = scorer.score(histories, segments)
    assert scores.shape == (len(histories), data.n_items + 1)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()
    assert scorer.score(histories[:3]).shape == (3, data.n_items + 1)


def test_scores_are_a_new_tensor_each_call_so_callers_may_mask_them(scorer_and_restore):
    scorer, _ = scorer_and_restore
    data, histories = _histories()
    segments = data.user_segment[:len(histories)]
    first = scorer.score(histories, segments)
    expected = first.clone()
    first[:, 1:] = float("-inf")
    assert torch.equal(scorer.score(histories, segments), expected)
    one = scorer.score(histories[:1], segments[:1])  # one user: the serving path, where answers are kept
    expected_one = one.clone()
    one[:, 1:] = 0.0
    assert torch.equal(scorer.score(histories[:1], segments[:1]), expected_one)


def test_interests_are_a_distribution_or_none(scorer_and_restore):
    scorer, _ = scorer_and_restore
    data, histories = _histories()
    probs = scorer.interests(histories[0])
    if probs is not None:
        assert probs.ndim == 1 and np.all(probs >= 0) and np.isclose(probs.sum(), 1.0, atol=1e-5)


def test_batched_interests_have_one_width_and_match_one_user_at_a_time(scorer_and_restore):
    scorer, _ = scorer_and_restore
    data, histories = _histories()
    segments = data.user_segment[:len(histories)]
    batch = np.asarray(scorer.interests_batch(histories, segments))
    width = batch.shape[1]
    assert batch.shape == (len(histories), width)
    assert np.asarray(scorer.interests_batch(histories[:2])).shape == (2, width)
    assert np.asarray(scorer.interests_batch([])).shape == (0, width)
    totals = batch.sum(axis=1)
    assert np.all(batch >= 0) and np.all(np.isclose(totals, 1.0, atol=1e-5) | (totals == 0))
    for history, row in zip(histories, np.asarray(scorer.interests_batch(histories))):
        one = scorer.interests(history)
        assert np.allclose(row, 0.0 if one is None else one, atol=1e-5)


def test_attributions_are_non_negative_and_shaped_items_by_history(scorer_and_restore):
    scorer, _ = scorer_and_restore
    _, histories = _histories()
    history = histories[0]
    items = np.array([1, 2, 3])
    weights = np.asarray(scorer.attributions(history, items))
    assert weights.shape == (3, len(history))
    assert np.all(weights >= 0)


def test_state_round_trip_reproduces_scores(scorer_and_restore):
    scorer, restore = scorer_and_restore
    data, histories = _histories()
    segments = data.user_segment[:len(histories)]
    restored = restore({k: v.clone() for k, v in scorer.state_tensors().items()})
    assert torch.allclose(restored.score(histories, segments), scorer.score(histories, segments))
