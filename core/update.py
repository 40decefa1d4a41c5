"""Updating a run (``nextpick update``): a child run that catches up with the events added since.

A neural run is fine-tuned from its parent's weights for a few epochs instead of trained anew:
its tables grow to the current catalogue (learned rows follow their vocabulary by the shop's
ids and names; a new item's ID embedding starts at the mean of its category's known items plus
a fresh random row, and what the data itself says about items, such as the item -> category
map or the items' text vectors, comes from a network built for the current data, as training
builds one), the optimizer continues from the moments the parent's bundle stored, training
reads the windows that end in new events (with up to ``max_len`` older events before them as
context), the newest included, and as many inactive users' latest windows (so they are not
forgotten); a sample of held-out users, most with new events, keep their held-out events out
to stop it early and test it. Baselines are cheap to fit: they are refitted on the same events.
Either way the child records its parent and what the log gained (``config["update"]``), and its
run row how long the update took.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

from core.bundles import Bundle, item_index_map
from core.data.histories import Histories
from core.data.splits import EvalSet, Split
from core.errors import UsageError
from core.pipeline import ITEM_BIAS, new_item_bias

if TYPE_CHECKING:
    from core.ranker import Ranker

UPDATE_EPOCHS = 30  # fine-tuning epochs at most (an epoch reads only the windows with new events)
UPDATE_SHARE = 0.1  # what a whole update may take: this share of the full training its lineage began with ...
TRAINING_SHARE = UPDATE_SHARE / 2  # ... of which its fine-tuning's default time budget; the rest is for what
# follows it (three evaluations, the item facts, saving), which a run's time budget does not bound
UPDATE_PATIENCE = 5  # epochs without a better validation on the newest events before stopping
HOLDOUT_SHARE = 0.2  # of the users whose validation event is new: they keep their newest events out, to validate
MIN_VALIDATION_USERS = 200  # fewer held-out users than this: others (a fixed sample) top them up

# Learned tensors whose rows follow a vocabulary that grows with the log; every other learned
# tensor is copied as it is, and every buffer (what the data says about items) comes from the
# current data.
ROW_VOCABULARY = {
    "encoder.embeddings.item.weight": "items",
    "encoder.embeddings.category.weight": "categories",
    "predictor.linear.weight": "interests",
    "predictor.linear.bias": "interests",
    ITEM_BIAS: "items",
}
ITEM_INTEREST = "predictor.item_interest"  # a buffer, but learned (k-means) when the data has no categories


@dataclass(frozen=True)
class Update:
    """A run being updated: the parent's id and loaded bundle, and what the log gained since it."""

    parent: int
    bundle: Optional[Bundle]  # None for a baseline, which is refitted
    growth: "LogGrowth"

    full_training_s: float  # the full training the lineage began with (what the default budget is a share of)

    def record(self) -> dict:
        """The child run's ``config["update"]``: its parent, what the log gained since the parent and
        the lineage's full training time (an update of this child keeps the same default budget)."""
        return {"parent": self.parent, "events": self.growth.events, "items": self.growth.items,
                "full_training_s": self.full_training_s}


def reused_ranker(parent: Bundle, data, log) -> tuple[Optional["Ranker"], dict]:
    """The parent's re-ranker for the child, and its report: the parent's network over the current
    log's item facts (popularity, recency, co-occurrence: new events count at once), or None when
    the parent served without one. Refitting it would cost an update a pass over the validation
    users and a few seconds of fitting, and a fine-tuned network's scores stay on the scale the
    ranker learned: its keep decision stands with the parent's.

    A ranker that reads item text learned how new items fare from the items first taken in its log's
    latest tenth, their log facts hidden (``core.ranker_training.latest_items``), so the items its
    parent never saw that are such items now are shown to it so: read by their few events, they were
    ranked as items hardly anyone takes (the demo shop's daily replay, ``benchmarks/bench_update.py``:
    the updates served 0 of 70 next-day picks of such items, retrains 11). An item first taken
    before that (a long while since the parent) is read by its events, as a retrain reads it."""
    from core.ranker import Ranker
    from core.ranker_features import ItemFacts
    from core.ranker_training import latest_items

    report = {**parent.metrics.get("ranker", {}), "reused_from_parent": True}
    if parent.ranker is None:
        return None, {**report, "kept": False}
    ranker = parent.ranker
    facts = ItemFacts.from_log(log)
    if ranker.reads_text:
        new = np.zeros(len(facts.popularity), dtype=bool)
        new[latest_items(log)] = True
        new &= item_index_map(parent.manifest["vocabulary"]["items"], data) == 0
        facts = facts.with_items_as_new(torch.as_tensor(new))
    return Ranker(facts, ranker.net, report, ranker.exclude_seen, ranker.features,
                  neighbours=ranker.neighbours, new_items=ranker.new_items), report


