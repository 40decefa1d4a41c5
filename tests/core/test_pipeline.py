import numpy as np
import pytest
import torch
from safetensors.torch import load, save

from core.data import leave_one_out
from core.pipeline import ITEM_BIAS, DataDims, NeuralScorer, new_item_bias
from core.scorer import Scorer
from core.training import TrainConfig
from core.training.network import data_dims, model_for_data
from core.training.loop import train_sequence_model

from neural_data import rule_sequences


@pytest.fixture(scope="module")
def trained():
    data = rule_sequences(n_users=200, n_items=25)
    split = leave_one_out(data)
    config = TrainConfig(model="sasrec", hidden=16, layers=1, dropout=0.1, max_len=10, batch_size=64, lr=5e-3,
                         warmup_steps=5, epochs=4, device="cpu")
    return data, split, config, train_sequence_model(data, split, config).scorer


def encoder_passes(scorer: NeuralScorer, ask) -> tuple[int, object]:
    """(how many times ``ask()`` ran ``scorer``'s encoder, what it returned)."""
    passes = []
    scorer.model.encode = lambda *args, **kwargs: passes.append(args) or type(scorer.model).encode(
        scorer.model, *args, **kwargs)
    try:
        answer = ask()
    finally:
        del scorer.model.encode
    return len(passes), answer


def test_neural_scorer_is_a_scorer(trained):
    _, _, _, scorer = trained
    assert isinstance(scorer, Scorer) and scorer.name == "sasrec"


def test_forward_shapes_for_last_position_and_selected_positions():
    data = rule_sequences(n_users=20, n_items=12)
    config = TrainConfig(model="gru", hidden=8, max_len=6)
    model = model_for_data(data, config)
    items = torch.tensor([[0, 0, 1, 2], [3, 4, 5, 6]])
    logits, interest_logits = model(items)
    assert logits.shape == (2, 13) and interest_logits.shape == (2, 3)
    logits, interest_logits = model(items, items > 0, torch.tensor([2, 5, 7]))
    assert logits.shape == (6, 3) and interest_logits.shape == (6, 3)


def test_scores_are_batched_consistently_with_padding_column_minus_inf(trained):
    data, split, _, scorer = trained
    histories = list(split.test.histories[:5]) + [np.array([], dtype=np.int64)]
    scores = scorer.score(histories)
    assert scores.shape == (6, data.n_items + 1) and scores.dtype == torch.float32
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    one = scorer.score(histories[2:3])
    assert torch.allclose(one[0, 1:], scores[2, 1:], atol=1e-5)


def test_attributions_point_at_real_history_items(trained):
    data, split, _, scorer = trained
    history = split.test.histories[0]
    items = np.array([split.test.targets[0], 1, 2])
    weights = scorer.attributions(history, items)
    assert weights.shape == (3, len(history)) and (weights >= 0).all()
    sums = weights.sum(axis=1)
    assert np.all(np.isclose(sums, 1.0) | np.isclose(sums, 0.0))
    long_history = np.concatenate([history] * 5)
    assert np.all(scorer.attributions(long_history, items)[:, : len(long_history) - scorer.max_len] == 0)


def test_state_round_trips_through_safetensors(trained):
    data, split, config, scorer = trained
    blob = save(scorer.state_tensors())  # fails if any two tensors shared memory
    rebuilt = NeuralScorer.from_state(config, load(blob), data_dims(data, config))
    histories = split.test.histories[:8]
    assert torch.allclose(rebuilt.score(histories)[:, 1:], scorer.score(histories)[:, 1:], atol=1e-6)
    assert np.allclose(rebuilt.interests(histories[0]), scorer.interests(histories[0]))
    with pytest.raises(RuntimeError):
        NeuralScorer.from_state(config, load(blob), DataDims(data.n_items + 1, data.n_categories, 3))


def test_a_network_saved_before_the_item_bias_loads_with_a_zero_one(trained):
    data, split, config, scorer = trained
    state = {k: v for k, v in scorer.state_tensors().items() if k != ITEM_BIAS}
    rebuilt = NeuralScorer.from_state(config, state, data_dims(data, config))
    assert not rebuilt.model.generator.item_bias.any()
    histories = split.test.histories[:4]
    without = scorer.score(histories)[:, 1:] - scorer.model.generator.item_bias[1:]
    assert torch.allclose(rebuilt.score(histories)[:, 1:], without, atol=1e-5)


