"""Training runs: the ``runs`` table, each run's folder, and the train → rank → evaluate → save sequence.

A run is a row (status running → done / cancelled / failed, config, metrics, device, duration,
content hash, bundle path) plus a folder ``<workspace>.runs/<id>/`` holding the bundle,
for neural models the per-epoch checkpoint that a stopped run resumes from, and the owner
lock of the process training it (a ``running`` row whose lock is free reads ``interrupted``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
from sqlalchemy import func, select

from core.baselines import BASELINES, fit_baseline_on_log
from core.baselines.train_log import TrainLog
from core.bundles import save_bundle
from core.data.histories import Histories
from core.data.split_choice import SplitChoice
from core.data.splits import EvalMode
from core.distributed import SOLO, Team
from core.errors import NextPickError, UsageError
from core.evaluation import REPORT_KEYS, evaluate_scorer, metrics_from_ranks, paired_test, per_user_metric
from core.generator import ColdStartScorer
from core.memory import hand_back_freed_memory
from core.progress import Cancelled, Progress, emit
from core.ranker import ItemFacts, RankedScorer, train_ranker
from core.scorer import Scorer
from core.store import schema
from core.update import Update, fine_tune_split, reused_ranker, update_split

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

GATE_P = 0.05  # a model must beat popularity on validation at this significance to be made active by itself


class UnknownRunError(NextPickError, KeyError):
    """A run id the workspace does not hold (deleted, or from another workspace)."""


@dataclass
class RunSummary:
    """One row of the runs table, as the CLI and the studio show it.

    metrics: the served pipeline's test report under the run's own evaluation mode (``protocol``,
    ``eval``, ``metrics``, ``beyond``, ``segments``, ...: ``REPORT_KEYS``) plus ``valid``
    (validation metrics), ``generator_test`` (test metrics of the generator alone), ``new_items`` and
    ``generator_new_items`` (HR/NDCG@10 on the test events of items new at test time), ``ranker``
    (its holdout check), ``training`` (epochs, best epoch, the estimate and plan, ``stopped_by``,
    ``budget_cut``), ``evaluations`` (reports under other modes, by mode, from ``Engine.evaluate``)
    and, for neural runs, ``popularity`` (the popularity baseline's validation and test metrics on
    the same split) and ``gate`` (the paired validation test against it, see ``popularity_gate``), and
    ``timing`` (``seconds`` and ``peak_rss_mb`` of each phase from the run's request on: reading, popularity
    (its side of the gate, measured before training), training, re-ranker, test, saving).
    config: the TrainConfig's fields plus ``split``, the SplitChoice the run was cut with, and
    ``log``, where the log ended when it was trained (``LogPosition``; absent on older runs), and for
    an update ``update``: its parent run, and the events and items the log gained since the parent.
    """

    id: int
    model: str
    status: str
    created_at: float
    config: dict
    metrics: dict = field(default_factory=dict)
    device: Optional[str] = None
    duration_s: Optional[float] = None
    content_hash: Optional[str] = None
    bundle_path: Optional[str] = None

    @property
    def beats_popularity(self) -> Optional[bool]:
        """Whether this neural run beat the popularity baseline on validation (None: a baseline, or a run
        recorded before the check). A run that did not is flagged and never made active by itself."""
        gate = self.metrics.get("gate")
        return None if gate is None else bool(gate["beats_popularity"])

    @property
    def parent(self) -> Optional[int]:
        """The run this one updated (``nextpick update``); None for a run trained afresh."""
        update = self.config.get("update")
        return None if not update else int(update["parent"])

    def lineage(self) -> str:
        """"update of #3 (+1,234 events, +5 items)", or "" for a run trained afresh."""
        update = self.config.get("update")
        if not update:
            return ""
        items = f", +{update['items']:,} item{'' if update['items'] == 1 else 's'}" if update["items"] else ""
        return f"update of #{update['parent']} (+{update['events']:,} event{'' if update['events'] == 1 else 's'}{items})"

    def metric(self, name: str = "ndcg@10") -> Optional[float]:
        """A test metric of the served pipeline, e.g. "ndcg@10" or "coverage@10"."""
        return {**self.metrics.get("metrics", {}), **self.metrics.get("beyond", {})}.get(name)

    @property
    def split(self) -> SplitChoice:
        """How the run's data was cut (runs recorded before the choice existed were leave-one-out)."""
        return SplitChoice.from_json(self.config.get("split"))

    def report(self, eval_mode: Optional[EvalMode] = None) -> dict:
        """The test report under ``eval_mode`` (the run's own by default); empty when the run was
        not evaluated so (reports from before evaluation modes existed name none)."""
        mode = EvalMode(eval_mode or self.split.eval_mode)
        if self.metrics.get("eval") == mode.value:
            return {key: self.metrics[key] for key in REPORT_KEYS if key in self.metrics}
        return self.metrics.get("evaluations", {}).get(mode.value, {})

    def evaluated_as(self, eval_mode: EvalMode) -> "RunSummary":
        """This run with ``report(eval_mode)`` as its test report, so runs shown side by side are
        all measured one way (no report: no test metrics)."""
        others = {key: value for key, value in self.metrics.items() if key not in REPORT_KEYS}
        return replace(self, metrics={**others, **self.report(eval_mode)})


