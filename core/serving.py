"""Answering for one user: candidates → ranker → diversity → explained list, and the lookups around it.

Everything here works on a loaded ``Bundle`` and the workspace's ``SequenceData`` and is
read-only, so the engine can call it from any thread. A what-if history (item ids typed by a
person) is served exactly like a stored one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np

from core.bundles import Bundle
from core.errors import UsageError
from core.generator import generate_candidates
from core.candidate_sources import N_CANDIDATES
from core.ranker import mmr_order
from core.store.schema import split_categories

BECAUSE_ITEMS = 3  # history items listed in an explanation
REASON_TITLES = 2  # of those, named in the one-line reason
# A share says something only at this many times an even one: a history item's share of the evidence (it
# then explains a recommendation), a predicted interest's share of the user's next interests (it is theirs).
NEAR_UNIFORM = 1.5


@dataclass(frozen=True)
class Recommendation:
    """One recommended item with why.

    because: up to three (history item id, weight) pairs, strongest first: the events that
    drove this item, each weighted by its share of all the history's evidence (so the listed
    weights sum to at most 1); items near an even share explain nothing and are left out.
    interest: the user's predicted interest the item serves, or None: when the model predicts no
    interests, when the item's interest is not one the user leans to (``NEAR_UNIFORM``; "fits their
    interest in Thriller" for a user predicted 1% Thriller misleads), and for an anonymous visitor
    (no history, no profile), whose predicted interests are everyone's. top_share: the item's place in
    the model's ranking of the whole catalogue as a fraction (0.002 = in its top 0.2%), one
    scale for every model, unlike ``score``, whose units differ from model to model.
    taken_with: the history item (id) the re-ranker lifted it for being often taken with, when
    that co-occurrence lifted it more than anything else did (``Ranker.explained_relevance``).
    """

    rank: int
    item: str
    title: str
    categories: tuple[str, ...]  # names, primary first; empty when the item has none
    score: float
    reason: str
    because: list[tuple[str, float]]
    interest: Optional[str]
    top_share: float = 1.0
    taken_with: Optional[str] = None


@dataclass(frozen=True)
class Interest:
    name: str
    probability: float


@dataclass(frozen=True)
class ItemInfo:
    item: str
    title: str
    categories: tuple[str, ...]  # as in Recommendation


@dataclass(frozen=True)
class NextItem:
    item: str
    title: str
    categories: tuple[str, ...]  # as in Recommendation
    count: int  # how many times someone took it right after the asked item


@dataclass(frozen=True)
class SimilarItem:
    item: str
    title: str
    categories: tuple[str, ...]  # as in Recommendation
    similarity: float  # cosine similarity of the two items' text vectors (core.text), -1..1


def resolve_history(data, index: Optional[int], history: Optional[list[str]]) -> tuple[np.ndarray, int]:
    """(item indices, profile segment) for the user at row ``index`` of ``data`` (None: not a stored
    user) or a what-if history; unknown item ids are skipped.

    A what-if history is a list of raw events, so consecutive repeats are merged the way stored
    sequences are built: the same history typed in or loaded from the store scores the same.
    """
    segment = int(data.user_segment[index]) if index is not None else 0
    if history is not None:
        items = data.item_index_of([str(h) for h in history])
        return _one_step_per_item(items[items > 0]), segment
    if index is None:
        return np.zeros(0, dtype=np.int64), segment
    return np.asarray(data.history(index), dtype=np.int64), segment


def _one_step_per_item(items: np.ndarray) -> np.ndarray:
    """Consecutive events on one item as one step (view -> cart -> purchase), as in ``core.data``."""
    keep = np.ones(len(items), dtype=bool)
    keep[1:] = items[1:] != items[:-1]
    return items[keep]


def predicted_interests(bundle: Bundle, history: np.ndarray, segment: int = 0) -> list[Interest]:
    """The user's next-interest distribution, most likely first; [] when the model has none."""
    names = bundle.interest_names
    probs = bundle.scorer.interests_batch([history], np.array([segment]))[0]
    if not len(names) or probs.sum() <= 0:
        return []
    order = np.argsort(-probs, kind="stable")
    return [Interest(names[i], float(probs[i])) for i in order]


