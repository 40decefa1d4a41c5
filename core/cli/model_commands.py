"""Model commands: ``train`` a run, list ``runs``, ``evaluate`` one, ``recommend`` and ``interests`` for a user,
``export`` recommendations to a CSV file.

They all go through ``core.engine.Engine``. The train options are the fields of
``core.training.TrainConfig`` as ``core.settings`` describes them (name, type, ``Literal``
choices, and the help written in each field's metadata), so a new knob there is a new flag
here with nothing copied by hand. Building them needs torch, so they are only built when the
command line asks for ``train``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from core.cli.common import CliError, CommandLineError, Output, at_least, share
from core.cli.text_commands import add_text_model_option
from core.errors import UsageError


def add_commands(commands, common, with_train_options: bool) -> None:
    p = commands.add_parser("train", parents=[common], help="train a model (or a baseline) and report its metrics",
                            description="Options left out take the defaults that TrainConfig.for_data sizes to "
                                        "the workspace (a small log gets a narrower model, max-len follows the "
                                        "typical history length), as the studio's Train button does.")
    if with_train_options:
        _add_train_options(p)
    _add_split_options(p)
    p.add_argument("--resume", type=int, metavar="RUN",
                   help="continue run RUN from its last checkpoint (with the split it was started with)")
    add_text_model_option(p)
    p.set_defaults(handler=cmd_train)

    p = commands.add_parser("update", parents=[common], help="catch a run up with the events added since it was trained",
                            description="Fine-tunes a neural run from its weights on the events added since it was "
                                        "trained (the whole update within about a tenth of the full training it "
                                        "descends from, its fine-tuning within half of that; early stopping on the newest events; new items get rows "
                                        "initialised from their category), "
                                        "or refits a baseline on the whole log. The result is a new run that records "
                                        "its parent; it becomes the active run when its parent was. A stopped update "
                                        "resumes with `nextpick train --resume RUN`.")
    p.add_argument("run_id", type=int, metavar="RUN", nargs="?",
                   help="the run to update (default: the active run, else the latest)")
    p.add_argument("--time-budget", type=_train_setting_value("time_budget", float), metavar="MIN", default=None,
                   help="minutes the update's fine-tuning may take (default: a twentieth of the full training it "
                        "descends from, so the whole update, evaluations included, takes about a tenth; 0 = no limit)")
    p.set_defaults(handler=cmd_update)

    p = commands.add_parser("runs", parents=[common], help="list the trained runs")
    p.set_defaults(handler=cmd_runs)

    p = commands.add_parser("evaluate", parents=[common], help="re-evaluate a run on the current data")
    p.add_argument("run_id", type=int, metavar="RUN")
    p.add_argument("--eval", choices=EVAL_MODES, default=None, dest="eval_mode",
                   help="new or repeat (default: the mode the run was trained for); " + EVAL_HELP)
    p.set_defaults(handler=cmd_evaluate)

    p = commands.add_parser("recommend", parents=[common], help="the next items for a user, with reasons")
    _add_user_options(p)
    _add_list_options(p)
    p.add_argument("--explain", action="store_true", help="show the history items behind each recommendation")
    p.set_defaults(handler=cmd_recommend)

    p = commands.add_parser("export", parents=[common], help="write recommendations for every user, or a list, "
                                                               "to a CSV file",
                            description="Writes K rows per user (user, rank, item, title, categories, score, "
                                        "reason). Cells a spreadsheet would run as formulas are neutralised; the "
                                        "file appears only when it is complete.")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="the CSV file to write")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--users", type=Path, metavar="FILE", help="only the users listed in FILE, one id per line "
                                                                "(default: every user)")
    who.add_argument("--user", action="append", metavar="U", help="only this user; repeatable")
    p.add_argument("--run", type=int, metavar="RUN", help="run to ask (default: the active run, else the latest)")
    _add_list_options(p)
    p.add_argument("--include-seen", action="store_true", help="also recommend items a user already interacted with")
    p.set_defaults(handler=cmd_export)

    p = commands.add_parser("interests", parents=[common], help="the user's predicted next interests")
    _add_user_options(p)
    p.set_defaults(handler=cmd_interests)


EVAL_MODES = ("new", "repeat")
EVAL_HELP = ("new: each user's held-out item is their last item new to them and their whole history is masked, "
             "as served with 'exclude seen'; repeat: the last event is held out, nothing masked, as served "
             "with repeats allowed")


def _add_split_options(p) -> None:
    group = p.add_argument_group(
        "split", "How the log is cut into training, validation and test data. loo (leave-one-out, the default): "
        "each user's last event is the test, the one before it validates; the standard of published "
        "benchmarks. time: learn from the past, test on what happened after a cut-off, as a shop faces it: "
        "each user active after the cut is tested on their first event after it, from everything before "
        "(users new after the cut count as cold start); a user's last event before the cut validates. "
        "Needs real timestamps in the log. Under --eval new (the default) 'event' reads 'event on an item new "
        "to the user' throughout, and users without one are counted and left out.")
    group.add_argument("--split", choices=("loo", "time"), default=None,
                       help="loo or time (default: loo; time when --cutoff or --test-fraction is given)")
    group.add_argument("--cutoff", metavar="DATE",
                       help="time split: the cut-off, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC unless a zone is "
                            "given); default: where the latest --test-fraction of the events begins")
    group.add_argument("--test-fraction", type=float, metavar="SHARE",
                       help="time split without --cutoff: the share of the latest events after the cut (default: 0.1)")
    group.add_argument("--eval", choices=EVAL_MODES, default=None, dest="eval_mode",
                       help="what is held out and scored (default: new); " + EVAL_HELP)
    group.add_argument("--validation", choices=("sample", "all"), default=None,
                       help="sample (default): 2,000 users (or 10%%) validate and the others train on that "
                            "event; all: every user's validation event validates and is never trained on, the "
                            "published leave-one-out protocol")
    group.add_argument("--eval-users", type=_eval_users, default=None, metavar="N|all",
                       help="test users scored: a fixed seeded sample of N (default: 20,000), each metric with its "
                            "95%% confidence interval; all: every test user (hours on a million users)")


def _split_choice(args):
    """The SplitChoice the flags ask for; a resumed run keeps its own, so flags are refused there."""
    from core.data import SplitChoice

    asked_time = args.cutoff is not None or args.test_fraction is not None
    if args.resume is not None:
        if (args.split is not None or asked_time or args.eval_mode is not None or args.validation is not None
                or args.eval_users is not None):
            raise CommandLineError("a resumed run keeps the split it was started with; leave out --split, --cutoff, "
                                   "--test-fraction, --eval, --validation and --eval-users")
        return None
    if args.split == "loo" and asked_time:
        raise CommandLineError("--cutoff and --test-fraction belong to the time split (--split time)")
    if args.cutoff is not None and args.test_fraction is not None:
        raise CommandLineError("give either --cutoff or --test-fraction, not both")
    held_out = {key: value for key, value in (("eval_mode", args.eval_mode), ("validation", args.validation))
                if value is not None}
    if args.eval_users is not None:
        held_out["test_users"] = None if args.eval_users == "all" else args.eval_users
    if args.split != "time" and not asked_time:
        return SplitChoice(**held_out)
    if args.cutoff is not None:
        return SplitChoice("time", cutoff_ts=_parse_cutoff(args.cutoff), **held_out)
    if args.test_fraction is not None:
        held_out["test_fraction"] = args.test_fraction
    return SplitChoice("time", **held_out)


def _eval_users(text: str):
    """``--eval-users``: a positive count, or "all"."""
    if text.strip().lower() == "all":
        return "all"
    try:
        count = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of users (e.g. 20000) or all")
    return count


def _parse_cutoff(text: str) -> float:
    """Unix seconds of an ISO date or date-time; without a zone it is UTC, as the importer reads times."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandLineError(f"--cutoff {text!r} is not a date; write YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _add_list_options(p) -> None:
    p.add_argument("-k", type=at_least(1), default=10, help="list length (default: %(default)s)")
    p.add_argument("--diversity", type=share, default=0.0, help="0 = pure relevance .. 1 = most category spread")


