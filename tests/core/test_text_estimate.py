"""The training estimate counts what reading item text costs: the projection and the one-time embedding."""

import pytest

from core.training import plan
from core.engine import Engine
from core.training import TrainConfig
from engine_data import demo_workspace, one_thread  # noqa: F401
from text_data import use_word_encoder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def engine(tmp_path, monkeypatch):
    use_word_encoder(monkeypatch)
    engine = Engine(demo_workspace(tmp_path / "ws.sqlite", 200, 80))
    yield engine
    engine.workspace.close()


@pytest.fixture
def timed_models(monkeypatch):
    """The networks the estimate times."""
    models, estimate = [], plan.timed_estimate
    monkeypatch.setattr(plan, "timed_estimate", lambda model, *args: models.append(model) or estimate(model, *args))
    return models


def small(engine, **overrides) -> TrainConfig:
    return TrainConfig.for_data(engine.sequence_data(), model="gru", hidden=8, layers=1, **overrides)


def test_the_estimate_times_the_text_projection_and_the_embedding_of_uncached_items(engine, timed_models):
    first = engine.estimate_training(small(engine))
    assert timed_models[-1].encoder.embeddings.text is not None and timed_models[-1].encoder.config.text_dim == 32
    assert first.embed_items == 80 and first.embed_s > 0
    assert "the language model reads 80 items' text once" in first.describe()
    assert first.to_json()["embed_items"] == 80
    assert engine.estimate_training(small(engine)).embed_items == 80  # the estimate stored no vectors
    engine.embed_items()
    cached = engine.estimate_training(small(engine))
    assert (cached.embed_items, cached.embed_s) == (0, 0.0) and "language model" not in cached.describe()


def test_no_text_is_estimated_without_it(engine, timed_models):
    estimate = engine.estimate_training(small(engine, text=False))
    assert timed_models[-1].encoder.embeddings.text is None and estimate.embed_items == 0


def test_the_budget_starts_once_the_items_text_is_read_as_the_estimate_says(engine, monkeypatch):
    """The estimate states the one-time embedding apart from the budget; the run counted it in: a first
    Quick run (1 minute) on ml-latest-small spent 67 s embedding 9,742 titles and trained one step."""
    import time

    embed = engine.embed_items

    def slow_embed(*args, **kwargs):  # as a large catalogue on a laptop
        time.sleep(1.0)
        return embed(*args, **kwargs)

    monkeypatch.setattr(engine, "embed_items", slow_embed)
    asked = time.perf_counter()
    run = engine.train(small(engine, epochs=1, time_budget=5.0), started=asked)
    wall = time.perf_counter() - asked
    assert run.config["text_model"] and engine.text_index() is not None  # the run did read the text
    assert run.metrics["timing"]["seconds"]["reading"] < 0.9 and run.duration_s < wall - 0.9
