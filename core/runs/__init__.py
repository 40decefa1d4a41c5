"""Training runs: the ``runs`` table, each run's folder, and the lock of the process training it.

A run is a row (status running → done / cancelled / failed, config, metrics, device, duration,
content hash, bundle path) plus a folder ``<workspace>.runs/<id>/`` holding the bundle,
for neural models the per-epoch checkpoint that a stopped run resumes from, and the owner
lock of the process training it (a ``running`` row whose lock is free reads ``interrupted``).

The rest of a run's life is in this package's modules: ``train`` (the train → rank → evaluate → save
sequence), ``gate`` (the popularity gate), ``new_items`` (figures on items new at test time),
``ranker_inputs`` (what both re-rankers are fitted with), ``trash`` (deleting with Undo) and ``lag``
(how far a run is behind the log).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from sqlalchemy import select

from core.data.split_choice import SplitChoice
from core.data.splits import EvalMode
from core.errors import NextPickError, UsageError
from core.evaluation import REPORT_KEYS
from core.store import schema

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


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


def serving_run_of(summaries: list[RunSummary], active: Optional[int]) -> Optional[int]:
    """The run lists come from when none is named: the active run, else the latest finished one that
    did not fail the popularity check, else (when every finished run failed it) the latest finished."""
    if active is not None:
        return active
    done = [run for run in summaries if run.status == "done"]
    passed = [run for run in done if run.beats_popularity is not False]
    return (passed or done)[-1].id if done else None


ACTIVE_RUN_KEY = "active_run"  # meta key: the run Explore and exports use
BUNDLE = "bundle"  # the bundle's folder inside the run's folder
OWNER_LOCK = "owner.lock"  # locked by the process training the run, for as long as it trains


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
        delete_row(conn, workspace, run_id)
    shutil.rmtree(run_folder(workspace, run_id), ignore_errors=True)


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


def delete_row(conn, workspace, run_id: int) -> tuple[dict, bool]:
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
