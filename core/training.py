"""Training the sequence models: one loop for GRU, LSTM and Transformer, on CPU or CUDA.

Full softmax cross-entropy over the catalogue at every position is the default objective: on
next-item benchmarks it is far stronger than one sampled negative with BCE. The loop uses
AdamW with linear warm-up, gradient clipping, early stopping on validation NDCG@10 computed
with the same full-ranking code as the reports, fixed seeds (each epoch reseeds from
``seed + epoch``, so a resumed run repeats an uninterrupted one), bf16 autocast on CUDA, a
checkpoint per epoch and a cancel check before every step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from core.data.batches import training_windows
from core.data.sequences import SequenceData
from core.data.splits import Split
from core.evaluation import metrics_from_ranks, ranks_for
from core.pipeline import DataDims, NeuralScorer, SequenceModel, build_model
from core.predictor import cluster_items, interests_from_categories
from core.progress import CancelToken, ProgressCallback, RateMeter, emit
from core.errors import UsageError
from core.scorer import Scorer

NEURAL_MODELS = ("sasrec", "gru", "lstm")
REPORT_EVERY_S = 0.5
STEPS_PER_EPOCH = 50  # at least this many optimiser steps per epoch on small data (sets the batch size)


@dataclass
class TrainConfig:
    """Every knob of a training run; saved with the run and inside its bundle."""

    model: str = "sasrec"  # "sasrec" | "gru" | "lstm" (neural, trained here) | "pop" | "recentpop" | "itemknn" | "markov" (core.baselines)
    hidden: int = 64  # embedding and hidden-state width
    layers: int = 2  # Transformer blocks or RNN layers
    heads: int = 1  # attention heads (Transformer only); must divide hidden
    dropout: float = 0.3  # on embeddings, attention and block outputs
    max_len: int = 50  # most recent events read per user; longer histories are cut into windows for training
    batch_size: int = 128  # training windows per step; smaller = more updates per epoch on a CPU
    lr: float = 3e-3  # AdamW peak learning rate
    weight_decay: float = 0.0  # AdamW decoupled weight decay (not applied to norms, biases)
    epochs: int = 200  # upper bound; early stopping usually ends the run sooner
    patience: int = 10  # epochs without a better validation NDCG@10 before stopping
    warmup_steps: int = 100  # linear learning-rate warm-up from 0
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    loss: str = "softmax"  # "softmax": full cross-entropy over the catalogue | "sampled": sampled softmax
    n_negatives: int = 256  # shared uniform negatives per step when loss = "sampled"
    interest_weight: float = 0.1  # weight of the next-interest loss next to the next-item loss
    interest_clusters: int = 16  # k-means interests when the data has no categories
    device: str = "auto"  # "auto" (CUDA when present) | "cpu" | "cuda"
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    seed: int = 0  # seeds initialisation, shuffling, dropout and k-means
    text: bool = True  # read item text with the language model when the [text] extra is installed and items have text

    @classmethod
    def for_data(cls, data: SequenceData, model: str = "sasrec", **overrides) -> "TrainConfig":
        """Defaults sized to the data: small logs get a narrower, more regularised model."""
        events = len(data.items)
        small = events < 20_000
        lengths = data.lengths()
        typical = int(np.percentile(lengths, 90)) if len(lengths) else 50
        max_len = int(min(200, max(50, 2 * typical)))
        windows = int(np.ceil(np.maximum(lengths - 1, 0) / max_len).sum())
        config = cls(
            model=model,
            hidden=32 if small else 64,
            dropout=0.5 if small else 0.3,
            max_len=max_len,
            # Few users (long histories) still get ~STEPS_PER_EPOCH updates per epoch.
            batch_size=int(min(128, max(16, windows // STEPS_PER_EPOCH))),
            warmup_steps=50 if small else 100,
        )
        return dataclasses.replace(config, **overrides)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class EpochRecord:
    """What one epoch did; the training chart plots these."""

    epoch: int  # 1-based
    loss: float  # mean training loss
    valid_ndcg10: float
    valid_hr10: float
    seqs_per_s: float  # training windows per second
    seconds: float  # wall time of the epoch including validation


@dataclass
class TrainResult:
    scorer: NeuralScorer  # the best-validation weights, in eval mode
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    device_name: str = ""
    duration_s: float = 0.0
    valid_metrics: dict = field(default_factory=dict)  # full metrics of the best epoch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' was asked for but no CUDA GPU is available", "Use the device 'auto' or 'cpu'.")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def data_dims(data: SequenceData, config: TrainConfig, text=None) -> DataDims:
    """Network sizes for ``data``; ``text`` (a ``core.text.search.TextIndex`` or None) adds its width."""
    n_interests = data.n_categories - 1 if data.has_categories else config.interest_clusters
    return DataDims(data.n_items, data.n_categories, max(1, n_interests), 0 if text is None else text.vectors.shape[1])


def model_for_data(data: SequenceData, config: TrainConfig, text=None, train: Optional[list[np.ndarray]] = None
                   ) -> SequenceModel:
    """A fresh network with the data's item -> category (and interest) maps in its buffers; with
    ``text``, the items' text vectors too, and which items have events in the ``train`` sequences."""
    model = build_model(config, data_dims(data, config, text))
    model.encoder.embeddings.item_category.copy_(torch.from_numpy(data.item_category))
    if text is not None:
        item_text = model.encoder.embeddings.text
        item_text.vectors.copy_(torch.from_numpy(text.vectors))
        item_text.has_events.copy_(torch.from_numpy(items_with_events(train or [], data.n_items)))
    if data.has_categories:
        model.predictor.item_interest.copy_(torch.from_numpy(interests_from_categories(data.item_category)))
    return model


