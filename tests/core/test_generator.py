import numpy as np
import torch

from core.encoder import EncoderConfig, ItemEmbeddings
from core.generator import generate_candidates
from core.pipeline import NeuralScorer, SequenceModel


class FixedScorer:
    """Scores every user with the same list: item i scores i (highest item index first)."""

    name = "fixed"

    def __init__(self, n_items: int, reverse: bool = False) -> None:
        scores = torch.arange(n_items + 1, dtype=torch.float32)
        self.row = -scores if reverse else scores
        self.row[0] = float("-inf")
        self.calls = []

    def score(self, histories, segments=None):
        self.calls.append((len(histories), None if segments is None else list(segments)))
        return self.row.repeat(len(histories), 1)


def test_seen_items_are_really_excluded():
    scorer = FixedScorer(10)
    histories = [np.array([10, 9, 3]), np.array([1])]
    candidates = generate_candidates(scorer, histories, n=5)
    assert candidates.items.tolist() == [[8, 7, 6, 5, 4], [10, 9, 8, 7, 6]]
    assert np.all(np.diff(candidates.scores, axis=1) <= 0)
    kept = generate_candidates(scorer, histories, n=3, exclude_seen=False)
    assert kept.items.tolist() == [[10, 9, 8], [10, 9, 8]]


def test_short_catalogue_pads_with_item_zero_never_with_excluded_items():
    candidates = generate_candidates(FixedScorer(4), [np.array([4, 3, 2])], n=10)
    assert candidates.items.tolist() == [[1, 0, 0, 0]]
    assert np.isneginf(candidates.scores[0, 1:]).all()


def test_empty_history_goes_to_the_fallback_with_its_segment():
    model_like = FixedScorer(6)
    fallback = FixedScorer(6, reverse=True)
    histories = [np.array([6]), np.array([], dtype=np.int64)]
    candidates = generate_candidates(model_like, histories, n=3, segments=np.array([4, 2]), fallback=fallback)
    assert candidates.items.tolist() == [[5, 4, 3], [1, 2, 3]]
    assert fallback.calls == [(1, [2])]


def test_neural_candidates_exclude_history():
    torch.manual_seed(0)
    model = SequenceModel(EncoderConfig("gru", n_items=20, n_categories=1, hidden=8), n_interests=2)
    candidates = generate_candidates(NeuralScorer(model, "gru"), [np.arange(1, 16)], n=10)
    assert sorted(candidates.items[0][:5].tolist()) == [16, 17, 18, 19, 20]
    assert (candidates.items[0][5:] == 0).all()


def test_cold_items_are_scored_by_category_and_interest_match():
    """Two items nobody interacted with (zero own embedding) differ only through their categories."""
    torch.manual_seed(0)
    model = SequenceModel(EncoderConfig("sasrec", n_items=6, n_categories=3, hidden=8, dropout=0.0), n_interests=2)
    category = torch.tensor([0, 1, 1, 2, 2, 1, 2])
    model.encoder.embeddings.item_category.copy_(category)
    model.predictor.item_interest.copy_(category - 1)
    with torch.no_grad():
        model.encoder.embeddings.item.weight[5:].zero_()  # items 5 (category 1) and 6 (category 2) are cold
        model.encoder.embeddings.category.weight[2].zero_()
        model.predictor.linear.weight.zero_()
        model.predictor.linear.bias.copy_(torch.tensor([4.0, -4.0]))  # strongly predicts interest 0 = category 1
    scores = NeuralScorer(model, "sasrec").score([np.array([1, 2])])[0]
    with torch.no_grad():
        hidden = model.encoder(torch.tensor([[1, 2]]))[0, -1]
        category_part = float(hidden @ model.encoder.embeddings.category.weight[1])
        probabilities = torch.softmax(torch.tensor([4.0, -4.0]), 0)
        interest_gap = float(model.generator.interest_scale) * float(probabilities[0] - probabilities[1])
    assert torch.isclose(scores[5] - scores[6], torch.tensor(category_part + interest_gap), atol=1e-5)
    with torch.no_grad():
        model.encoder.embeddings.category.weight[1].zero_()
    scores = NeuralScorer(model, "sasrec").score([np.array([1, 2])])[0]
    assert scores[5] > scores[6]  # with equal features, the predicted interest decides


def test_interest_match_is_the_same_gathered_or_multiplied():
    from core import generator

    torch.manual_seed(0)
    head = generator.CatalogueHead(n_items=30)
    with torch.no_grad():
        head.item_bias.normal_()
    embeddings = ItemEmbeddings(n_items=30, n_categories=4, hidden=8)
    item_interest = torch.randint(-1, 3, (31,))
    item_interest[item_interest < 0] = generator.NO_INTEREST
    catalogue = generator.Catalogue.build(embeddings, head.item_bias, item_interest, n_interests=3)
    hidden, interest_logits = torch.randn(70, 8), torch.randn(70, 3)
    with torch.no_grad():
        multiplied = head(hidden, interest_logits, catalogue)  # 70 rows > GATHER_ROWS
        gathered = torch.cat([head(hidden[i:i + 10], interest_logits[i:i + 10], catalogue)
                              for i in range(0, 70, 10)])
        probs = interest_logits.softmax(dim=-1)
        match = torch.where(item_interest >= 0, probs[:, item_interest.clamp(min=0)], 0.0)
        expected = hidden @ embeddings.table().T + head.item_bias + head.interest_scale * match
    assert multiplied.shape == (70, 31)
    assert torch.allclose(multiplied, expected, atol=1e-5)
    assert torch.allclose(gathered, expected, atol=1e-5)


def test_catalogue_of_a_model_without_interests_scores_by_embeddings_and_item_bias_only():
    from core import generator

    torch.manual_seed(0)
    embeddings = ItemEmbeddings(n_items=12, n_categories=3, hidden=8)
    head = generator.CatalogueHead(n_items=12)
    with torch.no_grad():
        head.item_bias.normal_()
    no_interests = torch.full((13,), generator.NO_INTEREST)
    catalogue = generator.Catalogue.build(embeddings, head.item_bias, no_interests, n_interests=2)
    assert not catalogue.has_interests
    hidden = torch.randn(2, 8)
    with torch.no_grad():
        scores = head(hidden, torch.randn(2, 2), catalogue)
        assert torch.allclose(scores, hidden @ embeddings.table().T + head.item_bias, atol=1e-6)
        subset = generator.Catalogue.build(embeddings, head.item_bias, no_interests, n_interests=2,
                                           items=torch.tensor([3, 7]))
        assert torch.allclose(head(hidden, torch.randn(2, 2), subset), scores[:, [3, 7]], atol=1e-6)
