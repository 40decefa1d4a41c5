"""Ranker: re-orders the generator's top-N candidates with a small learned model.

The generator sees only the sequence; the ranker adds what it cannot: the user's profile
segment × category affinity, the item's popularity and freshness, how well the item fits the
predicted interest and the user's category mix, and how often it is taken near the user's
recent items (item-kNN co-occurrence: "often taken with X"). It is trained on held-out
positions (the split's validation targets: the held-out item among the candidates is the
positive, the others negatives) with a listwise softmax loss, starting from the generator's
own order and keeping that order unless the learned one ranks better on users it did not
train on (cross-fitted, see ``_fit``), by a margin a paired test says is not chance
(``report["kept"]``). Otherwise the generator's own order is served.

Its candidates are formed as the run's evaluation mode serves them: under "exclude seen"
(``EvalMode.NEW``) the user's history is masked (``core.generator.mask_seen``) before the
top-N is taken, in training, in its keep-or-drop judgement and in ``RankedScorer`` alike;
under ``EvalMode.REPEAT`` nothing is. A ranker fitted on unmasked candidates learns to lift
what the user already had, which "exclude seen" then removes: it looked better on its own
holdout and served worse.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from core.baselines import ItemKNNScorer, TrainLog
from core.evaluation import masked_score_batches, wilcoxon_p_value
from core.generator import mask_seen
from core.progress import RateMeter, emit
from core.scorer import Scorer, WrappedScorer

N_CANDIDATES = 100  # candidates the ranker is trained on and re-orders
MAX_TRAIN_USERS = 3000  # held-out positions used to fit it (a sample when there are more)
FOLDS = 5  # cross-fitting: each fold is judged by a ranker trained on three others, its step picked on one
TRAIN_LIST = 32  # candidates per training list: the target and a sample of the others
EPOCHS = 80  # full-batch Adam steps
CHECK_EVERY = 5  # steps between holdout checks
# The learned order is served only if its cross-fitted gain is this unlikely to be chance. Judging every user
# gives the test the power to ask this much: on 60 users a ranker at p = 0.03 had learnt "never taken is good"
# and lifted every item added since, while the update of that log gained at p = 1e-6.
KEEP_P_VALUE = 0.01
COOCCURRENCE_NEIGHBOURS = 20  # each item's strongest co-occurring partners kept for the ranker (20 a row in the bundle)
FEATURES = ("score_z", "rank", "interest_match", "popularity", "recency", "history_category_share",
            "segment_affinity", "history_length", "seen_before", "same_category_as_last",
            "cooccurrence", "cooccurrence_z")
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


def features_for(exclude_seen: bool) -> tuple[str, ...]:
    """The features of a ranker whose candidates exclude the user's history: "seen_before" is
    then always 0, so it is left out (a ranker for repeats keeps it)."""
    return tuple(name for name in FEATURES if not (exclude_seen and name == "seen_before"))


@dataclass
class ItemFacts:
    """Per-item and per-segment facts from the training log, as tensors for the bundle."""

    popularity: torch.Tensor  # (n_items + 1,) log1p(count) / log1p(max count)
    recency: torch.Tensor  # (n_items + 1,) 1 = last taken at the newest time, 0 = oldest / never
    item_category: torch.Tensor  # (n_items + 1,) long
    segment_affinity: torch.Tensor  # (n_segments, n_categories) log lift of P(category | segment)
    cooccurrence: Optional[ItemKNNScorer] = None  # items taken near each other (None in older bundles)
    # (n_items + 1,) bool: items the training log saw (in its catalogue); None = all. A run served on a
    # catalogue that grew since (``core.bundles``) knows nothing of the new items' takers or partners.
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
        seg_cat = np.bincount(log.segments[log.sequence_of_event] * log.n_categories + log.item_category[log.items],
                              minlength=log.n_segments * log.n_categories).reshape(log.n_segments, log.n_categories)
        p_cat = (seg_cat.sum(axis=0) + 1.0) / (seg_cat.sum() + log.n_categories)
        p_cat_given_seg = (seg_cat + 1.0) / (seg_cat.sum(axis=1, keepdims=True) + log.n_categories)
        affinity = np.clip(np.log(p_cat_given_seg / p_cat), -3.0, 3.0)
        return cls(torch.tensor(popularity, dtype=torch.float32), torch.tensor(recency, dtype=torch.float32),
                   torch.as_tensor(log.item_category, dtype=torch.long), torch.tensor(affinity, dtype=torch.float32),
                   ItemKNNScorer.fit(log, neighbours=COOCCURRENCE_NEIGHBOURS) if item_knn is None
                   else item_knn.narrowed(COOCCURRENCE_NEIGHBOURS))

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
    items = torch.as_tensor(items, dtype=torch.long)
    real = items > 0
    score_z = _z_scored(torch.as_tensor(scores, dtype=torch.float32), real)
    ranks = torch.log1p(torch.arange(items.shape[1], dtype=torch.float32)) / np.log1p(N_CANDIDATES)
    category = facts.item_category[items]  # (B, N)
    interest_of = torch.as_tensor(item_interest, dtype=torch.long)[items]
    interests = torch.as_tensor(interests, dtype=torch.float32)
    padded = torch.cat([interests, torch.zeros(len(interests), 1)], dim=1)  # last column = "no interest"
    interest_match = padded.gather(1, torch.where(interest_of < 0, interests.shape[1], interest_of))
    n_categories = facts.segment_affinity.shape[1]
    mix = history_category_mix(histories, facts.item_category, n_categories)
    lengths = torch.tensor([len(h) for h in histories], dtype=torch.float32)[:, None]
    last_category = torch.tensor([int(facts.item_category[h[-1]]) if len(h) else -1 for h in histories])[:, None]
    segment_rows = torch.as_tensor(np.asarray(segments), dtype=torch.long).clamp(0, len(facts.segment_affinity) - 1)
    columns = {
        "score_z": lambda: score_z,
        "rank": lambda: ranks.expand_as(score_z),
        "interest_match": lambda: interest_match,
        "popularity": lambda: facts.popularity[items],
        "recency": lambda: facts.recency[items],
        "history_category_share": lambda: mix.gather(1, category),
        "segment_affinity": lambda: facts.segment_affinity[segment_rows[:, None], category],
        "history_length": lambda: (torch.log1p(lengths) / np.log1p(100.0)).expand_as(score_z),
        "seen_before": lambda: _seen_before(items, histories),
        "same_category_as_last": lambda: ((category == last_category) & (category > 0)).float(),
        "cooccurrence": lambda: torch.log1p(cooccurrence()),
        "cooccurrence_z": lambda: _z_scored(cooccurrence(), real),
    }
    cooccurrence = functools.cache(lambda: history_cooccurrence(facts.cooccurrence, items, histories))
    values = torch.stack([columns[name]() for name in features], dim=2) * real[:, :, None]
    if facts.known is not None:
        _impute_unknown(values, [features.index(name) for name in LOG_FEATURES if name in features],
                        real, facts.known[items] & real)
    return values


def _impute_unknown(values: torch.Tensor, columns: list[int], real: torch.Tensor, known: torch.Tensor) -> None:
    """Set, in place, the ``columns`` of real candidates the log knew nothing of to their mean over the
    known candidates of the same list (0 where none is known).

    An item added after training has no takers or partners in the run's facts; read as zeros, it would
    look like an item nobody ever took, which the ranker learnt to push down. Read as the list's
    average, the ranker orders it by what it does know (the generator's score, its category)."""
    if not columns:
        return
    known_values = values[:, :, columns] * known[:, :, None]
    means = known_values.sum(dim=1, keepdim=True) / known.sum(dim=1, keepdim=True).clamp(min=1)[:, :, None]
    unknown = (real & ~known)[:, :, None]
    values[:, :, columns] = torch.where(unknown, means.expand_as(known_values), values[:, :, columns])


def _z_scored(values: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """(B, N) ``values`` standardised over each row's real candidates (padding excluded)."""
    values = torch.where(real, values, torch.zeros(()))
    n_real = real.sum(dim=1, keepdim=True).clamp(min=1)
    mean = values.sum(dim=1, keepdim=True) / n_real
    std = (((values - mean) ** 2) * real).sum(dim=1, keepdim=True).div(n_real).sqrt()
    return (values - mean) / (std + 1e-6)


def history_cooccurrence(cooccurrence: ItemKNNScorer, items: torch.Tensor, histories: list[np.ndarray]) -> torch.Tensor:
    """(B, N) how often each candidate is taken near the user's recent items: item-kNN's score of it
    (decayed sum over the last items of their cosine co-occurrence with it), for candidates only."""
    owner, _, contributions = _recent_pairs(cooccurrence, items, histories)
    sums = np.zeros(items.shape, dtype=np.float32)
    np.add.at(sums, owner, contributions)
    return torch.from_numpy(sums)


def strongest_partners(cooccurrence: ItemKNNScorer, items: torch.Tensor, histories: list[np.ndarray]) -> np.ndarray:
    """(B, N) the recent history item that adds most to each candidate's ``history_cooccurrence``
    (the newest of equals), 0 where none adds anything: what "often taken with X" names."""
    owner, recent, contributions = _recent_pairs(cooccurrence, items, histories)
    partners = np.zeros(items.shape, dtype=np.int64)
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


def _recent_pairs(cooccurrence: ItemKNNScorer, items: torch.Tensor, histories: list[np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(owner, recent, contributions): each recent history event item-kNN reads (its user's row, its
    item, oldest first within a user) and its weighted cosine co-occurrence with each of its user's
    candidates, (E, N)."""
    histories = [np.asarray(h, np.int64) for h in histories]
    weights = [cooccurrence.history_weights(h) for h in histories]
    used = [w > 0 for w in weights]
    owner = np.repeat(np.arange(len(histories)), [int(u.sum()) for u in used])
    recent = np.concatenate([h[u] for h, u in zip(histories, used)] + [np.zeros(0, np.int64)])
    weight = np.concatenate([w[u] for w, u in zip(weights, used)] + [np.zeros(0)]).astype(np.float32)
    candidates = items.numpy()[owner]  # (E, N): each recent history event against its user's candidates
    pairs = cooccurrence.pair_values(np.repeat(recent, items.shape[1]), candidates.ravel())
    return owner, recent, pairs.reshape(candidates.shape) * weight[:, None]


def history_category_mix(histories: list[np.ndarray], item_category: torch.Tensor, n_categories: int) -> torch.Tensor:
    """(B, n_categories) share of each user's history in each category."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    events = np.concatenate([np.asarray(h, np.int64) for h in histories] + [np.zeros(0, np.int64)])
    flat = np.bincount(rows * n_categories + item_category.numpy()[events], minlength=len(histories) * n_categories)
    counts = torch.tensor(flat.reshape(len(histories), n_categories), dtype=torch.float32)
    return counts / counts.sum(dim=1, keepdim=True).clamp(min=1)


def _seen_before(items: torch.Tensor, histories: list[np.ndarray]) -> torch.Tensor:
    """(B, N) 1 where the candidate is already in that user's history."""
    owner = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    events = np.concatenate([np.asarray(h, np.int64) for h in histories] + [np.zeros(0, np.int64)])
    items = items.numpy()
    width = int(max(items.max(initial=0), events.max(initial=0))) + 1
    keys = np.arange(len(histories))[:, None] * width + items
    return torch.tensor(np.isin(keys, owner * width + events), dtype=torch.float32)


class RankerNet(nn.Module):
    """Linear score over the features plus a small MLP correction.

    Initialised to reproduce the generator's order exactly (weight 1 on its z-scored score,
    0 elsewhere, MLP output 0), so training starts from "does no harm".
    """

    def __init__(self, features: tuple[str, ...] = FEATURES, hidden: int = 8) -> None:
        super().__init__()
        self.linear = nn.Linear(len(features), 1, bias=False)
        self.mlp = nn.Sequential(nn.Linear(len(features), hidden), nn.ReLU(), nn.Linear(hidden, 1))
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[0, features.index("score_z")] = 1.0
            self.mlp[2].weight.zero_()
            self.mlp[2].bias.zero_()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, N, F) -> relevance (B, N)."""
        return (self.linear(features) + self.mlp(features)).squeeze(-1)


class Ranker:
    """The trained re-ranker: item facts + network over ``features``, with a bundle-friendly state.

    ``exclude_seen``: its candidates were formed with the user's history masked (trained for
    serving with "exclude seen"); such a ranker has no "seen_before" feature.
    """

    def __init__(self, facts: ItemFacts, net: RankerNet, report: Optional[dict] = None,
                 exclude_seen: bool = False, features: Optional[tuple[str, ...]] = None) -> None:
        self.facts, self.net = facts, net.eval()
        self.report = report or {}
        self.exclude_seen = exclude_seen
        self.features = features_for(exclude_seen) if features is None else features

    @torch.no_grad()
    def relevance(self, items, scores, histories, segments, interests, item_interest) -> torch.Tensor:
        """(B, N) learned relevance of each candidate; -inf for padding candidates."""
        features = candidate_features(self.facts, items, scores, histories, segments, interests, item_interest,
                                      self.features)
        return self._relevance_of(features, items)

    @torch.no_grad()
    def explained_relevance(self, items, scores, histories, segments, interests, item_interest
                            ) -> tuple[torch.Tensor, np.ndarray]:
        """``relevance`` and (B, N) the history item each candidate is "often taken with": where the
        co-occurrence features lifted it more than any other feature did, its strongest partner among
        the user's recent items; 0 elsewhere (and for rankers without those features)."""
        features = candidate_features(self.facts, items, scores, histories, segments, interests, item_interest,
                                      self.features)
        relevance = self._relevance_of(features, items)
        partners = np.zeros(np.shape(items), dtype=np.int64)
        lifts = self._lifts(features, relevance, torch.as_tensor(items) > 0)
        taken_with = lifts.pop(COOCCURRENCE_GROUP, None)
        if taken_with is None or self.facts.cooccurrence is None:
            return relevance, partners
        others = torch.stack(list(lifts.values())).max(dim=0).values if lifts else torch.zeros_like(taken_with)
        mainly = ((taken_with > 0) & (taken_with >= others)).numpy()
        if mainly.any():  # the partners cost a second pass over the co-occurrence pairs
            partners[mainly] = strongest_partners(self.facts.cooccurrence, torch.as_tensor(items), histories)[mainly]
        return relevance, partners

    def _relevance_of(self, features: torch.Tensor, items) -> torch.Tensor:
        relevance = self.net(features)
        return torch.where(torch.as_tensor(items) > 0, relevance, torch.tensor(float("-inf")))

    def _lifts(self, features: torch.Tensor, relevance: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, N) per feature group: how much higher each candidate's ``relevance`` is than with that
        group's features at their mean over its list's candidates (what the group lifted it by)."""
        n_real = real.sum(dim=1, keepdim=True).clamp(min=1)[:, :, None]
        means = (features * real[:, :, None]).sum(dim=1, keepdim=True) / n_real  # (B, 1, F)
        lifts = {}
        for group, names in feature_groups(self.features).items():
            columns = [self.features.index(name) for name in names]
            averaged = features.clone()
            averaged[:, :, columns] = means[:, :, columns].expand(-1, features.shape[1], -1)
            lifts[group] = relevance - self.net(averaged)
        return lifts

    def state_tensors(self) -> dict[str, torch.Tensor]:
        net = {f"net.{k}": v.detach().contiguous() for k, v in self.net.state_dict().items()}
        return {**{f"facts.{k}": v for k, v in self.facts.state_tensors().items()}, **net,
                "exclude_seen": torch.tensor(self.exclude_seen),
                "features": torch.tensor([name in self.features for name in FEATURES])}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "Ranker":
        """Bundles saved before these were recorded hold rankers of ``LEGACY_FEATURES`` fitted on
        unmasked candidates; the feature mask follows ``FEATURES``, new names being appended."""
        facts = ItemFacts.from_state({k[len("facts."):]: v for k, v in state.items() if k.startswith("facts.")})
        exclude_seen = bool(state.get("exclude_seen", torch.tensor(False)))
        mask = state["features"].tolist() if "features" in state else [name in LEGACY_FEATURES for name in FEATURES]
        features = tuple(name for name, used in zip(FEATURES, mask) if used)
        net = RankerNet(features)
        net.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
        return cls(facts, net, exclude_seen=exclude_seen, features=features)


def train_ranker(scorer: Scorer, log: TrainLog, eval_set, segments: np.ndarray, item_interest: np.ndarray,
                 *, seed: int = 0, max_users: int = MAX_TRAIN_USERS, epochs: int = EPOCHS,
                 progress=None, cancel=None) -> Ranker:
    """Fit the re-ranker on held-out positions (``eval_set``: the validation targets).

    Candidates are the scorer's top-N formed as ``RankedScorer`` serves them under the eval
    set's mode (the history masked under ``EvalMode.NEW``, nothing under ``REPEAT``); users
    whose held-out item falls outside them teach nothing about re-ordering and are skipped.
    """
    exclude_seen = eval_set.eval_mode.masks_history
    features_used = features_for(exclude_seen)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.permutation(len(eval_set))[:max_users])
    histories = [eval_set.histories[i] for i in chosen]
    targets = np.asarray(eval_set.targets)[chosen]
    user_segments = np.asarray(segments)[np.asarray(eval_set.user_index)[chosen]]
    facts = ItemFacts.from_log(log, scorer if isinstance(scorer, ItemKNNScorer) else None)
    items, scores = _candidates(scorer, histories, user_segments, exclude_seen, cancel)
    interests = scorer.interests_batch(histories, user_segments)
    features = candidate_features(facts, items, scores, histories, user_segments, interests, item_interest,
                                  features_used)
    labels = torch.as_tensor(np.argmax(items == targets[:, None], axis=1))
    found = torch.as_tensor((items == targets[:, None]).any(axis=1))
    features, labels, valid = features[found], labels[found], torch.as_tensor(items)[found] > 0
    net, report = _fit(features, labels, valid, features_used, seed, epochs, progress, cancel)
    report.update(target_in_candidates=float(found.float().mean()) if len(found) else 0.0, exclude_seen=exclude_seen)
    return Ranker(facts, net, report, exclude_seen)


def _candidates(scorer: Scorer, histories, segments, exclude_seen: bool, cancel) -> tuple[np.ndarray, np.ndarray]:
    """The scorer's top-N per user, the history masked first when serving excludes it."""
    items = np.zeros((len(histories), N_CANDIDATES), dtype=np.int64)
    scores = np.zeros((len(histories), N_CANDIDATES), dtype=np.float32)
    batches = masked_score_batches(scorer, histories, segments, history_masked=exclude_seen, cancel=cancel)
    for start, stop, batch in batches:
        items[start:stop], scores[start:stop] = top_candidates(batch)
    return items, scores


def top_candidates(scores: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(B, N_CANDIDATES) items and scores, best first; slots beyond the finite scores hold item 0."""
    n = min(N_CANDIDATES, scores.shape[1] - 1)
    top = torch.topk(scores, n, dim=1)
    real = torch.isfinite(top.values)
    items = np.zeros((len(scores), N_CANDIDATES), dtype=np.int64)
    values = np.zeros((len(scores), N_CANDIDATES), dtype=np.float32)
    items[:, :n] = torch.where(real, top.indices, 0).numpy()
    values[:, :n] = torch.where(real, top.values, 0.0).numpy()
    return items, values


def _fit(features, labels, valid, names: tuple[str, ...], seed: int, epochs: int, progress,
         cancel) -> tuple[RankerNet, dict]:
    """Cross-fitted listwise training: every user is judged once, by a ranker that neither trained
    nor picked its step on them.

    The users fall in ``FOLDS`` folds; for each, a ranker trains on three others and picks its
    best step (the untrained generator order included) on the fourth: picking and judging on the
    same users would flatter it. The paired test then weighs all users' gains over the
    generator's order, five times the users a single holdout would judge (610 users on
    ml-latest-small: one split judged about 70). When it passes, the served ranker is trained
    on every user for the median of the folds' picked step counts.
    """
    torch.manual_seed(seed)
    generator = RankerNet(names).eval()
    generator_gains = _list_gains(generator, features, labels, valid)
    report = {"judged_users": int(len(labels)), "train_users": 0}
    if len(labels) < 2 * FOLDS:
        return generator, {**report, "holdout_ndcg10_generator": _mean(generator_gains),
                           "holdout_ndcg10_ranker": _mean(generator_gains), "holdout_p_value": 1.0, "kept": False}
    fold = torch.as_tensor(np.random.default_rng(seed).permutation(len(labels)) % FOLDS)
    meter = RateMeter((FOLDS + 1) * epochs)
    gains, picked = np.zeros(len(labels)), []
    for k in range(FOLDS):
        judge, pick = fold == k, fold == (k + 1) % FOLDS
        net, step = _train_and_pick(features, labels, valid, ~judge & ~pick, pick, names, epochs, k * epochs, meter,
                                    progress, cancel)
        gains[judge.numpy()] = _list_gains(net, features[judge], labels[judge], valid[judge])
        picked.append(step)
    p_value = wilcoxon_p_value(gains - generator_gains)
    kept = bool(_mean(gains) > _mean(generator_gains) and p_value < KEEP_P_VALUE)
    served = generator
    if kept:  # every user trains it, for as many steps as the folds picked (their median)
        everyone = torch.ones(len(labels), dtype=torch.bool)
        served, _ = _train_and_pick(features, labels, valid, everyone, None, names, int(np.median(picked)),
                                    FOLDS * epochs, meter, progress, cancel)
        report["train_users"] = int(len(labels))
    return served, {**report, "holdout_ndcg10_generator": _mean(generator_gains), "holdout_ndcg10_ranker": _mean(gains),
                    "holdout_p_value": p_value, "kept": kept}


def _train_and_pick(features, labels, valid, train, pick, names, epochs: int, done: int, meter: RateMeter, progress,
                    cancel) -> tuple[RankerNet, int]:
    """A ranker trained on the ``train`` users and its step count: the step (every ``CHECK_EVERY``,
    the start included) that ranks the ``pick`` users best, or ``epochs`` when ``pick`` is None;
    ``done``: steps of earlier fits, for progress."""
    net = RankerNet(names)
    train_features, train_valid = _sampled_lists(features[train], labels[train], valid[train])
    train_labels = torch.zeros(len(train_features), dtype=torch.long)  # the target sits in column 0
    best_state, best_step = {k: v.clone() for k, v in net.state_dict().items()}, 0
    best_pick = None if pick is None else _mean(_list_gains(net, features[pick], labels[pick], valid[pick]))
    adam = torch.optim.Adam(net.parameters(), lr=0.03)
    for epoch in range(1, epochs + 1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        logits = net.train()(train_features).masked_fill(~train_valid, float("-inf"))
        loss = nn.functional.cross_entropy(logits, train_labels)
        adam.zero_grad()
        loss.backward()
        adam.step()
        if pick is not None and epoch % CHECK_EVERY == 0:
            ndcg = _mean(_list_gains(net, features[pick], labels[pick], valid[pick]))
            if ndcg > best_pick:
                best_pick, best_state, best_step = ndcg, {k: v.clone() for k, v in net.state_dict().items()}, epoch
            emit(progress, meter.report("ranker", done + epoch, f"ranker step {done + epoch}",
                                        loss=float(loss.detach()), ndcg10=ndcg))
    if pick is None:
        return net.eval(), epochs
    net.load_state_dict(best_state)
    return net.eval(), best_step


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else 0.0


def _sampled_lists(features, labels, valid, size: int = TRAIN_LIST) -> tuple[torch.Tensor, torch.Tensor]:
    """Each training list cut to its target (column 0) plus ``size - 1`` random other candidates.

    Features were computed on the full lists, so ranks and z-scores mean what they mean when
    serving; the softmax over a sample of negatives keeps training cheap.
    """
    noise = torch.rand(valid.shape)
    noise[~valid] = 2.0  # padding last
    noise.scatter_(1, labels[:, None], -1.0)  # target first
    picked = torch.argsort(noise, dim=1)[:, :size]
    gathered = features.gather(1, picked[:, :, None].expand(-1, -1, features.shape[2]))
    return gathered, valid.gather(1, picked)


@torch.no_grad()
def _list_gains(net: RankerNet, features, labels, valid) -> np.ndarray:
    """Per-user NDCG@10 of the held-out item within the re-ranked candidate lists."""
    if len(labels) == 0:
        return np.zeros(0)
    logits = net.eval()(features).masked_fill(~valid, float("-inf"))
    rank = (logits > logits.gather(1, labels[:, None])).sum(dim=1).double()
    return torch.where(rank < 10, 1.0 / torch.log2(rank + 2.0), torch.zeros((), dtype=torch.float64)).numpy()


class RankedScorer(WrappedScorer):
    """Generator + ranker as one ``Scorer``, so the whole pipeline is evaluated by full ranking.

    The top-N candidates are placed above every other item in the ranker's order; the rest
    keep the generator's scores. With ``exclude_seen`` (the ranker's own setting unless
    given: an evaluation under the other mode gives it) the history is masked before the
    top-N is taken, as serving forms the candidates, so the ranker re-orders what is served.
    """

    def __init__(self, scorer: Scorer, ranker: Ranker, item_interest: np.ndarray,
                 exclude_seen: Optional[bool] = None) -> None:
        super().__init__(scorer)
        self.ranker = ranker
        self.item_interest = np.asarray(item_interest)
        self.exclude_seen = ranker.exclude_seen if exclude_seen is None else exclude_seen
        self.name = f"{scorer.name}+ranker"

    def score(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> torch.Tensor:
        base = self.scorer.score(histories, segments).float()  # a new tensor: ours to change (Scorer.score)
        if self.exclude_seen:
            mask_seen(base, histories)
        interests = self.scorer.interests_batch(histories, segments)
        segments = np.zeros(len(histories), np.int64) if segments is None else np.asarray(segments)
        items, scores = top_candidates(base)
        relevance = self.ranker.relevance(items, scores, histories, segments, interests, self.item_interest)
        finite = torch.isfinite(relevance)
        floor = torch.where(finite, relevance, torch.tensor(float("inf"))).min(dim=1, keepdim=True).values
        ceiling = base.max(dim=1, keepdim=True).values  # scores are finite or -inf: the best finite one (or -inf)
        lifted = ceiling + 1.0 + (relevance - floor)
        index = torch.as_tensor(items)
        base.scatter_(1, index, torch.where(finite, lifted, base.gather(1, index)))
        base[:, 0] = float("-inf")
        return base


def mmr_order(items: np.ndarray, relevance: np.ndarray, item_category: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Positions of ``k`` candidates picked by maximal marginal relevance.

    Each step takes the candidate maximising (1 - diversity) * relevance - diversity * (its
    largest similarity to what is already picked); similarity = same primary category.
    Relevance is min-max scaled to [0, 1] so the knob means the same for every model.
    diversity = 0 keeps the relevance order; 1 spreads categories as far as possible.
    """
    usable = np.flatnonzero((items > 0) & np.isfinite(relevance))
    rel = relevance[usable].astype(np.float64)
    rel = (rel - rel.min()) / max(rel.max() - rel.min(), 1e-12) if len(rel) else rel
    cats = np.asarray(item_category)[items[usable]]
    max_sim = np.zeros(len(usable))
    picked: list[int] = []
    available = np.ones(len(usable), dtype=bool)
    for _ in range(min(k, len(usable))):
        gain = (1.0 - diversity) * rel - diversity * max_sim + 1e-9 * rel
        best = int(np.argmax(np.where(available, gain, -np.inf)))
        picked.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, ((cats == cats[best]) & (cats > 0)).astype(np.float64))
    return usable[np.array(picked, dtype=np.int64)]
