"""One colour per category, shared by every pane that shows categories.

The sequence timeline, the interest bars and the ranked list all paint categories; a person
reading them side by side matches colours, not labels, so they must come from one place. A
colour follows from the category's name alone (a stable hash into a fixed qualitative set), so
the same category keeps its colour across panes, pages and launches. ``assign`` gives a known
set of names distinct colours, in name order, before any pane asks.
"""

from __future__ import annotations

import zlib
from typing import Iterable, Sequence

from PySide6.QtGui import QColor

# A qualitative set that stays readable as bar fills and as small dots on white.
_COLOURS = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#5b8def", "#86bc86", "#d37295", "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d",
    "#499894", "#fabfd2", "#79706e", "#d4a6c8",
)
NO_CATEGORY_COLOUR = "#bab0ac"
NO_CATEGORY_NAMES = ("", "(none)")

_assigned: dict[str, str] = {}


def assign(names: Iterable[str]) -> None:
    """Give ``names`` distinct colours (as far as the set reaches), in sorted order."""
    _assigned.clear()
    real = sorted({name for name in names if name not in NO_CATEGORY_NAMES})
    for index, name in enumerate(real):
        _assigned[name] = _COLOURS[index % len(_COLOURS)]


def category_colour(name: str) -> QColor:
    """The colour of category ``name``; grey for items without a category."""
    if name in NO_CATEGORY_NAMES:
        return QColor(NO_CATEGORY_COLOUR)
    if name not in _assigned:
        _assigned[name] = _COLOURS[zlib.crc32(name.encode("utf-8")) % len(_COLOURS)]
    return QColor(_assigned[name])


def primary_category(categories: Sequence[str]) -> str:
    """The first of an item's categories (names, primary first); "" when it has none."""
    return categories[0] if categories else ""


def category_text(categories: Sequence[str]) -> str:
    """All of an item's categories for display, primary first."""
    return ", ".join(categories)
