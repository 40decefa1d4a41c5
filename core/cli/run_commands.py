"""Run commands: list the ``runs``, ``evaluate`` one again; and how a run's outcome is printed (``train`` and
``update`` print theirs the same way)."""

from __future__ import annotations

from core.cli.common import CliError, Output
from core.cli.text_commands import text_engine
from core.report_text import NO_TEST_USER, p_text, popularity_standing

EVAL_MODES = ("new", "repeat")
EVAL_HELP = ("new: each user's held-out item is their last item new to them and their whole history is masked, "
             "as served with 'exclude seen'; repeat: the last event is held out, nothing masked, as served "
             "with repeats allowed")


def add_commands(commands, common) -> None:
    p = commands.add_parser("runs", parents=[common], help="list the trained runs, or choose the active one")
    p.add_argument("--activate", type=int, metavar="RUN",
                   help="make RUN the active model, the one recommend, export, interests and serve use when no "
                        "--run is given (the studio's \"Use as active model\"); without an active run they use "
                        "the latest finished run that beat popularity")
    p.set_defaults(handler=cmd_runs)

    p = commands.add_parser("evaluate", parents=[common], help="re-evaluate a run on the current data")
    p.add_argument("run_id", type=int, metavar="RUN")
    p.add_argument("--eval", choices=EVAL_MODES, default=None, dest="eval_mode",
                   help="new or repeat (default: the mode the run was trained for); " + EVAL_HELP)
    p.set_defaults(handler=cmd_evaluate)


def find_run(engine, run_id: int):
    known = {run.id: run for run in engine.runs()}
    if run_id not in known:
        raise CliError(f"no run #{run_id} in {engine.workspace.path.name}; `nextpick runs` lists them")
    return known[run_id]


def run_dict(run) -> dict:
    metrics = run.metrics or {}
    new_items = {"new_items": metrics["new_items"]} if "new_items" in metrics else {}
    return {
        "run": run.id, "model": run.model, "status": run.status, "device": run.device,
        "duration_s": None if run.duration_s is None else round(run.duration_s, 2),
        "split": run.split.describe(), "eval": run.split.eval_mode.value, "validation": run.split.validation.value,
        "protocol": metrics.get("protocol"), "text_model": run.config.get("text_model"), "not_evaluated": metrics.get("not_evaluated"),
        "valid": metrics.get("valid", {}), "test": {**metrics.get("metrics", {}), **new_items},
        "test_generator_only": metrics.get("generator_test", {}), "test_users": metrics.get("n_users"),
        "test_sampled_from": metrics.get("sampled_from"), "test_intervals": metrics.get("intervals", {}),
        "beyond": metrics.get("beyond", {}), "training": metrics.get("training", {}), "config": run.config,
        "popularity": metrics.get("popularity"), "gate": metrics.get("gate"),
        "beats_popularity": run.beats_popularity, "error": metrics.get("error"), "parent": run.parent,
        "lineage": run.lineage(), "timing": metrics.get("timing"),
    }


