"""Where the re-ranker's candidates come from besides the generator's top-N.

The generator ranks the whole catalogue from the sequence alone; two sources add what it
seldom lifts into its top 100: item-kNN's strongest partners of the user's recent items
(``neighbour_candidates``, off by default) and, for a model that reads item text, the items
without training events closest in text to the user's latest ones (``NewItemCandidates``).
Training, the keep check, evaluation and serving all form candidates through ``top_candidates``
or ``core.generator.with_sources`` with the same sources, so what the ranker learns on is what
it serves.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

from core.baselines.item_knn import ItemKNNScorer
from core.generator import CandidateSource, with_sources
from core.top_k import top_k

if TYPE_CHECKING:
    from core.ranker_features import ItemFacts


N_CANDIDATES = 100  # the generator's top-N the ranker is trained on and re-orders
# Item-kNN's strongest partners of the user's recent items added to them (``neighbour_candidates``; 0 = none). The
# generator's top 100 held the held-out item for 40% of ml-latest-small's test users; 50 of item-kNN's raised that
# to 44% (100: 47%), 65% to 70% on ml-100k and on the demo shop, but the served test NDCG@10 gained nothing on
# those (+0.0013, +0.0002; p 0.9) and the keep check left ml-100k's re-ranker out; only over a weak amazon-toys
# generator (item-kNN far above it) did it gain (+0.028). Each served list pays about 2 ms of CPU more
# (benchmarks/bench_candidates.py, bench_latency.py): off until a trained default run shows the gain.
NEIGHBOUR_CANDIDATES = 0
# Items without training events whose text is closest to the user's latest items, added to the candidates of a
# ranker that reads text (``NewItemCandidates``; 0 = none). Only a catalogue with such items is touched: in
# training the log's latest items stand for them (``_with_latest_items_as_new``), so the ranker learns to lift them.
NEW_ITEM_CANDIDATES = 20
NEAR_SLACK = 4  # each item keeps its (new-item candidates + this) closest new items (``NewItemCandidates``)
PREPARED_PAIRS = 100_000_000  # ... found for every item before serving when items x new items is at most this (~1 s)
FILL_ROWS = 256
TEXT_RECENT = 10  # latest history items a candidate's text is compared with


def top_candidates(scores: torch.Tensor, histories: Optional[list[np.ndarray]] = None,
                   sources: tuple[CandidateSource, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(B, N_CANDIDATES + what ``sources`` add) items and scores: the top N_CANDIDATES of ``scores`` and the
    items the ``sources`` propose for ``histories``, best score first (``union_candidates``); slots beyond
    the finite scores hold item 0 at score 0."""
    n = min(N_CANDIDATES, scores.shape[1] - 1)
    top = top_k(scores, n)
    real = torch.isfinite(top.values)
    items = np.zeros((len(scores), N_CANDIDATES), dtype=np.int64)
    values = np.zeros((len(scores), N_CANDIDATES), dtype=np.float32)
    items[:, :n] = torch.where(real, top.indices, 0).numpy()
    values[:, :n] = torch.where(real, top.values, 0.0).numpy()
    if not sources:
        return items, values
    items, values = with_sources(scores, items, histories, sources)
    return items, np.where(items > 0, values, 0.0).astype(np.float32)


def candidate_sources(facts: ItemFacts, neighbours: int, new_items: int = 0) -> tuple[CandidateSource, ...]:
    """The sources a ranker's candidates are drawn from besides the generator's top-N: item-kNN's
    ``neighbours`` strongest (none without co-occurrence in the facts) and the ``new_items`` items without
    training events closest in text to the user's latest items (none without text in the facts)."""
    sources = []
    if neighbours > 0 and facts.cooccurrence is not None:
        sources.append(functools.partial(neighbour_candidates, facts.cooccurrence, facts.arrays["known"], neighbours))
    if new_items > 0 and facts.text is not None:
        sources.append(NewItemCandidates(facts.arrays["text"], new_items_with_text(facts), new_items))
    return tuple(sources)


def new_items_with_text(facts: ItemFacts) -> np.ndarray:
    """The items without training events (not ``known``) that have text: what ``NewItemCandidates`` proposes."""
    text = facts.arrays["text"]
    new = np.flatnonzero(~facts.arrays["known"] & text.any(axis=1))
    return new[new > 0]


