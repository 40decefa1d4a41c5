"""``Engine``'s runs once recorded: listed, deleted (with Undo), made active, their lag behind the log,
their bundles loaded and cached, and their test evaluated again and compared (the ranks kept for it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np

from core import runs
from core.runs import trash
from core.runs.lag import RunLag, run_lag
from core.bundles import Bundle, BundleError, load_bundle
from core.data import EvalMode
from core.evaluation import evaluate_scorer, paired_significance
from core.errors import NextPickError, UsageError
from core.ranker import served_scorer
from core.store.array_files import save_array_folder


class RunMethods:
    """The recorded runs, their bundles and their evaluation: methods of ``core.engine.Engine`` (its
    workspace, lock and caches)."""

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
        """The run lists come from when none is named (``core.runs.serving_run_of``)."""
        active = self.active_run()
        return active if active is not None else runs.serving_run_of(self.runs(), None)

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
        served = served_scorer(bundle.scorer, bundle.ranker, bundle.item_interest, bundle.fallback,
                               exclude_seen=mode.masks_history)
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
