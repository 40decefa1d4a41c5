"""The re-ranker's candidates: the generator's top-N alone against its union with item-kNN's neighbours (issue 9).

Over one trained run's generator (the same network, split and seed for both), the re-ranker is fitted
twice, on the generator's top 100 alone (``neighbours=0``) and on the union with item-kNN's strongest
partners of the recent items (``--neighbours``), and each pipeline is served as a run
would serve it (the re-ranker only where its keep check passes). Printed: candidate recall (the
held-out item among the candidates) on validation and test, the served test NDCG@10 of each, the
paired test between them (same users, so the machine's load cancels out) and against item-kNN and
popularity on the same split.

    .venv/bin/python benchmarks/bench_candidates.py --data ml-latest-small ml-100k demo   # fresh default runs
    .venv/bin/python benchmarks/bench_candidates.py --workspace shop.sqlite --run 3       # a stored run
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_quality import machine
from bench_training import open_log
from core.baselines import fit_baseline_on_log
from core.baselines.train_log import TrainLog
from core.engine import Engine
from core.evaluation import evaluate_scorer, masked_score_batches, paired_significance
from core.generator import ColdStartScorer
from core.candidate_sources import NEIGHBOUR_CANDIDATES, candidate_sources, top_candidates
from core.ranker import RankedScorer
from core.ranker_features import ItemFacts
from core.ranker_training import train_ranker
from core.runs.ranker_inputs import interest_vocabulary, target_times
from core.training import TrainConfig


def test_recall(scorer, data, eval_set, facts: ItemFacts, neighbours: int) -> float:
    """Share of the test users whose held-out item is among the candidates, formed as served."""
    segments = data.user_segment[np.asarray(eval_set.user_index)]
    sources, found = candidate_sources(facts, neighbours), []
    for start, stop, batch in masked_score_batches(scorer, eval_set.histories, segments):
        items, _ = top_candidates(batch, eval_set.histories[start:stop], sources)
        found.append((items == np.asarray(eval_set.targets)[start:stop, None]).any(axis=1))
    return float(np.concatenate(found).mean())


def compare(engine: Engine, run_id: int, neighbours: int) -> None:
    data, run = engine.sequence_data(), engine.run(run_id)
    split = run.split.split(data)
    scorer = engine.bundle(run_id).scorer
    log = TrainLog.from_split(data, split)
    item_interest, _ = interest_vocabulary(scorer, data)
    knn, popularity = fit_baseline_on_log("itemknn", log), fit_baseline_on_log("pop", log)
    facts = ItemFacts.from_log(log, knn)
    tests = {name: evaluate_scorer(s, data, split.test) for name, s in (("item-kNN", knn), ("popularity", popularity))}
    print(f"run {run_id} ({run.model}), {len(split.test.targets):,} test users; load average "
          f"{os.getloadavg()[0]:.2f}; item-kNN {tests['item-kNN'].metrics['ndcg@10']:.4f}, "
          f"popularity {tests['popularity'].metrics['ndcg@10']:.4f}", flush=True)
    served = {}
    for n in (0, neighbours):
        started = time.perf_counter()
        ranker = train_ranker(scorer, log, split.valid, data.user_segment, item_interest, seed=run.config.get("seed", 0),
                              target_times=target_times(data, split.valid), facts=facts, neighbours=n)
        took = time.perf_counter() - started
        report = ranker.report
        pipeline = RankedScorer(scorer, ranker, item_interest) if report["kept"] else scorer
        served[n] = evaluate_scorer(ColdStartScorer(pipeline, popularity), data, split.test)
        against = "; ".join(f"vs {name} {served[n].metrics['ndcg@10'] - t.metrics['ndcg@10']:+.4f} "
                            f"p {paired_significance(served[n].ranks, t.ranks)['p_value']:.2g}"
                            for name, t in tests.items())
        print(f"  top 100{f' + item-kNN {n}' if n else '':<15} recall valid {report['target_in_candidates']:.3f} "
              f"test {test_recall(scorer, data, split.test, facts, n):.3f}; re-ranker "
              f"{'served' if report['kept'] else 'left out'} (cross-fitted {report['holdout_ndcg10_generator']:.4f} -> "
              f"{report['holdout_ndcg10_ranker']:.4f}, p {report['holdout_p_value']:.2g}, {report['judged_users']} judged) "
              f"in {took:.0f} s; served test NDCG@10 {served[n].metrics['ndcg@10']:.4f} ({against})", flush=True)
    paired = paired_significance(served[neighbours].ranks, served[0].ranks)
    print(f"  union against top 100 alone: {paired['difference']:+.4f}, p {paired['p_value']:.2g} (paired, same users)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=[], choices=["ml-latest-small", "ml-100k", "amazon-toys", "demo"],
                        help="train a default run on each log (the Train button's defaults), then compare")
    parser.add_argument("--workspace", type=Path, help="a workspace holding a trained run (with --run)")
    parser.add_argument("--run", type=int, help="the run whose generator both re-rankers are fitted over")
    parser.add_argument("--neighbours", type=int, default=NEIGHBOUR_CANDIDATES or 50,
                        help="item-kNN candidates of the union (default: the runs' own, or 50 while they add none)")
    parser.add_argument("--time-budget", type=float, default=None, help="minutes for a fresh run (default: the defaults')")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}; one torch thread")
    if args.workspace is not None:
        compare(Engine.open(args.workspace), args.run, args.neighbours)
    with tempfile.TemporaryDirectory(prefix="nextpick-candidates-") as folder:
        for name in args.data:
            print(f"\n{name}", flush=True)
            engine = open_log(name, Path(folder))
            overrides = {} if args.time_budget is None else {"time_budget": args.time_budget}
            run = engine.train(TrainConfig.for_data(engine.sequence_data(), **overrides))
            compare(engine, run.id, args.neighbours)
            engine.workspace.close()


if __name__ == "__main__":
    main()
