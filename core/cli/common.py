"""What every command shares: its failures, its output (text or one JSON object on stdout, a
progress line on stderr) and the check that a workspace exists before reading it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Optional, TextIO

from core.errors import NextPickError
from core.progress import Progress


class CliError(NextPickError):
    """A command line that cannot work as given (a missing workspace, options that do not fit together)."""


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
        self.stream.write("\r" + format_progress(report, bar_width=24)[:width].ljust(width))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def format_progress(report: Progress, bar_width: int = 24) -> str:
    """``stage [#####-----]  42%  1,234/2,900  5,120/s  ETA 0:03  message``."""
    parts = [report.stage]
    if report.fraction is not None:
        filled = round(report.fraction * bar_width)
        parts.append(f"[{'#' * filled}{'-' * (bar_width - filled)}] {report.fraction:4.0%}")
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
    """Where a command's words go: text lines or one JSON object on stdout, progress on stderr."""

    def __init__(self, as_json: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.as_json = as_json
        self.stdout = stdout
        self.stderr = stderr
        self._bar: Optional[ProgressBar] = None

    def progress(self) -> Optional[ProgressBar]:
        """A bar only on an interactive terminal; logs and pipes get no carriage-return noise."""
        if self._bar is None and self.stderr.isatty():
            self._bar = ProgressBar(self.stderr)
        return self._bar

    def done_progress(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def lines(self, lines: list[str]) -> None:
        if not self.as_json:
            self.stdout.write("\n".join(lines) + "\n")

    def result(self, result: dict) -> None:
        if self.as_json:
            json.dump(result, self.stdout, indent=2)
            self.stdout.write("\n")