@dataclass
class _LoopState:
    """Everything besides weights that a resumed run needs; saved as JSON."""

    epoch: int = 0  # last finished epoch
    best_epoch: int = 0
    best_score: float = -1.0
    bad_epochs: int = 0
    best_metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)


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
) -> TrainResult:
    """Train a neural sequence model on ``split.train``; early-stop on ``split.valid``.

    ``text``: the items' text vectors (``core.text.search.TextIndex``) the model reads, or None.

    Raises ``Cancelled`` (leaving only complete checkpoints behind) when ``cancel`` is set.
    """
    if config.model not in NEURAL_MODELS:
        raise ValueError(f"train_sequence_model trains {', '.join(NEURAL_MODELS)}; {config.model!r} is a baseline")
    started = time.perf_counter()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = model_for_data(data, config, text, split.train).to(device)
    optimizer = make_optimizer(model, config)
    state, best_weights = _LoopState(), None
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and checkpoint_dir is not None and (checkpoint_dir / STATE_FILE).exists():
        state, best_weights = _load_checkpoint(checkpoint_dir, config, model, optimizer, device)
    windows = training_windows(split.train, config.max_len)
    if not len(windows):
        raise UsageError("nothing to train on: no user has two or more events in the training part",
                         "Import a log where users have several events each.")
    steps_per_epoch = math.ceil(len(windows) / config.batch_size)
    reporter = _Reporter(progress, (config.epochs - state.epoch) * steps_per_epoch)
    model.train()
    for epoch in range(state.epoch + 1, config.epochs + 1):
        if state.bad_epochs >= config.patience:
            break
        epoch_started = time.perf_counter()
        torch.manual_seed(config.seed + epoch)
        rng = np.random.default_rng(config.seed + epoch)
        first_step = (epoch - 1) * steps_per_epoch
        loss = _train_epoch(model, optimizer, windows, rng, config, device, epoch, first_step, reporter, cancel)
        train_seconds = time.perf_counter() - epoch_started
        if not data.has_categories:
            recluster_interests(model, config)
        metrics = validate(NeuralScorer(model, config.model), split, cancel)
        model.train()
        record = EpochRecord(epoch, loss, metrics["ndcg@10"], metrics["hr@10"],
                             len(windows) / max(train_seconds, 1e-9), time.perf_counter() - epoch_started)
        state.history.append(dataclasses.asdict(record))
        state.epoch = epoch
        if metrics["ndcg@10"] > state.best_score:
            state.best_score, state.best_epoch, state.best_metrics, state.bad_epochs = metrics["ndcg@10"], epoch, metrics, 0
            best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            state.bad_epochs += 1
        if checkpoint_dir is not None:
            _save_checkpoint(checkpoint_dir, config, model, optimizer, state, best_weights)
        reporter.report(f"epoch {epoch}: loss {loss:.4f}, valid NDCG@10 {metrics['ndcg@10']:.4f}",
                        epoch=epoch, step=epoch * steps_per_epoch, loss=loss, valid_ndcg10=metrics["ndcg@10"],
                        valid_hr10=metrics["hr@10"], best_epoch=state.best_epoch)
    if best_weights is not None:
        model.load_state_dict(best_weights)
    return TrainResult(
        scorer=NeuralScorer(model, config.model),
        history=[EpochRecord(**r) for r in state.history],
        best_epoch=state.best_epoch,
        device_name=device_name(device),
        duration_s=time.perf_counter() - started,
        valid_metrics=state.best_metrics,
    )


