"""Latency of one recommendation (encoder + predictor + generator + ranker + MMR + explanations) on CPU.

    python benchmarks/bench_latency.py                       # 10k and 1M items, SASRec, 64 dims
    python benchmarks/bench_latency.py --items 10000 --repeats 500 --model gru
    python benchmarks/bench_latency.py --items 1000000 --threads 1 --profile   # per-operator times
    python benchmarks/bench_latency.py --items 10000 --threads 1 --text        # issue 12: with item text

Goal (issue 3): p50 < 5 ms for a 10k-item catalogue and < 30 ms for 1M items. The catalogue and
the log are synthetic (latency depends on sizes, not on what the weights learned), the network
is untrained, the ranker is an untrained ``RankerNet`` over real item facts. Printed next to
each figure: a bare torch dot product + top-N over the same catalogue size (N = the candidates
the generator hands the ranker), the floor any full-catalogue scorer pays. The floor and the
full recommendation are timed alternately, so both see the same load from other processes;
the load average and this process's nice value are printed with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time

import numpy as np
import torch

from core.baselines.popularity import PopularityScorer
from core.baselines.train_log import TrainLog
from core.bundles import Bundle
from core.data import leave_one_out, sequences_from_arrays
from core.candidate_sources import N_CANDIDATES, NEIGHBOUR_CANDIDATES, NEW_ITEM_CANDIDATES
from core.ranker import Ranker, RankerNet
from core.ranker_features import ItemFacts, features_for
from core.runs.ranker_inputs import interest_vocabulary
from core.serving import recommend
from core.text.search import TextIndex
from core.training import TrainConfig
from core.training.network import model_for_data
from core.pipeline import NeuralScorer

TEXT_DIM = 384  # all-MiniLM-L6-v2's width


def synthetic_data(n_items: int, n_users: int, events_per_user: int, n_categories: int, seed: int = 0):
    """A log where every item occurs (so the vocabulary has ``n_items`` entries) and users have histories."""
    rng = np.random.default_rng(seed)
    n_events = max(n_users * events_per_user, n_items)
    items = np.concatenate([np.arange(1, n_items + 1), rng.integers(1, n_items + 1, n_events - n_items)])
    users = rng.integers(1, n_users + 1, n_events)
    ts = rng.random(n_events) * 1e6
    import pandas as pd

    catalogue = pd.DataFrame({"id": np.arange(1, n_items + 1), "external_id": [f"I{i}" for i in range(1, n_items + 1)],
                              "title": [f"Item {i}" for i in range(1, n_items + 1)],
                              "categories": [f"C{c}" for c in rng.integers(1, n_categories + 1, n_items)]})
    return sequences_from_arrays(users, items, ts, catalogue)


def stand_in_text(data, dim: int = TEXT_DIM, seed: int = 0) -> TextIndex:
    """Random unit text vectors of the packaged model's width: what the text model's precomputed vectors
    cost a request, without the model (nothing runs it per request)."""
    vectors = np.random.default_rng(seed).standard_normal((data.n_items + 1, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[0] = 0.0
    has_text = np.ones(data.n_items + 1, dtype=bool)
    has_text[0] = False
    return TextIndex("stand-in", vectors, has_text)


def build_bundle(data, model: str, hidden: int, text: bool = False, new_share: float = 0.0) -> Bundle:
    """``new_share``: the share of the catalogue (its last items) the re-ranker's facts hold no training
    event of, as items added since training: what the new-item candidates (``new_item_candidates``) read."""
    config = TrainConfig.for_data(data, model=model, hidden=hidden, layers=2, max_len=50, text=text)
    split = leave_one_out(data)
    index = stand_in_text(data) if text else None
    scorer = NeuralScorer(model_for_data(data, config, index, split.train).eval(), model)
    log = TrainLog.from_split(data, split)
    item_interest, names = interest_vocabulary(scorer, data)
    facts = ItemFacts.from_log(log)
    facts.popularity[data.n_items + 1 - int(new_share * data.n_items):] = 0.0
    ranker = Ranker(facts, RankerNet(features_for(True, text)), neighbours=NEIGHBOUR_CANDIDATES,
                    new_items=NEW_ITEM_CANDIDATES).with_text(scorer.text_vectors())  # as runs train it
    return Bundle(path=None, manifest={"model": model}, scorer=scorer, fallback=PopularityScorer.fit(log),
                  ranker=ranker, item_interest=item_interest, interest_names=names)


def paired_timings_ms(first, second, repeats: int) -> tuple[list[float], list[float], list[float], list[float]]:
    """Wall times of ``first`` and ``second`` called alternately, so a change in load hits both alike,
    and the CPU time each one's thread spent (what it costs without waiting for a core)."""
    first(), second()  # warm-up
    times = ([], [], [], [])
    for _ in range(repeats):
        for number, fn in enumerate((first, second)):
            started, cpu = time.perf_counter(), time.thread_time()
            fn()
            times[number].append((time.perf_counter() - started) * 1000)
            times[2 + number].append((time.thread_time() - cpu) * 1000)
    return times


