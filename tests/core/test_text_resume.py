"""Resuming a run that read item text: it resumes reading the same model's vectors, or is refused."""

import numpy as np
import pytest

from core import text as text_package
from core.data import leave_one_out
from core.engine import Engine
from core.errors import UsageError
from core.progress import CancelToken, Cancelled
from core.text.search import TextIndex
from core.training import TrainConfig
from core.training.loop import train_sequence_model
from engine_data import demo_workspace, one_thread  # noqa: F401
from neural_data import rule_sequences
from text_data import use_word_encoder

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(hidden=8, layers=1, max_len=12, batch_size=64, warmup_steps=5, epochs=1, device="cpu")


def random_index(data, model: str) -> TextIndex:
    vectors = np.random.default_rng(0).standard_normal((data.n_items + 1, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return TextIndex(model, vectors, np.ones(data.n_items + 1, dtype=bool))


@pytest.mark.parametrize("resumed_with", [None, "other model"])
def test_a_checkpoint_is_not_resumed_with_other_text(tmp_path, resumed_with):
    data = rule_sequences(n_users=60, n_items=12)
    split = leave_one_out(data)
    config = TrainConfig(model="gru", **TINY)
    train_sequence_model(data, split, config, checkpoint_dir=tmp_path, text=random_index(data, "words v1"))
    text = None if resumed_with is None else random_index(data, resumed_with)
    reading = "without item text" if resumed_with is None else "reading item text with other model"
    with pytest.raises(UsageError, match=f"trained reading item text with words v1, this session trains {reading}"):
        train_sequence_model(data, split, config, checkpoint_dir=tmp_path, resume=True, text=text)


@pytest.fixture
def stopped_text_run(tmp_path, monkeypatch):
    """An engine whose text model is ``WordEncoder`` and a text-reading run stopped after its first epoch."""
    use_word_encoder(monkeypatch)
    engine = Engine(demo_workspace(tmp_path / "ws.sqlite", 200, 80))
    config = TrainConfig.for_data(engine.sequence_data(), model="gru", epochs=2, patience=5, hidden=8, layers=1)
    token = CancelToken()
    with pytest.raises(Cancelled):
        engine.train(config, cancel=token,
                     progress=lambda report: "valid_ndcg10" in report.metrics and token.cancel())
    yield engine, engine.runs()[0], config
    engine.workspace.close()


def test_a_resumed_run_reads_the_text_it_started_with_whatever_the_config_says(stopped_text_run):
    engine, stopped, config = stopped_text_run
    assert stopped.status == "cancelled" and stopped.config["text_model"] == "words v1"
    resumed = engine.train(config.__class__(**{**config.to_json(), "text": False}), resume_run=stopped.id)
    assert resumed.status == "done" and resumed.config["text_model"] == "words v1"
    assert [epoch["epoch"] for epoch in resumed.metrics["training"]["epochs"]] == [1, 2]
    assert engine.bundle(resumed.id).scorer.model.encoder.embeddings.text is not None


def test_a_text_run_is_not_resumed_with_another_text_model(stopped_text_run, monkeypatch):
    engine, stopped, config = stopped_text_run
    monkeypatch.setattr(text_package.TextModelSpec, "key", lambda self: "another model")
    with pytest.raises(UsageError, match=f"run #{stopped.id} reads item text with words v1.*cannot be resumed"):
        engine.train(config, resume_run=stopped.id)
    assert engine.run(stopped.id).status == "cancelled"  # refused before the run was touched
