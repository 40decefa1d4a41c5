"""Every item's text embedded once and kept in the workspace; search and similarity over it.

An item's text is its title, its categories and the text-valued attribute columns imported
with it (brand, description...). Vectors are cached in the ``item_text_vectors`` table under
the model's name and version and the text's hash, so re-running the job embeds only items that
are new or whose text changed. The job works in batches (a batch's vectors are written in one
transaction, so a cancelled job keeps what it finished) and stores float16 vectors: 200k items
x 384 dimensions is 150 MB. The table is created on the first write when an older workspace
lacks it (no schema migration: a cache may be missing), and a read-only workspace gets its
vectors computed in memory, not stored.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np
from sqlalchemy import select

from core.progress import RateMeter, emit
from core.store import schema
from core.text.model import TextEncoder

EMBED_BATCH = 1024  # items embedded and written per transaction
ESTIMATE_TEXTS = 64  # texts timed to estimate how long embedding the uncached ones takes
MAX_TEXT_CHARS = 600  # the packaged model reads 256 word pieces; longer descriptions are cut here
VECTOR_DTYPE = np.float16


def item_text(title, categories, attributes) -> str:
    """The words that describe one item: "Title. Categories: A, B. brand: Acme. ..." ("" when none)."""
    parts = []
    if isinstance(title, str) and title.strip():
        parts.append(title.strip())
    if isinstance(categories, str) and categories.strip("| "):
        parts.append("Categories: " + ", ".join(c.strip() for c in categories.split("|") if c.strip()))
    for key, value in _attributes(attributes).items():
        if isinstance(value, str) and value.strip():
            parts.append(f"{key}: {value.strip()}")
    return ". ".join(parts)[:MAX_TEXT_CHARS]


def _attributes(value) -> dict:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ItemVectors:
    """Unit-length text vectors of the items that have text, by store id."""

    model: str  # the model's key (name and version)
    store_ids: np.ndarray  # (n,) int64 item store ids, ascending
    vectors: np.ndarray  # (n, dim) float32, unit length

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def aligned(self, item_store_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(len(item_store_id), dim) vectors in that order (zeros where an item has no text) and
        the (len,) bool mask of the rows that have one; SequenceData's item_store_id puts them
        on the engine's item indices."""
        item_store_id = np.asarray(item_store_id, dtype=np.int64)
        if not len(self.store_ids):
            return np.zeros((len(item_store_id), self.dim), dtype=np.float32), np.zeros(len(item_store_id), dtype=bool)
        where = np.minimum(np.searchsorted(self.store_ids, item_store_id), len(self.store_ids) - 1)
        found = self.store_ids[where] == item_store_id
        out = np.zeros((len(item_store_id), self.dim), dtype=np.float32)
        out[found] = self.vectors[where[found]]
        return out, found


def catalogue_texts(workspace) -> tuple[np.ndarray, list[str]]:
    """(store ids, texts) of every item that has any text."""
    frame = workspace.items_frame()
    if frame.empty:
        return np.zeros(0, dtype=np.int64), []
    texts = [item_text(t, c, a) for t, c, a in zip(frame["title"], frame["categories"], frame["attributes"])]
    keep = [i for i, text in enumerate(texts) if text]
    return frame["id"].to_numpy(np.int64)[keep], [texts[i] for i in keep]


def _has_cache_table(conn) -> bool:
    return conn.connection.dbapi_connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (schema.item_text_vectors.name,)).fetchone() \
        is not None


def stale_items(workspace, model: str, store_ids: np.ndarray, hashes: list[str]) -> np.ndarray:
    """Positions (into ``store_ids``) of the items without a vector for their current text."""
    table = schema.item_text_vectors
    with workspace.engine.connect() as conn:
        cached = dict(conn.execute(select(table.c.item_id, table.c.text_hash).where(table.c.model == model)).all()) \
            if _has_cache_table(conn) else {}
    return np.array([i for i, (item, digest) in enumerate(zip(store_ids.tolist(), hashes))
                     if cached.get(item) != digest], dtype=np.int64)


def _embed_message(todo: int, with_text: int) -> str:
    if todo:
        return f"reading {todo:,} item texts with the language model"
    if with_text:
        return f"the {with_text:,} items' text already read (cached in the workspace)"
    return "no item has a title or other text to read (import an items file with titles)"


def embed_catalogue(workspace, encoder: TextEncoder, progress=None, cancel=None,
                    batch_items: int = EMBED_BATCH) -> ItemVectors:
    """Embed the items that are new or changed since the last run, then return every item's vector.

    ``progress`` gets "embed" reports in items; ``cancel`` is checked between batches (the
    batches already written stay cached, so the next run continues from there).
    """
    store_ids, texts = catalogue_texts(workspace)
    hashes = [text_hash(text) for text in texts]
    todo = stale_items(workspace, encoder.key, store_ids, hashes)
    meter = RateMeter(len(todo))
    emit(progress, meter.report("embed", 0, _embed_message(len(todo), len(store_ids))))
    unstored: list[np.ndarray] = []  # a read-only workspace keeps its fresh vectors here
    for start in range(0, len(todo), batch_items):
        if cancel is not None:
            cancel.raise_if_cancelled()
        batch = todo[start:start + batch_items]
        vectors = encoder.encode([texts[i] for i in batch])
        if workspace.read_only:
            unstored.append(vectors)
        else:
            _write_vectors(workspace, encoder.key, store_ids[batch], [hashes[i] for i in batch], vectors, progress,
                           cancel)
        done = start + len(batch)
        emit(progress, meter.report("embed", done, f"{done:,} of {len(todo):,} items read"))
    cached = read_vectors(workspace, encoder.key, store_ids, hashes)
    return _with_unstored(cached, store_ids[todo], unstored) if unstored else cached


