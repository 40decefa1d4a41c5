"""Full softmax in row chunks (``core.chunked_softmax``) gives the plain head's loss and gradients."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core import chunked_softmax
from core.chunked_softmax import linear_cross_entropy
from core.data import leave_one_out
from core.data.batches import training_windows
from core.training import TrainConfig
from core.training.network import model_for_data
from core.training.steps import batch_loss

from neural_data import rule_sequences


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 7 rows: a batch spans several, the last one short."""
    monkeypatch.setattr(chunked_softmax, "CHUNK_LOGITS", 7)
    monkeypatch.setattr(chunked_softmax, "MIN_CHUNK_ROWS", 7)


def _leaves(*shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=generator).requires_grad_() for shape in shapes]


def test_the_loss_and_every_gradient_are_the_plain_cross_entropys(small_chunks):
    hidden, weight, bias = _leaves((30, 8), (50, 8), (50,))
    targets = torch.randint(0, 50, (30,), generator=torch.Generator().manual_seed(1))
    plain = F.cross_entropy(hidden @ weight.T + bias, targets)
    expected = torch.autograd.grad(plain * 3.0, (hidden, weight, bias))
    chunked = linear_cross_entropy(hidden, weight, bias, targets)
    got = torch.autograd.grad(chunked * 3.0, (hidden, weight, bias))  # the incoming gradient scales them
    assert chunked.item() == pytest.approx(plain.item(), rel=1e-5)
    for mine, theirs in zip(got, expected):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)


def test_large_logits_do_not_overflow(small_chunks):
    hidden, weight, bias = _leaves((10, 4), (20, 4), (20,))
    with torch.no_grad():
        hidden.mul_(100.0)
        weight.mul_(100.0)
    targets = torch.arange(10)
    loss = linear_cross_entropy(hidden, weight, bias, targets)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(F.cross_entropy(hidden @ weight.T + bias, targets).item(), rel=1e-5)


def test_without_gradients_only_the_loss_is_computed(small_chunks):
    hidden, weight, bias = (t.detach() for t in _leaves((12, 4), (9, 4), (9,)))
    targets = torch.randint(0, 9, (12,))
    loss = linear_cross_entropy(hidden, weight, bias, targets)
    assert not loss.requires_grad
    assert loss.item() == pytest.approx(F.cross_entropy(hidden @ weight.T + bias, targets).item(), rel=1e-5)


@pytest.mark.parametrize("with_interests", [True, False])
def test_a_training_step_gets_the_plain_heads_gradients_interest_match_included(small_chunks, with_interests):
    """The step's full-softmax loss, through the chunked head, against the logits the model serves with."""
    data = rule_sequences()
    config = TrainConfig.for_data(data, device="cpu", hidden=16, layers=1, dropout=0.0)
    assert config.loss == "softmax"
    windows = training_windows(leave_one_out(data).train, config.max_len)
    inputs, targets = next(iter(windows.batches(config.batch_size, np.random.default_rng(0))))
    torch.manual_seed(0)
    model = model_for_data(data, config).train()
    if not with_interests:
        model.predictor.item_interest.fill_(-1)
    assert model.catalogue().has_interests is with_interests

    chunked = batch_loss(model, inputs, targets, config)
    mine = torch.autograd.grad(chunked, [p for p in model.parameters() if p.requires_grad], allow_unused=True)
    plain = _plain_loss(model, inputs, targets, config)
    theirs = torch.autograd.grad(plain, [p for p in model.parameters() if p.requires_grad], allow_unused=True)
    assert chunked.item() == pytest.approx(plain.item(), rel=1e-5)
    for a, b in zip(mine, theirs):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _plain_loss(model, inputs, targets, config):
    """What the step computed before: every logit held, then cross-entropy (and the interest loss)."""
    select = targets > 0
    next_items = targets[select]
    catalogue = torch.arange(1, model.encoder.config.n_items + 1)
    logits, interest_logits = model(inputs, select, catalogue)
    loss = F.cross_entropy(logits, next_items - 1)
    interest_targets = model.predictor.targets(next_items)
    if config.interest_weight > 0 and bool((interest_targets >= 0).any()):
        loss = loss + config.interest_weight * F.cross_entropy(interest_logits, interest_targets, ignore_index=-1)
    return loss