def full_training_s(parent) -> float:
    """The seconds of the full training ``parent`` (a ``RunSummary``) descends from: its own time, or
    for an update the time its own update recorded (a chain of updates does not shrink its budget)."""
    update = parent.config.get("update") or {}
    return float(update.get("full_training_s", parent.duration_s or 0.0))


@dataclass(frozen=True)
class LogGrowth:
    """What the log gained since a run was trained, as the update reads it."""

    first_new: np.ndarray
    """(n_users,) position in each user's sequence of their first event added since; its length when none."""
    events: int  # events stored since (repeats included)
    items: int  # items created since


def log_growth(workspace, data, since_event_id: int, events: int, items: int) -> LogGrowth:
    """Where each user's events added after event id ``since_event_id`` begin in their sequence.

    Sequences are time-ordered, so a user's new events are those from the earliest time among them
    on (a new event stamped before older ones moves the start back to it).
    """
    with workspace.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        rows = raw.execute("SELECT user_id, min(ts) FROM events WHERE id > ? AND negative = 0 GROUP BY user_id",
                           (int(since_event_id),)).fetchall()
    first_new = np.diff(data.offsets)
    for store_id, earliest in rows:
        user = int(np.searchsorted(data.user_store_id, store_id))
        start, stop = data.offsets[user], data.offsets[user + 1]
        first_new[user] = np.searchsorted(data.ts[start:stop], earliest, side="left")
    return LogGrowth(first_new, int(events), int(items))


def update_split(split: Split, data, first_new: np.ndarray) -> Split:
    """What an update learns from and is measured on: ``split`` with the events it holds out given
    back to training, but for a fixed sample of users (``holdout_users``) who keep theirs, for early
    stopping and the test.

    A user's newest events are what their next ones depend on most, and under leave-one-out they are
    the held-out ones: a demo shopper takes about three events a day, so an update that left each
    user's last two out learned from 19-27% of a day's events (README: what is served then gains
    less over never updating).
    The child's validation and test figures are measured on the held-out users alone, whose
    held-out events it never trained on (its protocol says so)."""
    held = holdout_users(split.valid, first_new)
    learning = np.ones(len(split.train), dtype=bool)
    learning[held] = False
    # The split's training histories are prefixes of the users' sequences: a learning user's grows to all of it.
    train = split.train.with_lengths(split.train.starts, np.where(learning, data.lengths(), split.train.lengths))
    description = f"{split.description}, update holding out {len(held):,} users"
    return dataclasses.replace(split, train=train, valid=held_out(split.valid, held),
                               test=held_out(split.test, held),
                               protocol=f"{split.protocol}; updated: trains on every event but the held-out ones of "
                                        f"{len(held):,} users, who validate and test",
                               description=description)


