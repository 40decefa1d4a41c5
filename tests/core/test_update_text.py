"""`nextpick update` of a run that reads item text: the child keeps reading it, new items included."""

import pytest
import torch

from core.engine import Engine
from core.errors import UsageError
from core.importing.live import EventFeed
from core.training import TrainConfig
from engine_data import demo_workspace, one_thread  # noqa: F401
from text_data import use_word_encoder

pytestmark = pytest.mark.usefixtures("one_thread")
NEW = ["new1", "new2", "new3", "new4"]


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """A demo shop whose item text is read by ``WordEncoder``, with a small Transformer that read it."""
    use_word_encoder(monkeypatch)
    engine = Engine(demo_workspace(tmp_path / "ws.sqlite", 300, 120))
    engine.set_active_run(engine.train(TrainConfig.for_data(engine.sequence_data(), model="sasrec", epochs=2,
                                                            hidden=16, layers=1)).id)
    yield engine
    engine.workspace.close()


def add_items_like(engine, twin: int) -> None:
    """Four new items with the text and categories of item ``twin``, then 40 users who take all four."""
    data = engine.sequence_data()
    with engine.workspace.engine.begin() as conn:
        conn.connection.dbapi_connection.executemany(
            "INSERT INTO items (external_id, title, categories) VALUES (?, ?, ?)",
            [(item, str(data.item_title[twin]), str(data.item_categories[twin])) for item in NEW])
    EventFeed(engine.workspace, "test").post([{"user": str(user), "item": item}
                                              for user in data.user_external[:40] for item in NEW])


def test_the_child_reads_the_new_items_text(engine):
    parent = engine.run(engine.active_run())
    twin = 5
    add_items_like(engine, twin)
    child = engine.update()
    assert (child.parent, child.config["text_model"], child.config["update"]["items"]) == (parent.id, "words v1", 4)
    data = engine.sequence_data()
    text = engine.bundle(child.id).scorer.model.encoder.embeddings.text
    for item in data.item_index_of(NEW):
        assert torch.equal(text.vectors[item], text.vectors[twin])  # embedded before the update read them
    projection = engine.bundle(parent.id).scorer.model.encoder.embeddings.text.projection.weight
    # fine-tuned from the parent's, unless no epoch beat the weights it started from (kept as "epoch 0")
    kept_the_start = engine.run(child.id).metrics["training"]["best_epoch"] == 0
    assert torch.equal(text.projection.weight, projection) == kept_the_start


def test_a_text_run_is_not_updated_without_its_text_model(engine, monkeypatch):
    add_items_like(engine, 5)
    monkeypatch.setattr(Engine, "text_available", lambda self: False)
    with pytest.raises(UsageError, match="reads item text with words v1"):
        engine.update()
