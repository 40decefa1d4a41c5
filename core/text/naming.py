"""Naming groups of items by the words their titles share: what a learned interest cluster is about.

A word names a group when many of its items carry it and few items elsewhere do: its score is
the share of the group's titles holding it minus the share of the other titles holding it.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

WORD = re.compile(r"[^\W\d_]{3,}")  # letters only, three or more: no numbers, no "of"
STOP_WORDS = frozenset("the and for with from into your our this that are was not you all new set vol".split())


def title_words(title: str) -> set[str]:
    return {w for w in WORD.findall(str(title).lower()) if w not in STOP_WORDS}


def distinctive_words(groups: np.ndarray, titles: np.ndarray, n_groups: int, n_words: int = 2) -> list[list[str]]:
    """Per group index 0..n_groups-1, up to ``n_words`` words naming it (groups: group per title, -1 = none).

    A word must occur in at least two of the group's titles (or its only title), so a single
    odd title does not name a group.
    """
    words = [title_words(t) for t in titles]
    everywhere = Counter(w for item_words in words for w in item_words)
    n_titles = len(words)
    names = []
    for group in range(n_groups):
        members = np.flatnonzero(np.asarray(groups) == group)
        inside = Counter(w for i in members for w in words[i])
        least = 1 if len(members) == 1 else 2
        outside = max(1, n_titles - len(members))
        scored = sorted((count / len(members) - (everywhere[w] - count) / outside, w)
                        for w, count in inside.items() if count >= least)
        names.append([w for score, w in reversed(scored) if score > 0][:n_words])
    return names
