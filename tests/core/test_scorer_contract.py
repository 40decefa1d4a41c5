"""One contract every scorer honours, neural or baseline: shapes, padding, finiteness, state round-trip."""

import numpy as np
import pytest
import torch

from core.baselines import BASELINES, TrainLog, fit_baseline_on_log
from core.scorer import Scorer
from engine_data import demo_sequences, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def _baseline(name):
    data, split = demo_sequences(400, 200)
    return fit_baseline_on_log(name, TrainLog.from_split(data, split)), BASELINES[name].from_state


def _neural():
    from core.pipeline import NeuralScorer
    from core.training import TrainConfig, data_dims, train_sequence_model

    data, split = demo_sequences(400, 200)
    config = TrainConfig.for_data(data, model="gru", hidden=16, layers=1, epochs=1, max_len=20)
    scorer = train_sequence_model(data, split, config).scorer
    return scorer, lambda state: NeuralScorer.from_state(config, state, data_dims(data, config))


SCORERS = {**{name: (lambda n=name: _baseline(n)) for name in BASELINES}, "gru": _neural}


@pytest.fixture(scope="module", params=sorted(SCORERS))
def scorer_and_restore(request):
    return SCORERS[request.param]()


def _histories():
    data, split = demo_sequences(400, 200)
    return data, split.test.histories[:7] + [np.zeros(0, dtype=np.int64)]


def test_scores_have_catalogue_shape_padding_minus_inf_and_finite_items(scorer_and_restore):
    scorer, _ = scorer_and_restore
    data, histories = _histories()
    assert isinstance(scorer, Scorer)
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
