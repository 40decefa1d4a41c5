"""What the re-ranker reads of each candidate: the training log's facts about items (``ItemFacts``)
and the per-candidate features computed from them and the user's history (``CandidateView``).

Every feature is a NumPy column over a batch's candidates; ``features_for`` says which a ranker
reads (no "seen before" when the history is excluded, the text features only for a model that
reads item text) and the bundle records them, so a saved ranker reads what it was trained on.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from core.baselines.item_knn import ItemKNNScorer
from core.baselines.train_log import TrainLog
from core.candidate_sources import N_CANDIDATES, TEXT_RECENT


COOCCURRENCE_NEIGHBOURS = 20  # each item's strongest co-occurring partners kept for the ranker (20 a row in the bundle)
FEATURES = ("score_z", "rank", "interest_match", "popularity", "recency", "history_category_share",
            "segment_affinity", "history_length", "seen_before", "same_category_as_last",
            "cooccurrence", "cooccurrence_z", "text_similarity", "new_item")
# Read only by a ranker over a model that reads item text: it learns how new items fare from the log's
# latest items made new (``_with_latest_items_as_new``), which only such a model can score as it does new items.
TEXT_FEATURES = ("text_similarity", "new_item")
LEGACY_FEATURES = FEATURES[:10]  # a ranker saved before its features were recorded used these
LOG_FEATURES = ("popularity", "recency", "cooccurrence", "cooccurrence_z")  # what the training log says of an item
# Features read together when saying why the ranker lifted an item; every other feature is a group of its own.
GROUPS = {"generator": ("score_z", "rank"), "co-occurrence": ("cooccurrence", "cooccurrence_z")}
COOCCURRENCE_GROUP = "co-occurrence"


def feature_groups(features: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """``features`` grouped as ``GROUPS`` says (a group keeps the names it has among them)."""
    grouped = {group: tuple(name for name in names if name in features) for group, names in GROUPS.items()}
    alone = {name: (name,) for name in features if not any(name in names for names in GROUPS.values())}
    return {group: names for group, names in {**grouped, **alone}.items() if names}


def features_for(exclude_seen: bool, text: bool = False) -> tuple[str, ...]:
    """The features of a ranker whose candidates exclude the user's history ("seen_before" is then always
    0, so it is left out; a ranker for repeats keeps it), and that reads item text or not."""
    return tuple(name for name in FEATURES if not (exclude_seen and name == "seen_before")
                 and (text or name not in TEXT_FEATURES))


@dataclass
class ItemFacts:
    """Per-item and per-segment facts from the training log, as tensors for the bundle.

    An item the log never saw knows nothing of its takers or partners; its ``LOG_FEATURES`` are read
    as its list's average (``CandidateView``), not as those of an item nobody ever took. Which items
    those are: with text (a ranker that learned how new items fare, ``new_item``), every item of
    popularity 0; without, the items new since training (``known``), an item the log held without
    events staying one nobody took.
    """

    popularity: torch.Tensor  # (n_items + 1,) log1p(count) / log1p(max count); 0 = not in the log
    recency: torch.Tensor  # (n_items + 1,) 1 = last taken at the newest time, 0 = oldest / never
    item_category: torch.Tensor  # (n_items + 1,) long
    segment_affinity: torch.Tensor  # (n_segments, n_categories) log lift of P(category | segment)
    cooccurrence: Optional[ItemKNNScorer] = None  # items taken near each other (None in older bundles)
    # (n_items + 1, d) the items' unit text vectors (core.text), rows of 0 for none; the scorer's own,
    # attached when a text-reading model is trained or loaded (``Scorer.text_vectors``), never saved twice
    text: Optional[torch.Tensor] = None
    # (n_items + 1,) bool: items in the training log's catalogue; None = all. A run served on a catalogue
    # that grew since (``core.bundles``) knows nothing of the new items' takers or partners.
    known: Optional[torch.Tensor] = None

    @classmethod
    def from_log(cls, log: TrainLog, item_knn: Optional[ItemKNNScorer] = None) -> "ItemFacts":
        """``item_knn``: an item-kNN already fitted on ``log`` with the default window (the run's own
        generator), narrowed instead of counting the log's co-occurrences a second time."""
        width = log.n_items + 1
        counts = np.bincount(log.items, minlength=width).astype(np.float64)
        popularity = np.log1p(counts) / max(np.log1p(counts.max(initial=0)), 1e-9)
        last = np.full(width, -np.inf)
        np.maximum.at(last, log.items, log.ts)
        oldest, newest = (float(log.ts.min()), float(log.ts.max())) if len(log.ts) else (0.0, 1.0)
        recency = np.where(np.isfinite(last), (last - oldest) / max(newest - oldest, 1e-9), 0.0)
        seg_cat = log.segment_counts(log.n_categories, item_values=log.item_category)
        p_cat = (seg_cat.sum(axis=0) + 1.0) / (seg_cat.sum() + log.n_categories)
        p_cat_given_seg = (seg_cat + 1.0) / (seg_cat.sum(axis=1, keepdims=True) + log.n_categories)
        affinity = np.clip(np.log(p_cat_given_seg / p_cat), -3.0, 3.0)
        return cls(torch.tensor(popularity, dtype=torch.float32), torch.tensor(recency, dtype=torch.float32),
                   torch.as_tensor(log.item_category, dtype=torch.long), torch.tensor(affinity, dtype=torch.float32),
                   ItemKNNScorer.fit(log, neighbours=COOCCURRENCE_NEIGHBOURS) if item_knn is None
                   else item_knn.narrowed(COOCCURRENCE_NEIGHBOURS))

    @functools.cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        """The per-item facts as NumPy arrays (views of the tensors), read for every served list."""
        arrays = {"popularity": self.popularity.numpy(), "recency": self.recency.numpy(),
                  "item_category": self.item_category.numpy(), "segment_affinity": self.segment_affinity.numpy()}
        if self.text is not None:
            arrays["text"] = self.text.float().numpy()
            arrays["known"] = arrays["popularity"] > 0
        else:
            arrays["known"] = np.ones(len(arrays["popularity"]), bool) if self.known is None else self.known.numpy()
        return arrays

    def with_items_as_new(self, new: torch.Tensor) -> "ItemFacts":
        """These facts with the items ``new`` marks (bool, (n_items + 1,)) read as a text-reading ranker reads
        an item the log never saw (popularity 0): ``new_item``, their other log facts their list's average."""
        return dataclasses.replace(self, popularity=self.popularity.masked_fill(new, 0.0))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        cooccurrence = {} if self.cooccurrence is None else self.cooccurrence.state_tensors()
        return {"popularity": self.popularity, "recency": self.recency, "item_category": self.item_category,
                "segment_affinity": self.segment_affinity, **{f"cooccurrence.{k}": v for k, v in cooccurrence.items()}}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "ItemFacts":
        cooccurrence = {k[len("cooccurrence."):]: v for k, v in state.items() if k.startswith("cooccurrence.")}
        return cls(state["popularity"], state["recency"], state["item_category"].long(), state["segment_affinity"],
                   ItemKNNScorer.from_state(cooccurrence) if cooccurrence else None)


