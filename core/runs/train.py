"""A run's train → re-rank → evaluate → save sequence (``train_run``): the log read, popularity's side of
the gate measured before training, the generator fitted or trained, the re-ranker, the test, the bundle;
each phase timed. In a team of processes the leader records the run and the others only train."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np

from core.baselines import BASELINES, fit_baseline_on_log
from core.baselines.train_log import TrainLog
from core.bundles import save_bundle
from core.data.histories import Histories
from core.data.split_choice import SplitChoice
from core.distributed import SOLO, Team
from core.evaluation import evaluate_scorer, metrics_from_ranks
from core.generator import ColdStartScorer
from core.memory import hand_back_freed_memory
from core.progress import Cancelled, Progress, emit
from core.ranker import served_scorer
from core.ranker_features import ItemFacts
from core.ranker_training import train_ranker
from core.runs import BUNDLE, RunSummary, create_run, get_run, reopen_run, run_folder, update_run
from core.runs.gate import afterwards, compare_with_popularity, popularity_side, report_popularity
from core.runs.lag import LogPosition
from core.runs.new_items import new_item_figures
from core.runs.ranker_inputs import interest_vocabulary, target_times
from core.update import Update, fine_tune_split, reused_ranker, update_split


def train_run(workspace, data, choice: SplitChoice, config, progress=None, cancel=None,
              resume_run: Optional[int] = None, text=None, update: Optional["Update"] = None,
              team: Team = SOLO, started: Optional[float] = None) -> RunSummary:
    """Train (or resume) a run on the resolved split ``choice`` and record it with the run's config;
    Cancelled / errors leave the row marked, and a process that dies leaves it ``interrupted``.
    ``text``: the items' text vectors (a ``core.text.search.TextIndex``) a neural model reads, or
    None; the run records its model.

    With ``update`` (``core.update``) the run updates a parent run instead of starting afresh, and
    records it (``config["update"]``): it learns from every event but those of a sample of held-out
    users (``update_split``), who validate and test it; a split that leaves it nothing to learn is
    refused before any run is recorded.

    In a ``team`` (``core.distributed``) the leader does all of this; the others only train.

    ``started``: when the run was asked for (``time.perf_counter()``; default now): the time budget
    and the recorded duration count from it, reading the log included."""
    started = time.perf_counter() if started is None else started
    split = choice.split(data) if update is None else update_split(choice.split(data), data, update.growth.first_new)
    fit_split = split if update is None or config.model in BASELINES else fine_tune_split(
        split, update.growth.first_new, config.max_len)
    content_hash = workspace.content_hash()
    text = text if config.model not in BASELINES else None
    recorded = {**config.to_json(), "split": choice.to_json(), "log": vars(LogPosition.of(workspace)),
                "text_model": None if text is None else text.model}
    if update is not None:
        recorded["update"] = update.record()
    if not team.is_leader:
        return _follow_run(workspace, data, split, fit_split, config, cancel, resume_run is not None, text, update,
                           team, started)
    if resume_run is None:
        run_id, owner = create_run(workspace, recorded, content_hash, progress)
    else:
        run_id, owner = int(resume_run), reopen_run(workspace, resume_run, progress)
    team.from_leader(run_id)
    folder = run_folder(workspace, run_id)
    try:
        try:
            metrics, device = _train_and_save(folder, data, split, fit_split, config, recorded, content_hash,
                                              progress, cancel, resume_run is not None, text, update, team, started)
        except Cancelled:
            update_run(workspace, run_id, status="cancelled", duration_s=time.perf_counter() - started,
                       metrics={"training": {"epochs": checkpoint_epochs(folder / "checkpoint")}})
            raise
        except BaseException as exc:
            update_run(workspace, run_id, status="failed", duration_s=time.perf_counter() - started,
                       metrics={"error": f"{type(exc).__name__}: {exc}"})
            raise
        update_run(workspace, run_id, progress, status="done", metrics=metrics, device=device,
                   duration_s=time.perf_counter() - started, bundle_path=BUNDLE)
    finally:
        owner.release()
    return get_run(workspace, run_id)


def _follow_run(workspace, data, split, fit_split, config, cancel, resume: bool, text, update, team: Team,
                started: float) -> RunSummary:
    """What a follower rank does: learn the run's id from the leader (who recorded it), train its share of
    a neural model's batches, and return the run as the leader has recorded it so far. A baseline is
    fitted by the leader alone."""
    (run_id,) = team.from_leader(0)
    if config.model not in BASELINES:
        _fit_generator(run_folder(workspace, int(run_id)), data, split, fit_split, None, config, None, cancel,
                       resume, text, update, team, started)
    return get_run(workspace, int(run_id))


def checkpoint_epochs(checkpoint: Path) -> list[dict]:
    """The epochs a stopped run's checkpoint holds (loss and validation scores of each), so its
    curves stay on view and its row can say where it stopped; [] for a baseline or no checkpoint."""
    state = checkpoint / "state.json"  # core.training.checkpoints.STATE_FILE, read without loading torch
    if not state.exists():
        return []
    return list(json.loads(state.read_text(encoding="utf-8"))["state"].get("history", []))


def _train_and_save(folder: Path, data, split, fit_split, config, recorded: dict, content_hash, progress, cancel,
                    resume: bool, text=None, update=None, team: Team = SOLO,
                    started: Optional[float] = None) -> tuple[dict, str]:
    """``fit_split``: what the generator learns from (``split`` itself, or an update's narrower part).
    The metrics' ``timing`` says how long each phase took, from ``started`` (reading the log) on."""
    phases = _Phases(started)
    log = TrainLog.from_split(data, split)
    phases.end("reading")
    neural = config.model not in BASELINES
    updating = update is not None and update.bundle is not None  # a neural run fine-tuned from its parent
    popularity = fit_baseline_on_log("pop", log)  # the cold-start list, as served to users without history
    # What needs no network is done before training, so the time budget counts what it took: the log's
    # item facts (a neural generator's re-ranker reads them; counting their co-occurrence over every
    # event is the re-ranker's largest cost at scale) and popularity's side of the popularity gate.
    facts = ItemFacts.from_log(log) if neural and not updating else None
    against = popularity_side(popularity, data, split, cancel, test=not updating,
                              served=None if updating else (log, facts, config, progress)) if neural else None
    if against is not None and fit_split is split:  # an update's epochs validate on its newest events only
        report_popularity(against, progress)
    phases.end("popularity")
    scorer, device, training, dims, moments, trained_ranks = _fit_generator(
        folder, data, split, fit_split, log, config, progress, cancel, resume, text, update, team, started,
        after=None if updating or against is None else afterwards(against.ranker, split))
    phases.end("training")
    item_interest, interest_names = interest_vocabulary(scorer, data)
    if updating:
        ranker, ranker_report = reused_ranker(update.bundle, data, log)
        ranker = None if ranker is None else ranker.with_text(scorer.text_vectors())
    else:
        emit(progress, Progress("ranker", message="training the re-ranker on held-out positions"))
        ranker = train_ranker(scorer, log, split.valid, data.user_segment, item_interest, seed=config.seed,
                              target_times=target_times(data, split.valid), facts=facts, progress=progress,
                              cancel=cancel, neighbours=config.knn_candidates,
                              new_items=config.new_item_candidates)
        ranker_report = ranker.report
    phases.end("re-ranker")
    kept = ranker is not None and ranker_report["kept"]
    generator = ColdStartScorer(scorer, popularity)
    served = served_scorer(scorer, ranker if kept else None, item_interest, popularity)
    valid_ranks = _generator_valid_ranks(trained_ranks, fit_split is split, generator, data, split, cancel)
    # An update evaluates what its decision (the popularity gate) and its report need: the re-ranker
    # it reuses and popularity's test figures were measured with its parent.
    compared = {} if against is None else compare_with_popularity(valid_ranks, against,
                                                                  None if updating else ranker)
    emit(progress, Progress("evaluate", message="evaluating on the test targets"))
    test = evaluate_scorer(served, data, split.test, progress=progress, cancel=cancel, split_name=split.description)
    generator_test = None if updating else (evaluate_scorer(generator, data, split.test, cancel=cancel,
                                                            split_name=split.description) if kept else test)
    metrics = {**test.to_dict(), "valid": metrics_from_ranks(valid_ranks), "ranker": ranker_report, "training": training,
               **new_item_figures(test, generator_test, split, data.n_items), **compared}
    if generator_test is not None:
        metrics["generator_test"] = generator_test.metrics
    phases.end("test")
    save_bundle(folder / BUNDLE, model=config.model, config=recorded, data=data, scorer=scorer,
                fallback=popularity, ranker=ranker if kept else None,
                item_interest=item_interest, interest_names=interest_names, metrics=metrics,
                content_hash=content_hash, dims=dims,
                arrays={"test_ranks": test.ranks, "test_users": test.user_index}, optimizer=moments)
    phases.end("saving")
    return {**metrics, "timing": phases.timing}, device


class _Phases:
    """Seconds of each phase of a run, one after the other from ``started`` (``time.perf_counter()``), and
    the peak memory by each one's end: where a run's time and memory go (the time budget counts them all).
    Each phase hands back the memory it freed (``core.memory``), so the next starts from what is in use."""

    def __init__(self, started: Optional[float]) -> None:
        self.last = time.perf_counter() if started is None else started
        self.timing: dict[str, dict[str, float]] = {"seconds": {}, "peak_rss_mb": {}}

    def end(self, phase: str) -> None:
        from core.training.loop import peak_rss_mb

        now = time.perf_counter()
        self.timing["seconds"][phase] = round(now - self.last, 2)
        self.timing["peak_rss_mb"][phase] = round(peak_rss_mb())
        hand_back_freed_memory()
        self.last = now


def _generator_valid_ranks(trained_ranks, same_validation: bool, generator, data, split, cancel) -> np.ndarray:
    """The generator's validation ranks: the best epoch's, as training measured them, when it validated on
    the same users and every one has a history (the cold-start fallback then scores none of them), else
    a pass of their own (a baseline, an update's narrower validation, a best epoch of an earlier session).
    At 200,000 items a pass is a minute or more of the time budget."""
    histories = split.valid.histories
    if trained_ranks is not None and same_validation and bool((Histories.of(histories).lengths > 0).all()):
        return trained_ranks
    return evaluate_scorer(generator, data, split.valid, cancel=cancel, split_name=split.description).ranks


def _fit_generator(folder, data, split, fit_split, log, config, progress, cancel, resume, text=None, update=None,
                   team: Team = SOLO, started: Optional[float] = None, after=None):
    """(scorer, device name, training summary, network dims or None, optimizer moments, the generator's
    validation ranks as training measured them or None) for a
    baseline (fitted on the whole training log, also when updating) or a neural model (trained on
    ``fit_split``; when updating, from the parent's weights; its time budget counts from ``started`` and keeps
    ``after`` (``core.training.plan.Afterwards``) for what follows the epochs)."""
    if config.model in BASELINES:
        emit(progress, Progress("train", message=f"fitting the {config.model} baseline"))
        if cancel is not None:
            cancel.raise_if_cancelled()
        began = time.perf_counter()
        scorer = fit_baseline_on_log(config.model, log)
        return scorer, "CPU", {"seconds": time.perf_counter() - began}, None, {}, None
    from core.training.network import data_dims
    from core.training.plan import Afterwards
    from core.training.loop import train_sequence_model
    from core.update import warm_start

    start = None if update is None else warm_start(update.bundle, data, config, text, split.train)
    result = train_sequence_model(data, fit_split, config, progress, cancel, checkpoint_dir=folder / "checkpoint",
                                  resume=resume, text=text, start=start, team=team, started=started,
                                  after=Afterwards() if after is None else after)
    training = {"best_epoch": result.best_epoch, "seconds": result.duration_s,
                "epochs": [vars(record) for record in result.history], "planned_epochs": result.planned_epochs,
                "stopped_by": result.stopped_by, "budget_cut": result.budget_cut,
                "estimate": result.estimate.to_json() if result.estimate else None}
    return (result.scorer, result.device_name, training, vars(data_dims(data, config, text)),
            result.optimizer_moments, result.valid_ranks)
