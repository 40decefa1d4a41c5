"""Quality and time-to-quality of the sequence models with the product's default settings.

Trains with ``TrainConfig.for_data`` (what the Train button does; no per-dataset tuning),
leave-one-out, full-catalogue ranking, new items held out (history masked; ``--eval repeat``
for the repeats-allowed protocol), and prints test NDCG@10 / HR@10 next to global popularity,
epoch time, sequences/s, the epoch of the best validation score and the time to reach
validation NDCG@10 >= 0.050, once per validation choice: ``sample`` (the product default: 2,000
users validate, the others train on that event) and ``all`` (the published leave-one-out
protocol: every user's second-to-last event validates and is never trained on; the row to
set beside published figures). Data are read straight from the shared CSVs with the pure
sequence builder, so the figures do not depend on the importer.

    .venv/bin/python benchmarks/bench_quality.py                      # amazon-toys, Transformer
    .venv/bin/python benchmarks/bench_quality.py --data ml-100k demo --models sasrec gru lstm
    .venv/bin/python benchmarks/bench_quality.py --max-epochs 3        # smoke run
    .venv/bin/python benchmarks/bench_quality.py --validation all      # the published protocol only

Goals (issue 3): amazon-toys Transformer test NDCG@10 >= 0.055 and HR@10 >= 0.090; valid
NDCG@10 >= 0.050 within 10 minutes on 2 CPU cores. Published on this split: SASRec with sampled
softmax 0.0580 / 0.0970, original SASRec (BCE) NDCG@10 0.0374.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.baselines import fit_baseline
from core.data import EvalMode, SequenceData, SplitChoice, Validation, sequences_from_arrays
from core.evaluation import metrics_from_ranks, ranks_for
from core.training import TrainConfig
from core.training.loop import train_sequence_model

ROOT = Path(__file__).resolve().parents[1]
# The shared datasets beside the project; NEXTPICK_SHARED_DATA points elsewhere (a device machine
# gets a copy of the working tree only: carry the data as an ignored folder and point there).
SHARED = Path(os.environ.get("NEXTPICK_SHARED_DATA", ROOT.parent / "shared" / "data"))
TARGET_VALID_NDCG = 0.050


def amazon_toys() -> SequenceData:
    frame = pd.read_csv(SHARED / "amazon-toys" / "toys_events.csv")
    return sequences_from_arrays(frame["user_id"].to_numpy(), frame["item_id"].to_numpy(), frame["step"].to_numpy())


def ml_100k() -> SequenceData:
    folder = SHARED / "ml-100k"
    events = pd.read_csv(folder / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
    genres = pd.read_csv(folder / "u.genre", sep="|", names=["name", "index"], encoding="latin-1").dropna()
    movies = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1")
    flags = movies.iloc[:, 5:5 + len(genres)].to_numpy()
    names = genres["name"].to_numpy()
    categories = ["|".join(names[row > 0]) for row in flags]
    items = pd.DataFrame({"id": movies[0], "external_id": movies[0].astype(str), "title": movies[1], "categories": categories})
    people = pd.read_csv(folder / "u.user", sep="|", names=["id", "age", "gender", "occupation", "zip"])
    users = pd.DataFrame({"id": people["id"], "external_id": people["id"].astype(str),
                          "attributes": people.drop(columns=["id"]).to_dict("records")})
    return sequences_from_arrays(events["user"].to_numpy(), events["item"].to_numpy(), events["ts"].to_numpy(), items, users)


def demo_shop() -> SequenceData:
    from core.demo import DemoConfig, write_demo_csv

    with tempfile.TemporaryDirectory() as folder:
        files = write_demo_csv(folder, DemoConfig())
        events = pd.read_csv(files.events, dtype={"user_id": str, "item_id": str})
        catalogue = pd.read_csv(files.items, dtype={"item_id": str})
        people = pd.read_csv(files.users, dtype={"user_id": str})
    item_id = {e: i for i, e in enumerate(catalogue["item_id"], start=1)}
    user_id = {e: i for i, e in enumerate(people["user_id"], start=1)}
    items = pd.DataFrame({"id": np.arange(1, len(catalogue) + 1), "external_id": catalogue["item_id"],
                          "title": catalogue["title"], "categories": catalogue["categories"]})
    users = pd.DataFrame({"id": np.arange(1, len(people) + 1), "external_id": people["user_id"],
                          "attributes": people.drop(columns=["user_id"]).to_dict("records")})
    return sequences_from_arrays(events["user_id"].map(user_id).to_numpy(), events["item_id"].map(item_id).to_numpy(),
                                 events["timestamp"].to_numpy(np.float64), items, users)


DATASETS = {"amazon-toys": amazon_toys, "ml-100k": ml_100k, "demo": demo_shop}


def test_metrics(scorer, split) -> dict[str, float]:
    test = split.test
    ranks = ranks_for(scorer, test.histories, test.targets, history_masked=test.eval_mode.masks_history)
    return metrics_from_ranks(ranks)


def run_model(data: SequenceData, split, model: str, max_epochs: int | None, overrides: dict) -> dict:
    overrides = {**overrides, "epochs": max_epochs} if max_epochs else overrides
    config = TrainConfig.for_data(data, model=model, **overrides)
    started = time.perf_counter()
    reached = []

    def listen(report):
        ndcg = report.metrics.get("valid_ndcg10")
        if ndcg is not None:
            elapsed = time.perf_counter() - started
            print(f"    epoch {report.metrics['epoch']:3d}  loss {report.metrics['loss']:.4f}  "
                  f"valid NDCG@10 {ndcg:.4f}  HR@10 {report.metrics['valid_hr10']:.4f}  {elapsed:7.1f} s", flush=True)
            if ndcg >= TARGET_VALID_NDCG and not reached:
                reached.append(elapsed)

    result = train_sequence_model(data, split, config, progress=listen)
    test = test_metrics(result.scorer, split)
    return {
        "model": model,
        "config": config.to_json(),
        "test_ndcg@10": test["ndcg@10"],
        "test_hr@10": test["hr@10"],
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "epoch_s": float(np.mean([r.seconds for r in result.history])),
        "seqs_per_s": float(np.mean([r.seqs_per_s for r in result.history])),
        "time_to_valid_0.050_s": reached[0] if reached else None,
        "train_s": result.duration_s,
        "device": result.device_name,
    }


def config_overrides(pairs: list[str]) -> dict:
    """FIELD=VALUE strings -> TrainConfig overrides, each value parsed as the field's type."""
    types = {f.name: type(f.default) for f in dataclasses.fields(TrainConfig)}
    overrides = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in types:
            raise SystemExit(f"--set {pair}: TrainConfig has no field {name!r}")
        kind = types[name]
        overrides[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return overrides


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads; load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def bench_split(name: str, data: SequenceData, choice: SplitChoice, models: list[str], max_epochs, overrides) -> list:
    """Popularity and each model on one split; prints the rows and returns each model's figures."""
    split = choice.split(data)
    print(f"  validation {choice.validation.value}: {split.protocol}")
    print(f"    {len(split.test):,} test users ({split.test.skipped:,} without a new item left out), "
          f"{len(split.valid):,} validation users")
    popularity = test_metrics(fit_baseline("pop", data, split), split)
    print(f"    popularity      test NDCG@10 {popularity['ndcg@10']:.4f}  HR@10 {popularity['hr@10']:.4f}")
    results = []
    for model in models:
        print(f"    {model}:", flush=True)
        figures = run_model(data, split, model, max_epochs, overrides)
        figures.update(dataset=name, eval=choice.eval_mode.value, validation=choice.validation.value,
                       pop_ndcg10=popularity["ndcg@10"], pop_hr10=popularity["hr@10"])
        results.append(figures)
        reached = figures["time_to_valid_0.050_s"]
        print(f"    {model:<15} test NDCG@10 {figures['test_ndcg@10']:.4f}  HR@10 {figures['test_hr@10']:.4f}  "
              f"(beats popularity: {figures['test_ndcg@10'] > popularity['ndcg@10']})")
        print(f"    {'':<15} best epoch {figures['best_epoch']} of {figures['epochs_run']}, "
              f"{figures['epoch_s']:.1f} s/epoch, {figures['seqs_per_s']:.0f} seqs/s, "
              f"valid NDCG@10 >= {TARGET_VALID_NDCG} after "
              f"{'%.0f s' % reached if reached is not None else 'never'}, total {figures['train_s']:.0f} s "
              f"on {figures['device']}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["amazon-toys"], choices=sorted(DATASETS))
    parser.add_argument("--models", nargs="+", default=["sasrec"], choices=["sasrec", "gru", "lstm"])
    parser.add_argument("--max-epochs", type=int, default=None, help="cap epochs (smoke runs; not the goal figures)")
    parser.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="override TrainConfig fields (experiments; the goal figures use the defaults)")
    parser.add_argument("--eval", choices=[m.value for m in EvalMode], default=EvalMode.NEW.value,
                        help="held-out items: new (default, history masked) or repeat (last event, nothing masked)")
    parser.add_argument("--validation", nargs="+", choices=[v.value for v in Validation],
                        default=[v.value for v in Validation], help="validation rows to print (default: both)")
    parser.add_argument("--json", type=Path, default=None, help="also write all figures to this JSON file")
    args = parser.parse_args()
    overrides = config_overrides(args.set)
    print(f"machine: {machine()}")
    if overrides:
        print(f"overrides (not the defaults): {overrides}")
    print("protocol: leave-one-out, full-catalogue ranking; defaults from TrainConfig.for_data")
    results = []
    for name in args.data:
        data = DATASETS[name]()
        print(f"\n{name}: {data.n_users:,} users, {data.n_items:,} items, {len(data.items):,} events")
        for validation in args.validation:
            results.extend(bench_split(name, data, SplitChoice(eval_mode=args.eval, validation=validation),
                                       args.models, args.max_epochs, overrides))
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