def _checked_list_length(engine, k: int) -> int:
    """A K the workspace cannot answer is a usage error, said before any scoring starts."""
    try:
        engine.check_list_length(k)
    except UsageError as error:
        raise CommandLineError(f"-k {k}: {error}", error.hint) from None
    return k


def _add_user_options(p) -> None:
    p.add_argument("--user", required=True, help="the user's id as in the imported file")
    p.add_argument("--run", type=int, metavar="RUN", help="run to ask (default: the active run, else the latest)")


def _add_train_options(p) -> None:
    from core.settings import settings_of
    from core.training import TrainConfig

    for setting in settings_of(TrainConfig):
        flag = "--" + setting.name.replace("_", "-")
        base = "automatic" if setting.default is None else setting.default
        help_text = f"{setting.help} (base default: {base})".replace("%", "%%")
        if setting.name == "model":
            p.add_argument(flag, choices=setting.choices, default=setting.default,
                           help=f"{setting.help} (default: %(default)s)".replace("%%", "%"))
        elif setting.kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            p.add_argument(flag, type=_setting_value(setting), choices=setting.choices or None, default=None,
                           metavar=setting.metavar or (None if setting.choices else setting.name.upper()),
                           help=help_text)
    from core.presets import PRESETS

    p.add_argument("--preset", choices=tuple(PRESETS), metavar="{" + ",".join(PRESETS) + "}",
                   help="start from a preset instead of the plain defaults: "
                        + "; ".join(f"{p.name}: {p.minutes:g} min budget, {p.summary[0].lower()}{p.summary[1:]}"
                                    for p in PRESETS.values())
                        + " Flags given as well win over the preset.")
    p.add_argument("--estimate", action="store_true",
                   help="time a few training steps and print how long the run would take, without training")


