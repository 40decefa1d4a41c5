"""Recommendation commands: ``recommend`` and ``interests`` for a user, ``export`` recommendations to a CSV file.

They ask the serving run (``serving_run``: the asked one, else the engine's choice), as ``serve`` does.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Optional

from core.cli.common import CliError, CommandLineError, Output, at_least, cell, share
from core.cli.run_commands import find_run
from core.cli.text_commands import text_engine
from core.errors import UsageError
from core.importing.ids import stored_id


def add_commands(commands, common) -> None:
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
    who.add_argument("--user", action="append", type=stored_id, metavar="U", help="only this user; repeatable")
    p.add_argument("--run", type=int, metavar="RUN", help="run to ask (default: the active run, else the latest)")
    _add_list_options(p)
    p.add_argument("--include-seen", action="store_true", help="also recommend items a user already interacted with")
    p.set_defaults(handler=cmd_export)

    p = commands.add_parser("interests", parents=[common], help="the user's predicted next interests")
    _add_user_options(p)
    p.set_defaults(handler=cmd_interests)


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
    p.add_argument("--user", required=True, type=stored_id, help="the user's id as in the imported file")
    p.add_argument("--run", type=int, metavar="RUN", help="run to ask (default: the active run, else the latest)")


def serving_run(engine, args, out: Optional[Output] = None) -> int:
    """The asked run, else ``Engine.serving_run`` (a run worse than popularity only when no other finished
    run is there, with a warning)."""
    if args.run is not None:
        return find_run(engine, args.run).id
    run_id = engine.serving_run()
    if run_id is None:
        raise CliError(f"no trained run in {args.db}; train one with `nextpick train`")
    if engine.run(run_id).beats_popularity is False:
        print(f"warning: using run #{run_id}, which did not beat popularity on validation",
              file=sys.stderr if out is None else out.stderr)
    return run_id


def cmd_recommend(args, out: Output) -> dict:
    engine = text_engine(args)
    run_id = serving_run(engine, args, out)
    recs = engine.recommend(run_id, args.user, k=_checked_list_length(engine, args.k), diversity=args.diversity)
    result = {"run": run_id, "user": args.user, "k": args.k, "recommendations": [dataclasses.asdict(r) for r in recs]}
    lines = [f"next items for user {args.user} (run #{run_id}):"]
    for r in recs:
        lines.append(f"{r.rank:>3}. {r.item:<12} {cell(r.title, 40)} {cell(', '.join(r.categories), 32)} {r.reason}")
        if args.explain and r.because:
            lines.append("       because of " + ", ".join(f"{item} ({weight:.0%})" for item, weight in r.because[:3]))
    if len(recs) < args.k:
        lines.append(f"only {len(recs)} of the {args.k} asked: every other item is in the user's history")
    out.lines(lines)
    return result


def cmd_export(args, out: Output) -> dict:
    from core.export import read_user_file, write_recommendations_csv

    engine = text_engine(args)
    run_id = serving_run(engine, args)
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
    engine = text_engine(args)
    run_id = serving_run(engine, args, out)
    interests = engine.interests(run_id, args.user)
    result = {"run": run_id, "user": args.user, "interests": [dataclasses.asdict(i) for i in interests]}
    lines = [f"predicted next interests of user {args.user} (run #{run_id}):"]
    lines.extend(f"  {i.name:<24} {'#' * round(30 * i.probability):<30} {i.probability:.1%}" for i in interests[:10])
    out.lines(lines if interests else [_no_interests_line(engine, run_id)])
    return result


def _no_interests_line(engine, run_id: int) -> str:
    """Interests are categories: a run trained on a catalogue without any has none to predict, and
    saying so tells the user what to import."""
    if len(engine.bundle(run_id).interest_names):
        return f"run #{run_id} predicts no interests"
    return (f"run #{run_id} predicts no interests: interests are item categories, and its items had none "
            "(import an items file with a category column, then train again)")
