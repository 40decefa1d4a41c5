"""``nextpick``: the command line over the engine. Parsing and printing only.

Every command takes ``--db WORKSPACE`` and ``--json``. With ``--json`` stdout holds exactly
one JSON object; progress bars and errors always go to stderr, so pipes stay clean.
Exit codes: 0 done, 1 failed (a ``core.errors.NextPickError`` or running out of memory: a message
and hint on stderr; or cancelled), 2 bad usage, 130 interrupted. Any other exception is a bug and keeps its traceback.

Data commands import only the store and the importer; the train, run and recommendation commands
load the engine (and torch) on demand, so ``nextpick stats`` answers without paying for torch's start-up.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

from core.cli import (data_commands, recommend_commands, run_commands, serve_commands, text_commands,
                      train_commands)
from core.cli.common import (CliError, CommandLineError, Output, ProgressBar, format_progress,
                             process_age_s)
from core.errors import NextPickError, OutOfMemory
from core.memory import keep_freed_memory
from core.progress import Cancelled
from core.store import default_workspace_path

__all__ = ["CliError", "CommandLineError", "ProgressBar", "build_parser", "format_progress", "main"]


def build_parser(argv: Optional[list[str]] = None) -> argparse.ArgumentParser:
    """The full parser; ``train``'s TrainConfig options are only built when ``argv`` asks for ``train``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, default=default_workspace_path(), metavar="WORKSPACE",
                        help="workspace file (default: %(default)s)")
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser = argparse.ArgumentParser(prog="nextpick",
                                     description="Sequence-aware recommendations from a shop's behaviour log.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_commands.add_commands(commands, common)
    train_commands.add_commands(commands, common, with_train_options=argv is not None and argv[:1] == ["train"])
    run_commands.add_commands(commands, common)
    recommend_commands.add_commands(commands, common)
    serve_commands.add_commands(commands, common)
    text_commands.add_commands(commands, common)
    return parser


def main(argv: Optional[list[str]] = None, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """Entry point of the ``nextpick`` console script; returns the exit code."""
    started = time.perf_counter() - (process_age_s() if argv is None else 0.0)  # a console run: from process start
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    if argv is None:
        keep_freed_memory()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = build_parser(argv).parse_args(argv)
    except SystemExit as exit_:  # argparse: 0 for --help, 2 for bad usage
        return int(exit_.code or 0)
    args.db = args.db.expanduser()
    out = Output(args.json, stdout, stderr, started=started)
    try:
        out.result(args.handler(args, out))
        return 0
    except KeyboardInterrupt:
        out.done_progress()
        stderr.write("nextpick: interrupted\n")
        return 130
    except (NextPickError, Cancelled) as error:
        out.error(args.command, error)
        return getattr(error, "exit_code", 1)
    except Exception as error:
        if not OutOfMemory.caught(error):
            raise
        out.error(args.command, OutOfMemory(f"ran out of memory: {error}".rstrip(": ")))
        return 1