def _train_setting(name: str):
    from core.settings import settings_of
    from core.training import TrainConfig

    return next(setting for setting in settings_of(TrainConfig) if setting.name == name)


def _train_setting_value(name: str, kind: type):
    """``_setting_value`` of the TrainConfig setting ``name`` (of type ``kind``), looked up when a value is
    parsed: building every command's parser never imports torch (``core.training``; 4 CPU-seconds)."""
    def parse(text: str):
        return _setting_value(_train_setting(name))(text)
    parse.__name__ = kind.__name__
    return parse


def _setting_value(setting):
    """An argparse type for one TrainConfig setting: its kind, within its range (else usage, exit 2)."""
    def parse(text: str):
        value = setting.kind(text)
        problem = setting.range_error(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value
    parse.__name__ = setting.kind.__name__  # argparse names the type in "invalid int value"
    return parse


def _engine(args):
    from core.cli.text_commands import text_engine

    return text_engine(args)


def cmd_train(args, out: Output) -> dict:
    """Under torchrun every process runs this; they train one run together (``core.distributed``),
    and only the leader (rank 0) prints."""
    from core.distributed import join_team

    split = _split_choice(args)  # usage first: a wrong flag is named before any workspace is opened
    if getattr(args, "device", None) is not None:
        _check_device(args.device)
    engine = _engine(args)
    resumed = {} if args.resume is None else _run(engine, args.resume).config
    # The run may have been started on a machine with a GPU; its device decides the backend (nccl or gloo).
    device = _check_device(getattr(args, "device", None) or resumed.get("device", "auto"))
    with join_team(device) as team:
        if not team.is_leader:
            out.mute()
        return _train(engine, args, split, resumed, team, out)


def _train(engine, args, split, resumed: dict, team, out: Output) -> dict:
    from core.training import TrainConfig

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    out.stage("read the log", "each user's sequence, in time order")
    if args.resume is not None:
        if getattr(args, "preset", None) is not None:
            raise CliError("--preset chooses a new run's settings; a resumed run keeps its own, so leave it out")
        base = TrainConfig.from_json(resumed)
        config = dataclasses.replace(base, **{k: v for k, v in overrides.items() if k != "model"})
    else:
        if not engine.workspace.counts()["events"]:
            raise CliError(f"{args.db} holds no events; import a log first")
        config = _new_config(engine, overrides, getattr(args, "preset", None), team)
    if getattr(args, "estimate", False):
        if args.resume is not None:
            raise CliError("--estimate plans a new run; leave out --resume")
        return _estimate(engine, config, split, out)
    summary = engine.train(config, progress=out.progress(), resume_run=args.resume, split=split, team=team,
                           started=out.started)
    out.done_progress()
    result = _run_dict(summary)
    out.lines(_run_lines(result, took_s=out.elapsed()))
    return result


def _new_config(engine, overrides: dict, preset: Optional[str], team):
    """The data-sized defaults, then ``preset`` (``core.presets``) if one was named, then the flags given;
    the loss and batch sized last (``TrainConfig.for_data``), unless given."""
    from core.training import TrainConfig

    with team.leader_first():  # the leader writes the sequence cache, the others read it
        data = engine.sequence_data()
    return TrainConfig.for_data(data, preset=preset, **{"model": "sasrec", **overrides})


def _check_device(name: str):
    """The ``torch.device`` to train on; one this machine lacks is a usage error, said before the log is read."""
    from core.training import resolve_device

    try:
        return resolve_device(name)  # a missing GPU raises the engine's own error (exit 1)
    except RuntimeError:  # torch's, listing every device type it knows
        raise CommandLineError(f"--device {name!r} is not a device; use auto, cpu or cuda") from None


def _estimate(engine, config, split, out: Output) -> dict:
    """``train --estimate``: the timed plan, nothing trained."""
    from core.training import NEURAL_MODELS

    if config.model not in NEURAL_MODELS:
        result = {"model": config.model, "estimate": None}
        out.lines([f"{config.model} is a baseline: it is counted from the log in seconds, with no epochs to plan"])
        return result
    estimate = engine.estimate_training(config, split)
    out.lines([f"{config.model}: {estimate.describe()}"])
    return {"model": config.model, "estimate": estimate.to_json()}


def cmd_update(args, out: Output) -> dict:
    from core.distributed import launched_by_torchrun

    if launched_by_torchrun():  # each process would make a child run of its own
        raise CliError("nextpick update runs in one process, not under torchrun", "Run it without torchrun.")
    engine = _engine(args)
    if args.run_id is not None:
        _run(engine, args.run_id)
    summary = engine.update(args.run_id, progress=out.progress(), time_budget=args.time_budget)
    out.done_progress()
    result = {**_run_dict(summary), "active": engine.active_run() == summary.id}
    lines = _run_lines(result, took_s=out.elapsed())
    lines.insert(1, result["lineage"] + ("; now the active run" if result["active"] else ""))
    out.lines(lines)
    return result


def _run(engine, run_id: int):
    known = {run.id: run for run in engine.runs()}
    if run_id not in known:
        raise CliError(f"no run #{run_id} in {engine.workspace.path.name}; `nextpick runs` lists them")
    return known[run_id]


def _run_dict(run) -> dict:
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


def _run_lines(r: dict, took_s: float) -> list[str]:
    """The run's outcome; ``took_s`` is the whole command's time, reading the log and evaluating included."""
    took = f" in {took_s:.1f} s"
    lines = [f"run #{r['run']} ({r['model']}): {r['status']}{took}" + (f" on {r['device']}" if r["device"] else "")]
    training = r["training"]
    if "best_epoch" in training:
        epochs = training.get("epochs", [])
        stopped = f", stopped by {training['stopped_by']}" if training.get("stopped_by") else ""
        lines.append(f"best validation epoch {training['best_epoch']} of {len(epochs)} run{stopped}"
                     if training["best_epoch"] else f"no epoch of {len(epochs)} run{stopped} beat the weights "
                     "it started from on validation: it kept them")
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
    rows = {"valid (generator)": r["valid"], "test": r["test"], "test (generator only)": r["test_generator_only"],
            "popularity valid": popularity.get("valid"), "popularity test": popularity.get("test")}
    if names:
        lines.append(f"{'':22}" + "".join(f"{name:>9}" for name in names))
        lines.extend(f"{label:22}" + "".join(f"{values.get(name, float('nan')):>9.4f}" for name in names)
                     for label, values in rows.items() if values)
        if r["test_intervals"]:
            half = {name: (high - low) / 2 for name, (low, high) in r["test_intervals"].items()}
            lines.append(f"{'test 95% interval +-':22}" + "".join(f"{half.get(name, float('nan')):>9.4f}"
                                                                  for name in names))
    if r["test_users"] is not None:
        lines.append(f"test users: {_users_text(r['test_users'], r['test_sampled_from'])}")
    if r["beyond"]:
        lines.append(", ".join(f"{name} {value:.3f}" for name, value in r["beyond"].items()))
    new = r["test"].get("new_items")
    if new:
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
               f"p = {gate['p_value']:.3g} over {gate['n_users']:,} users")
    if gate["beats_popularity"]:
        return f"beats popularity: {figures}"
    return (f"WARNING: does not beat popularity on validation ({figures}); it is not made the active model "
            "by itself")


