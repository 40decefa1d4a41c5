"""Training runs: the ``runs`` table, each run's folder, and the train → rank → evaluate → save sequence.

A run is a row (status running → done / cancelled / failed, config, metrics, device, duration,
content hash, bundle path) plus a folder ``<workspace>.runs/<id>/`` holding the bundle and,
for neural models, the per-epoch checkpoint that a cancelled run resumes from.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from sqlalchemy import select

from core.baselines import BASELINES, PopularityScorer, TrainLog, fit_baseline_on_log
from core.bundles import save_bundle
from core.data.splits import SplitChoice
from core.errors import NextPickError
from core.evaluation import evaluate_scorer
from core.progress import Cancelled, Progress, emit
from core.ranker import RankedScorer, train_ranker
from core.scorer import Scorer
from core.store import schema


class UnknownRunError(NextPickError, KeyError):
    """A run id the workspace does not hold (deleted, or from another workspace)."""


@dataclass
class RunSummary:
    """One row of the runs table, as the CLI and the studio show it.

    metrics: the served pipeline's test report (``protocol``, ``metrics``, ``beyond``,
    ``segments``) plus ``valid`` (validation metrics), ``generator_test`` (test metrics of the
    generator alone), ``ranker`` (its holdout check) and ``training`` (epochs, best epoch).
    config: the TrainConfig's fields plus ``split``, the SplitChoice the run was cut with.
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

    def metric(self, name: str = "ndcg@10") -> Optional[float]:
        """A test metric of the served pipeline, e.g. "ndcg@10" or "coverage@10"."""
        return {**self.metrics.get("metrics", {}), **self.metrics.get("beyond", {})}.get(name)

    @property
    def split(self) -> SplitChoice:
        """How the run's data was cut (runs recorded before the choice existed were leave-one-out)."""
        return SplitChoice.from_json(self.config.get("split"))


def runs_root(workspace) -> Path:
    return Path(workspace.path).with_name(Path(workspace.path).name + ".runs")


def run_folder(workspace, run_id: int) -> Path:
    return runs_root(workspace) / str(run_id)


def _summary(row) -> RunSummary:
    return RunSummary(id=row.id, model=row.model, status=row.status, created_at=row.created_at,
                      config=json.loads(row.config), metrics=json.loads(row.metrics) if row.metrics else {},
                      device=row.device, duration_s=row.duration_s, content_hash=row.content_hash,
                      bundle_path=row.bundle_path)


def list_runs(workspace) -> list[RunSummary]:
    with workspace.engine.connect() as conn:
        rows = conn.execute(select(schema.runs).order_by(schema.runs.c.id)).all()
    return [_summary(row) for row in rows]


def get_run(workspace, run_id: int) -> RunSummary:
    with workspace.engine.connect() as conn:
        row = conn.execute(select(schema.runs).where(schema.runs.c.id == int(run_id))).first()
    if row is None:
        raise UnknownRunError(f"no run #{run_id} in {workspace.path.name}", "The runs list shows the runs it holds.")
    return _summary(row)


def update_run(workspace, run_id: int, **values) -> None:
    if "metrics" in values and not isinstance(values["metrics"], str):
        values["metrics"] = json.dumps(values["metrics"])
    with workspace.engine.begin() as conn:
        conn.execute(schema.runs.update().where(schema.runs.c.id == int(run_id)).values(**values))


def create_run(workspace, config: dict, content_hash: str) -> int:
    with workspace.engine.begin() as conn:
        result = conn.execute(schema.runs.insert().values(
            created_at=time.time(), model=config["model"], status="running", config=json.dumps(config),
            content_hash=content_hash))
        return int(result.inserted_primary_key[0])


def delete_run(workspace, run_id: int) -> None:
    """Remove the row and the run's folder (bundle and checkpoints)."""
    get_run(workspace, run_id)
    with workspace.engine.begin() as conn:
        conn.execute(schema.runs.delete().where(schema.runs.c.id == int(run_id)))
    shutil.rmtree(run_folder(workspace, run_id), ignore_errors=True)


