"""``Engine``'s training: a run trained, resumed or updated and recorded (``core.runs.train``), the time
it would take (``core.training.plan``), and the item text a run reads (embedded first when needed)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Optional

import numpy as np

from core import runs
from core.runs.train import train_run
from core.baselines import BASELINES
from core.bundles import load_bundle
from core.data import SplitChoice
from core.distributed import SOLO, Team
from core.errors import NextPickError, UsageError


class TrainMethods:
    """Training, updating and estimating runs: methods of ``core.engine.Engine`` (its workspace, lock and
    caches)."""

    def train(self, config, progress=None, cancel=None, resume_run: Optional[int] = None,
              split: Optional[SplitChoice] = None, team: Team = SOLO,
              started: Optional[float] = None) -> runs.RunSummary:
        """Train ``config`` (a ``core.training.TrainConfig``) and record the run.

        ``split`` defaults to leave-one-out on new items with sampled validation; a time split gets
        its cut-off fixed here (SplitError when this data cannot be cut so). A resumed run keeps the
        split it was started with. ``team``: the processes torchrun started to train the run together
        (``core.distributed``); the leader prepares the data and records the run, the others read and train.
        ``started``: the ``time.perf_counter()`` at which the run was asked for (the CLI's command start);
        the time budget counts from it, reading the log included (default: now, before reading it), and
        embedding the items' text not (``_outside_the_budget``).
        """
        started = time.perf_counter() if started is None else started
        with team.leader_first():
            data = self.sequence_data()
        if resume_run is not None:
            choice = runs.get_run(self.workspace, resume_run).split
            asked = None if split is None else (split.kind, split.eval_mode, split.validation)
            if asked not in (None, (choice.kind, choice.eval_mode, choice.validation)):
                raise UsageError(f"run #{resume_run} was started on a {choice.describe()} split "
                                 f"({choice.eval_mode.label}, {choice.validation.value} validation) and resumes on it",
                                 "Start a new run for another split.")
            resumed = runs.get_run(self.workspace, resume_run)
            if resumed.parent is not None:  # a stopped update resumes as an update
                return self._update(self.run(resumed.parent), config, progress, cancel, resume_run, team)
            with team.leader_first():
                text, started = _outside_the_budget(started, lambda: self._recorded_text(resumed, "resumed", progress,
                                                                                           cancel))
        else:
            choice = (split or SplitChoice()).resolve(data, self.time_kind())
            with team.leader_first():
                text, started = _outside_the_budget(started, lambda: self._training_text(config, progress, cancel))
        return train_run(self.workspace, data, choice, config, progress, cancel, resume_run, text, team=team,
                         started=started)

    def update(self, run_id: Optional[int] = None, progress=None, cancel=None,
               time_budget: Optional[float] = None) -> runs.RunSummary:
        """A new run that catches ``run_id`` (default: the serving run) up with the events added since
        it was trained (``core.update``: fine-tuned from its weights within ``time_budget`` minutes,
        by default a twentieth of the full training it descends from so that the whole update takes
        about a tenth, or a baseline refitted), on the
        parent's split. The child becomes the active run when its parent was (unless it did not beat
        popularity: such a run is never made active by itself)."""
        if run_id is None:
            run_id = self.serving_run()
            if run_id is None:
                raise NextPickError(f"no trained run in {self.workspace.path.name} to update", "Train one first.")
        parent = self.run(run_id)
        from core.training import TrainConfig
        from core.update import full_training_s, update_config

        config = update_config(TrainConfig.from_json(parent.config), full_training_s(parent), time_budget)
        child = self._update(parent, config, progress, cancel)
        if self.active_run() == parent.id and child.beats_popularity is not False:
            self.set_active_run(child.id)
        return child

    def _update(self, parent: runs.RunSummary, config, progress, cancel,
                resume_run: Optional[int] = None, team: Team = SOLO) -> runs.RunSummary:
        from core.update import Update, full_training_s, log_growth

        path = self._bundle_path(parent)  # only a finished run is updated
        if self.workspace.content_hash() != self.content_hash():  # events posted by a service or another process
            self.refresh()
        lag = self.run_lag(parent.id)
        if lag.newer_events is None:
            raise UsageError(f"run #{parent.id} was trained before runs recorded where the log ended, so what "
                             "came after it is unknown", "Train a new run instead.")
        if not lag.newer_events and resume_run is None:
            raise UsageError(f"run #{parent.id} is up to date: no events were added since it was trained",
                             "Import or post new events first.")
        data = self.sequence_data()
        growth = log_growth(self.workspace, data, parent.config["log"]["last_event_id"], lag.newer_events,
                            lag.new_items)
        bundle = None if parent.model in BASELINES else load_bundle(path)
        with team.leader_first():
            text = self._recorded_text(parent, "updated", progress, cancel)
        return train_run(self.workspace, data, parent.split, config, progress, cancel, resume_run, text,
                         Update(parent.id, bundle, growth, full_training_s(parent)), team)

    def _recorded_text(self, run: runs.RunSummary, verb: str, progress, cancel):
        """The items' text vectors under the text model ``run`` recorded (new items embedded first), or
        None when it read no text: an update or a resumed run keeps its network, text input included,
        whatever the config or the engine's model now say."""
        if not run.config.get("text_model"):
            return None
        if not self.text_available() or self.text_model.key() != run.config["text_model"]:
            raise UsageError(f"run #{run.id} reads item text with {run.config['text_model']}, which is "
                             f"not available here, so it cannot be {verb}",
                             "Install the [text] extra (and open the workspace with that model), or train a new run.")
        return self.text_index() or self.embed_items(progress, cancel)

    def _serving_text(self, run: runs.RunSummary):
        """The current items' TextIndex under the text model the run was trained with (embedding new
        items first), or None when the run read no text or that model is not the engine's."""
        if not run.config.get("text_model") or not self.text_available():
            return None
        if self.text_model.key() != run.config["text_model"]:
            return None
        return self.text_index() or self.embed_items()

    def _training_text(self, config, progress, cancel):
        """The items' text vectors a neural run reads (embedding new items first), or None: the run's
        ``text`` is off, it trains a baseline, the extra is missing, or no item has text."""
        if not config.text or config.model in BASELINES or not self.text_available():
            return None
        index = self.embed_items(progress, cancel)
        return index if index.has_text.any() else None

    def estimate_training(self, config, split: Optional[SplitChoice] = None):
        """How long ``config`` would train here (``core.training.plan.TrainingEstimate``), from a few timed
        steps on the split the run would use; nothing is trained or recorded. Neural models only."""
        from core.training.plan import estimate_training

        data = self.sequence_data()
        choice = (split or SplitChoice()).resolve(data, self.time_kind())
        text, embed_items, embed_s = self._estimated_text(config)
        estimate = estimate_training(data, choice.split(data), config, text)
        return replace(estimate, embed_items=embed_items, embed_s=embed_s)

    def _estimated_text(self, config):
        """What the run's text would cost without embedding anything: (stand-in vectors of the text
        model's width, or None when the run would read no text; items to embed first; seconds for that)."""
        if not config.text or config.model in BASELINES or not self.text_available():
            return None, 0, 0.0
        from core.text import load_encoder
        from core.text.catalogue import embedding_estimate
        from core.text.search import TextIndex

        encoder = load_encoder(self.text_model)
        embedding = embedding_estimate(self.workspace, encoder)
        if not embedding.with_text:
            return None, 0, 0.0
        n_rows = self.sequence_data().n_items + 1
        stand_in = TextIndex(encoder.key, np.zeros((n_rows, encoder.dim), dtype=np.float32), np.ones(n_rows, dtype=bool))
        return stand_in, embedding.to_embed, embedding.seconds

    def estimate_presets(self, configs: dict, split: Optional[SplitChoice] = None, cancel=None) -> dict:
        """Each preset's config (``{name: TrainConfig}``, as ``TrainConfig.for_data(preset=name)`` sizes it)
        timed as ``estimate_training`` times one: {name: TrainingEstimate}, the data and split read once.
        ``cancel`` is checked between presets."""
        from core.training.plan import estimate_training

        data = self.sequence_data()
        split_data = (split or SplitChoice()).resolve(data, self.time_kind()).split(data)
        estimates = {}
        for name, config in configs.items():
            if cancel is not None:
                cancel.raise_if_cancelled()
            estimates[name] = estimate_training(data, split_data, config)
        return estimates


def _outside_the_budget(started: float, read_text):
    """``read_text()``'s vectors, and ``started`` moved on by the time it took. Embedding the items' text is a
    one-time cost of the workspace (every later run and the service reuse the vectors), which the estimate
    states apart from the budget ("before it, the language model reads N items' text once"). Counted in it,
    a first Quick run (1 minute) on ml-latest-small spent 67 s embedding 9,742 titles and trained one step."""
    began = time.perf_counter()
    text = read_text()
    return text, started + (time.perf_counter() - began)