ACTIVE_RUN_KEY = "active_run"  # meta key: the run Explore and exports use
BUNDLE = "bundle"  # the bundle's folder inside the run's folder
OWNER_LOCK = "owner.lock"  # locked by the process training the run, for as long as it trains


@dataclass(frozen=True)
class LogPosition:
    """Where the behaviour log ended: its newest event and item ids (both only ever grow)."""

    last_event_id: int
    last_item_id: int

    @classmethod
    def of(cls, workspace) -> "LogPosition":
        with workspace.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            return cls(*(raw.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
                         for table in ("events", "items")))


@dataclass(frozen=True)
class RunLag:
    """How far a run is behind the log: when it was trained, and what the log gained since
    (None for a run recorded before runs noted their log position)."""

    trained_at: float
    newer_events: Optional[int]
    new_items: Optional[int]

    def describe(self, now: Optional[float] = None) -> str:
        """"trained 2 days ago · 12,480 newer events · 37 new items"."""
        parts = [f"trained {_ago((now if now is not None else time.time()) - self.trained_at)}"]
        if self.newer_events is not None:
            parts.append(f"{self.newer_events:,} newer event{'' if self.newer_events == 1 else 's'}"
                         if self.newer_events else "no newer events")
        if self.new_items:
            parts.append(f"{self.new_items:,} new item{'' if self.new_items == 1 else 's'}")
        return " · ".join(parts)


def run_lag(workspace, run: RunSummary) -> RunLag:
    """What the log gained after ``run`` was trained: two counts over id ranges of the primary keys."""
    trained_at = run.created_at + (run.duration_s or 0.0)
    recorded = run.config.get("log")
    if not recorded:
        return RunLag(trained_at, None, None)
    since = LogPosition(**recorded)
    with workspace.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        events = raw.execute("SELECT count(*) FROM events WHERE id > ? AND negative = 0", (since.last_event_id,)).fetchone()[0]
        items = raw.execute("SELECT count(*) FROM items WHERE id > ?", (since.last_item_id,)).fetchone()[0]
    return RunLag(trained_at, int(events), int(items))