def candidate_features(facts: ItemFacts, items: np.ndarray, scores: np.ndarray, histories: list[np.ndarray],
                       segments: np.ndarray, interests: np.ndarray, item_interest: np.ndarray,
                       features: tuple[str, ...] = FEATURES) -> torch.Tensor:
    """(B, N, len(features)) ``features`` (names from ``FEATURES``, in that order) of each (user,
    candidate); padding candidates (item 0) get zeros.

    interests: (B, n_interests) predicted interest probabilities (rows of zeros when unknown).
    item_interest: (n_items + 1,) interest index of each item, -1 for none.
    """
    return CandidateView(facts, items, scores, histories, segments, interests, item_interest).features(features)


class CandidateView:
    """One batch of candidate lists and what their features share, each part computed once.

    All NumPy: one served list's dozen features cost tens of microseconds each this way, against
    hundreds as small torch operations; ``partners`` reuses the co-occurrence pairs the features read.
    """

    def __init__(self, facts: ItemFacts, items, scores, histories, segments, interests, item_interest) -> None:
        self.facts, self.arrays = facts, facts.arrays
        self.items = np.asarray(items, dtype=np.int64)
        self.real = self.items > 0
        self.scores = np.asarray(scores, dtype=np.float32)
        self.histories = [np.asarray(h, dtype=np.int64) for h in histories]
        self.segments = np.asarray(segments, dtype=np.int64)
        self.interests = np.asarray(interests, dtype=np.float32)
        self.item_interest = np.asarray(item_interest)

    def features(self, names: tuple[str, ...]) -> torch.Tensor:
        values = np.zeros(self.items.shape + (len(names),), dtype=np.float32)
        for column, name in enumerate(names):
            values[:, :, column] = getattr(self, name)()
        values *= self.real[:, :, None]
        self._impute_unknown(values, [names.index(name) for name in LOG_FEATURES if name in names])
        return torch.from_numpy(values)

    def _impute_unknown(self, values: np.ndarray, columns: list[int]) -> None:
        """Set, in place, the ``columns`` of real candidates the log knew nothing of to their mean over the
        known candidates of the same list (0 where none is known).

        An item added after training (or without a training event) has no takers or partners in the
        run's facts; read as zeros, it would look like an item nobody ever took, which the ranker learnt
        to push down. Read as the list's average, the ranker orders it by what it does know (the
        generator's score, its category, its text)."""
        known = self.arrays["known"][self.items] & self.real
        unknown = self.real & ~known
        if not columns or not unknown.any():
            return
        part = values[:, :, columns]
        means = (part * known[:, :, None]).sum(axis=1, keepdims=True) / np.maximum(known.sum(axis=1), 1)[:, None, None]
        values[:, :, columns] = np.where(unknown[:, :, None], means, part)

    @functools.cached_property
    def category(self) -> np.ndarray:
        return self.arrays["item_category"][self.items]

    @functools.cached_property
    def recent_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _recent_pairs(self.facts.cooccurrence, self.items, self.histories)

    @functools.cached_property
    def history_cooccurrence(self) -> np.ndarray:
        """(B, N) how often each candidate is taken near the user's recent items: item-kNN's score of it
        (decayed sum over the last items of their cosine co-occurrence with it), for candidates only."""
        owner, _, contributions = self.recent_pairs
        sums = np.zeros(self.items.shape, dtype=np.float32)
        np.add.at(sums, owner, contributions)
        return sums

    def partners(self) -> np.ndarray:
        """(B, N) the recent history item that adds most to each candidate's ``history_cooccurrence``
        (the newest of equals), 0 where none adds anything: what "often taken with X" names."""
        owner, recent, contributions = self.recent_pairs
        partners = np.zeros(self.items.shape, dtype=np.int64)
        if not len(owner):
            return partners
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])  # each user's recent events are contiguous
        users = owner[starts]
        strongest = np.maximum.reduceat(contributions, starts, axis=0)  # (users, N)
        event = np.arange(len(owner))[:, None]
        is_strongest = (contributions == strongest[np.searchsorted(users, owner)]) & (contributions > 0)
        newest = np.maximum.reduceat(np.where(is_strongest, event, -1), starts, axis=0)
        partners[users] = np.where(newest >= 0, recent[np.maximum(newest, 0)], 0)
        return partners

    def score_z(self) -> np.ndarray:
        return _z_scored(self.scores, self.real)

    def rank(self) -> np.ndarray:
        """The generator's order among the candidates (the lists are in it, ``union_candidates``)."""
        return (np.log1p(np.arange(self.items.shape[1], dtype=np.float32)) / np.log1p(N_CANDIDATES))[None, :]

    def interest_match(self) -> np.ndarray:
        n_interests = self.interests.shape[1]
        padded = np.concatenate([self.interests, np.zeros((len(self.interests), 1), np.float32)], axis=1)
        column = self.item_interest[self.items]
        return np.take_along_axis(padded, np.where(column < 0, n_interests, column), axis=1)

    def popularity(self) -> np.ndarray:
        return self.arrays["popularity"][self.items]

    def recency(self) -> np.ndarray:
        return self.arrays["recency"][self.items]

    def history_category_share(self) -> np.ndarray:
        mix = history_category_mix(self.histories, self.arrays["item_category"], self.arrays["segment_affinity"].shape[1])
        return np.take_along_axis(mix, self.category, axis=1)

    def segment_affinity(self) -> np.ndarray:
        affinity = self.arrays["segment_affinity"]
        return affinity[np.clip(self.segments, 0, len(affinity) - 1)[:, None], self.category]

    def history_length(self) -> np.ndarray:
        return (np.log1p([len(h) for h in self.histories]) / np.log1p(100.0))[:, None]

    def seen_before(self) -> np.ndarray:
        owner = np.repeat(np.arange(len(self.histories)), [len(h) for h in self.histories])
        events = np.concatenate(self.histories + [np.zeros(0, np.int64)])
        width = int(max(self.items.max(initial=0), events.max(initial=0))) + 1
        keys = np.arange(len(self.histories))[:, None] * width + self.items
        return np.isin(keys, owner * width + events)

    def same_category_as_last(self) -> np.ndarray:
        last = np.array([self.arrays["item_category"][h[-1]] if len(h) else -1 for h in self.histories])
        return (self.category == last[:, None]) & (self.category > 0)

    def cooccurrence(self) -> np.ndarray:
        return np.log1p(self.history_cooccurrence)

    def cooccurrence_z(self) -> np.ndarray:
        return _z_scored(self.history_cooccurrence, self.real)

    def new_item(self) -> np.ndarray:
        """1 for an item the log never saw: scored from its text, its log features only its list's average."""
        return ~self.arrays["known"][self.items]

    def text_similarity(self) -> np.ndarray:
        """(B, N) each candidate's largest text cosine with the user's ``TEXT_RECENT`` latest items (0
        without text): what tells a new edition of a line the user follows from any other new item."""
        text = self.arrays.get("text")
        similarity = np.zeros(self.items.shape, dtype=np.float32)
        if text is None:
            return similarity
        for row, history in enumerate(self.histories):
            recent = history[-TEXT_RECENT:]
            if len(recent):
                similarity[row] = (text[self.items[row]] @ text[recent].T).max(axis=1)
        return similarity