class NewItemCandidates:
    """A candidate source: (B, m) the ``m`` items of ``new`` (``new_items_with_text``) closest in text to each
    user's ``TEXT_RECENT`` latest items (largest cosine), among those ``scores`` allows, best first, 0 = none.
    The generator ranks a new item from its text and category alone and seldom into its top 100 (on the demo
    it held the taken new item for 36% of new-item events); this proposes the new items the ranker's
    ``text_similarity`` reads highest.

    It keeps each item's ``m + NEAR_SLACK`` closest new items and their closeness once found (``_near``,
    ``_closeness``). A new item closer to one of the user's items than the least close one kept for every
    one of them (the user's floor) is in a kept list beside its closeness to the user (the largest over the user's
    items): so when ``m`` allowed kept ones are that close, they are the user's ``m`` closest, read from the
    lists of the whole batch at once. Comparing each user's items with the few dozen listed texts instead
    cost 1.5 ms a served batch of 8 on the 10k demo (12% of its scoring), comparing with every new item
    (the demo's 3,000) 1.5-3 ms. A user for whom the lists cannot tell (many of the listed new items taken)
    is compared with all."""

    def __init__(self, text: np.ndarray, new: np.ndarray, m: int) -> None:
        self.text, self.new, self.m = text, new, m
        self.new_text = text[new]  # (len(new), d)
        self.width = min(m + NEAR_SLACK, len(new))
        self._near = np.zeros((len(text), self.width), dtype=np.int32)  # positions in ``new``; memory used as filled
        self._closeness = np.zeros((len(text), self.width), dtype=np.float32)  # ... and their cosine
        self._filled = np.zeros(len(text), dtype=bool)

    def prepare(self) -> None:
        """Find every item's closest new items now (a service before its first answer) when that is quick
        (``PREPARED_PAIRS``); otherwise each item's are found when a history first holds it."""
        if len(self.text) * len(self.new) <= PREPARED_PAIRS:
            self._fill(np.arange(1, len(self.text)))

    def __call__(self, histories: list[np.ndarray], scores: torch.Tensor) -> np.ndarray:
        proposed = np.zeros((len(histories), self.m), dtype=np.int64)
        recent = [np.unique(np.asarray(h[-TEXT_RECENT:], dtype=np.int64)) for h in histories]
        if not len(self.new) or not sum(len(r) for r in recent):
            return proposed
        allowed = np.isfinite(scores[:, torch.from_numpy(self.new)].numpy())  # (B, len(new))
        k = min(self.m, len(self.new))
        settled = np.zeros(len(histories), dtype=bool)
        if self.width < len(self.new):
            self._fill(np.unique(np.concatenate(recent)))
            settled = self._from_kept(recent, allowed, proposed[:, :k])
        for row in np.flatnonzero(~settled):
            if len(recent[row]):
                proposed[row, :k] = self._compared_with_all(recent[row], allowed[row], k)
        return proposed

    def _from_kept(self, recent: list[np.ndarray], allowed: np.ndarray, proposed: np.ndarray) -> np.ndarray:
        """Fill ``proposed`` (B, k) with each user's closest allowed new items read from their items' kept
        lists, best first (equals: the lower position in ``new`` first); (B,) True where that was certain
        (k of them closer than the user's floor: the largest of their items' least close kept ones, closer
        than anything those lists left out)."""
        owner = np.repeat(np.arange(len(recent)), [len(r) for r in recent])
        items = np.concatenate(recent)
        kept_closeness = self._closeness[items]  # (len(items), width)
        floor = np.full(len(recent), -np.inf, dtype=np.float32)
        np.maximum.at(floor, owner, kept_closeness.min(axis=1))
        pair_owner = np.repeat(owner, self.width)
        near, closeness = self._near[items].ravel(), kept_closeness.ravel()
        sure = allowed[pair_owner, near] & (closeness > floor[pair_owner])
        pair_owner, near, closeness = pair_owner[sure], near[sure], closeness[sure]
        order = np.lexsort((-closeness, near, pair_owner))  # per (user, new item) the closest first
        pair_owner, near, closeness = pair_owner[order], near[order], closeness[order]
        first = np.ones(len(near), dtype=bool)
        first[1:] = (pair_owner[1:] != pair_owner[:-1]) | (near[1:] != near[:-1])
        pair_owner, near, closeness = pair_owner[first], near[first], closeness[first]
        order = np.lexsort((near, -closeness, pair_owner))
        pair_owner, near = pair_owner[order], near[order]
        place = np.arange(len(near)) - np.searchsorted(pair_owner, pair_owner)  # each one's place for its user
        kept = place < proposed.shape[1]
        proposed[pair_owner[kept], place[kept]] = self.new[near[kept]]
        return np.bincount(pair_owner[kept], minlength=len(recent)) == proposed.shape[1]

    def _compared_with_all(self, items: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
        """(k,) the allowed new items closest to any of ``items`` (the largest cosine), best first (equals: the
        lower index first), 0 = none."""
        closeness = np.where(allowed, (self.text[items] @ self.new_text.T).max(axis=0), -np.inf)
        best = np.argsort(-closeness, kind="stable")[:k]
        return np.where(np.isfinite(closeness[best]), self.new[best], 0)

    def _fill(self, items: np.ndarray) -> None:
        """Find the closest new items of those ``items`` not yet looked at, ``FILL_ROWS`` per product."""
        missing = items[~self._filled[items]]
        for start in range(0, len(missing), FILL_ROWS):
            chunk = missing[start:start + FILL_ROWS]
            closeness = self.text[chunk] @ self.new_text.T  # (chunk, len(new))
            near = np.argpartition(-closeness, self.width - 1, axis=1)[:, :self.width]
            self._near[chunk] = near
            self._closeness[chunk] = np.take_along_axis(closeness, near, axis=1)
            self._filled[chunk] = True


def neighbour_candidates(cooccurrence: ItemKNNScorer, known: np.ndarray, m: int, histories: list[np.ndarray],
                         scores: torch.Tensor) -> np.ndarray:
    """(B, m) item-kNN's ``m`` best items per user among those ``scores`` allows (finite) and the log
    knew (``known``: an item scored as new has no partners when served), best first, 0 = none: the
    partners of the recent items that the ranker's co-occurrence features count, read from their
    rows alone (a few hundred entries a user, whatever the catalogue's size)."""
    owner, item, contribution = cooccurrence.history_entries(histories)
    width = scores.shape[1]
    keys, inverse = np.unique(owner * width + item, return_inverse=True)
    total = np.bincount(inverse, weights=contribution, minlength=len(keys))
    owner, item = keys // width, keys % width
    allowed = (total > 0) & known[item] & np.isfinite(scores[torch.from_numpy(owner), torch.from_numpy(item)].numpy())
    owner, item, total = owner[allowed], item[allowed], total[allowed]
    order = np.lexsort((-total, owner))
    owner, item = owner[order], item[order]
    place = np.arange(len(owner)) - np.searchsorted(owner, owner)  # each item's place in its user's order
    proposed = np.zeros((len(histories), m), dtype=np.int64)
    proposed[owner[place < m], place[place < m]] = item[place < m]
    return proposed