def test_new_items_start_at_the_known_items_median_bias():
    bias = torch.tensor([0.0, 3.0, -1.0, 5.0, 9.0, 2.0])
    known = torch.tensor([True, True, True, False, True, False])
    assert new_item_bias(bias, known).tolist() == [0.0, 3.0, -1.0, 3.0, 9.0, 3.0]


def test_serving_caches_give_the_same_answers_as_a_fresh_forward(trained):
    data, split, _, scorer = trained
    histories = split.test.histories[:5]
    fresh = NeuralScorer(scorer.model, "sasrec")
    with torch.no_grad():
        expected_logits, expected_interests = scorer.model(fresh._inputs(histories))
    one = [histories[0]]
    first = fresh.score(one)
    first[0, 1:] = float("-inf")  # callers may mask the answer in place ...
    again = fresh.score(one)  # ... and the kept answer must not change
    assert torch.allclose(again[0, 1:], expected_logits[0, 1:], atol=1e-5)
    batched = fresh.interests_batch(histories)
    assert np.allclose(batched, expected_interests.softmax(dim=-1).numpy(), atol=1e-5)
    assert np.allclose(fresh.interests(histories[3]), batched[3], atol=1e-6)
    items = np.array([1, 2, 3])
    passes, explained = encoder_passes(fresh, lambda: fresh.attributions(histories[3], items))  # after a batch of 5
    assert passes == 0  # its row of the batch's kept attention: no encoder pass for user 3 alone
    assert np.allclose(explained, NeuralScorer(scorer.model, "sasrec").attributions(histories[3], items))
    assert np.allclose(fresh.score(one)[0, 1:], expected_logits[0, 1:], atol=1e-5)  # scored after other questions


def test_a_large_batch_asked_for_scores_then_interests_is_encoded_once(trained):
    _, split, _, scorer = trained
    histories = split.test.histories[:100]  # more than a served batch: as evaluating a re-ranked run asks
    fresh = NeuralScorer(scorer.model, "sasrec")
    passes, interests = encoder_passes(fresh, lambda: (fresh.score(histories), fresh.interests_batch(histories))[1])
    assert passes == 1
    assert np.allclose(interests, NeuralScorer(scorer.model, "sasrec").interests_batch(histories), atol=1e-6)


def test_an_export_batch_is_encoded_once_for_scores_interests_and_every_explanation(trained):
    """``Engine.recommend_many`` (exports) batches users so that the explanations read the batch's kept
    attention: at 256 users a batch, every user was encoded a second time (half the export's CPU)."""
    import inspect

    from core.engine import Engine

    _, split, _, scorer = trained
    batch = inspect.signature(Engine.recommend_many).parameters["batch_size"].default
    histories = split.test.histories[:batch]
    assert len(histories) == batch
    fresh, items = NeuralScorer(scorer.model, "sasrec"), np.array([1, 2, 3])

    def export_batch():
        fresh.score(histories)
        fresh.interests_batch(histories)
        return [fresh.attributions(history, items) for history in histories]

    passes, explained = encoder_passes(fresh, export_batch)
    assert passes == 1
    alone = NeuralScorer(scorer.model, "sasrec")
    assert all(np.allclose(weights, alone.attributions(history, items)) for weights, history in zip(explained, histories))


def test_a_recurrent_scorer_explains_a_batch_without_encoding_anyone_again():
    """A GRU has no attention to weigh its explanations by, yet each user's explanation encoded their
    history again, alone, to find that out: half a served batch's CPU (bench_serve.py, GRU run)."""
    data = rule_sequences(n_users=40, n_items=12)
    split = leave_one_out(data)
    config = TrainConfig(model="gru", hidden=8, max_len=6, batch_size=32, epochs=1, device="cpu")
    scorer = train_sequence_model(data, split, config).scorer
    histories = split.test.histories[:8]
    fresh, items = NeuralScorer(scorer.model, "gru"), np.array([1, 2, 3])

    def served_batch():
        fresh.score(histories)
        explained = [fresh.attributions(history, items) for history in histories]
        fresh.interests_batch(histories)
        return explained

    passes, explained = encoder_passes(fresh, served_batch)
    assert passes == 1
    assert all(np.allclose(weights.sum(axis=1)[weights.sum(axis=1) > 0], 1.0) for weights in explained)