def run_lines(r: dict, took_s: float) -> list[str]:
    """The run's outcome; ``took_s`` is the whole command's time, reading the log and evaluating included."""
    took = f" in {took_s:.1f} s"
    lines = [f"run #{r['run']} ({r['model']}): {r['status']}{took}" + (f" on {r['device']}" if r["device"] else "")]
    training = r["training"]
    if "best_epoch" in training:
        epochs = training.get("epochs", [])
        stopped = f", stopped by {training['stopped_by']}" if training.get("stopped_by") else ""
        lines.append(f"best validation epoch {training['best_epoch']} of {len(epochs)} run{stopped}"
                     if training["best_epoch"] else "no epoch beat the weights it started from on validation "
                     f"({len(epochs)} run{stopped}): it kept them")
        if training.get("budget_cut"):
            budget = (training.get("estimate") or {}).get("budget_s") or 0.0
            took = f"{budget / 60:.1f} min" if budget >= 6 else f"{budget:.2g} s"
            estimate = training.get("estimate") or {}
            steps, per_epoch = estimate.get("planned_steps") or 0, estimate.get("steps_per_epoch") or 0
            planned = (f"{steps:,} of the first epoch's {per_epoch:,} steps" if 0 < steps < per_epoch
                       else f"{training.get('planned_epochs')} of {r['config'].get('epochs')} epochs")
            lines.append(f"the time budget ({took}) cut training short: {planned} planned")
    if r["timing"]:
        lines.append(_timing_line(r["timing"]))
    if r["gate"] is not None:
        lines.append(_gate_line(r["gate"]))
    if r["error"]:
        lines.append(f"error: {r['error']}")
    if r["protocol"]:
        lines.append(f"protocol: {r['protocol']}")
    if r["text_model"]:
        lines.append(f"item text read with {r['text_model']}")
    names = [name for name in (r["test"] or r["valid"]) if name != "new_items"]
    popularity = r["popularity"] or {}
    served = popularity.get("served_test")  # what a popularity run serves, where its re-ranker is kept
    rows = {"valid (generator)": r["valid"], "test": r["test"], "test (generator only)": r["test_generator_only"],
            "popularity valid (generator)": popularity.get("valid"), "popularity test": served or popularity.get("test"),
            "popularity test (generator only)": popularity.get("test") if served else None}
    rows = {label: values for label, values in rows.items() if values}
    if names and r["test_users"] != 0:  # no user tested: a table of 0.0000 would read as a model that failed
        width = max(len(label) for label in [*rows, "test 95% interval +-"]) + 2
        lines.append(" " * width + "".join(f"{name:>9}" for name in names))
        lines.extend(f"{label:{width}}" + "".join(f"{values.get(name, float('nan')):>9.4f}" for name in names)
                     for label, values in rows.items())
        if r["test_intervals"]:
            half = {name: (high - low) / 2 for name, (low, high) in r["test_intervals"].items()}
            lines.append(f"{'test 95% interval +-':{width}}" + "".join(f"{half.get(name, float('nan')):>9.4f}"
                                                                       for name in names))
    if r["test_users"] is not None:
        lines.append(f"test users: {users_text(r['test_users'], r['test_sampled_from'])}")
    if r["beyond"]:
        lines.append(", ".join(f"{name} {value:.3f}" for name, value in r["beyond"].items()))
    new = r["test"].get("new_items")
    if new and r["test_users"] != 0:
        lines.append(f"new items (no events before the test): {new['events']:,} test events" + (
            f", HR@10 {new['hr@10']:.4f}, NDCG@10 {new['ndcg@10']:.4f}" if new["events"] else ""))
    return lines


def _timing_line(timing: dict) -> str:
    """"time: reading 41 s, training 305 s, ...; peak memory 3,412 MiB": where the run's time went."""
    phases = ", ".join(f"{phase} {seconds:.0f} s" for phase, seconds in timing["seconds"].items())
    return f"time: {phases}; peak memory {max(timing['peak_rss_mb'].values(), default=0):,.0f} MiB"


# What a run's popularity check compared, as its gate line says it (runs before it was recorded say nothing).
GATE_COMPARES = {"served, cross-fitted": "served lists' cross-fitted ", "generators": "generators' "}


def _gate_line(gate: dict) -> str:
    """The popularity check in one line, naming what it compared (``gate["compares"]``: what each side
    serves, cross-fitted, or the generators alone); a run that failed it says so in capitals a reader
    cannot miss."""
    compared = GATE_COMPARES.get(gate.get("compares"), "")
    figures = (f"{compared}validation NDCG@10 {gate['mean_a']:.4f} vs popularity {gate['mean_b']:.4f}, "
               f"{p_text(gate['p_value'])} over {gate['n_users']:,} users")
    if gate["beats_popularity"]:
        return f"beats popularity: {figures}"
    return (f"WARNING: does not beat popularity on validation ({figures}); it is not made the active model "
            "by itself")