class EmbeddingEstimate(NamedTuple):
    with_text: int  # items that have text
    to_embed: int  # of those, the items without a cached vector for their current text
    seconds: float  # how long embedding those would take here


def embedding_estimate(workspace, encoder: TextEncoder, sample: int = ESTIMATE_TEXTS) -> EmbeddingEstimate:
    """How much ``embed_catalogue`` would do and how long it would take: ``sample`` of the texts to
    embed, spread over the catalogue, are timed after a one-text warm-up; nothing is stored."""
    store_ids, texts = catalogue_texts(workspace)
    todo = stale_items(workspace, encoder.key, store_ids, [text_hash(text) for text in texts])
    if not len(todo):
        return EmbeddingEstimate(len(texts), 0, 0.0)
    timed = [texts[i] for i in todo[np.linspace(0, len(todo) - 1, min(sample, len(todo))).astype(np.int64)]]
    encoder.encode(timed[:1])
    started = time.perf_counter()
    encoder.encode(timed)
    return EmbeddingEstimate(len(texts), len(todo), (time.perf_counter() - started) * len(todo) / len(timed))


def _write_vectors(workspace, model: str, store_ids: np.ndarray, hashes: list[str], vectors: np.ndarray,
                   progress=None, cancel=None) -> None:
    rows = [(int(item), model, digest, vector.astype(VECTOR_DTYPE).tobytes())
            for item, digest, vector in zip(store_ids, hashes, vectors)]
    with workspace.writing(progress, cancel) as conn:
        schema.item_text_vectors.create(conn, checkfirst=True)
        conn.connection.dbapi_connection.executemany(
            "INSERT OR REPLACE INTO item_text_vectors (item_id, model, text_hash, vector) VALUES (?, ?, ?, ?)", rows)


def _with_unstored(cached: ItemVectors, store_ids: np.ndarray, unstored: list[np.ndarray]) -> ItemVectors:
    """The cached vectors and those computed but not stored, as one ItemVectors sorted by store id."""
    fresh = np.concatenate(unstored).astype(np.float32)
    vectors = np.concatenate([cached.vectors, fresh]) if len(cached.store_ids) else fresh
    ids = np.concatenate([cached.store_ids, store_ids])
    order = np.argsort(ids, kind="stable")
    return ItemVectors(cached.model, ids[order], vectors[order])


def read_vectors(workspace, model: str, store_ids: np.ndarray, hashes: list[str]) -> ItemVectors:
    """The cached vectors whose hash matches the item's current text (others are left out).

    Rows are written straight into one preallocated array: 200k items as separate small arrays
    would hold several hundred MB more at the peak.
    """
    current = dict(zip(store_ids.tolist(), hashes))
    found_ids = np.zeros(len(current), dtype=np.int64)
    vectors: Optional[np.ndarray] = None
    count = 0
    with workspace.engine.connect() as conn:
        if not _has_cache_table(conn):
            return ItemVectors(model, np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
        cursor = conn.connection.dbapi_connection.execute(
            "SELECT item_id, text_hash, vector FROM item_text_vectors WHERE model = ? ORDER BY item_id", (model,))
        while rows := cursor.fetchmany(4096):
            for item, digest, blob in rows:
                if current.get(item) != digest:
                    continue
                vector = np.frombuffer(blob, dtype=VECTOR_DTYPE)
                if vectors is None:
                    vectors = np.zeros((len(current), len(vector)), dtype=np.float32)
                vectors[count] = vector
                found_ids[count] = item
                count += 1
    if vectors is None:
        return ItemVectors(model, np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
    return ItemVectors(model, found_ids[:count], vectors[:count])


def cached_vectors(workspace, model: str) -> tuple[ItemVectors, int]:
    """What the cache holds for the current texts without running the model, and how many items lack one."""
    store_ids, texts = catalogue_texts(workspace)
    hashes = [text_hash(text) for text in texts]
    vectors = read_vectors(workspace, model, store_ids, hashes)
    return vectors, len(store_ids) - len(vectors.store_ids)


def nearest(vectors: np.ndarray, query: np.ndarray, k: int, exclude: Optional[np.ndarray] = None) -> np.ndarray:
    """Row positions of the ``k`` rows of ``vectors`` most similar to the unit vector ``query``, best first."""
    if not vectors.size or k <= 0:  # no rows, or rows of no text (a catalogue of ids alone: width 0)
        return np.zeros(0, dtype=np.int64)
    similarity = vectors @ query
    if exclude is not None and len(exclude):
        similarity[exclude] = -np.inf
    k = min(k, len(similarity))
    top = np.argpartition(-similarity, k - 1)[:k]
    top = top[np.argsort(-similarity[top], kind="stable")]
    return top[np.isfinite(similarity[top])]
