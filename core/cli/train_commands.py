"""Train commands: ``train`` a run, ``update`` one with the events added since.

The train options are the fields of ``core.training.TrainConfig`` as ``core.settings`` describes them
(name, type, ``Literal`` choices, and the help written in each field's metadata), so a new knob there
is a new flag here with nothing copied by hand. Building them needs torch, so they are only built when
the command line asks for ``train``.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import datetime, timezone
from typing import Optional

from core.cli.common import CliError, CommandLineError, Output
from core.cli.run_commands import EVAL_HELP, EVAL_MODES, find_run, run_dict, run_lines
from core.cli.text_commands import add_text_model_option, text_engine


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


def cmd_train(args, out: Output) -> dict:
    """Under torchrun every process runs this; they train one run together (``core.distributed``),
    and only the leader (rank 0) prints."""
    from core.distributed import join_team

    split = _split_choice(args)  # usage first: a wrong flag is named before any workspace is opened
    if getattr(args, "device", None) is not None:
        _check_device(args.device)
    engine = text_engine(args)
    resumed = {} if args.resume is None else find_run(engine, args.resume).config
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
    result = run_dict(summary)
    out.lines(run_lines(result, took_s=out.elapsed()))
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
    engine = text_engine(args)
    if args.run_id is not None:
        find_run(engine, args.run_id)
    summary = engine.update(args.run_id, progress=out.progress(), time_budget=args.time_budget)
    out.done_progress()
    result = {**run_dict(summary), "active": engine.active_run() == summary.id}
    lines = run_lines(result, took_s=out.elapsed())
    lines.insert(1, result["lineage"] + ("; now the active run" if result["active"] else ""))
    out.lines(lines)
    return result