def _z_scored(values: np.ndarray, real: np.ndarray) -> np.ndarray:
    """(B, N) ``values`` standardised over each row's real candidates (padding excluded)."""
    values = np.where(real, values, 0.0)
    n_real = np.maximum(real.sum(axis=1, keepdims=True), 1)
    mean = values.sum(axis=1, keepdims=True) / n_real
    std = np.sqrt((((values - mean) ** 2) * real).sum(axis=1, keepdims=True) / n_real)
    return (values - mean) / (std + 1e-6)


def _recent_pairs(cooccurrence: ItemKNNScorer, items: np.ndarray, histories: list[np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(owner, recent, contributions): each recent history event item-kNN reads (its user's row, its
    item, oldest first within a user) and its weighted cosine co-occurrence with each of its user's
    candidates, (E, N)."""
    weights = [cooccurrence.history_weights(h) for h in histories]
    used = [w > 0 for w in weights]
    owner = np.repeat(np.arange(len(histories)), [int(u.sum()) for u in used])
    recent = np.concatenate([h[u] for h, u in zip(histories, used)] + [np.zeros(0, np.int64)])
    weight = np.concatenate([w[u] for w, u in zip(weights, used)] + [np.zeros(0)]).astype(np.float32)
    return owner, recent, cooccurrence.row_values(recent, items, owner) * weight[:, None]


def history_category_mix(histories: list[np.ndarray], item_category: np.ndarray, n_categories: int) -> np.ndarray:
    """(B, n_categories) share of each user's history in each category."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    events = np.concatenate([np.asarray(h, np.int64) for h in histories] + [np.zeros(0, np.int64)])
    flat = np.bincount(rows * n_categories + np.asarray(item_category)[events], minlength=len(histories) * n_categories)
    counts = flat.reshape(len(histories), n_categories).astype(np.float32)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