def recommend(bundle: Bundle, data, history: np.ndarray, segment: int, k: int = 10, diversity: float = 0.0,
              exclude_seen: bool = True) -> list[Recommendation]:
    """Top-``k`` explained recommendations; an empty history gets the segment's popular items."""
    return recommend_batch(bundle, data, [history], np.array([segment]), k, diversity, exclude_seen)[0]


def recommend_batch(bundle: Bundle, data, histories: list[np.ndarray], segments: np.ndarray, k: int = 10,
                    diversity: float = 0.0, exclude_seen: bool = True) -> list[list[Recommendation]]:
    """Explained top-``k`` lists for many users: the scoring stages run once for the whole batch."""
    if not 0.0 <= diversity <= 1.0:
        raise UsageError("diversity must be between 0 (pure relevance) and 1 (maximal category spread)")
    histories = [np.asarray(h, dtype=np.int64) for h in histories]
    segments = np.asarray(segments, dtype=np.int64)
    sources = () if bundle.ranker is None else bundle.ranker.candidate_sources
    candidates = generate_candidates(bundle.scorer, histories, N_CANDIDATES, exclude_seen, segments, bundle.fallback,
                                     sources)
    items, scores = candidates.items, candidates.scores
    interests = bundle.scorer.interests_batch(histories, segments)
    relevance = np.where(items > 0, scores, -np.inf)
    ranked = np.flatnonzero([len(h) > 0 for h in histories]) if bundle.ranker is not None else np.zeros(0, int)
    if len(ranked):
        reranked = bundle.ranker.explained_relevance(
            items[ranked], np.nan_to_num(scores[ranked], neginf=0.0), [histories[i] for i in ranked],
            segments[ranked], interests[ranked], bundle.item_interest)
        relevance[ranked] = reranked.relevance.numpy()
    chosen = [_order(items[row], relevance[row], data.item_category, k, diversity) for row in range(len(histories))]
    taken_with = _taken_with(reranked, ranked, chosen) if len(ranked) else [np.zeros(len(c), np.int64) for c in chosen]
    weights = [_attributions(bundle, histories[row], items[row][chosen[row]]) for row in range(len(histories))]
    drivers = _drivers(histories, weights)
    return [_one_list(bundle, data, histories[row], int(segments[row]), items[row], relevance[row], interests[row],
                      chosen[row], taken_with[row], weights[row], drivers[row]) for row in range(len(histories))]


def _taken_with(reranked, ranked: np.ndarray, chosen: list[np.ndarray]) -> list[np.ndarray]:
    """Per list, the history item each chosen candidate is "often taken with" (0 = none), asked of the
    re-ranked rows (``ranked``: the users with a history) in one pass."""
    counts = [len(chosen[row]) for row in ranked]
    partners = reranked.taken_with(np.repeat(np.arange(len(ranked)), counts),
                                   np.concatenate([chosen[row] for row in ranked]).astype(np.int64))
    found = dict(zip(ranked.tolist(), np.split(partners, np.cumsum(counts)[:-1])))
    return [found.get(row, np.zeros(len(positions), np.int64)) for row, positions in enumerate(chosen)]