def cmd_runs(args, out: Output) -> dict:
    engine = text_engine(args)
    if args.activate is not None:
        _activate(engine, args.activate, out)
    runs = [run_dict(run) for run in engine.runs()]
    active = engine.active_run()
    device_width = max([len("device"), *(len(r["device"] or "") for r in runs)]) + 2
    lines = [f"{'run':>5}  {'model':<10}{'status':<11}{'ndcg@10':>9}{'hr@10':>8}  {'vs pop':<8}"
             f"{'device':<{device_width}}{'eval':<8}split"]
    for r in runs:
        marker = "*" if r["run"] == active else " "
        ndcg, hr = (r["test"].get("ndcg@10"), r["test"].get("hr@10")) if r["test_users"] != 0 else (None, None)
        lineage = f"  {r['lineage']} in {r['duration_s']:.1f} s" if r["lineage"] and r["duration_s"] else ""
        lines.append(f"{marker}{r['run']:>4}  {r['model']:<10}{r['status']:<11}"
                     f"{_cell(ndcg, 9)}{_cell(hr, 8)}  {VERSUS_POPULARITY[popularity_standing(r['gate'])]:<8}"
                     f"{r['device'] or '':<{device_width}}{r['eval']:<8}{r['split']}"
                     f"{lineage}")
    for standing, meaning in FLAGGED.items():
        flagged = [r for r in runs if popularity_standing(r["gate"]) == standing]
        compared = sorted({GATE_COMPARES.get((r["gate"] or {}).get("compares"), "").strip() for r in flagged} - {""})
        figures = f" ({' / '.join(compared)} figures, as the run records)" if compared else ""
        if flagged:
            lines.append(f"{VERSUS_POPULARITY[standing]}: did not beat popularity on validation{figures}, {meaning}; "
                         "never made the active model by itself")
    behind = _lag_of_served_run(engine)
    if behind is not None:
        lines.append(f"{'active' if behind['run'] == active else 'latest'} run #{behind['run']}: {behind['text']}")
    out.lines(lines if runs else ["no runs yet; train one with `nextpick train`"])
    return {"workspace": str(args.db), "active_run": active, "runs": runs, "behind": behind}


def _activate(engine, run_id: int, out: Output) -> None:
    """Store ``run_id`` as the active model: a CLI user had no way to keep serving a chosen run once a
    later one (a baseline trained to compare) became the latest."""
    run = find_run(engine, run_id)
    if run.status != "done":
        raise CliError(f"run #{run.id} is {run.status}: only a finished run can be the active model")
    engine.set_active_run(run.id)
    out.stderr.write(f"run #{run.id} ({run.model}) is now the active model\n")
    if run.beats_popularity is False:
        out.stderr.write(f"warning: run #{run.id} did not beat popularity on validation\n")


def _lag_of_served_run(engine) -> dict | None:
    """How far the run that `recommend` would use is behind the log, or None without a finished run."""
    served = engine.serving_run()
    if served is None:
        return None
    lag = engine.run_lag(served)
    return {"run": served, "trained_at": lag.trained_at, "newer_events": lag.newer_events,
            "new_items": lag.new_items, "text": lag.describe()}


VERSUS_POPULARITY = {"beats": "beats", "tie": "tie", "worse": "WORSE", None: "-"}  # the `runs` column
FLAGGED = {"worse": "scoring below it (paired test)",
           "tie": "though not shown below it either (no significant difference)"}


def _cell(value, width: int) -> str:
    return f"{value:>{width}.4f}" if value is not None else f"{'-':>{width}}"


def cmd_evaluate(args, out: Output) -> dict:
    engine = text_engine(args)
    run = find_run(engine, args.run_id)
    report = engine.evaluate(args.run_id, progress=out.progress(), eval_mode=args.eval_mode)
    out.done_progress()
    stored = not engine.workspace.read_only
    result = {"run": args.run_id, "split": run.split.describe(), "stored": stored, **report}
    lines = [f"run #{args.run_id}: {report.get('protocol', '')}",
             f"users: {users_text(report.get('n_users', 0), report.get('sampled_from'))}"]
    intervals = report.get("intervals", {}) if report.get("n_users") else {}
    lines.extend(f"  {name:<14}{value:.4f}" + (f"  [{intervals[name][0]:.4f}, {intervals[name][1]:.4f}] 95%"
                                                if name in intervals else "")
                 for name, value in {**report.get("metrics", {}), **report.get("beyond", {})}.items()
                 if report.get("n_users"))  # no user tested: no figures, not a row of 0.0000
    if not stored:
        lines.append(f"(not stored: {engine.workspace.path.name} is read-only here)")
    out.lines(lines)
    return result


def users_text(n_users: int, sampled_from) -> str:
    """"20,000 of 1,000,000 (seeded sample)" or "1,234 (all with an event to hold out)": not "(all)", which
    read as every user of a shop where most users have one event and cannot be tested."""
    if sampled_from:
        return f"{n_users:,} of {sampled_from:,} (seeded sample)"
    if not n_users:
        return f"none: {NO_TEST_USER}, so there are no test figures"
    return f"{n_users:,} (all with an event to hold out)"
