"""Model commands: ``train`` a run, list ``runs``, ``evaluate`` one, ``recommend`` and ``interests`` for a user,
``export`` recommendations to a CSV file.

They all go through ``core.engine.Engine``. The train options are read from the fields of
``core.training.TrainConfig`` (names, types, and the comment beside each as help), so a
new knob there is a new flag here with nothing copied by hand. Building them needs torch,
so they are only built when the command line asks for ``train``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing
from datetime import datetime, timezone
from pathlib import Path

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


def _split_choice(args):
    """The SplitChoice the flags ask for; a resumed run keeps its own, so flags are refused there."""
    from core.data import SplitChoice

    asked_time = args.cutoff is not None or args.test_fraction is not None
    if args.resume is not None:
        if args.split is not None or asked_time or args.eval_mode is not None or args.validation is not None:
            raise CommandLineError("a resumed run keeps the split it was started with; leave out --split, --cutoff, "
                                   "--test-fraction, --eval and --validation")
        return None
    if args.split == "loo" and asked_time:
        raise CommandLineError("--cutoff and --test-fraction belong to the time split (--split time)")
    if args.cutoff is not None and args.test_fraction is not None:
        raise CommandLineError("give either --cutoff or --test-fraction, not both")
    held_out = {key: value for key, value in (("eval_mode", args.eval_mode), ("validation", args.validation))
                if value is not None}
    if args.split != "time" and not asked_time:
        return SplitChoice(**held_out)
    if args.cutoff is not None:
        return SplitChoice("time", cutoff_ts=_parse_cutoff(args.cutoff), **held_out)
    if args.test_fraction is not None:
        held_out["test_fraction"] = args.test_fraction
    return SplitChoice("time", **held_out)


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
    from core.baselines import BASELINES
    from core.training import NEURAL_MODELS, TrainConfig

    helps = _field_comments(TrainConfig)
    types = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{helps.get(field.name, '')} (base default: {field.default})".lstrip()
        if field.name == "model":
            p.add_argument(flag, choices=NEURAL_MODELS + tuple(BASELINES), default=field.default,
                           help=f"what to train (default: {field.default})")
        elif types[field.name] is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            p.add_argument(flag, type=_scalar(types[field.name]), default=None, metavar=field.name.upper(),
                           help=help_text)


def _scalar(hint):
    """``int`` for ``int`` and for ``Optional[int]``: the type argparse converts a flag's text with."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def _field_comments(cls) -> dict[str, str]:
    """The ``# comment`` beside each field in the class source: the one place its meaning is written."""
    pattern = re.compile(r"^\s+(\w+)\s*:[^=]+=[^#]+#\s*(.+)$")
    return {m.group(1): m.group(2).replace("%", "%%")
            for m in map(pattern.match, inspect.getsource(cls).splitlines()) if m}


def _engine(args):
    from core.cli.text_commands import text_engine

    return text_engine(args)


def cmd_train(args, out: Output) -> dict:
    from core.training import TrainConfig

    split = _split_choice(args)  # usage first: a wrong flag is named before any workspace is opened
    if getattr(args, "device", None) is not None:
        _check_device(args.device)
    engine = _engine(args)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    out.stage("read the log", "each user's sequence, in time order")
    if args.resume is not None:
        base = TrainConfig.from_json(_run(engine, args.resume).config)
        config = dataclasses.replace(base, **{k: v for k, v in overrides.items() if k != "model"})
        _check_device(config.device)  # the run may have been started on a machine with a GPU
    else:
        if not engine.workspace.counts()["events"]:
            raise CliError(f"{args.db} holds no events; import a log first")
        config = TrainConfig.for_data(engine.sequence_data(), **overrides)
    summary = engine.train(config, progress=out.progress(), resume_run=args.resume, split=split)
    out.done_progress()
    result = _run_dict(summary)
    out.lines(_run_lines(result, took_s=out.elapsed()))
    return result


def _check_device(name: str) -> None:
    """A device this machine cannot train on is a usage error, said before the log is read."""
    from core.training import resolve_device

    try:
        resolve_device(name)  # a missing GPU raises the engine's own error (exit 1)
    except RuntimeError:  # torch's, listing every device type it knows
        raise CommandLineError(f"--device {name!r} is not a device; use auto, cpu or cuda") from None


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
        "test_generator_only": metrics.get("generator_test", {}),
        "beyond": metrics.get("beyond", {}), "training": metrics.get("training", {}), "config": run.config,
        "error": metrics.get("error"),
    }


