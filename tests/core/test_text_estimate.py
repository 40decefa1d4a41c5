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