def holdout_users(valid: EvalSet, first_new: np.ndarray) -> np.ndarray:
    """The users (sorted) whose held-out events an update keeps out: ``HOLDOUT_SHARE`` of those whose
    validation event is new (so early stopping reads the newest events), a fixed sample, topped up
    to ``MIN_VALIDATION_USERS`` with a fixed sample of the others (who lose no new event by it)."""
    newest = Histories.of(valid.histories).lengths >= first_new[valid.user_index]
    rng = np.random.default_rng(0)
    active, others = valid.user_index[newest], valid.user_index[~newest]
    held = rng.choice(active, int(np.ceil(HOLDOUT_SHARE * len(active))), replace=False)
    wanted = min(len(others), max(0, MIN_VALIDATION_USERS - len(held)))
    return np.sort(np.r_[held, rng.choice(others, wanted, replace=False)]).astype(np.int64)


def held_out(eval_set: EvalSet, users: np.ndarray) -> EvalSet:
    """``eval_set``'s targets of ``users``; a report on it says of how many users they are a sample."""
    kept = np.flatnonzero(np.isin(eval_set.user_index, users))
    sampled_from = eval_set.sampled_from or (len(eval_set) if len(kept) < len(eval_set) else None)
    return dataclasses.replace(eval_set, user_index=eval_set.user_index[kept], targets=eval_set.targets[kept],
                               histories=Histories.of(eval_set.histories)[kept], sampled_from=sampled_from)


def fine_tune_split(split: Split, first_new: np.ndarray, max_len: int) -> Split:
    """``split`` (an ``update_split``) narrowed to the windows an update trains on: per user with new
    training events, the training events from ``max_len`` before their first new one on; as many
    other users, a fixed sample, rehearse their latest ``max_len`` training events (so the update
    does not forget those who were not active)."""
    train = Histories.of(split.train)
    lengths = train.lengths
    active = np.flatnonzero(first_new < lengths)
    if not np.any(lengths[active] - np.maximum(0, first_new[active] - max_len) > 1):
        raise UsageError("the events added since this run was trained are all held out by its split "
                         "(validation or test), so there is nothing new to learn from",
                         "Import more events, or train a new run.")
    others = np.flatnonzero((first_new >= lengths) & (lengths > 1))
    rehearsed = np.random.default_rng(0).choice(others, min(len(others), len(active)), replace=False)
    begin = np.array(lengths)  # each user's kept part: from here to the end of their training events
    begin[active] = np.minimum(lengths[active], np.maximum(0, first_new[active] - max_len))
    begin[rehearsed] = np.maximum(0, lengths[rehearsed] - max_len)
    narrowed = train.with_lengths(train.starts + begin, lengths - begin)
    return dataclasses.replace(split, train=narrowed)


def update_config(parent_config, full_training_s: float, time_budget: Optional[float] = None,
                  epochs: int = UPDATE_EPOCHS, patience: int = UPDATE_PATIENCE):
    """The parent's settings, bounded to a few epochs and ``time_budget`` minutes (None: TRAINING_SHARE
    of ``full_training_s``; 0: no limit), continuing the parent's optimisation where its schedule
    ended: no warm-up, and its peak learning rate decayed as the parent's was at its end (at its
    full peak the first steps on a few hundred windows undid what the parent had learned); a
    baseline's stay as they are (it is refitted)."""
    from core.training import NEURAL_MODELS
    from core.training.loop import LR_FLOOR

    if parent_config.model not in NEURAL_MODELS:
        return parent_config
    if time_budget is None and full_training_s > 0:
        time_budget = TRAINING_SHARE * full_training_s / 60.0
    return dataclasses.replace(parent_config, epochs=min(parent_config.epochs, epochs), time_budget=time_budget,
                               patience=min(parent_config.patience, patience), warmup_steps=0,
                               lr=parent_config.lr * LR_FLOOR)