def items_with_events(sequences: list[np.ndarray], n_items: int) -> np.ndarray:
    """(n_items + 1,) bool: True for the items that occur in ``sequences`` (padding: False)."""
    counts = np.bincount(np.concatenate(sequences).astype(np.int64), minlength=n_items + 1) if len(sequences) else \
        np.zeros(n_items + 1, dtype=np.int64)
    counts[0] = 0
    return counts > 0


def recluster_interests(model: SequenceModel, config: TrainConfig) -> None:
    """Learned interests follow the item embeddings as they train (warm-started k-means)."""
    item_interest = model.predictor.item_interest
    table = model.item_table().detach()
    clusters = cluster_items(table, config.interest_clusters, config.seed, previous=item_interest)
    item_interest.copy_(clusters.to(item_interest.device))


def validate(scorer: Scorer, split: Split, cancel: Optional[CancelToken] = None) -> dict[str, float]:
    """Full-catalogue validation metrics under the split's evaluation mode (the protocol of the reports)."""
    valid = split.valid
    ranks = ranks_for(scorer, valid.histories, valid.targets, history_masked=valid.eval_mode.masks_history,
                      batch_size=512, cancel=cancel)
    return metrics_from_ranks(ranks)


def make_optimizer(model: SequenceModel, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay only on matrices (not on norms, biases or the interest scale)."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), fused=True)


def _train_epoch(model, optimizer, windows, rng, config, device, epoch, first_step, reporter, cancel) -> float:
    """One pass over the shuffled windows; returns the mean loss."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and config.bf16)
    total, count = 0.0, 0
    for number, (inputs, targets) in enumerate(windows.batches(config.batch_size, rng)):
        if cancel is not None:
            cancel.raise_if_cancelled()
        step = first_step + number
        for group in optimizer.param_groups:
            group["lr"] = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with autocast:
            loss = batch_loss(model, inputs, targets, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"training diverged at epoch {epoch} (loss {value}); try a lower learning rate")
        total, count = total + value, count + 1
        reporter.step(epoch, step + 1, value, len(inputs))
    return total / max(count, 1)


def batch_loss(model: SequenceModel, inputs: torch.Tensor, targets: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Next-item cross-entropy (full or sampled) plus the weighted next-interest loss."""
    select = targets > 0  # (B, L) real next-item examples
    next_items = targets[select]  # (N,)
    if config.loss == "sampled":
        negatives = torch.randint(1, model.encoder.config.n_items + 1, (config.n_negatives,), device=inputs.device)
        candidates, inverse = torch.unique(torch.cat([next_items, negatives]), return_inverse=True)
        logits, interest_logits = model(inputs, select, candidates)  # (N, C), (N, K)
        item_loss = F.cross_entropy(logits.float(), inverse[: len(next_items)])
    elif config.loss == "softmax":
        catalogue = torch.arange(1, model.encoder.config.n_items + 1, device=inputs.device)
        logits, interest_logits = model(inputs, select, catalogue)  # (N, n_items), (N, K)
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


def _save_checkpoint(folder: Path, config, model, optimizer, state: _LoopState, best_weights) -> None:
    """Write every file under a temporary name, then rename: a crash never leaves half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    staged = {
        LAST_WEIGHTS: lambda path: save_file(weights, str(path)),
        BEST_WEIGHTS: lambda path: save_file(best_weights, str(path)),
        OPTIMIZER_FILE: lambda path: torch.save(optimizer.state_dict(), path),
        STATE_FILE: lambda path: path.write_text(json.dumps(
            {"config": config.to_json(), "state": dataclasses.asdict(state)}, indent=1)),
    }
    for name, write in staged.items():
        write(folder / (name + ".tmp"))
    for name in staged:  # state.json last: it names the epoch the other files belong to
        os.replace(folder / (name + ".tmp"), folder / name)


def _load_checkpoint(folder: Path, config, model, optimizer, device) -> tuple[_LoopState, dict]:
    saved = json.loads((folder / STATE_FILE).read_text())
    shape_fields = ("model", "hidden", "layers", "heads", "max_len", "interest_clusters")
    changed = [f for f in shape_fields if saved["config"].get(f) != getattr(config, f)]
    if changed:
        raise UsageError(f"cannot resume from {folder}: the checkpoint was trained with different {', '.join(changed)}",
                         "Resume with the settings the run started with, or start a new run.")
    model.load_state_dict(load_file(str(folder / LAST_WEIGHTS), device=str(device)))
    optimizer.load_state_dict(torch.load(folder / OPTIMIZER_FILE, map_location=device, weights_only=True))
    return _LoopState(**saved["state"]), load_file(str(folder / BEST_WEIGHTS))