def _ago(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


def runs_root(workspace) -> Path:
    return Path(workspace.path).with_name(Path(workspace.path).name + ".runs")


def run_folder(workspace, run_id: int) -> Path:
    return runs_root(workspace) / str(run_id)


def bundle_location(workspace, run_id: int, stored: Optional[str]) -> Optional[Path]:
    """Where the run's bundle is in this workspace's run folder.

    Stored relative to the run's folder, so a workspace moved, copied or unzipped elsewhere
    (with its ``.runs`` folder) finds its models; older releases stored absolute paths, which are
    read by their last part in this workspace's run folder, so a copy never loads the original's.
    """
    if not stored:
        return None
    return run_folder(workspace, run_id) / (Path(stored).name if Path(stored).is_absolute() else stored)


def _summary(workspace, row) -> RunSummary:
    status = row.status
    if status == "running" and not _owner_alive(run_folder(workspace, row.id)):
        status = "interrupted"
    bundle = bundle_location(workspace, row.id, row.bundle_path)
    return RunSummary(id=row.id, model=row.model, status=status, created_at=row.created_at,
                      config=json.loads(row.config), metrics=json.loads(row.metrics) if row.metrics else {},
                      device=row.device, duration_s=row.duration_s, content_hash=row.content_hash,
                      bundle_path=None if bundle is None else str(bundle))


def list_runs(workspace) -> list[RunSummary]:
    with workspace.engine.connect() as conn:
        rows = conn.execute(select(schema.runs).order_by(schema.runs.c.id)).all()
    return [_summary(workspace, row) for row in rows]


def get_run(workspace, run_id: int) -> RunSummary:
    with workspace.engine.connect() as conn:
        row = conn.execute(select(schema.runs).where(schema.runs.c.id == int(run_id))).first()
    if row is None:
        raise UnknownRunError(f"no run #{run_id} in {workspace.path.name}", "The runs list shows the runs it holds.")
    return _summary(workspace, row)


def update_run(workspace, run_id: int, progress=None, **values) -> None:
    if "metrics" in values and not isinstance(values["metrics"], str):
        values["metrics"] = json.dumps(values["metrics"])
    with workspace.writing(progress) as conn:
        conn.execute(schema.runs.update().where(schema.runs.c.id == int(run_id)).values(**values))


def create_run(workspace, config: dict, content_hash: str, progress=None) -> tuple[int, "RunOwner"]:
    """Insert a running run and take its owner lock before the row is committed, so no reader
    ever sees it running without an owner. Leftovers of a deleted run with the same id (a
    deletion killed after its commit) are cleared first."""
    with workspace.writing(progress) as conn:
        result = conn.execute(schema.runs.insert().values(
            created_at=time.time(), model=config["model"], status="running", config=json.dumps(config),
            content_hash=content_hash))
        run_id = int(result.inserted_primary_key[0])
        folder = run_folder(workspace, run_id)
        shutil.rmtree(folder, ignore_errors=True)
        owner = RunOwner.take(folder, run_id)
    return run_id, owner


def reopen_run(workspace, run_id: int, progress=None) -> "RunOwner":
    """Mark a cancelled, interrupted or failed run running again, taking its owner lock."""
    with workspace.writing(progress) as conn:
        row = conn.execute(select(schema.runs).where(schema.runs.c.id == int(run_id))).first()
        if row is None:
            raise UnknownRunError(f"no run #{run_id} in {workspace.path.name}", "The runs list shows the runs it holds.")
        owner = RunOwner.take(run_folder(workspace, run_id), run_id)
        status = "interrupted" if row.status == "running" else row.status  # we hold the lock: its owner is gone
        if status not in schema.RESUMABLE:
            owner.release()
            raise UsageError(f"run #{run_id} is {status}: only a {', '.join(schema.RESUMABLE[:-1])} or "
                             f"{schema.RESUMABLE[-1]} run can be resumed", "Start a new run instead.")
        conn.execute(schema.runs.update().where(schema.runs.c.id == int(run_id)).values(status="running"))
    return owner


def delete_run(workspace, run_id: int) -> None:
    """Remove the row, then the run's folder (bundle and checkpoints).

    The folder goes only after the row's deletion (and the active run's, if it was this one) is
    committed: a ``kill -9`` at any point leaves either the whole run or no row (and at most a
    folder, cleared when a new run takes the id).
    """
    with workspace.writing() as conn:
        _delete_row(conn, workspace, run_id)
    shutil.rmtree(run_folder(workspace, run_id), ignore_errors=True)


@dataclass(frozen=True)
class TrashedRun:
    """A deleted run that can still be restored: its row as it was, and its folder set aside."""

    row: dict  # the runs table's row
    was_active: bool
    folder: Optional[Path]  # the run's folder in the trash; None when it had none


TRASH = ".trash"  # beside the run folders: what ``trash_run`` set aside, as RUNID-PID-TAG


def trash_run(workspace, run_id: int) -> TrashedRun:
    """Delete a run so that ``restore_run`` can bring it back: the row goes (committed, as in
    ``delete_run``), the folder moves into the runs folder's trash until ``empty_trash``."""
    with workspace.writing() as conn:
        row, was_active = _delete_row(conn, workspace, run_id)
    folder = run_folder(workspace, run_id)
    aside = runs_root(workspace) / TRASH / f"{int(run_id)}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if folder.exists():
        aside.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(aside)
    return TrashedRun(row, was_active, aside if aside.exists() else None)


def restore_run(workspace, trashed: TrashedRun) -> int:
    """Put a trashed run back, under its old id unless a newer run took it; returns the id."""
    with workspace.writing() as conn:
        run_id = int(trashed.row["id"])
        if conn.execute(select(schema.runs.c.id).where(schema.runs.c.id == run_id)).first() is not None:
            run_id = int(conn.execute(select(func.max(schema.runs.c.id))).scalar_one()) + 1
        target = run_folder(workspace, run_id)
        if trashed.folder is not None:
            shutil.rmtree(target, ignore_errors=True)  # a leftover of a killed run under this id
            trashed.folder.rename(target)
        try:
            conn.execute(schema.runs.insert().values(**{**trashed.row, "id": run_id}))
            if trashed.was_active:  # its meta row is there, cleared by the deletion
                conn.execute(schema.meta.update().where(schema.meta.c.key == ACTIVE_RUN_KEY).values(value=str(run_id)))
        except BaseException:
            if trashed.folder is not None:
                target.rename(trashed.folder)
            raise
    return run_id


def empty_trash(trashed: TrashedRun) -> None:
    """Remove a trashed run's folder for good (the studio does this as it closes)."""
    if trashed.folder is not None:
        shutil.rmtree(trashed.folder, ignore_errors=True)


def sweep_trash(workspace) -> int:
    """Remove what a process that has since ended (a crashed studio) left in the trash: nobody
    can restore it any more. Folders of live processes stay, for their Undo. Returns how many."""
    trash = runs_root(workspace) / TRASH
    left = [folder for folder in trash.glob("*") if not _set_aside_by_a_live_process(folder.name)] if trash.is_dir() else []
    for folder in left:
        shutil.rmtree(folder, ignore_errors=True)
    return len(left)


def _set_aside_by_a_live_process(name: str) -> bool:
    parts = name.split("-")
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def export_bundle(workspace, run_id: int, destination: Path) -> Path:
    """Copy a finished run's bundle (safetensors + JSON manifest) to ``destination``, a folder
    that must not exist yet: what ``nextpick serve`` or another workspace loads."""
    run = get_run(workspace, run_id)
    if run.status != "done" or not run.bundle_path or not Path(run.bundle_path).is_dir():
        raise UsageError(f"run #{run_id} has no saved model to export ({run.status})",
                         "Export a finished run; train or resume this one first.")
    destination = Path(destination)
    if destination.exists():
        raise UsageError(f"{destination} already exists", "Choose a new folder name for the exported model.")
    shutil.copytree(run.bundle_path, destination)
    return destination


def _delete_row(conn, workspace, run_id: int) -> tuple[dict, bool]:
    """Delete the run's row and clear the stored active run if it was this one; (row, was active)."""
    row = conn.execute(select(schema.runs).where(schema.runs.c.id == int(run_id))).first()
    if row is None:
        raise UnknownRunError(f"no run #{run_id} in {workspace.path.name}", "The runs list shows the runs it holds.")
    if row.status == "running" and _owner_alive(run_folder(workspace, run_id)):
        raise UsageError(f"run #{run_id} is still training (in this or another window or command)",
                         "Stop it first, or wait for it to finish.")
    active = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == ACTIVE_RUN_KEY)).scalar()
    conn.execute(schema.runs.delete().where(schema.runs.c.id == int(run_id)))
    conn.execute(schema.meta.update().where((schema.meta.c.key == ACTIVE_RUN_KEY)
                                            & (schema.meta.c.value == str(int(run_id)))).values(value=""))
    return dict(row._mapping), active == str(int(run_id))