def _run_lines(r: dict, took_s: float) -> list[str]:
    """The run's outcome; ``took_s`` is the whole command's time, reading the log and evaluating included."""
    took = f" in {took_s:.1f} s"
    lines = [f"run #{r['run']} ({r['model']}): {r['status']}{took}" + (f" on {r['device']}" if r["device"] else "")]
    training = r["training"]
    if "best_epoch" in training:
        epochs = training.get("epochs", [])
        lines.append(f"best validation epoch {training['best_epoch']} of {len(epochs)} run")
    if r["error"]:
        lines.append(f"error: {r['error']}")
    if r["protocol"]:
        lines.append(f"protocol: {r['protocol']}")
    if r["text_model"]:
        lines.append(f"item text read with {r['text_model']}")
    names = [name for name in (r["test"] or r["valid"]) if name != "new_items"]
    rows = {"valid (generator)": r["valid"], "test": r["test"], "test (generator only)": r["test_generator_only"]}
    if names:
        lines.append(f"{'':22}" + "".join(f"{name:>9}" for name in names))
        lines.extend(f"{label:22}" + "".join(f"{values.get(name, float('nan')):>9.4f}" for name in names)
                     for label, values in rows.items() if values)
    if r["beyond"]:
        lines.append(", ".join(f"{name} {value:.3f}" for name, value in r["beyond"].items()))
    new = r["test"].get("new_items")
    if new:
        lines.append(f"new items (no events before the test): {new['events']:,} test events" + (
            f", HR@10 {new['hr@10']:.4f}, NDCG@10 {new['ndcg@10']:.4f}" if new["events"] else ""))
    return lines


def cmd_runs(args, out: Output) -> dict:
    engine = _engine(args)
    runs = [_run_dict(run) for run in engine.runs()]
    active = engine.active_run()
    device_width = max([len("device"), *(len(r["device"] or "") for r in runs)]) + 2
    lines = [f"{'run':>5}  {'model':<10}{'status':<11}{'ndcg@10':>9}{'hr@10':>8}  {'device':<{device_width}}"
             f"{'eval':<8}split"]
    for r in runs:
        marker = "*" if r["run"] == active else " "
        ndcg, hr = r["test"].get("ndcg@10"), r["test"].get("hr@10")
        lines.append(f"{marker}{r['run']:>4}  {r['model']:<10}{r['status']:<11}"
                     f"{_cell(ndcg, 9)}{_cell(hr, 8)}  {r['device'] or '':<{device_width}}{r['eval']:<8}{r['split']}")
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


def _cell(value, width: int) -> str:
    return f"{value:>{width}.4f}" if value is not None else f"{'-':>{width}}"


def cmd_evaluate(args, out: Output) -> dict:
    engine = _engine(args)
    run = _run(engine, args.run_id)
    report = engine.evaluate(args.run_id, progress=out.progress(), eval_mode=args.eval_mode)
    out.done_progress()
    stored = not engine.workspace.read_only
    result = {"run": args.run_id, "split": run.split.describe(), "stored": stored, **report}
    lines = [f"run #{args.run_id}: {report.get('protocol', '')}"]
    lines.extend(f"  {name:<14}{value:.4f}" for name, value in {**report.get("metrics", {}),
                                                                 **report.get("beyond", {})}.items())
    if not stored:
        lines.append(f"(not stored: {engine.workspace.path.name} is read-only here)")
    out.lines(lines)
    return result


def _serving_run(engine, args) -> int:
    """The asked run, else the active one, else the latest finished run."""
    if args.run is not None:
        return _run(engine, args.run).id
    active = engine.active_run()
    if active is not None:
        return active
    done = [run.id for run in engine.runs() if run.status == "done"]
    if not done:
        raise CliError(f"no trained run in {args.db}; train one with `nextpick train`")
    return max(done)


def cmd_recommend(args, out: Output) -> dict:
    engine = _engine(args)
    run_id = _serving_run(engine, args)
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
    run_id = _serving_run(engine, args)
    interests = engine.interests(run_id, args.user)
    result = {"run": run_id, "user": args.user, "interests": [dataclasses.asdict(i) for i in interests]}
    lines = [f"predicted next interests of user {args.user} (run #{run_id}):"]
    lines.extend(f"  {i.name:<24} {'#' * round(30 * i.probability):<30} {i.probability:.1%}" for i in interests[:10])
    out.lines(lines if interests else [f"run #{run_id} predicts no interests"])
    return result
