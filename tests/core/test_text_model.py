import numpy as np
import pytest
import torch

from core import text as text_package
from core.cli import build_parser
from core.encoder import ItemEmbeddings
from core.engine import Engine
from core.evaluation import metrics_from_ranks
from core.runs.new_items import new_item_metrics
from core.text.naming import distinctive_words
from core.training import TrainConfig
from engine_data import demo_workspace, one_thread  # noqa: F401
from text_data import WordEncoder

pytestmark = pytest.mark.usefixtures("one_thread")


def test_an_item_without_training_events_is_represented_by_category_and_text_alone():
    torch.manual_seed(0)
    embeddings = ItemEmbeddings(n_items=3, n_categories=2, hidden=4, text_dim=5).eval()
    embeddings.item_category.copy_(torch.tensor([0, 1, 1, 0]))
    embeddings.text.has_events.copy_(torch.tensor([False, True, False, True]))
    embeddings.text.vectors.copy_(torch.eye(4, 5))
    before = embeddings.table().detach().clone()
    with torch.no_grad():
        embeddings.item.weight[2] += 5.0  # the eventless item's ID row is never read
        embeddings.item.weight[1] += 5.0
    after = embeddings.table().detach()
    assert torch.equal(after[2], before[2]) and not torch.equal(after[1], before[1])
    expected = embeddings.category.weight[1] + embeddings.text.projection(torch.eye(4, 5)[2])
    torch.testing.assert_close(after[2], expected.detach())
    torch.testing.assert_close(embeddings(torch.tensor([[2, 1]]))[0], after[[2, 1]])


def test_training_shows_a_share_of_learned_items_by_category_and_text_alone():
    """DropoutNet-style: a training step hides some learned items' ID embeddings, so the text projection
    learns to score an item on its own; serving (eval) always reads every learned item's ID."""
    torch.manual_seed(0)
    embeddings = ItemEmbeddings(n_items=400, n_categories=2, hidden=4, text_dim=5, text_id_dropout=0.5)
    embeddings.item_category.fill_(1)
    embeddings.text.vectors.copy_(torch.randn(401, 5))
    with torch.no_grad():
        embeddings.item.weight[1:] += 1.0  # every learned item's ID row tells
        text_alone = (embeddings.category.weight[embeddings.item_category] + embeddings.text())[1:]

        def read_by_text_alone(rows):  # the ID rows add 1.0 or more; projections of 400 or 401 rows may
            return torch.isclose(rows, text_alone, atol=1e-5).all(dim=1)  # differ in the last bit by CPU

        hidden = read_by_text_alone(embeddings.train().table()[1:])
        assert 0.4 < hidden.float().mean() < 0.6
        inputs = read_by_text_alone(embeddings(torch.arange(1, 401)))
        assert 0.4 < inputs.float().mean() < 0.6 and not torch.equal(inputs, hidden)  # drawn for each call
        assert not read_by_text_alone(embeddings.eval().table()[1:]).any()


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A demo shop whose item text is read by ``WordEncoder`` (the plumbing, not the language model)."""
    patch = pytest.MonkeyPatch()
    encoder = WordEncoder()
    patch.setattr(Engine, "text_available", lambda self: True)
    patch.setattr(text_package, "load_encoder", lambda spec: encoder)
    patch.setattr(text_package.TextModelSpec, "key", lambda self: encoder.key)
    engine = Engine(demo_workspace(tmp_path_factory.mktemp("textmodel") / "ws.sqlite", 300, 120))
    yield engine
    engine.workspace.close()
    patch.undo()


@pytest.fixture(scope="module")
def text_run(engine):
    config = TrainConfig.for_data(engine.sequence_data(), model="sasrec", epochs=2, hidden=16, layers=1)
    return engine.train(config)


def test_a_run_records_that_it_read_text_and_with_which_model(engine, text_run):
    assert text_run.status == "done" and text_run.config["text_model"] == "words v1"
    model = engine.bundle(text_run.id).scorer.model
    assert model.encoder.embeddings.text is not None and model.encoder.config.text_dim == 32
    new_items = text_run.metrics["new_items"]  # leave-one-out: the few test items the demo released last
    assert set(new_items) == {"events", "hr@10", "ndcg@10"} and (new_items["hr@10"] is None) == (new_items["events"] == 0)
    generator_only = text_run.metrics["generator_new_items"]  # the same events, ranked without the re-ranker
    assert generator_only["events"] == new_items["events"] and (generator_only["hr@10"] is None) == (not new_items["events"])


def test_no_text_trains_the_model_without_it(engine):
    config = TrainConfig.for_data(engine.sequence_data(), model="gru", epochs=1, hidden=16, layers=1, text=False)
    run = engine.train(config)
    assert run.config["text_model"] is None
    assert engine.bundle(run.id).scorer.model.encoder.embeddings.text is None


def test_a_bundle_scores_new_items_from_their_text_without_retraining(engine, text_run):
    data = engine.sequence_data()
    user = data.user_external[0]
    before = engine.bundle(text_run.id).scorer.score([data.history(0)])[0]
    twin = int(data.history(0)[-1])
    with engine.workspace.engine.begin() as conn:
        conn.connection.dbapi_connection.execute(
            "INSERT INTO items (external_id, title, categories) VALUES ('new1', ?, ?)",
            (str(data.item_title[twin]), str(data.item_categories[twin])))
    engine.refresh()
    bundle = engine.bundle(text_run.id)
    grown = engine.sequence_data()
    new = int(grown.item_index_of(["new1"])[0])
    assert any("new items scored from their text" in note for note in bundle.notes)
    after = bundle.scorer.score([grown.history(0)])[0]
    torch.testing.assert_close(after[1:new], before[1:new])  # known items keep their trained scores
    table = bundle.scorer.model.item_table().detach()
    old_embeddings = bundle.scorer.model.encoder.embeddings
    id_part = old_embeddings.item.weight[twin].detach()
    torch.testing.assert_close(table[new], table[twin] - id_part)  # same text and category, no ID part
    assert torch.isfinite(after[new])
    longest = engine.max_list_length()  # the whole candidate list
    assert any(r.item == "new1" for r in engine.recommend(text_run.id, user, k=longest, exclude_seen=False))


def test_new_item_figures_count_only_targets_unseen_before_the_test():
    class Targets:
        targets = np.array([1, 2, 3, 3])

    class Report:
        ranks = np.array([1, 20, 2, 50])

    known = np.array([False, True, False, False])
    figures = new_item_metrics(Report, Targets, known)
    expected = metrics_from_ranks(np.array([20, 2, 50]), ks=(10,))
    assert figures == {"events": 3, "hr@10": expected["hr@10"], "ndcg@10": expected["ndcg@10"]}
    assert new_item_metrics(Report, Targets, np.ones(4, dtype=bool)) == {"events": 0, "hr@10": None, "ndcg@10": None}


def test_train_has_a_text_switch():
    parser = build_parser(["train"])
    assert parser.parse_args(["train", "--no-text"]).text is False
    assert parser.parse_args(["train", "--text"]).text is True


def test_clusters_are_named_by_the_words_their_titles_share():
    titles = np.array(["", "Wooden Train 1", "Wooden Train 2", "Steam Train 3", "Teddy Bear 4", "Teddy Bear 5",
                       "Bear Cub 6"], dtype=object)
    groups = np.array([-1, 0, 0, 0, 1, 1, 1])
    words = distinctive_words(groups, titles, 2)
    assert words[0][0] == "train" and words[1][0] == "bear"