class RunOwner:
    """The lock a training process holds on its run's ``owner.lock`` file.

    The operating system releases it when the process ends however it ends (``kill -9``, power
    loss), so a ``running`` row whose lock is free belongs to a process that is gone: the run is
    shown ``interrupted`` and can be resumed. Unlike a recorded pid, this cannot be fooled by a
    reused pid. The file also names the pid, host and start time, for a person looking.
    """

    def __init__(self, handle) -> None:
        self._handle = handle

    @classmethod
    def take(cls, folder: Path, run_id: int) -> "RunOwner":
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / OWNER_LOCK, "a+", encoding="utf-8")
        deadline = time.monotonic() + 1.0  # a reader's probe holds the lock for microseconds
        while not _try_lock(handle.fileno(), exclusive=True):
            if time.monotonic() > deadline:
                handle.close()
                raise UsageError(f"run #{run_id} is training in another window or command",
                                 "Stop it there first, or wait for it to finish.")
            time.sleep(0.01)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time()}))
        handle.flush()
        return cls(handle)

    def release(self) -> None:
        self._handle.close()  # closing the file releases the lock


def _owner_alive(folder: Path) -> bool:
    """Whether a process holds the run's owner lock (probed with a shared lock, released at once)."""
    try:
        fd = os.open(folder / OWNER_LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        return not _try_lock(fd, exclusive=False)
    finally:
        os.close(fd)


def _try_lock(fd: int, exclusive: bool) -> bool:
    """A non-blocking whole-file lock; False when another open file holds a conflicting one."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        else:  # Windows
            msvcrt.locking(fd, msvcrt.LK_NBLCK if exclusive else msvcrt.LK_NBRLCK, 1)
        return True
    except OSError:
        return False


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
    against = _popularity_side(popularity, data, split, cancel, test=not updating,
                               served=None if updating else (log, facts, config, progress)) if neural else None
    phases.end("popularity")
    scorer, device, training, dims, moments, trained_ranks = _fit_generator(
        folder, data, split, fit_split, log, config, progress, cancel, resume, text, update, team, started,
        after=None if updating or against is None else afterwards(against.ranker, split))
    phases.end("training")
    item_interest, interest_names = interest_vocabulary(scorer, data)
    if updating:
        ranker, ranker_report = reused_ranker(update.bundle, log)
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
    served = ColdStartScorer(RankedScorer(scorer, ranker, item_interest), popularity) if kept else generator
    valid_ranks = _generator_valid_ranks(trained_ranks, fit_split is split, generator, data, split, cancel)
    # An update evaluates what its decision (the popularity gate) and its report need: the re-ranker
    # it reuses and popularity's test figures were measured with its parent.
    compared = {} if against is None else _compare_with_popularity(valid_ranks, against,
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


def target_times(data, eval_set) -> np.ndarray:
    """(len(eval_set),) when each held-out event happened (its history is everything before it)."""
    users = np.asarray(eval_set.user_index, dtype=np.int64)
    lengths = Histories.of(eval_set.histories).lengths
    return np.asarray(data.ts)[np.asarray(data.offsets)[users] + lengths]


def known_items(split, n_items: int) -> np.ndarray:
    """(n_items + 1,) bool: items with an event the models could see (training sequences, the
    validation and test histories and validation targets); the others are new at test time."""
    counts = sum(Histories.of(histories).item_counts(n_items)
                 for histories in (split.train, split.valid.histories, split.test.histories))
    counts[np.asarray(split.valid.targets, dtype=np.int64)] += 1
    counts[0] = 0
    return counts > 0


def new_item_figures(test, generator_test, split, n_items: int) -> dict:
    """The served list's and the generator's own figures on new items: the re-ranker's features
    (popularity, co-occurrence) know nothing of new items, the generator reads their text."""
    known = known_items(split, n_items)
    figures = {"new_items": new_item_metrics(test, split.test, known)}
    if generator_test is not None:  # an update measures the served list only
        figures["generator_new_items"] = new_item_metrics(generator_test, split.test, known)
    return figures


def new_item_metrics(report, test_set, known: np.ndarray) -> dict:
    """HR@10 and NDCG@10 over the test targets that are new items (None, not 0, when there are none)."""
    new = ~known[np.asarray(test_set.targets, dtype=np.int64)]
    if not new.any():
        return {"events": 0, "hr@10": None, "ndcg@10": None}
    figures = metrics_from_ranks(report.ranks[new], ks=(10,))
    return {"events": int(new.sum()), "hr@10": figures["hr@10"], "ndcg@10": figures["ndcg@10"]}


@dataclass
class PopularitySide:
    """Popularity's side of the popularity gate: its figures (validation, and test unless an update),
    its per-user validation ranks, and its re-ranker when the gate compares what each side serves."""

    figures: dict
    valid_ranks: np.ndarray
    ranker: Optional[object] = None  # core.ranker.Ranker


def _popularity_side(popularity, data, split, cancel, test: bool = True, served=None) -> PopularitySide:
    """The popularity baseline on the same split (``popularity``: validation, and test unless ``test``
    is False): nothing of it depends on the model, so a run measures it before training.

    ``served``: (the training log, its ``ItemFacts``, the run's ``TrainConfig``, progress): popularity's re-ranker is
    fitted as a popularity run would fit it, reading those facts (the run's own re-ranker reads the
    same, so the log's co-occurrence is counted once).
    """
    pop_valid = evaluate_scorer(popularity, data, split.valid, cancel=cancel, split_name=split.description)
    figures = {"valid": pop_valid.metrics}
    if test:
        figures["test"] = evaluate_scorer(popularity, data, split.test, cancel=cancel,
                                          split_name=split.description).metrics
    if served is None:
        return PopularitySide(figures, pop_valid.ranks)
    log, facts, config, progress = served
    emit(progress, Progress("ranker", message="fitting popularity's re-ranker for the popularity check"))
    item_interest, _ = interest_vocabulary(popularity, data)
    ranker = train_ranker(popularity, log, split.valid, data.user_segment, item_interest, seed=config.seed,
                          target_times=target_times(data, split.valid), facts=facts, cancel=cancel,
                          neighbours=config.knn_candidates, new_items=config.new_item_candidates)
    return PopularitySide(figures, pop_valid.ranks, ranker)


def afterwards(popularity_ranker, split):
    """What a neural run does after its epochs (``core.training.plan.Afterwards``), from popularity's re-ranker
    fitted before them over the same users, with the same features and steps as the run's own will be:
    its fit (every chosen user's list; popularity's candidates hold fewer targets, so fewer lists) and
    its features, for the run's re-ranker and for every test user the served pipeline ranks; plus the
    network's passes, in validation passes: the run's re-ranker's candidates and interests over its
    users, the served test and the generator's own."""
    from core.training.plan import Afterwards

    report, users = popularity_ranker.report, len(popularity_ranker.judgement.users)
    fit_s = report["seconds"]["fit"] * users / max(report["judged_users"], 1)
    features_s = report["seconds"]["features"] * (users + len(split.test)) / max(users, 1)
    return Afterwards(seconds=fit_s + features_s, passes=(2 * users + 2 * len(split.test)) / max(len(split.valid), 1))


def _compare_with_popularity(valid_ranks, against: PopularitySide, ranker=None) -> dict:
    """Popularity's figures and the paired validation test (``gate``) against the model.

    With the run's ``ranker`` (and popularity's, ``against.ranker``) the gate weighs what each side serves,
    as a popularity run would serve it: each pipeline's cross-fitted validation NDCG@10 from its own
    re-ranker's keep check, on the same users. The served pipeline's plain validation ranks would flatter
    a kept re-ranker (it was fitted on those targets), and the generators alone flattered the model
    against a popularity run whose re-ranker lifts it (a 3-epoch Transformer gated in at test 0.1423
    against such a run's 0.1433). Without (an update, whose ranker is its parent's) the generators
    alone are compared (``valid_ranks``: the model generator's; ``gate["compares"]``).
    """
    figures = dict(against.figures)
    if ranker is None or against.ranker is None:
        model, theirs = (per_user_metric(ranks, "ndcg@10") for ranks in (valid_ranks, against.valid_ranks))
        return {"popularity": figures, "gate": {**popularity_gate(model, theirs), "compares": "generators"}}
    judgement, baseline = ranker.judgement, against.ranker.judgement
    users, mine, theirs = np.intersect1d(judgement.users, baseline.users, return_indices=True)
    figures["served_valid_ndcg10"] = float(baseline.ndcg10[theirs].mean()) if len(users) else 0.0
    gate = popularity_gate(judgement.ndcg10[mine], baseline.ndcg10[theirs])
    return {"popularity": figures, "gate": {**gate, "compares": "served, cross-fitted"}}


def popularity_gate(model_ndcg: np.ndarray, popularity_ndcg: np.ndarray, metric: str = "ndcg@10") -> dict:
    """Does the model beat popularity on the same validation users (per-user ``metric`` of each):
    higher mean and a paired test that says the difference is no chance (p < GATE_P)? A model that
    does not is not worth serving."""
    test = paired_test(model_ndcg, popularity_ndcg, metric)
    beats = test["difference"] > 0 and test["p_value"] < GATE_P
    return {**test, "beats_popularity": bool(beats), "alpha": GATE_P}


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


def interest_vocabulary(scorer: Scorer, data) -> tuple[np.ndarray, list[str]]:
    """Interest index of every item and each interest's readable name.

    Baselines speak in categories (interest c - 1 = category c); a neural model has its own
    item → interest map (``NeuralScorer.interest_vocabulary``).
    """
    from core.pipeline import NeuralScorer

    if isinstance(scorer, NeuralScorer):
        return scorer.interest_vocabulary(data)
    item_interest = np.asarray(data.item_category, dtype=np.int64) - 1
    return item_interest, [str(name) for name in data.category_names[1:]]