def summary(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return f"p50 {statistics.median(values):7.2f} ms   p95 {p95:7.2f} ms"


def bench(n_items: int, args) -> None:
    started = time.perf_counter()
    data = synthetic_data(n_items, args.users, args.events_per_user, args.categories)
    bundle = build_bundle(data, args.model, args.hidden, args.text, args.new_share)
    text = (f"text on ({TEXT_DIM}-dim stand-in vectors, {args.new_share:.0%} of the items new)" if args.text
            else "text off")
    print(f"\n{n_items:,} items, {data.n_users:,} users, model {args.model} ({args.hidden} dims), {text}, "
          f"set up in {time.perf_counter() - started:.1f} s")
    users = np.random.default_rng(1).integers(0, data.n_users, args.repeats + 1)

    def lists_of(served: Bundle):
        """One user's list after another (the same users, in the same order, for every ``served``)."""
        state = {"i": 0}

        def one_user():
            u = users[state["i"] % len(users)]
            state["i"] += 1
            recommend(served, data, np.asarray(data.history(u)), int(data.user_segment[u]), k=10,
                      diversity=args.diversity)
        return one_user

    one_user = lists_of(bundle)

    with torch.inference_mode():
        table = torch.randn(n_items + 1, args.hidden)
        query = torch.randn(1, args.hidden)
        full, bare, cpu, _ = paired_timings_ms(one_user, lambda: torch.topk(query @ table.T, N_CANDIDATES), args.repeats)
    above = statistics.median(f - b for f, b in zip(full, bare))
    print(f"  recommend (all stages, k=10, diversity {args.diversity}): {summary(full)}")
    print(f"  the same, CPU time of its thread:                {summary(cpu)}")
    print(f"  bare dot product + top-{N_CANDIDATES} (floor):              {summary(bare)}")
    print(f"  above the floor: p50 {above:7.2f} ms (median of paired differences)   {load_text()}")
    if args.neighbours != bundle.ranker.neighbours:
        print_source_cost(bundle, lists_of, args, f"{args.neighbours} item-kNN candidates instead of "
                          f"{bundle.ranker.neighbours}", neighbours=args.neighbours)
    if args.text and bundle.ranker.new_items:
        print_source_cost(bundle, lists_of, args, f"no new-item candidates instead of {bundle.ranker.new_items}",
                          new_items=0)
    if args.profile:
        print_operator_profile(one_user, min(args.repeats, 50))


def print_source_cost(bundle: Bundle, lists_of, args, change: str, **sources) -> None:
    """What other candidate ``sources`` (``Ranker``'s ``neighbours``, ``new_items``) would change in a served list:
    the same users' lists with the bundle's and with these, timed alternately."""
    ranker = bundle.ranker
    settings = {"neighbours": ranker.neighbours, "new_items": ranker.new_items, **sources}
    other = dataclasses.replace(bundle, ranker=Ranker(ranker.facts, ranker.net, features=ranker.features,
                                                      exclude_seen=ranker.exclude_seen, **settings))
    with torch.inference_mode():
        theirs, ours, theirs_cpu, ours_cpu = paired_timings_ms(lists_of(other), lists_of(bundle), args.repeats)
    costs = [statistics.median(a - b for a, b in zip(*pair)) for pair in ((theirs, ours), (theirs_cpu, ours_cpu))]
    print(f"  with {change}: {costs[0]:+.2f} ms wall, {costs[1]:+.2f} ms CPU (p50 of paired differences; "
          f"with them: {summary(theirs)} wall, CPU {summary(theirs_cpu)})")


def print_operator_profile(fn, repeats: int) -> None:
    """Where one recommendation's time goes, per torch operator (numpy and Python time not shown)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(repeats):
            fn()
    print(f"  torch operators over {repeats} recommendations:")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} cores, nice {os.nice(0)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--events-per-user", type=int, default=20)
    parser.add_argument("--categories", type=int, default=20)
    parser.add_argument("--model", default="sasrec", choices=("sasrec", "gru", "lstm"))
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--diversity", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0 = torch's default); one request's small ops often run best on 1")
    parser.add_argument("--neighbours", type=int, default=50,
                        help="also time lists with this many item-kNN candidates added to the generator's (paired)")
    parser.add_argument("--profile", action="store_true", help="also print the torch operators that take the time")
    parser.add_argument("--text", action="store_true",
                        help="a model and re-ranker that read item text (precomputed stand-in vectors)")
    parser.add_argument("--new-share", type=float, default=0.1,
                        help="with --text: share of the items without training events (the new-item candidates' pool)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, python {platform.python_version()}; {load_text()}")
    for n_items in args.items:
        bench(n_items, args)


if __name__ == "__main__":
    main()