def cmd_runs(args, out: Output) -> dict:
    engine = _engine(args)
    runs = [_run_dict(run) for run in engine.runs()]
    active = engine.active_run()
    device_width = max([len("device"), *(len(r["device"] or "") for r in runs)]) + 2
    lines = [f"{'run':>5}  {'model':<10}{'status':<11}{'ndcg@10':>9}{'hr@10':>8}  {'vs pop':<8}"
             f"{'device':<{device_width}}{'eval':<8}split"]
    for r in runs:
        marker = "*" if r["run"] == active else " "
        ndcg, hr = r["test"].get("ndcg@10"), r["test"].get("hr@10")
        lineage = f"  {r['lineage']} in {r['duration_s']:.1f} s" if r["lineage"] and r["duration_s"] else ""
        lines.append(f"{marker}{r['run']:>4}  {r['model']:<10}{r['status']:<11}"
                     f"{_cell(ndcg, 9)}{_cell(hr, 8)}  {_versus_popularity(r['beats_popularity']):<8}"
                     f"{r['device'] or '':<{device_width}}{r['eval']:<8}{r['split']}"
                     f"{lineage}")
    worse = [r for r in runs if r["beats_popularity"] is False]
    if worse:
        compared = sorted({GATE_COMPARES.get((r["gate"] or {}).get("compares"), "").strip() for r in worse} - {""})
        figures = f" ({' / '.join(compared)} figures, as the run records)" if compared else ""
        lines.append(f"WORSE: did not beat popularity on validation{figures}; never made the active model by itself")
    behind = _lag_of_served_run(engine)
    if behind is not None:
        lines.append(f"{'active' if behind['run'] == active else 'latest'} run #{behind['run']}: {behind['text']}")
    out.lines(lines if runs else ["no runs yet; train one with `nextpick train`"])
    return {"workspace": str(args.db), "active_run": active, "runs": runs, "behind": behind}


