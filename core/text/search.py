"""Finding items by meaning: a query or an item against the catalogue's text vectors.

``TextIndex`` holds the vectors on the engine's item indices (built once per import and
model); a question is one matrix-vector product, so nothing but the query runs the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import serving
from core.text.catalogue import ItemVectors, nearest
from core.text.model import TextEncoder


@dataclass(frozen=True)
class TextIndex:
    """Text vectors on the item indices of one ``SequenceData``."""

    model: str  # the text model's key
    vectors: np.ndarray  # (n_items + 1, dim) float32, unit rows; zero rows for padding and items without text
    has_text: np.ndarray  # (n_items + 1,) bool

    @classmethod
    def build(cls, data, item_vectors: ItemVectors) -> "TextIndex":
        vectors, has_text = item_vectors.aligned(data.item_store_id)
        has_text[0] = False
        vectors[0] = 0.0
        return cls(item_vectors.model, vectors, has_text)

    @property
    def coverage(self) -> float:
        """Share of the catalogue's items that have a text vector."""
        return float(self.has_text[1:].mean()) if len(self.has_text) > 1 else 0.0

    def items_without_text(self) -> np.ndarray:
        return np.flatnonzero(~self.has_text)


def items_by_meaning(data, index: TextIndex, encoder: TextEncoder, text: str, limit: int = 20,
                     exclude: np.ndarray = np.zeros(0, dtype=np.int64)) -> list[serving.ItemInfo]:
    """The ``limit`` items whose text means most nearly ``text``, leaving out the item indices ``exclude``
    (those a search by words already found); runs the language model on the query."""
    if not text.strip() or limit <= 0:
        return []
    query = encoder.encode([text.strip()])[0]
    found = nearest(index.vectors, query, limit, np.concatenate([index.items_without_text(), exclude]))
    return [serving.item_info(data, int(i)) for i in found]


def similar_items(data, index: TextIndex, item: str, n: int = 10) -> list[serving.SimilarItem]:
    """The ``n`` items whose text is nearest to ``item``'s (none when it has no text)."""
    position = int(data.item_index_of([item])[0])
    if position == 0 or not index.has_text[position]:
        return []
    exclude = np.concatenate([index.items_without_text(), [position]])
    found = nearest(index.vectors, index.vectors[position], n, exclude)
    similarity = index.vectors[found] @ index.vectors[position]
    return [serving.SimilarItem(**vars(serving.item_info(data, int(i))), similarity=float(s))
            for i, s in zip(found, similarity)]
