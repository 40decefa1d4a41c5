"""Keeping a model up to date: `nextpick update` against never updating and against a full retrain.

Replays a time-ordered log the way a shop lives it: the first 80% of the events (by time) are
imported and a model is trained on them; then, day by day, that day's events (and the items
first seen that day) are imported, the model is updated (``Engine.update``, chained: each day
updates the previous day's update) and, for comparison, a model with the same settings is
trained afresh on the same data. Each row also says which share of the day's events the
update and the retrain could learn from (``learned``, ``(retrain)``: the retrain's split holds
each user's newest events out, the update's only those of the users it validates and tests on)
and which share of the next day's targets are items the first model never
saw (``on new``: "never updating" cannot rank those), and the paired differences from never
updating over the same targets with their 95% half-widths (a day of 150 targets cannot tell
apart models 0.05 NDCG@10 from each other). Each model is then scored on the next day: every next-day
event on an item new to its user is a target, predicted from everything the user did before it
(full-catalogue ranking, history masked as served with "exclude seen"; items the models have not
seen yet are served through the bundle's item mapping), twice: by the generator alone, so the
three are scored alike, and by what each run serves (its re-ranker, when it kept one, over the
item facts it holds: popularity, recency and co-occurrence of the log it was trained or updated
on, so a run never updated serves stale ones). Days with fewer than ``--min-day-events`` events are merged into the next one
(ml-latest-small is sparse after its 80% point: most days hold one to three ratings). At the
end every day's targets are pooled, all of them and those on items the first model never saw,
with paired differences and Wilcoxon p-values: one day's targets are too few to tell the models apart.

    python benchmarks/bench_update.py                          # demo shop and ml-latest-small
    python benchmarks/bench_update.py --data demo --days 3     # a quicker look
    python benchmarks/bench_update.py --epochs 20              # cap the initial and the full trainings

Goal (issue 13): updating keeps within 5% of the full retrain's next-day NDCG@10 at no more
than a tenth of its time, and clearly beats never updating. Times are the runs' recorded
durations (training, re-ranker, test evaluation and saving, for both kinds alike).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.bundles import load_bundle
from core.data import sequences_from_arrays
from core.demo import DemoConfig, write_demo_csv
from core.engine import Engine
from core.evaluation import per_user_metric, ranks_for, wilcoxon_p_value
from core.generator import ColdStartScorer
from core.ranker import RankedScorer
from core.training import TrainConfig
from core.update import log_growth, update_split

DATA = Path(os.environ.get("NEXTPICK_DATA", "/work/shared/data"))
DAY = 86_400


def demo_log(folder: Path, users: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events user/item/ts, items item/title/categories) of a generated demo shop."""
    files = write_demo_csv(folder, DemoConfig(n_users=users))
    events = pd.read_csv(files.events, dtype={"user_id": str, "item_id": str})
    items = pd.read_csv(files.items, dtype={"item_id": str})
    return (events.rename(columns={"user_id": "user", "item_id": "item", "timestamp": "ts"})[["user", "item", "ts"]],
            items.rename(columns={"item_id": "item"})[["item", "title", "categories"]])