def _lag_of_served_run(engine) -> dict | None:
    """How far the run that `recommend` would use is behind the log, or None without a finished run."""
    served = engine.serving_run()
    if served is None:
        return None
    lag = engine.run_lag(served)
    return {"run": served, "trained_at": lag.trained_at, "newer_events": lag.newer_events,
            "new_items": lag.new_items, "text": lag.describe()}


def _versus_popularity(beats: Optional[bool]) -> str:
    return {True: "beats", False: "WORSE", None: "-"}[beats]


def _cell(value, width: int) -> str:
    return f"{value:>{width}.4f}" if value is not None else f"{'-':>{width}}"


def cmd_evaluate(args, out: Output) -> dict:
    engine = _engine(args)
    run = _run(engine, args.run_id)
    report = engine.evaluate(args.run_id, progress=out.progress(), eval_mode=args.eval_mode)
    out.done_progress()
    stored = not engine.workspace.read_only
    result = {"run": args.run_id, "split": run.split.describe(), "stored": stored, **report}
    lines = [f"run #{args.run_id}: {report.get('protocol', '')}",
             f"users: {_users_text(report.get('n_users', 0), report.get('sampled_from'))}"]
    intervals = report.get("intervals", {})
    lines.extend(f"  {name:<14}{value:.4f}" + (f"  [{intervals[name][0]:.4f}, {intervals[name][1]:.4f}] 95%"
                                                if name in intervals else "")
                 for name, value in {**report.get("metrics", {}), **report.get("beyond", {})}.items())
    if not stored:
        lines.append(f"(not stored: {engine.workspace.path.name} is read-only here)")
    out.lines(lines)
    return result