def warm_start(parent: Bundle, data, config, text=None, train=None):
    """The parent's network and optimizer moments grown to ``data``'s catalogue (``core.training.network.WarmStart``).

    ``text`` and ``train`` go to ``model_for_data`` as in training (the items' text vectors, and the
    whole training split's sequences, which say which items have events)."""
    from core.training.network import WarmStart, model_for_data

    with torch.random.fork_rng(devices=[]):  # new items' random part: the same on every update of this log
        torch.manual_seed(config.seed)
        fresh = model_for_data(data, config, text, train)
    maps = row_maps(parent.manifest["vocabulary"], data, data.has_categories, parent.manifest["dims"]["n_interests"])
    weights = parent.scorer.state_tensors()
    grown = {}
    for key, value in fresh.state_dict().items():
        if key in ROW_VOCABULARY:
            grown[key] = mapped_rows(weights[key], maps[ROW_VOCABULARY[key]], value)
        elif key == ITEM_INTEREST and not data.has_categories:
            grown[key] = mapped_rows(weights[key], maps["items"], value)
        elif key in dict(fresh.named_buffers()):
            grown[key] = value
        else:
            grown[key] = weights[key]
    grown["encoder.embeddings.item.weight"] = with_new_items_from_category(
        grown["encoder.embeddings.item.weight"], maps["items"], torch.as_tensor(data.item_category))
    grown[ITEM_BIAS] = new_item_bias(grown[ITEM_BIAS], torch.as_tensor(maps["items"] >= 0))
    fresh.load_state_dict(grown)
    return WarmStart(fresh, grown_moments(parent.optimizer, maps, dict(fresh.named_parameters())))


def row_maps(vocabulary: dict, data, by_category: bool, n_interests: int) -> dict[str, np.ndarray]:
    """For each growing vocabulary, the parent's row of each current row (-1 = new; row 0, padding, is 0)."""
    items = item_index_map(vocabulary["items"], data)
    items = np.where(items > 0, items, -1)
    items[0] = 0
    trained = {name: i for i, name in enumerate(vocabulary["categories"])}
    categories = np.array([trained.get(str(name), -1) for name in data.category_names], dtype=np.int64)
    categories[0] = 0
    if by_category:  # interest i is category i + 1
        interests = np.where(categories[1:] > 0, categories[1:] - 1, -1)
    else:  # k-means clusters: as many as before, one for one
        interests = np.arange(n_interests)
    return {"items": items, "categories": categories, "interests": interests}


def mapped_rows(trained: torch.Tensor, index: np.ndarray, fresh: torch.Tensor) -> torch.Tensor:
    """``fresh`` with each row that has a trained counterpart (``index`` >= 0) replaced by it."""
    grown = fresh.clone()
    if len(index) != len(fresh):  # as many interest clusters asked for as before, or none line up
        return grown
    known = torch.as_tensor(index >= 0)
    grown[known] = trained[torch.as_tensor(index[index >= 0])].to(fresh.dtype)
    return grown


def with_new_items_from_category(table: torch.Tensor, index: np.ndarray, item_category: torch.Tensor) -> torch.Tensor:
    """New items' ID rows (``table`` holds a fresh network's small random rows there) moved by the mean
    ID row of the known items of their category: with the category embedding added on top, a new
    item starts where its category's items are, and the random part tells new items apart."""
    new = torch.as_tensor(index < 0)
    known = ~new
    known[0] = False
    if not bool(new.any()):
        return table
    n_categories = int(item_category.max()) + 1
    sums = torch.zeros(n_categories, table.shape[1], dtype=table.dtype).index_add_(0, item_category[known], table[known])
    counts = torch.bincount(item_category[known], minlength=n_categories).clamp(min=1).to(table.dtype)
    grown = table.clone()
    grown[new] += (sums / counts[:, None])[item_category[new]]
    return grown


def grown_moments(moments: dict[str, torch.Tensor], maps: dict[str, np.ndarray],
                  parameters: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The parent's optimizer moments moved to the grown tables (new rows start at zero)."""
    grown = {}
    for key, value in moments.items():
        name = key.rsplit(".", 1)[0]
        if name not in parameters:
            continue
        if name in ROW_VOCABULARY and value.dim():
            value = mapped_rows(value, maps[ROW_VOCABULARY[name]], torch.zeros_like(parameters[name], dtype=value.dtype))
        if value.shape != parameters[name].shape and value.dim():
            continue  # a parameter whose shape changed otherwise: its moments start afresh
        grown[key] = value
    return grown
