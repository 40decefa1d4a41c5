"""A small shop whose ids, titles and categories are written to attack whoever reads them:
terminal escape sequences (OSC 8 links, screen clears, bidi overrides) and spreadsheet formulas."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from core.cli import main

LINK = "\x1b]8;;http://evil.example\x07click me\x1b]8;;\x07"
CLEAR = "\x1b[2J\x1b[H"
FORMULA = '=HYPERLINK("http://evil.example","x")'
HOSTILE_TITLES = [LINK, CLEAR + "Wiped", FORMULA, "@SUM(1+1)", "Safe \u202eelttob", "-2+3"]
HOSTILE_CATEGORIES = ["\x1b[31mRed|Toys", "=cmd|' /C calc'!A0|Games"]
N_USERS, N_ITEMS = 40, 30
FRESH_USER = "U035"  # has taken none of the hostile items, which are the most popular


def item_id(number: int) -> str:
    return "=1+1" if number == 0 else f"I{number:03d}"


def write_shop(folder: Path) -> tuple[Path, Path]:
    """(events.csv, items.csv). The hostile items come first and are the most popular: users
    U000-U029 take all of them, users U030-U039 (``FRESH_USER``) none, so a popularity run
    ranks them first for a fresh user (its re-ranker, when kept, may re-order them). The importer allows only a few control characters per
    file, so each hostile value appears once."""
    folder.mkdir(parents=True, exist_ok=True)
    events, items = folder / "events.csv", folder / "items.csv"
    hostile = len(HOSTILE_TITLES)
    with open(items, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "title", "categories"])
        for number in range(N_ITEMS):
            title = HOSTILE_TITLES[number] if number < hostile else f"Plain item {number}"
            category = HOSTILE_CATEGORIES[number] if number < len(HOSTILE_CATEGORIES) else "Toys"
            writer.writerow([item_id(number), title, category])
    with open(events, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp"])
        for user in range(N_USERS):
            taken = list(range(hostile)) if user < 30 else []
            taken += [hostile + (user + step * 5) % (N_ITEMS - hostile) for step in range(4)]
            for step, number in enumerate(taken):
                writer.writerow([f"U{user:03d}", item_id(number), 1767225600 + user * 100 + step])
    return events, items


def hostile_workspace(folder: Path) -> Path:
    """The shop imported and a popularity run (#1) trained through the CLI."""
    events, items = write_shop(folder)
    db = folder / "shop.sqlite"
    for argv in (["import", events, "--items", items], ["train", "--model", "pop"]):
        err = io.StringIO()
        assert main([*map(str, argv), "--db", str(db)], stdout=io.StringIO(), stderr=err) == 0, err.getvalue()
    return db
