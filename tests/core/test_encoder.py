import pytest
import torch

from core.encoder import ENCODER_KINDS, EncoderConfig, SequenceEncoder


def _encoder(kind: str) -> SequenceEncoder:
    torch.manual_seed(0)
    encoder = SequenceEncoder(EncoderConfig(kind, n_items=30, n_categories=4, hidden=16, layers=2, heads=2,
                                            dropout=0.0, max_len=8))
    encoder.embeddings.item_category.copy_(torch.arange(31) % 4)
    return encoder.eval()


@pytest.mark.parametrize("kind", ENCODER_KINDS)
def test_shapes_and_padding_rows_are_zero(kind):
    items = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
    hidden = _encoder(kind)(items)
    assert hidden.shape == (2, 6, 16)
    assert torch.all(hidden[0, :2] == 0) and torch.all(hidden[0, 2:].abs().sum(-1) > 0)


@pytest.mark.parametrize("kind", ENCODER_KINDS)
def test_future_positions_never_change_earlier_states(kind):
    encoder = _encoder(kind)
    items = torch.tensor([[0, 5, 9, 2, 7, 11, 3]])
    changed = items.clone()
    changed[0, 4:] = torch.tensor([20, 21, 22])
    before, after = encoder(items), encoder(changed)
    assert torch.allclose(before[0, :4], after[0, :4], atol=1e-6)
    assert not torch.allclose(before[0, 4:], after[0, 4:], atol=1e-4)


@pytest.mark.parametrize("kind", ENCODER_KINDS)
def test_padding_is_ignored(kind):
    encoder = _encoder(kind)
    short = torch.tensor([[5, 9, 2]])
    padded = torch.tensor([[0, 0, 0, 5, 9, 2]])
    assert torch.allclose(encoder(short)[0], encoder(padded)[0, 3:], atol=1e-5)
    # a batch-mate with a different length does not change the result either
    batch = torch.tensor([[0, 0, 0, 5, 9, 2], [1, 2, 3, 4, 5, 6]])
    assert torch.allclose(encoder(batch)[0], encoder(padded)[0], atol=1e-5)


def test_only_the_most_recent_max_len_items_are_read():
    encoder = _encoder("sasrec")
    long = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
    assert torch.allclose(encoder(long)[0, -1], encoder(long[:, -8:])[0, -1], atol=1e-6)


def test_category_embedding_feeds_the_input():
    encoder = _encoder("gru")
    items = torch.tensor([[4, 5]])
    before = encoder(items)
    encoder.embeddings.item_category[5] = 2
    assert not torch.allclose(before[0, 1], encoder(items)[0, 1])


def test_attention_of_last_position_covers_real_items_only():
    encoder = _encoder("sasrec")
    _, attention = encoder.encode(torch.tensor([[0, 0, 4, 5, 6]]), need_attention=True)
    assert attention.shape == (1, 5)
    assert torch.all(attention[0, :2] == 0)
    assert torch.isclose(attention.sum(), torch.tensor(1.0))
    assert encoder.encode(torch.tensor([[4, 5]]))[1] is None


def test_unknown_encoder_is_refused():
    with pytest.raises(ValueError, match="unknown encoder"):
        SequenceEncoder(EncoderConfig("bert", n_items=3, n_categories=1))


@pytest.mark.parametrize("kind", ENCODER_KINDS)
def test_serving_reads_the_last_position_from_the_kept_item_table_as_the_full_pass_gives_it(kind):
    """``last_only`` (the last block run for the newest position alone) with the frozen ``item_table``
    gives the full pass's last state and last-layer attention."""
    encoder = _encoder(kind)
    items = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 9]])
    with torch.no_grad():
        full, attention = encoder.encode(items, need_attention=True)
        last, last_attention = encoder.encode(items, need_attention=True, item_table=encoder.embeddings.table(),
                                              last_only=True)
    assert last.shape == (3, 1, 16) and torch.allclose(last[:, 0], full[:, -1], atol=1e-5)
    if kind == "sasrec":
        assert torch.allclose(last_attention, attention, atol=1e-6)