def movielens_log() -> tuple[pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_csv(DATA / "ml-latest-small" / "ratings.csv", dtype={"userId": str, "movieId": str})
    movies = pd.read_csv(DATA / "ml-latest-small" / "movies.csv", dtype={"movieId": str})
    events = ratings.rename(columns={"userId": "user", "movieId": "item", "timestamp": "ts"})[["user", "item", "ts"]]
    items = movies.rename(columns={"movieId": "item", "genres": "categories"})[["item", "title", "categories"]]
    return events, items


def day_slices(later: pd.DataFrame, min_events: int) -> list[pd.DataFrame]:
    """Calendar days (UTC) of ``later``, each too-small day merged into the next."""
    slices, pending = [], []
    for _, day in later.groupby(later["ts"] // DAY, sort=True):
        pending.append(day)
        if sum(len(d) for d in pending) >= min_events:
            slices.append(pd.concat(pending))
            pending = []
    return slices


class Replay:
    """A workspace fed slice by slice, with the items first seen in each slice imported beside it."""

    def __init__(self, path: Path, items: pd.DataFrame) -> None:
        self.engine = Engine.open(path)
        self.items = items.set_index("item")
        self.known: set[str] = set()
        self.folder = path.parent

    def feed(self, events: pd.DataFrame) -> int:
        """Import ``events`` and their new items; returns how many items were new."""
        new = sorted(set(events["item"]) - self.known)
        self.known.update(new)
        events_csv, items_csv = self.folder / "slice_events.csv", self.folder / "slice_items.csv"
        events.rename(columns={"user": "user_id", "item": "item_id", "ts": "timestamp"}).to_csv(events_csv, index=False)
        catalogue = self.items.reindex(new).reset_index().rename(columns={"item": "item_id"})
        catalogue.to_csv(items_csv, index=False)
        self.engine.import_files(events=events_csv, items=items_csv if new else None)
        return len(new)


def next_day_targets(seen: pd.DataFrame, day: pd.DataFrame, items: pd.DataFrame):
    """(data, histories, targets, users): each of ``day``'s events on an item new to its user, after the
    user's past, and whose it is."""
    log = pd.concat([seen, day])
    users, user_codes = np.unique(log["user"].to_numpy(str), return_inverse=True)
    item_ids, item_codes = np.unique(log["item"].to_numpy(str), return_inverse=True)
    catalogue = items.set_index("item").reindex(item_ids)
    data = sequences_from_arrays(user_codes, item_codes + 1, log["ts"].to_numpy(float),
                                 pd.DataFrame({"id": np.arange(len(item_ids)) + 1, "external_id": item_ids,
                                               "title": catalogue["title"].fillna("").to_numpy(),
                                               "categories": catalogue["categories"].to_numpy()}),
                                 pd.DataFrame({"id": np.arange(len(users)), "external_id": users}))
    start = float(day["ts"].min())
    histories, targets, takers = [], [], []
    for user in np.unique(np.searchsorted(users, day["user"].to_numpy(str))):
        sequence = data.history(user)
        times = data.ts[data.offsets[user]:data.offsets[user + 1]]
        for position in np.flatnonzero(times >= start):
            if position and sequence[position] not in sequence[:position]:
                histories.append(sequence[:position])
                targets.append(sequence[position])
                takers.append(user)
    return data, histories, np.array(targets, dtype=np.int64), np.array(takers, dtype=np.int64)


def learnable_share(engine: Engine, parent: int) -> tuple[float, float]:
    """Shares of the events added since ``parent`` that (update, retrain) train on: a retrain's split
    holds each user's newest out (under leave-one-out the last new item tests and the one before
    validates), an update's only those of its held-out users (``core.update.update_split``)."""
    data, run = engine.sequence_data(), engine.run(parent)
    growth = log_growth(engine.workspace, data, run.config["log"]["last_event_id"], 0, 0)
    split = run.split.split(data)
    added = max(int((np.diff(data.offsets) - growth.first_new).sum()), 1)
    return tuple(float(np.maximum(np.array([len(h) for h in trained.train]) - growth.first_new, 0).sum() / added)
                 for trained in (update_split(split, data, growth.first_new), split))


def next_day_ndcg(engine: Engine, run_id: int, data, histories, targets) -> np.ndarray:
    """Each target's NDCG@10 under the run's generator and under what it serves (its re-ranker over
    the item facts it holds, when it kept one: a run never updated serves those of its training log)."""
    bundle = load_bundle(Path(engine.run(run_id).bundle_path), data, on_mismatch="map")
    served = bundle.scorer if bundle.ranker is None else RankedScorer(bundle.scorer, bundle.ranker,
                                                                      bundle.item_interest, exclude_seen=True)
    return {kind: per_user_metric(ranks_for(scorer, histories, targets, history_masked=True), "ndcg@10")
            for kind, scorer in (("generator", bundle.scorer), ("served", ColdStartScorer(served, bundle.fallback)))}


class TakenLately:
    """Ranks items by how often they were taken in the ``days`` before ``until`` (None: ever): how much
    a shop's trends alone say about the next day, which a model never updated cannot follow."""

    def __init__(self, data, until: float, days: float | None) -> None:
        ts = np.asarray(data.ts)
        taken = (ts < until) & (ts >= (until - days * DAY if days else -np.inf))
        counts = np.bincount(np.asarray(data.items)[taken], minlength=data.n_items + 1).astype(np.float32)
        self.scores = torch.from_numpy(counts - 1e-6 * np.arange(len(counts), dtype=np.float32))  # ties: lowest id first

    def score(self, histories, segments=None) -> torch.Tensor:
        return self.scores.expand(len(histories), -1).clone()


def popularity_ndcg(data, histories, targets, until: float) -> dict[str, np.ndarray]:
    """Each target's NDCG@10 when ranked by popularity over the whole past and over its last 3 days."""
    return {label: per_user_metric(ranks_for(TakenLately(data, until, days), histories, targets), "ndcg@10")
            for label, days in (("popularity ever", None), ("popularity 3 days", 3))}


def paired(a: np.ndarray, b: np.ndarray) -> str:
    """Mean of a - b over the same targets with its 95% half-width: "+0.012±0.020"."""
    diff = a - b
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    return f"{diff.mean():+.3f}±{half:.3f}"


def replay(name: str, events: pd.DataFrame, items: pd.DataFrame, args, folder: Path) -> list[dict]:
    events = events.sort_values("ts", kind="stable").reset_index(drop=True)
    cut = int(0.8 * len(events))
    head, later = events.iloc[:cut], events.iloc[cut:]
    slices = day_slices(later, args.min_day_events)[: args.days + 1]
    feed = Replay(folder / f"{name}.sqlite", items)
    feed.feed(head)
    engine = feed.engine
    overrides = {"epochs": args.epochs} if args.epochs else {}
    config = TrainConfig.for_data(engine.sequence_data(), model=args.model, **overrides)
    base = engine.train(config)
    print(f"\n{name}: {len(events):,} events, {events['user'].nunique():,} users, {events['item'].nunique():,} items; "
          f"trained on the first {cut:,} ({base.duration_s:.0f} s, {len(base.metrics['training']['epochs'])} epochs); "
          f"replaying {len(slices) - 1} days of >= {args.min_day_events} events", flush=True)
    print(f"{'day':<12}{'events':>7}{'new items':>10}{'learned':>8}{'(retrain)':>10}{'update s':>9}{'retrain s':>10}"
          f"{'time':>7}{'targets':>8}{'on new':>7}   next-day NDCG@10 of the generator, then served: "
          f"never / update / retrain, upd/ret, update-never, retrain-never", flush=True)
    rows, seen, updated = [], head, base.id
    base_items = set(head["item"])
    pooled: dict[str, list[np.ndarray]] = {"new": [], "taker": []}
    for day, following in zip(slices, slices[1:]):
        new_items = feed.feed(day)
        seen = pd.concat([seen, day])
        learned, retrain_learned = learnable_share(engine, updated)
        updated = engine.update(updated, time_budget=args.update_budget).id
        retrained = engine.train(config).id
        data, histories, targets, takers = next_day_targets(seen, following, items)
        per_target = {}
        for label, run_id in (("never", base.id), ("update", updated), ("retrain", retrained)):
            for kind, values in next_day_ndcg(engine, run_id, data, histories, targets).items():
                per_target[kind, label] = values
                pooled.setdefault(f"{kind} {label}", []).append(values)
        for label, values in popularity_ndcg(data, histories, targets, float(following["ts"].min())).items():
            pooled.setdefault(label, []).append(values)
        ndcg = {f"{kind} {label}": float(values.mean()) for (kind, label), values in per_target.items()}
        update_s, retrain_s = engine.run(updated).duration_s, engine.run(retrained).duration_s
        new = np.array([str(data.item_external[t]) not in base_items for t in targets], dtype=bool)
        on_new = float(new.mean()) if len(targets) else 0.0
        pooled["new"].append(new)
        pooled["taker"].append(len(rows) * 2**32 + takers)  # one id per (day, user)
        row = {"day": time.strftime("%Y-%m-%d", time.gmtime(int(day["ts"].min()))), "events": len(day),
               "new_items": new_items, "learned": learned, "retrain_learned": retrain_learned, "update_s": update_s,
               "retrain_s": retrain_s, **ndcg, "targets": len(targets), "on_new": on_new}
        rows.append(row)
        figures = "   ".join(
            f"{ndcg[kind + ' never']:.4f} / {ndcg[kind + ' update']:.4f} / {ndcg[kind + ' retrain']:.4f}, "
            f"{ndcg[kind + ' update'] / max(ndcg[kind + ' retrain'], 1e-12):.0%}, "
            f"{paired(per_target[kind, 'update'], per_target[kind, 'never'])}, "
            f"{paired(per_target[kind, 'retrain'], per_target[kind, 'never'])}" for kind in ("generator", "served"))
        print(f"{row['day']:<12}{len(day):>7,}{new_items:>10,}{learned:>8.0%}{retrain_learned:>10.0%}{update_s:>9.1f}"
              f"{retrain_s:>10.1f}{update_s / retrain_s:>7.0%}{len(targets):>8,}{on_new:>7.0%}   {figures}", flush=True)
    engine.workspace.close()
    if rows:
        pooled = {label: np.concatenate(values) for label, values in pooled.items()}
        for kind in ("generator", "served"):
            pooled_report(f"{name} ({kind})", {label: pooled[f"{kind} {label}"] for label in ("never", "update", "retrain")},
                          pooled["new"], pooled["taker"])
        ever, lately = pooled["popularity ever"], pooled["popularity 3 days"]
        print(f"{name}, trends alone: NDCG@10 of popularity over the whole past {ever.mean():.4f}, over the last 3 "
              f"days {lately.mean():.4f}; lately - ever {paired(lately, ever)} (p {wilcoxon_p_value(lately - ever):.2g})",
              flush=True)
    return rows


def pooled_report(name: str, pooled: dict[str, np.ndarray], new: np.ndarray, taker: np.ndarray) -> None:
    """Every day's next-day targets together, and those on items the first model never saw: the
    mean NDCG@10 of each model and the paired differences from never updating (95% half-width,
    Wilcoxon signed-rank p): a day alone holds too few targets to tell the models apart. ``taker``
    says whose day each target is (one id per user and day): the targets of one user's day are
    not independent (on ml-latest-small one user takes 50-98% of a day's events), so the
    differences are also tested on each user-day's mean, the unit the test can count on."""
    for label, chosen in (("all targets", np.ones(len(new), dtype=bool)), ("targets on new items", new)):
        if not chosen.any():
            print(f"{name}, {label}: none")
            continue
        never, update, retrain = (pooled[key][chosen] for key in ("never", "update", "retrain"))
        share = f"{update.mean() / retrain.mean():.0%}" if retrain.mean() > 0 else "n/a"
        print(f"{name}, {label} pooled over the days ({int(chosen.sum()):,}): NDCG@10 never {never.mean():.4f}, "
              f"update {update.mean():.4f}, retrain {retrain.mean():.4f} (update at {share} of retrain); "
              f"hits@10 never {int((never > 0).sum())}, update {int((update > 0).sum())}, "
              f"retrain {int((retrain > 0).sum())}; update - never "
              f"{paired(update, never)} (p {wilcoxon_p_value(update - never):.2g}), retrain - never "
              f"{paired(retrain, never)} (p {wilcoxon_p_value(retrain - never):.2g}), update - retrain "
              f"{paired(update, retrain)} (p {wilcoxon_p_value(update - retrain):.2g})", flush=True)
        groups, at = np.unique(taker[chosen], return_inverse=True)
        means = {key: np.bincount(at, pooled[key][chosen]) / np.bincount(at) for key in ("never", "update", "retrain")}
        print(f"{name}, {label} as {len(groups):,} user-days (each one's mean NDCG@10): update - never "
              f"{paired(means['update'], means['never'])} (p {wilcoxon_p_value(means['update'] - means['never']):.2g}), "
              f"retrain - never {paired(means['retrain'], means['never'])} "
              f"(p {wilcoxon_p_value(means['retrain'] - means['never']):.2g})", flush=True)


def summary(name: str, rows: list[dict]) -> None:
    if not rows:
        return
    mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key.endswith(("_s", "never", "update", "retrain"))}
    served = ", ".join(f"{label} {mean['served ' + label]:.4f}" for label in ("never", "update", "retrain"))
    print(f"{name} mean over {len(rows)} days: update {mean['update_s']:.1f} s vs retrain {mean['retrain_s']:.1f} s "
          f"({mean['update_s'] / mean['retrain_s']:.1%} of its time); next-day NDCG@10 of the generator never "
          f"{mean['generator never']:.4f}, update {mean['generator update']:.4f}, retrain {mean['generator retrain']:.4f}; "
          f"served {served}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=["demo", "ml-latest-small"], choices=["demo", "ml-latest-small"])
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--days", type=int, default=5, help="days to replay after the first 80%% (default: 5)")
    parser.add_argument("--min-day-events", type=int, default=200, help="smaller days merge into the next (default: 200)")
    parser.add_argument("--demo-users", type=int, default=3000, help="demo shop size (default: the demo's 3,000 users)")
    parser.add_argument("--epochs", type=int, default=None, help="cap the initial and full trainings' epochs")
    parser.add_argument("--update-budget", type=float, default=None,
                        help="minutes an update may take (default: nextpick update's, a tenth of the full training)")
    args = parser.parse_args()
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; model {args.model}, "
          f"epochs cap {args.epochs or 'none'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-update-") as tmp:
        for name in args.data:
            folder = Path(tmp) / name
            folder.mkdir()
            events, items = demo_log(folder, args.demo_users) if name == "demo" else movielens_log()
            summary(name, replay(name, events, items, args, folder))


if __name__ == "__main__":
    main()