def _attributions(bundle, history: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(len(items), len(history)) how much each history event drove each listed item (none without a history)."""
    weights = bundle.scorer.attributions(history, items) if len(history) else np.zeros((len(items), 0))
    return np.asarray(weights, dtype=np.float64)


def _one_list(bundle, data, history, segment, items, relevance, interests, chosen, taken_with, weights, drivers
              ) -> list[Recommendation]:
    """The list of the candidates at positions ``chosen``, explained (``taken_with``: their partners, 0 = none;
    ``weights``: their ``_attributions``; ``drivers``: their ``_drivers``)."""
    chosen_items = items[chosen]
    evidence = (weights.sum(axis=1) > 0 if weights.size else np.zeros(len(chosen), dtype=bool)).tolist()
    n_items = max(int(data.n_items), 1)
    place = 1 + (relevance[None, :] > relevance[chosen][:, None]).sum(axis=1)  # among all candidates, by final relevance
    fallback = "popular with shoppers like them" if segment > 0 and not len(history) else "popular overall"
    # An anonymous visitor's predicted interests are everyone's: none of them is theirs to name.
    known = bool(len(history)) or segment > 0
    served_interests = _served_interests(bundle, chosen_items, interests) if known else [None] * len(chosen_items)
    partners = taken_with.tolist()
    return [_explained(rank + 1, item, score, drivers[rank], evidence[rank], partners[rank], fallback,
                       served_interests[rank], data, share)
            for rank, (item, score, share) in enumerate(zip(chosen_items.tolist(), relevance[chosen].tolist(),
                                                            (place / n_items).tolist()))]


def _order(items: np.ndarray, relevance: np.ndarray, item_category: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Positions of the ``k`` candidates listed: ``mmr_order``'s; without diversity that is the relevance
    order (ties by position, as ``mmr_order`` breaks them), one sort instead of ``k`` passes (a served
    list's most common case)."""
    if diversity > 0:
        return mmr_order(items, relevance, item_category, k, diversity)
    usable = np.flatnonzero((items > 0) & np.isfinite(relevance))
    return usable[np.argsort(-relevance[usable], kind="stable")[:k]]


def _served_interests(bundle, items: np.ndarray, interests: np.ndarray) -> list[Optional[str]]:
    """The user's predicted interest each listed item serves: its own interest when the user's predicted
    share of it is at least ``NEAR_UNIFORM`` times an even one, else None (None for all when the model
    predicts none)."""
    if not len(interests) or interests.sum() <= 0:
        return [None] * len(items)
    names = bundle.interest_names
    leaning = interests >= NEAR_UNIFORM * interests.sum() / len(interests)
    indices = [int(bundle.item_interest[item]) if item < len(bundle.item_interest) else -1 for item in items.tolist()]
    return [names[i] if 0 <= i < min(len(names), len(leaning)) and leaning[i] else None for i in indices]


def _explained(rank, item, score, drivers, evidence, taken_with: int, fallback: str, interest: Optional[str], data,
               top_share: float) -> Recommendation:
    """The reason in words: the history item it is often taken with when that is what lifted it, else
    the history items that drove it, else what the model really went by (``fallback``: whom the item
    is popular with); then the user's interest it serves, if any."""
    if taken_with:
        parts = [taken_with_words(_title(data, taken_with))]
    elif drivers:
        parts = ["because they took " + and_list([_title(data, index) for index, _ in drivers[:REASON_TITLES]])]
    else:
        parts = ["fits their history as a whole" if evidence else fallback]
    if interest is not None:
        parts.append(f"fits their interest in {interest}")
    ids = data.item_labels[0]
    return Recommendation(rank, ids[item], _title(data, item), _categories(data, item), score, " · ".join(parts),
                          [(ids[i], w) for i, w in drivers], interest, top_share, ids[taken_with] if taken_with else None)


def taken_with_words(title: str, deed: str = "took", who: str = "they") -> str:
    """"often taken with Toy Story (1995), which they took": the reason for an item the re-ranker lifted
    for being often taken with an item of the user's history (the studio names the deed: "watched")."""
    return f"often taken with {title}, which {who} {deed}"


def and_list(names: list[str]) -> str:
    """"A", "A and B", "A, B and C"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _drivers(histories: list[np.ndarray], weights: list[np.ndarray]) -> list[list[list[tuple[int, float]]]]:
    """Per user and recommended item (row of the user's ``weights``), the strongest distinct history items
    with their share of its evidence.

    Repeats of an item add up. Items whose share is near an even split (``NEAR_UNIFORM``) are
    dropped: "because of" 30 items at 3% each explains nothing. The whole batch is done at once, on
    the (listed item, history item) pairs that weigh only: one sort groups and orders them (by weight,
    ties by item), where per user these steps were a served list's costliest part; a table of all
    events by all distinct items took seconds and gigabytes for a shopper with thousands.
    """
    counts = [len(w) for w in weights]
    starts = np.cumsum([0] + counts)
    rows, items, values = [], [], []
    for user, (history, weight) in enumerate(zip(histories, weights)):
        row, event = np.nonzero(weight) if weight.size else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        rows.append(starts[user] + row)
        items.append(history[event])
        values.append(weight[row, event])
    rows, items, values = (np.concatenate(parts or [np.zeros(0)]) for parts in (rows, items, values))
    stride = 1 + int(items.max(initial=0))
    pairs, pair = np.unique(rows.astype(np.int64) * stride + items.astype(np.int64), return_inverse=True)
    totals = np.bincount(pair.ravel(), weights=values, minlength=len(pairs))
    pair_row, pair_item = pairs // stride, pairs % stride
    norms = np.bincount(pair_row, weights=totals, minlength=int(starts[-1]))
    order = np.lexsort((pair_item, -totals, pair_row))
    ranked_row = pair_row[order]
    top = order[np.arange(len(order)) - np.searchsorted(ranked_row, ranked_row) < BECAUSE_ITEMS]
    n_distinct = np.array([len(np.unique(h)) for h in histories], dtype=np.int64)[np.repeat(np.arange(len(counts)), counts)]
    floor = np.where(n_distinct > 1, NEAR_UNIFORM / np.maximum(n_distinct, 1), 0.0)
    shares = totals[top] / norms[pair_row[top]]
    kept = (shares > 0) & (shares >= floor[pair_row[top]])
    lists = [[] for _ in range(int(starts[-1]))]
    for row, item, share in zip(pair_row[top][kept].tolist(), pair_item[top][kept].tolist(), shares[kept].tolist()):
        lists[row].append((item, share))
    return [lists[start:end] for start, end in zip(starts[:-1].tolist(), starts[1:].tolist())]


def _title(data, item: int) -> str:
    ids, titles, _ = data.item_labels
    return titles[item] or ids[item]


def _categories(data, item: int) -> tuple[str, ...]:
    return _split_categories(data.item_labels[2][item])


@functools.lru_cache(maxsize=4096)
def _split_categories(text: str) -> tuple[str, ...]:
    """A catalogue has far fewer category texts than items, and a served list splits one per item."""
    return split_categories(text)


def item_info(data, item: int) -> ItemInfo:
    """What a list shows about the item at index ``item``."""
    return ItemInfo(data.item_labels[0][item], _title(data, item), _categories(data, item))


def next_items(data, successors, item: str, n: int = 10) -> list[NextItem]:
    """Items most often taken right after ``item`` (within one user's sequence), read from the
    log's ``Successors`` (``core.data.successors``)."""
    index = int(data.item_index_of([item])[0])
    followers, counts = successors.of(index, n)
    return [NextItem(data.item_labels[0][i], _title(data, i), _categories(data, i), int(count))
            for i, count in zip(followers.tolist(), counts.tolist())]


def search_items(data, text: str, limit: int = 20) -> list[ItemInfo]:
    """Items whose title or id contains ``text`` (case-insensitive); id prefix matches first."""
    needle = text.strip().lower()
    if not needle:
        return []
    titles = np.char.lower(data.item_title[1:].astype(str))
    ids = np.char.lower(data.item_external[1:].astype(str))
    starts = np.char.startswith(ids, needle)
    found = starts | (np.char.find(titles, needle) >= 0) | (np.char.find(ids, needle) >= 0)
    order = np.flatnonzero(found)
    order = order[np.argsort(~starts[order], kind="stable")][:limit] + 1
    return [item_info(data, i) for i in order]
