"""The popularity gate: the popularity baseline on the run's own validation and test users (and its
re-ranker, fitted as a popularity run would fit it), the paired test a run must pass to be served by
itself, and the time after training planned from popularity's re-ranker (``afterwards``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from core.evaluation import evaluate_scorer, paired_test, per_user_metric
from core.progress import Progress, emit
from core.ranker import served_scorer
from core.ranker_training import train_ranker
from core.runs.ranker_inputs import interest_vocabulary, target_times

GATE_P = 0.05  # a model must beat popularity on validation at this significance to be made active by itself


@dataclass
class PopularitySide:
    """Popularity's side of the popularity gate: its figures (validation, and test unless an update),
    its per-user validation ranks, and its re-ranker when the gate compares what each side serves."""

    figures: dict
    valid_ranks: np.ndarray
    ranker: Optional[object] = None  # core.ranker.Ranker


def popularity_side(popularity, data, split, cancel, test: bool = True, served=None) -> PopularitySide:
    """The popularity baseline on the same split (``popularity``: validation, and test unless ``test``
    is False): nothing of it depends on the model, so a run measures it before training.

    ``served``: (the training log, its ``ItemFacts``, the run's ``TrainConfig``, progress): popularity's re-ranker is
    fitted as a popularity run would fit it, reading those facts (the run's own re-ranker reads the
    same, so the log's co-occurrence is counted once), and where it is kept, what a popularity run
    serves is tested too (``figures["served_test"]``): the gate weighs served lists, so the run's
    report sets its served test beside popularity's served test, not beside plain popularity's.
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
    if test and ranker.report["kept"]:
        figures["served_test"] = evaluate_scorer(served_scorer(popularity, ranker, item_interest, popularity),
                                                 data, split.test, cancel=cancel, split_name=split.description).metrics
    return PopularitySide(figures, pop_valid.ranks, ranker)


def report_popularity(side: PopularitySide, progress) -> None:
    """Popularity's validation NDCG@10 as the run's curves start: the line they have to climb above."""
    ndcg10 = side.figures["valid"]["ndcg@10"]
    emit(progress, Progress("popularity", message=f"popularity on the validation users: NDCG@10 {ndcg10:.4f}",
                            metrics={"popularity_valid_ndcg10": ndcg10}))


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


def compare_with_popularity(valid_ranks, against: PopularitySide, ranker=None) -> dict:
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