def _users_text(n_users: int, sampled_from) -> str:
    """"20,000 of 1,000,000 (seeded sample)" or "1,234 (all)"."""
    return f"{n_users:,} of {sampled_from:,} (seeded sample)" if sampled_from else f"{n_users:,} (all)"


def _serving_run(engine, args, out: Optional[Output] = None) -> int:
    """The asked run, else ``Engine.serving_run`` (a run worse than popularity only when no other finished
    run is there, with a warning)."""
    if args.run is not None:
        return _run(engine, args.run).id
    run_id = engine.serving_run()
    if run_id is None:
        raise CliError(f"no trained run in {args.db}; train one with `nextpick train`")
    if engine.run(run_id).beats_popularity is False:
        print(f"warning: using run #{run_id}, which did not beat popularity on validation",
              file=sys.stderr if out is None else out.stderr)
    return run_id


def cmd_recommend(args, out: Output) -> dict:
    engine = _engine(args)
    run_id = _serving_run(engine, args, out)
    recs = engine.recommend(run_id, args.user, k=_checked_list_length(engine, args.k), diversity=args.diversity)
    result = {"run": run_id, "user": args.user, "k": args.k, "recommendations": [dataclasses.asdict(r) for r in recs]}
    lines = [f"next items for user {args.user} (run #{run_id}):"]
    for r in recs:
        lines.append(f"{r.rank:>3}. {r.item:<12} {r.title[:40]:<40} {', '.join(r.categories)[:32]:<32} {r.reason}")
        if args.explain and r.because:
            lines.append("       because of " + ", ".join(f"{item} ({weight:.0%})" for item, weight in r.because[:3]))
    if len(recs) < args.k:
        lines.append(f"only {len(recs)} of the {args.k} asked: every other item is in the user's history")
    out.lines(lines)
    return result


def cmd_export(args, out: Output) -> dict:
    from core.export import read_user_file, write_recommendations_csv

    engine = _engine(args)
    run_id = _serving_run(engine, args)
    users = read_user_file(args.users) if args.users else args.user
    if users == []:
        raise CommandLineError(f"{args.users} holds no user ids (one per line)")
    report = write_recommendations_csv(engine, run_id, users, args.out, k=_checked_list_length(engine, args.k),
                                       exclude_seen=not args.include_seen, diversity=args.diversity,
                                       progress=out.progress())
    out.done_progress()
    result = {"run": run_id, "out": str(report.path), "users": report.users, "rows": report.rows, "k": args.k}
    out.lines([f"wrote {report.rows:,} recommendations for {report.users:,} users (run #{run_id}) to {report.path} "
               f"in {out.elapsed():.1f} s"])
    return result


def cmd_interests(args, out: Output) -> dict:
    engine = _engine(args)
    run_id = _serving_run(engine, args, out)
    interests = engine.interests(run_id, args.user)
    result = {"run": run_id, "user": args.user, "interests": [dataclasses.asdict(i) for i in interests]}
    lines = [f"predicted next interests of user {args.user} (run #{run_id}):"]
    lines.extend(f"  {i.name:<24} {'#' * round(30 * i.probability):<30} {i.probability:.1%}" for i in interests[:10])
    out.lines(lines if interests else [f"run #{run_id} predicts no interests"])
    return result
