"""Planning a run within its time budget: the estimate from a few timed steps and a timed validation
sample (``TrainingEstimate``), the epochs and steps that fit, what is kept for after the epochs
(``Afterwards``), and the clock that stops a budget-cut epoch's steps in time (``Clock``)."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from core.data.sequences import SequenceData
from core.data.splits import Split
from core.distributed import SOLO, Team
from core.training import TRAINING_SHARE, TrainConfig, budget_seconds, device_name, resolve_device
from core.training.network import model_for_data
from core.training.steps import autocast_for, make_optimizer, optimizer_step, sampled_objective, windows_to_train
from core.training.validation import follow_interests, timed_validation

# What follows the epochs when the caller does not measure it (``Afterwards``), in validation passes: the
# re-ranker, popularity on validation and test, the served pipeline's test and the generator's alone.
AFTER_TRAINING_PASSES = 4.5
ESTIMATE_STEPS = 5  # timed steps (after one warm-up step) behind the estimate
# Shares of the way from the start to a budget-cut run's steps deadline at which the validation pass is
# timed again on the network being trained (see ``Clock``).
RETIME_AT = (0.5, 0.75, 0.875)


@dataclass(frozen=True)
class Afterwards:
    """What a run does after its epochs, as measured before them (``core.runs.gate``): ``seconds`` that do not
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
    windows = windows_to_train(split, config)
    torch.manual_seed(config.seed)
    model = model_for_data(data, config, text, split.train).to(device)
    return timed_estimate(model, windows, split, config, device, steps, data.has_categories)


def timed_estimate(model, windows, split: Split, config: TrainConfig, device, steps: int, has_categories: bool,
                   cancel=None, team: Team = SOLO) -> TrainingEstimate:
    """Timed steps on a copy of ``model`` (its weights stay untouched) and an epoch's end: its interests
    followed once (``follow_interests``) and the validation pass (``timed_validation``); in a team, each
    rank's share of a batch is timed and the leader's measurement is everyone's."""
    trial = copy.deepcopy(model).train()
    optimizer = make_optimizer(trial, config)
    # Batches as an epoch draws them (the first, warm-up step is not counted); the first epoch's real
    # time replaces this measurement in the plan.
    batches = team.share(windows.batch_rows(config.batch_size, np.random.default_rng(config.seed)))
    autocast = autocast_for(device, config)
    sampled = sampled_objective(windows, config, model.encoder.config.n_items, device)
    timer = 0.0
    for number in range(steps + 1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        inputs, targets = windows.batch(batches[number % len(batches)])
        began = time.perf_counter()
        optimizer_step(trial, optimizer, inputs.to(device), targets.to(device), config, autocast, sampled)
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


@dataclass
class Clock:
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
