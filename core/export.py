"""Recommendations to a CSV file: K items per user, for every user or a chosen list.

``nextpick export`` and the studio's *Export recommendations…* dialog both call
``write_recommendations_csv``. The engine scores users a batch at a time
(``Engine.recommend_many``), reporting progress and checking the cancel token between
batches; ``core.safe_csv`` writes the file whole or not at all, with every cell a
spreadsheet would run neutralised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

from core.errors import UsageError, user_file
from core.progress import CancelToken, ProgressCallback
from core.safe_csv import write_csv

HEADER = ("user", "rank", "item", "title", "categories", "score", "reason")


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote: how many users, how many rows (one per recommendation), where."""

    users: int
    rows: int
    path: Path


def all_users(engine) -> list[str]:
    """Every user id of the workspace, in id order."""
    return [row.user for row in engine.users_page(0, engine.user_count(), order_by="user")]


def parse_user_list(text: str) -> list[str]:
    """User ids typed in a box: separated by commas, semicolons, spaces or new lines."""
    return [part for part in re.split(r"[\s,;]+", text) if part]


def read_user_file(path: Path | str) -> list[str]:
    """User ids from a file, one per line (ids may hold spaces; blank lines are skipped)."""
    with user_file(path, "read"), open(path, encoding="utf-8-sig") as handle:
        return [line.strip() for line in handle if line.strip()]


def write_recommendations_csv(engine, run_id: int, users: Optional[Sequence[str]], path: Path | str, k: int = 10,
                              exclude_seen: bool = True, diversity: float = 0.0,
                              progress: Optional[ProgressCallback] = None,
                              cancel: Optional[CancelToken] = None) -> ExportReport:
    """Write ``k`` recommendations per user (all users when ``users`` is None).

    A list is checked whole before anything is scored: a typo in the 900th id fails at once,
    naming the unknown ids, instead of after minutes of work. Repeated ids are exported once.
    """
    engine.check_list_length(k)
    users = all_users(engine) if users is None else list(dict.fromkeys(users))
    unknown = engine.unknown_users(users)
    if unknown:
        shown = ", ".join(repr(user) for user in unknown[:5]) + (", …" if len(unknown) > 5 else "")
        raise UsageError(f"{len(unknown):,} of the {len(users):,} users are not in the workspace: {shown}",
                         "Check the ids against the imported log; leave out the list to export every user.")
    lists = engine.recommend_many(run_id, users, k=k, diversity=diversity, exclude_seen=exclude_seen,
                                  progress=progress, cancel=cancel)
    return ExportReport(len(users), write_csv(path, HEADER, _rows(lists)), Path(path))


def _rows(lists) -> Iterator[tuple]:
    for user, recommendations in lists:
        for rec in recommendations:
            yield user, rec.rank, rec.item, rec.title, "|".join(rec.categories), float(f"{rec.score:.6g}"), rec.reason
