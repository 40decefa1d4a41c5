"""The one facade the CLI and the studio call: import, train, evaluate, recommend, explain.

It owns no logic of its own: it opens the workspace, keeps the expensive things cached (the
workspace's sequences per content hash, each run's loaded bundle per run id) behind one
lock so studio worker threads can call it concurrently, and delegates to the modules that
do the work.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from core import runs, serving
from core.runs import trash
from core.runs.lag import LogPosition, RunLag, run_lag
from core.runs.train import train_run
from core.baselines import BASELINES
from core.bundles import Bundle, BundleError, load_bundle
from core.data import EvalMode, SplitChoice, SplitKind, build_sequences
from core.data.sequences import sequence_cache
from core.data.successors import Successors
from core.distributed import SOLO, Team
from core.evaluation import evaluate_scorer, paired_significance
from core.errors import NextPickError, UsageError
from core.generator import ColdStartScorer
from core.pipeline import SMALL_BATCH
from core.progress import RateMeter, emit
from core.ranker import N_CANDIDATES, RankedScorer
from core.serving import Interest, ItemInfo, NextItem, Recommendation, SimilarItem  # noqa: F401  (the API's return types)
from core.store import Workspace
from core.store.array_files import save_array_folder
from core.caches import item_successors, successors_folder, user_directory, users_folder
from core.store.directory import UserDirectory, UserRow  # noqa: F401  (UserRow: users_page's rows)
from core.text import TextModelSpec

LONGEST_LIST = N_CANDIDATES  # no list is longer: it is cut from the candidates the ranker re-orders


class UnknownUserError(NextPickError, KeyError):
    """A user id the workspace has never seen, asked about without an explicit what-if history.

    Answering with the cold-start list would hide a typo or a user from another shop behind
    plausible-looking popular items; a caller that means a newcomer passes ``history=[]``.
    """

    def __init__(self, user: str, workspace_name: str) -> None:
        super().__init__(f"unknown user {user!r} in {workspace_name}: no events or profile under that id",
                         "Check the id as the shop's files spell it.")
        self.user = user


@dataclass(frozen=True)
class HeldOut:
    """A user's test target under a run's split, and the history the model was tested from."""

    item: str
    before: list[str]  # item ids in time order (repeats merged), everything the model saw
    split: str  # how the split is described, e.g. "leave-one-out" or "time split at 2026-03-01"
    kind: SplitKind
    eval_mode: EvalMode  # NEW: the user's last item new to them (first new one after a cut), not simply their last


class Engine:
    """``Engine.open(path)`` or ``Engine(workspace)``; every method is safe to call from worker threads."""

    def __init__(self, workspace: Workspace, text_model: Optional[str] = None, text: bool = True) -> None:
        """``text_model``: a local sentence-transformers folder to read item text with (None = the packaged model);
        ``text=False``: read no item text at all (the studio's job process follows its window's engine)."""
        self.workspace = workspace
        self.text_model = TextModelSpec(text_model)
        self._text = text
        self._text_index: Optional[tuple[tuple[str, str], object]] = None
        self._lock = threading.RLock()
        self._content: Optional[str] = None
        self._loaded_up_to = 0  # events with ids up to this one are in the sequences of ``_content``
        self._data_cache: tuple[str, object] | None = None
        self._users_cache: tuple[str, UserDirectory] | None = None
        self._successors_cache: tuple[str, Successors] | None = None
        self._bundles: dict[int, Bundle] = {}
        self._session_active: Optional[str] = None  # the active run chosen in a read-only workspace
        # (run, mode) -> (content hash, test users, their ranks): what compare pairs up
        self._test_ranks: dict[tuple[int, EvalMode], tuple[str, np.ndarray, np.ndarray]] = {}

    @classmethod
    def open(cls, path, text_model: Optional[str] = None) -> "Engine":
        return cls(Workspace.open(path), text_model)

    # -- data -------------------------------------------------------------------------------

    def import_files(self, events=None, items=None, users=None, options=None, progress=None, cancel=None,
                     on_whole_log=None):
        """Import CSV or Parquet files and folders, or ``SqlQuery`` s (``core.importing``); caches of
        the old content are dropped."""
        from core.importing import ImportOptions, import_files

        report = import_files(self.workspace, events=events, items=items, users=users,
                              options=options or ImportOptions(), progress=progress, cancel=cancel,
                              on_whole_log=on_whole_log)
        self.refresh()
        return report

    def refresh(self) -> None:
        """Forget cached sequences, users and loaded models (after another process imported into the file)."""
        with self._lock:
            self._content, self._data_cache, self._users_cache, self._text_index = None, None, None, None
            self._successors_cache = None
            self._bundles.clear()
            self._test_ranks.clear()

    def content_hash(self) -> str:
        """The workspace's content hash, read once per import: counting 20M events on every call would cost 0.1 s."""
        with self._lock:
            if self._content is None:
                # read before the hash: an event stored in between is then read again (users_items), never missed
                self._loaded_up_to = self.workspace.last_event_id()
                self._content = self.workspace.content_hash()
            return self._content

    def overview(self):
        from core.store.stats import workspace_stats

        return workspace_stats(self.workspace)

    def sequence_data(self, events=None):
        """The workspace's ``SequenceData``, rebuilt only after an import (from ``events``, every
        interaction as ``Workspace.event_arrays`` gives them, when the caller holds them)."""
        content = self.content_hash()
        with self._lock:
            if self._data_cache is None or self._data_cache[0] != content:
                self._data_cache = (content, build_sequences(self.workspace, events))
                self._bundles.clear()
            return self._data_cache[1]

    def time_kind(self) -> str:
        """"unix" when the events carry real timestamps, "order" when only their order is known."""
        return self.workspace.get_meta("time_kind", "unix") or "unix"

    def device_name(self) -> str:
        from core.training import device_name, resolve_device

        return device_name(resolve_device("auto"))

    # -- runs -------------------------------------------------------------------------------

    def train(self, config, progress=None, cancel=None, resume_run: Optional[int] = None,
              split: Optional[SplitChoice] = None, team: Team = SOLO,
              started: Optional[float] = None) -> runs.RunSummary:
        """Train ``config`` (a ``core.training.TrainConfig``) and record the run.

        ``split`` defaults to leave-one-out on new items with sampled validation; a time split gets
        its cut-off fixed here (SplitError when this data cannot be cut so). A resumed run keeps the
        split it was started with. ``team``: the processes torchrun started to train the run together
        (``core.distributed``); the leader prepares the data and records the run, the others read and train.
        ``started``: the ``time.perf_counter()`` at which the run was asked for (the CLI's command start);
        the time budget counts from it, reading the log included (default: now, before reading it).
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
                text = self._recorded_text(resumed, "resumed", progress, cancel)
        else:
            choice = (split or SplitChoice()).resolve(data, self.time_kind())
            with team.leader_first():
                text = self._training_text(config, progress, cancel)
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

    def runs(self) -> list[runs.RunSummary]:
        return runs.list_runs(self.workspace)

    def run(self, run_id: int) -> runs.RunSummary:
        return runs.get_run(self.workspace, run_id)

    def delete_run(self, run_id: int) -> None:
        with self._lock:
            self._forget_run(run_id)
            runs.delete_run(self.workspace, run_id)  # clears the stored active run with it

    def trash_run(self, run_id: int) -> trash.TrashedRun:
        """Delete a run so that ``restore_run`` can undo it until ``empty_trash``."""
        with self._lock:
            self._forget_run(run_id)
            return trash.trash_run(self.workspace, run_id)

    def restore_run(self, trashed: trash.TrashedRun) -> int:
        return trash.restore_run(self.workspace, trashed)

    def empty_trash(self, trashed: trash.TrashedRun) -> None:
        trash.empty_trash(trashed)

    def sweep_trash(self) -> int:
        return 0 if self.workspace.read_only else trash.sweep_trash(self.workspace)

    def export_bundle(self, run_id: int, destination) -> Path:
        """Copy the run's model bundle folder to ``destination`` (a new folder)."""
        return runs.export_bundle(self.workspace, run_id, destination)

    def _forget_run(self, run_id: int) -> None:
        self._bundles.pop(int(run_id), None)
        for mode in EvalMode:
            self._test_ranks.pop((int(run_id), mode), None)

    def set_active_run(self, run_id: Optional[int]) -> None:
        """Stored in the workspace; in a read-only one, kept for this session only."""
        if run_id is not None:
            runs.get_run(self.workspace, run_id)
        value = "" if run_id is None else str(int(run_id))
        if self.workspace.read_only:
            self._session_active = value
        else:
            self.workspace.set_meta(runs.ACTIVE_RUN_KEY, value)

    def active_run(self) -> Optional[int]:
        value = self._session_active if self._session_active is not None else self.workspace.get_meta(runs.ACTIVE_RUN_KEY, "")
        return int(value) if value else None

    def serving_run(self) -> Optional[int]:
        """The run lists come from when none is named: the active run, else the latest finished one that
        did not fail the popularity check, else (when every finished run failed it) the latest finished."""
        active = self.active_run()
        if active is not None:
            return active
        done = [run for run in self.runs() if run.status == "done"]
        passed = [run for run in done if run.beats_popularity is not False]
        return (passed or done)[-1].id if done else None

    def run_lag(self, run_id: int) -> RunLag:
        """How far the run is behind the log: when it was trained, the events and items added since."""
        return run_lag(self.workspace, runs.get_run(self.workspace, run_id))

    def bundle(self, run_id: int) -> Bundle:
        """The run's loaded bundle, fitted to the current data (cached; new items mapped, with a note)."""
        data = self.sequence_data()
        with self._lock:
            if int(run_id) not in self._bundles:
                run = runs.get_run(self.workspace, run_id)
                self._bundles[int(run_id)] = load_bundle(self._bundle_path(run), data, on_mismatch="map",
                                                         text=lambda: self._serving_text(run))
            return self._bundles[int(run_id)]

    def _bundle_path(self, run: runs.RunSummary) -> Path:
        """The finished run's bundle folder; refused with a reason when it has none."""
        if run.status != "done" or not run.bundle_path:
            raise NextPickError(f"run #{run.id} has no trained model (status: {run.status})",
                                "Choose a finished run, or train one.")
        if not Path(run.bundle_path).exists():
            folder = runs.runs_root(self.workspace).name
            raise BundleError(f"run #{run.id}'s model is missing: {run.bundle_path} does not exist",
                              f"Move or copy a workspace together with its {folder} folder.")
        return Path(run.bundle_path)

    def evaluate(self, run_id: int, progress=None, cancel=None, eval_mode: Optional[EvalMode] = None) -> dict:
        """Re-evaluate the run's served pipeline on the current data's test targets, cut by the run's
        own split and held out under ``eval_mode`` (the run's own by default); returns the report, and
        stores it (under another mode than the run's own, in ``metrics["evaluations"]``) unless the
        workspace is read-only."""
        bundle, data, run = self.bundle(run_id), self.sequence_data(), runs.get_run(self.workspace, run_id)
        mode = EvalMode(eval_mode or run.split.eval_mode)
        split = replace(run.split, eval_mode=mode).split(data)
        ranked = bundle.scorer if bundle.ranker is None else RankedScorer(
            bundle.scorer, bundle.ranker, bundle.item_interest, exclude_seen=mode.masks_history)
        served = ColdStartScorer(ranked, bundle.fallback)
        report = evaluate_scorer(served, data, split.test, progress=progress, cancel=cancel,
                                 split_name=split.description)
        if mode is run.split.eval_mode:
            metrics = {**run.metrics, **report.to_dict()}
        else:
            others = {**run.metrics.get("evaluations", {}), mode.value: report.to_dict()}
            metrics = {**run.metrics, "evaluations": others}
        if not self.workspace.read_only:
            runs.update_run(self.workspace, run_id, progress, metrics=metrics)
            save_array_folder(self._ranks_folder(run_id, mode), {"users": report.user_index, "ranks": report.ranks})
        with self._lock:
            self._test_ranks[(int(run_id), mode)] = (self.content_hash(), report.user_index, report.ranks)
        return report.to_dict()

    def _ranks_folder(self, run_id: int, mode: EvalMode) -> Path:
        """Where an evaluation keeps each test user's rank, by mode and content, in the run's folder:
        the studio evaluates in one job and tests significance in the next (a new engine), which
        re-evaluated both runs under any mode but the runs' own (their bundles keep those)."""
        return runs.run_folder(self.workspace, run_id) / f"ranks_{mode.value}-{self.content_hash()}"

    def compare(self, run_a: int, run_b: int, metric: str = "ndcg@10", eval_mode: Optional[EvalMode] = None,
                progress=None, cancel=None) -> dict:
        """Paired test over the users both runs were tested on (means, difference, p-value).

        Both are measured under ``eval_mode`` (re-evaluated when needed: ``progress`` and ``cancel``
        follow that evaluation); without one, under the mode both runs were trained for. Runs
        evaluated differently are never compared: their test items differ.
        """
        chosen = {run_id: runs.get_run(self.workspace, run_id).split for run_id in (run_a, run_b)}
        if eval_mode is not None:
            chosen = {run_id: replace(choice, eval_mode=EvalMode(eval_mode)) for run_id, choice in chosen.items()}
        a, b = chosen[run_a], chosen[run_b]
        if not a.same_test_as(b):
            raise UsageError(f"runs #{run_a} and #{run_b} were tested differently ({a.describe()}, {a.eval_mode.label} "
                             f"vs {b.describe()}, {b.eval_mode.label}): their test items differ",
                             "Compare runs of one split, measured in one evaluation mode.")
        (users_a, ranks_a), (users_b, ranks_b) = (self._ranks(run_id, a.eval_mode, progress, cancel)
                                                  for run_id in (run_a, run_b))
        _, in_a, in_b = np.intersect1d(users_a, users_b, return_indices=True)
        return paired_significance(ranks_a[in_a], ranks_b[in_b], metric)

    def _ranks(self, run_id: int, mode: EvalMode, progress=None, cancel=None) -> tuple[np.ndarray, np.ndarray]:
        """(test users, ranks) of the run under ``mode`` on the current data: remembered, saved with
        the bundle at training, or evaluated now."""
        content, key = self.content_hash(), (int(run_id), mode)
        bundle = self.bundle(run_id)
        kept = self._ranks_folder(run_id, mode)
        with self._lock:
            saved = bundle.metrics.get("eval") == mode.value and "test_ranks" in bundle.arrays
            if key not in self._test_ranks and saved and bundle.manifest.get("content_hash") == content:
                self._test_ranks[key] = (content, bundle.arrays["test_users"], bundle.arrays["test_ranks"])
            elif key not in self._test_ranks and kept.is_dir():
                self._test_ranks[key] = (content, *(np.load(kept / f"{name}.npy", allow_pickle=False)
                                                    for name in ("users", "ranks")))
            remembered = self._test_ranks.get(key)
        if remembered is None or remembered[0] != content:
            self.evaluate(run_id, progress=progress, cancel=cancel, eval_mode=mode)
            remembered = self._test_ranks[key]
        return remembered[1], remembered[2]

    # -- serving ----------------------------------------------------------------------------

    def recommend(self, run_id: int, user: Optional[str], k: int = 10, diversity: float = 0.0,
                  exclude_seen: bool = True, history: Optional[list[str]] = None) -> list[Recommendation]:
        """Top-``k`` explained items for ``user`` (or for the what-if ``history`` of item ids).

        An unknown ``user`` raises UnknownUserError unless ``history`` is given: ``history=[]``
        (or ``user=None``) asks for the cold-start list on purpose.
        """
        self.check_list_length(k)
        data = self.sequence_data()
        items, segment = self._history_of(data, user, history, self._user_row(data, user))
        return serving.recommend(self.bundle(run_id), data, items, segment, k, diversity, exclude_seen)

    def recommend_many(self, run_id: int, users: list[str], k: int = 10, diversity: float = 0.0,
                       exclude_seen: bool = True, batch_size: int = SMALL_BATCH, progress=None,
                       cancel=None) -> Iterator[tuple[str, list[Recommendation]]]:
        """(user, recommendations) for many stored users, scored a batch at a time (exports). A batch no
        larger than ``SMALL_BATCH`` keeps its encoding's attention, so the explanations read it instead
        of encoding every user a second time: half the CPU of 256-user batches with a Transformer at 25M
        events (3.1-3.4 against 5.8-7.2 ms a user, paired, under load)."""
        self.check_list_length(k)
        data, bundle = self.sequence_data(), self.bundle(run_id)
        meter = RateMeter(len(users))
        for start in range(0, len(users), batch_size):
            if cancel is not None:
                cancel.raise_if_cancelled()
            batch = list(users[start:start + batch_size])
            resolved = [self._history_of(data, user, None, data.user_index_of(user)) for user in batch]
            lists = serving.recommend_batch(bundle, data, [h for h, _ in resolved], np.array([s for _, s in resolved]),
                                            k, diversity, exclude_seen)
            yield from zip(batch, lists)
            done = start + len(batch)
            emit(progress, meter.report("recommend", done, f"{done:,} of {len(users):,} users"))

    def prepare_to_serve(self, run_id: int) -> None:
        """Load what every request reads before the first one: the run's model and the sequences' id maps
        (at 1M users and 200k items, 3 s of a service's first answer otherwise), and what the re-ranker's
        candidate sources find once (``Ranker.prepare_to_serve``)."""
        bundle = self.bundle(run_id)
        self.sequence_data().build_lookups()
        if bundle.ranker is not None:
            bundle.ranker.prepare_to_serve()

    def recommend_histories(self, run_id: int, users: list[Optional[str]], histories: list[list[str]], k: int = 10,
                            diversity: float = 0.0, exclude_seen: bool = True) -> list[list[Recommendation]]:
        """``recommend`` for many (user, history of item ids) pairs at once: what each would answer, with
        the scoring run once for all (``nextpick serve`` batches the requests that arrive together)."""
        self.check_list_length(k)
        data = self.sequence_data()
        resolved = [serving.resolve_history(data, None if user is None else data.user_index_of(user), list(history))
                    for user, history in zip(users, histories)]
        return serving.recommend_batch(self.bundle(run_id), data, [items for items, _ in resolved],
                                       np.array([segment for _, segment in resolved], dtype=np.int64), k, diversity,
                                       exclude_seen)

    def max_list_length(self) -> int:
        """The longest list a run gives: the candidates the ranker re-orders, or the whole
        catalogue when it is smaller."""
        return min(LONGEST_LIST, self.sequence_data().n_items)

    def check_list_length(self, k: int) -> None:
        """Refuse a list length no answer can have, rather than silently return fewer items."""
        longest = self.max_list_length()
        if 1 <= k <= longest:
            return
        if k < 1:
            raise UsageError(f"a list holds at least 1 item, not {k}")
        why = ("the catalogue's size" if longest < LONGEST_LIST
               else f"it is cut from the {LONGEST_LIST} best candidates the ranker re-orders")
        raise UsageError(f"a list holds at most {longest:,} items ({why}), not {k:,}",
                         f"Ask for {longest:,} items or fewer.")

    def unknown_users(self, users: list[str]) -> list[str]:
        """The ids among ``users`` the workspace has neither events nor a profile for."""
        data = self.sequence_data()
        return [user for user in users if data.user_index_of(user) is None]

    def interests(self, run_id: int, user: Optional[str], history: Optional[list[str]] = None) -> list[Interest]:
        """The user's predicted next interests; an unknown user is refused as in ``recommend``."""
        data = self.sequence_data()
        items, segment = self._history_of(data, user, history, self._user_row(data, user))
        return serving.predicted_interests(self.bundle(run_id), items, segment)

    def _history_of(self, data, user: Optional[str], history: Optional[list[str]],
                    row: Optional[int]) -> tuple[np.ndarray, int]:
        """(item indices, segment) of ``user`` (at ``row`` of ``data``, None when it holds no such user)."""
        if history is None and user is not None and row is None:
            raise UnknownUserError(str(user), self.workspace.path.name)
        return serving.resolve_history(data, row, history)

    def _user_row(self, data, user: Optional[str]) -> Optional[int]:
        """The user's row in ``data`` found through the store's index of user ids: one user's answer
        (Explore's, recommend's) does not wait for the table of every id ``data.user_index_of`` builds
        (0.7 s at a million users). None for an unknown user, or one stored since ``data`` was read."""
        store_id = None if user is None else self.workspace.user_id(user)
        if store_id is None:
            return None
        row = int(np.searchsorted(data.user_store_id, store_id))
        return row if row < data.n_users and data.user_store_id[row] == store_id else None

    def user_history(self, user: str):
        """The user's events in time order: DataFrame with ts, event_type, value, item, title, categories."""
        return self.workspace.user_sequence(user)

    def user_items(self, user: str) -> list[str]:
        """The user's item ids in time order as stored now: with the events another process (a service,
        an import in another window) added since the cached sequences were built. Passed as the
        ``history`` of ``recommend``/``interests``, they count at once without rebuilding anything."""
        return self.workspace.user_items(user)

    def users_items(self, users: list[str]) -> list[list[str]]:
        """``user_items`` of many users (the service's batches of requests): each user's events in the
        loaded sequences, then those stored since (``Workspace.events_since``), as one read of the store
        finds them. Only a user with a newer event timed no later than their loaded ones (it belongs
        among them, or among the loaded ones: the sequences were read after ``_loaded_up_to``) is read
        whole from the store: at 25M events a shopper with 10,000 events took 150-300 ms a request so.
        Consecutive events on one item appear once (as in the sequences)."""
        data = self.sequence_data()
        newer = self.workspace.events_since(self._loaded_up_to, users)
        ids = data.item_labels[0]
        histories = []
        for user in users:
            added, first, interleaved = newer.get(str(user), ([], 0.0, False))
            row = data.user_index_of(user)
            loaded = data.history(row) if row is not None else data.items[:0]
            if interleaved or (added and len(loaded) and first <= data.ts[data.offsets[row + 1] - 1]):
                histories.append(self.workspace.user_items(user))
            else:
                histories.append([ids[i] for i in loaded.tolist()] + added)
        return histories

    def log_position(self) -> LogPosition:
        """Where the log ends now (its newest event and item ids): a change says events or items were added."""
        return LogPosition.of(self.workspace)

    def user_profile(self, user: str) -> dict:
        """The user's imported attributes (age, gender, occupation...), as the users file gave them."""
        return self.workspace.user_attributes(user)

    def held_out(self, user: str, run_id: Optional[int] = None) -> Optional[HeldOut]:
        """The user's test target under the run's split and evaluation mode (leave-one-out on new
        items without a run), with the history it was predicted from; None when that split does
        not test this user."""
        data = self.sequence_data()
        index = self._user_row(data, user)
        choice = runs.get_run(self.workspace, run_id).split if run_id is not None else SplitChoice()
        position = None if index is None else choice.test_position(data, index)
        if position is None:
            return None
        history = data.history(index)
        return HeldOut(str(data.item_external[history[position]]),
                       [str(item) for item in data.item_external[history[:position]]], choice.describe(),
                       choice.kind, choice.eval_mode)

    def held_out_item(self, user: str, run_id: Optional[int] = None) -> Optional[str]:
        """Just the item of ``held_out``: the user's test target, or None."""
        held = self.held_out(user, run_id)
        return None if held is None else held.item

    def next_items(self, item: str, n: int = 10) -> list[NextItem]:
        return serving.next_items(self.sequence_data(), self.successors(), item, n)

    def successors(self) -> Successors:
        """Every item's followers in the log (``core.data.successors``): counted once per content
        and kept beside the workspace (not beside a read-only one), then a slice per item."""
        return self._for_content("_successors_cache",
                                 lambda content: item_successors(self.workspace, content, self.sequence_data()))

    def search_items(self, text: str, limit: int = 20) -> list[ItemInfo]:
        """Items whose id or title contains ``text``, then the items nearest to it in meaning once the
        catalogue's text is embedded (``embed_items``): ``search_by_words`` then ``search_by_meaning``."""
        by_words = self.search_by_words(text, limit)
        return by_words + self.search_by_meaning(text, limit - len(by_words), [info.item for info in by_words])

    def search_by_words(self, text: str, limit: int = 20) -> list[ItemInfo]:
        """Items whose id or title contains ``text``: instant, so the studio asks it on the GUI thread."""
        return serving.search_items(self.sequence_data(), text, limit)

    def search_by_meaning(self, text: str, limit: int = 20, exclude: Sequence[str] = ()) -> list[ItemInfo]:
        """The ``limit`` items whose text means most nearly ``text``, other than the ids ``exclude``; none
        until the catalogue's text is embedded. Runs the language model on the query (milliseconds) and
        loads it the first time (seconds): the studio asks it in a worker. Only an index already read
        (``embed_items``, ``text_index``) serves: a catalogue still being embedded is not re-read per keystroke."""
        from core.text import load_encoder
        from core.text.search import items_by_meaning

        with self._lock:
            current = self._text_index
        if current is None or current[1] is None or limit <= 0 or not text.strip() or not self.text_available() \
                or current[0] != (self.content_hash(), self.text_model.key()):
            return []
        index = current[1]
        data = self.sequence_data()
        return items_by_meaning(data, index, load_encoder(self.text_model), text, limit,
                                data.item_index_of(list(exclude)))

    def similar_items(self, item: str, n: int = 10) -> list[SimilarItem]:
        """Items whose text is nearest to ``item``'s; empty until the catalogue's text is embedded."""
        from core.text.search import similar_items

        index = self.text_index()
        return [] if index is None else similar_items(self.sequence_data(), index, item, n)

    # -- item text (the optional language model, core.text) -----------------------------------

    def set_text_model(self, path: Optional[str]) -> None:
        """Read item text with the sentence-transformers model in folder ``path`` (None = the packaged one)."""
        with self._lock:
            self.text_model, self._text_index = TextModelSpec(path), None
            self._bundles.clear()

    def text_available(self) -> bool:
        """Whether a text model can be used: the extra is installed (and a named folder is a model)."""
        from core.text import TextModelError, packaged_model_installed, text_extra_installed

        if not self._text:
            return False
        if self.text_model.path is None:
            return packaged_model_installed()
        try:
            self.text_model.folder()
        except TextModelError:
            return False
        return text_extra_installed()

    def embed_items(self, progress=None, cancel=None):
        """Embed the text of every new or changed item (a background job: minutes for 100k items)
        and return the ``TextIndex`` searches, similar items and training use. TextModelError
        without the extra."""
        from core.text import embed_catalogue, load_encoder
        from core.text.search import TextIndex

        encoder = load_encoder(self.text_model)
        vectors = embed_catalogue(self.workspace, encoder, progress, cancel)
        index = TextIndex.build(self.sequence_data(), vectors)
        with self._lock:
            self._text_index = ((self.content_hash(), encoder.key), index)
        return index

    def text_index(self, reread: bool = False):
        """The catalogue's ``TextIndex`` when every item with text has a cached vector for the current
        model, else None (``embed_items`` makes one); never runs the language model. The answer is
        remembered for the content, None included: looking again read every item's text, a second
        per Explore user on a 200,000-item catalogue without any. ``reread`` looks again (after
        another process embedded the items)."""
        if not self.text_available():
            return None
        from core.text.catalogue import cached_vectors
        from core.text.search import TextIndex

        key = (self.content_hash(), self.text_model.key())
        with self._lock:
            if not reread and self._text_index is not None and self._text_index[0] == key:
                return self._text_index[1]
        vectors, missing = cached_vectors(self.workspace, key[1])
        index = None if missing or not len(vectors.store_ids) else TextIndex.build(self.sequence_data(), vectors)
        with self._lock:
            self._text_index = (key, index)
        return index

    def users_page(self, offset: int, limit: int, search: Optional[str] = None,
                   order_by: str = "activity") -> list[UserRow]:
        """One page of users: "activity" (most events first), "last_seen" (latest first) or "user" (id order)."""
        return self._user_directory().page(offset, limit, search, order_by)

    def user_count(self, search: Optional[str] = None) -> int:
        return self._user_directory().count(search)

    def prepare_users(self, activity=None) -> int:
        """Build the user directory now, and keep it beside the workspace (not in a read-only one), so
        the next ``users_page`` is an array slice; returns the number of users. ``activity``: as
        ``UserDirectory.read`` takes it."""
        return len(self._user_directory(activity))

    def prepare(self, events=None, activity=None) -> None:
        """Build and cache what the studio reads first, the sequences, the user directory and the items'
        followers (a job for the job process: a scan of every event, unless the caller holds them:
        ``WholeLog.for_caches``)."""
        self.sequence_data(events)
        self.prepare_users(activity)
        self.successors()

    def prepared(self) -> bool:
        """Whether the sequences, the user directory and the items' followers of the current content are
        cached beside the workspace, so reading them maps files instead of scanning every event (never in
        a read-only one)."""
        content = self.content_hash()
        return (not self.workspace.read_only and sequence_cache(self.workspace, content).is_dir()
                and users_folder(self.workspace, content).is_dir()
                and successors_folder(self.workspace, content).is_dir())

    def _user_directory(self, activity=None) -> UserDirectory:
        return self._for_content("_users_cache", lambda content: user_directory(self.workspace, content, activity))

    def _for_content(self, attribute: str, build):
        """The (content hash, value) held in ``attribute`` while the workspace's content is unchanged, else
        ``build(content)``: built outside the lock, so a page reading another cache is not held up by it."""
        content = self.content_hash()
        with self._lock:
            held = getattr(self, attribute)
            if held is not None and held[0] == content:
                return held[1]
        value = build(content)
        with self._lock:
            setattr(self, attribute, (content, value))
        return value
