"""What every command shares: its failures, its output (text or one JSON object on stdout,
progress on stderr) and the check that a workspace exists before reading it.

Ids, titles and categories come from the shop's files, and a title holding an escape
sequence (``ESC ] 8 ;;`` links, ``ESC [ 2J`` clears, OSC 52 writes the clipboard) would
act on the user's terminal: every text line and error message goes through
``terminal_safe``, which writes control characters as visible escapes. JSON output needs
nothing more: ``json.dump`` writes them as ``\\u001b``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Optional, TextIO

from core.errors import NextPickError
from core.progress import Progress


class CliError(NextPickError):
    """A command line that cannot work as given (a missing workspace, no trained run): exit code 1."""

    exit_code = 1


class CommandLineError(CliError):
    """The command line itself is wrong (a malformed or impossible option, options that contradict
    each other): exit code 2, as for argparse's own usage errors."""

    exit_code = 2


# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a line shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def terminal_safe(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\x1b``, ``\\u202e``)."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def cell(text: str, width: int) -> str:
    """``text`` as a table cell ``width`` wide: padded, or cut with "…" so a reader sees that it goes on
    (a cut at the width left "Adventure, Animation, Children, " and pulled the next column in)."""
    return text.ljust(width) if len(text) <= width else text[:width - 1] + "…"


def at_least(low: int):
    """An argparse type for a whole number of at least ``low``: a wrong value is a usage error (exit 2)."""
    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return whole_number


def share(text: str) -> float:
    """An argparse type for a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return value


def process_age_s() -> float:
    """Seconds since this process started (Linux; 0 elsewhere): a console-script run counts its
    start-up and imports, which take seconds on a busy machine, in the time it reports."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
            return max(0.0, float(uptime.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def require_workspace(path: Path) -> None:
    """Reading commands never create an empty workspace by accident."""
    if not path.exists():
        raise CliError(f"no workspace at {path}; create one with `nextpick import` or `nextpick demo`")


class ProgressBar:
    """One self-overwriting terminal line fed by ``core.progress`` reports."""

    def __init__(self, stream: TextIO, min_interval_s: float = 0.1) -> None:
        self.stream = stream
        self.min_interval_s = min_interval_s
        self._last_draw = 0.0
        self._drawn = False

    def __call__(self, report: Progress) -> None:
        now = time.monotonic()
        finished = report.total is not None and report.done >= report.total
        if now - self._last_draw < self.min_interval_s and not finished:
            return
        self._last_draw = now
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r" + terminal_safe(format_progress(report, bar_width=24))[:width].ljust(width))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


class ProgressLog:
    """Progress for a log file or a pipe: a plain line when a stage begins, then one every
    ``interval_s``, each stamped with the time since the command started, so a long import or
    training is never silent for minutes and no carriage return garbles the log."""

    def __init__(self, stream: TextIO, started: float, interval_s: float = 5.0, clock=time.perf_counter) -> None:
        self.stream = stream
        self.started = started
        self.interval_s = interval_s
        self.clock = clock
        self._stage: Optional[str] = None
        self._last_line = 0.0

    def __call__(self, report: Progress) -> None:
        now = self.clock()
        if report.stage == self._stage and now - self._last_line < self.interval_s:
            return
        self._stage, self._last_line = report.stage, now
        self.stream.write(f"[{_duration(now - self.started)}] {terminal_safe(format_progress(report))}\n")
        self.stream.flush()

    def close(self) -> None:
        """Lines are whole as written; there is nothing to end."""


def format_progress(report: Progress, bar_width: int = 24) -> str:
    """``stage [#####-----]  42%  1,234/2,900  5,120/s  ETA 0:03  message``."""
    parts = [report.stage]
    if report.fraction is not None:
        filled = round(report.fraction * bar_width)
        parts.append(f"[{'#' * filled}{'-' * (bar_width - filled)}] {report.fraction:4.0%}")
    if report.done or report.total:
        parts.append(f"{report.done:,}" + (f"/{report.total:,}" if report.total else ""))
    if report.rate:
        parts.append(f"{_si(report.rate)}/s")
    if report.eta_s is not None:
        parts.append(f"ETA {_duration(report.eta_s)}")
    if report.message:
        parts.append(report.message)
    return "  ".join(parts)


def _si(value: float) -> str:
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Output:
    """Where a command's words go: text lines or one JSON object on stdout, progress on stderr.

    It also holds when the command started: the times a command prints are the whole
    command's, not just its longest step's.
    """

    def __init__(self, as_json: bool, stdout: TextIO, stderr: TextIO, started: Optional[float] = None,
                 clock=time.perf_counter) -> None:
        self.as_json = as_json
        self.stdout = stdout
        self.stderr = stderr
        self.clock = clock
        self.started = clock() if started is None else started
        self._progress: Optional[ProgressBar | ProgressLog] = None

    def elapsed(self) -> float:
        """Seconds since the command started."""
        return self.clock() - self.started

    def progress(self) -> ProgressBar | ProgressLog:
        """A self-overwriting bar on an interactive terminal; plain timed lines in a log or a pipe."""
        if self._progress is None:
            self._progress = (ProgressBar(self.stderr) if self.stderr.isatty()
                              else ProgressLog(self.stderr, self.started, clock=self.clock))
        return self._progress

    def mute(self) -> None:
        """Print no result and no progress from here on, errors still: a torchrun follower, whose
        leader speaks for the run."""
        self.stdout = open(os.devnull, "w", encoding="utf-8")
        self._progress = ProgressLog(self.stdout, self.started)

    def stage(self, name: str, message: str) -> None:
        """Announce a step the engine reports no progress for, so the bar or log names it."""
        self.progress()(Progress(name, message=message))

    def done_progress(self) -> None:
        if self._progress is not None:
            self._progress.close()

    def lines(self, lines: list[str]) -> None:
        if not self.as_json:
            self.stdout.write("\n".join(terminal_safe(line) for line in lines) + "\n")

    def error(self, command: str, error: BaseException) -> None:
        """The message, and the hint of a ``NextPickError`` that has one, with control characters escaped."""
        self.done_progress()
        self.stderr.write(f"nextpick {command}: {terminal_safe(str(error))}\n")
        hint = getattr(error, "hint", None)
        if hint:
            self.stderr.write(f"hint: {terminal_safe(hint)}\n")

    def result(self, result: dict) -> None:
        if self.as_json:
            json.dump({**result, "elapsed_s": round(self.elapsed(), 3)}, self.stdout, indent=2)
            self.stdout.write("\n")