def train_run(workspace, data, choice: SplitChoice, config, progress=None, cancel=None,
              resume_run: Optional[int] = None) -> RunSummary:
    """Train (or resume) a run on the resolved split ``choice`` and record it with the run's config;
    Cancelled / errors leave the row marked."""
    content_hash = workspace.content_hash()
    recorded = {**config.to_json(), "split": choice.to_json()}
    if resume_run is None:
        run_id = create_run(workspace, recorded, content_hash)
    else:
        run_id = get_run(workspace, resume_run).id
        update_run(workspace, run_id, status="running")
    folder = run_folder(workspace, run_id)
    started = time.perf_counter()
    try:
        metrics, device = _train_and_save(folder, data, choice.split(data), config, recorded, content_hash, progress,
                                          cancel, resume_run is not None)
    except Cancelled:
        update_run(workspace, run_id, status="cancelled", duration_s=time.perf_counter() - started)
        raise
    except BaseException as exc:
        update_run(workspace, run_id, status="failed", duration_s=time.perf_counter() - started,
                   metrics={"error": f"{type(exc).__name__}: {exc}"})
        raise
    update_run(workspace, run_id, status="done", metrics=metrics, device=device,
               duration_s=time.perf_counter() - started, bundle_path=str(folder / "bundle"))
    return get_run(workspace, run_id)


def _train_and_save(folder: Path, data, split, config, recorded: dict, content_hash, progress, cancel,
                    resume: bool) -> tuple[dict, str]:
    log = TrainLog.from_split(data, split)
    scorer, device, training, dims = _fit_generator(folder, data, split, log, config, progress, cancel, resume)
    item_interest, interest_names = interest_vocabulary(scorer, data)
    emit(progress, Progress("ranker", message="training the re-ranker on held-out positions"))
    ranker = train_ranker(scorer, log, split.valid, data.user_segment, item_interest, seed=config.seed,
                          progress=progress, cancel=cancel)
    served = RankedScorer(scorer, ranker, item_interest) if ranker.report["kept"] else scorer
    valid = evaluate_scorer(scorer, data, split.valid, cancel=cancel, split_name=split.name)
    emit(progress, Progress("evaluate", message="evaluating on the test targets"))
    test = evaluate_scorer(served, data, split.test, progress=progress, cancel=cancel, split_name=split.name)
    generator_test = test if served is scorer else evaluate_scorer(scorer, data, split.test, cancel=cancel,
                                                                    split_name=split.name)
    metrics = {**test.to_dict(), "valid": valid.metrics, "generator_test": generator_test.metrics,
               "ranker": ranker.report, "training": training}
    save_bundle(folder / "bundle", model=config.model, config=recorded, data=data, scorer=scorer,
                fallback=PopularityScorer.fit(log), ranker=None if served is scorer else ranker,
                item_interest=item_interest, interest_names=interest_names, metrics=metrics,
                content_hash=content_hash, dims=dims,
                arrays={"test_ranks": test.ranks, "test_users": test.user_index})
    return metrics, device


def _fit_generator(folder, data, split, log, config, progress, cancel, resume):
    """(scorer, device name, training summary, network dims or None) for a baseline or a neural model."""
    if config.model in BASELINES:
        emit(progress, Progress("train", message=f"fitting the {config.model} baseline"))
        if cancel is not None:
            cancel.raise_if_cancelled()
        started = time.perf_counter()
        scorer = fit_baseline_on_log(config.model, log)
        return scorer, "CPU", {"seconds": time.perf_counter() - started}, None
    from core.training import data_dims, train_sequence_model

    result = train_sequence_model(data, split, config, progress, cancel, checkpoint_dir=folder / "checkpoint",
                                  resume=resume)
    training = {"best_epoch": result.best_epoch, "seconds": result.duration_s,
                "epochs": [vars(record) for record in result.history]}
    return result.scorer, result.device_name, training, vars(data_dims(data, config))


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
