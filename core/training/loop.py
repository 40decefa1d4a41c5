"""Training the sequence models: one loop for GRU, LSTM and Transformer, on CPU or CUDA.

Full softmax cross-entropy over the catalogue at every position is the default objective: on
next-item benchmarks it is far stronger than one sampled negative with BCE. The loop uses
AdamW with linear warm-up, gradient clipping, early stopping on validation NDCG@10 computed
with the same full-ranking code as the reports, fixed seeds (each epoch reseeds from
``seed + epoch``, so a resumed run repeats an uninterrupted one), bf16 autocast on CUDA when asked, a
checkpoint per epoch and a cancel check before every step.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from core.data.sequences import SequenceData
from core.data.splits import Split
from core.distributed import SOLO, Team
from core.evaluation import metrics_from_ranks
from core.pipeline import NeuralScorer, SequenceModel
from core.progress import CancelToken, Cancelled, Progress, ProgressCallback, RateMeter, emit
from core.training import NEURAL_MODELS, TrainConfig, budget_seconds, device_name, resolve_device
from core.training.checkpoints import STATE_FILE, LoopState, load_checkpoint, save_checkpoint
from core.training.network import WarmStart, model_for_data, optimizer_moments, restore_moments
from core.training.plan import ESTIMATE_STEPS, Afterwards, Clock, TrainingEstimate, timed_estimate
from core.training.steps import autocast_for, make_optimizer, optimizer_step, sampled_objective, windows_to_train
from core.training.validation import follow_interests, timed_validation, validation_noise, validation_ranks

REPORT_EVERY_S = 0.5
REPLAN_EVERY = 50  # steps between re-plans of a budget-cut epoch's learning-rate decay from its observed step rate
LR_FLOOR = 0.1  # the decay ends at this share of the peak learning rate
DECAY_SHARE = 0.2  # of the planned steps over which the learning rate decays


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
    state, best_weights, best_ranks = LoopState(), None, None
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    text_model = None if text is None else text.model
    if resume and checkpoint_dir is not None and (checkpoint_dir / STATE_FILE).exists():
        state, best_weights = load_checkpoint(checkpoint_dir, config, text_model, model, optimizer, device)
    if start is not None and state.epoch == 0:
        best_weights, best_ranks = _score_the_start(model, split, config, state, cancel)
    replica = team.wrap(model)
    windows = windows_to_train(split, config, team)
    sampled = sampled_objective(windows, config, model.encoder.config.n_items, device)
    steps_per_epoch = math.ceil(len(windows) / config.batch_size)
    if state.estimate is None:
        emit(progress, Progress("train", message="timing a few steps to plan the run"))
        measured = timed_estimate(model, windows, split, config, device, ESTIMATE_STEPS, data.has_categories, cancel, team)
        estimate = dataclasses.replace(measured, after_fixed_s=after.seconds, after_passes=after.passes)
        estimate = estimate.planned_for(config, device, before_s=time.perf_counter() - started)
    else:  # a resumed run keeps its measurement (the plan stays reproducible), with this session's settings
        estimate = TrainingEstimate.from_json(state.estimate).planned_for(config, device)
    state.estimate = estimate.to_json()
    emit(progress, Progress("train", message=f"plan: {estimate.describe()}", metrics={"estimate": state.estimate}))
    budget = budget_seconds(config, device)
    clock = None if budget is None else Clock(
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
                save_checkpoint(checkpoint_dir, config, text_model, model, optimizer, state, best_weights)
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


def _score_the_start(model: SequenceModel, split: Split, config: TrainConfig, state: LoopState, cancel):
    """An update's starting network validated as "epoch 0" (``state`` records it as the best so far;
    its weights and ranks are returned): an update that no epoch improves on the newest events keeps the
    weights it started from, new items' rows included, rather than its least bad epoch."""
    ranks = validation_ranks(NeuralScorer(model, config.model), split, cancel)
    model.train()
    state.best_metrics = metrics_from_ranks(ranks)
    state.best_score = state.mark = state.best_metrics["ndcg@10"]
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, ranks


STOP_REASONS = ("", "early stopping", "time budget", "epochs")  # "": train another epoch


def _reason_to_stop(state: LoopState, estimate: TrainingEstimate, config: TrainConfig,
                    clock: Optional[Clock]) -> str:
    """"" to train another epoch, else why not: "early stopping", "time budget" or "epochs"."""
    if state.bad_epochs >= config.patience:
        return "early stopping"
    if state.epoch >= estimate.planned_epochs:
        return "time budget" if estimate.planned_epochs < config.epochs else "epochs"
    if clock is not None and state.history and time.perf_counter() + state.history[-1]["seconds"] > clock.deadline:
        return "time budget"  # the next epoch would not end in time
    return ""


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


def _train_epoch(replica, optimizer, windows, rng, config, device, epoch, first_step, schedule, reporter, cancel,
                 clock: Optional[Clock], sampled, team: Team = SOLO) -> tuple[float, int, bool]:
    """One pass over the shuffled windows (this rank's share of each batch): (mean loss, steps taken, whether
    it finished before ``clock``'s steps deadline). Every rank stops at the same step: when any was cancelled,
    or the leader is late."""
    autocast = autocast_for(device, config)
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
        value = float(optimizer_step(replica, optimizer, inputs, targets, config, autocast, sampled))
        if not math.isfinite(value):
            raise FloatingPointError(f"training diverged at epoch {epoch} (loss {value}); try a lower learning rate")
        total, count = total + value, count + 1
        reporter.step(epoch, step + 1, value, len(inputs) * team.size)  # the whole step's windows, about
    return total / max(count, 1), count, True
