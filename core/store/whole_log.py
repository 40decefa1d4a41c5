"""Every event of a workspace as arrays, as the import that wrote all of them holds them.

An import into a workspace without events hands these on (``import_files(on_whole_log=...)``), so
the sequences and the user directory are built from memory instead of reading 25M events back
through SQLite, which cost as much CPU as writing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from core.store.reads import EventArrays


@dataclass(frozen=True)
class WholeLog:
    """Parallel arrays over every event of the workspace, in id order."""

    user_id: np.ndarray  # store ids (int32 while they fit)
    item_id: np.ndarray  # store ids (int32 while they fit)
    ts: np.ndarray  # float64
    event_id: np.ndarray  # int64, increasing
    negative: np.ndarray  # bool: a dislike, never an interaction

    @cached_property
    def _order(self) -> np.ndarray:
        """Positions sorted by (user, ts, id): the sort is stable and the events are in id order."""
        return np.lexsort((self.ts, self.user_id))

    @cached_property
    def for_caches(self) -> tuple[EventArrays, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(interactions(), activity())``: what ``Engine.prepare`` takes, so that a caller can let the
        log go before the sequences are built. Kept once made: an import makes them in a thread while
        SQLite builds the indexes (seconds at 25M events that no longer follow the commit)."""
        return self.interactions(), self.activity()

    def interactions(self) -> EventArrays:
        """What ``Workspace.event_arrays`` reads from the store: every event but the negative ones,
        sorted by (user, ts, id)."""
        order = self._order[~self.negative[self._order]] if self.negative.any() else self._order
        return EventArrays(self.user_id[order], self.item_id[order], self.ts[order], self.event_id[order])

    def activity(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user store ids, events, latest time) of every user with events, negative ones
        included: what ``SELECT user_id, count(*), max(ts) ... GROUP BY user_id`` gives."""
        users = self.user_id[self._order]
        last = np.flatnonzero(np.append(users[1:] != users[:-1], True)) if len(users) else np.zeros(0, np.int64)
        first = np.concatenate([[0], last[:-1] + 1]) if len(last) else last
        return users[last], last - first + 1, self.ts[self._order[last]]

    def sharing_user_and_time(self) -> np.ndarray:
        """Ids of the events whose user and time another event shares: the only ones that can
        repeat an earlier event exactly."""
        users, ts = self.user_id[self._order], self.ts[self._order]
        same = (users[1:] == users[:-1]) & (ts[1:] == ts[:-1])
        shared = np.zeros(len(users), dtype=bool)
        shared[1:] |= same
        shared[:-1] |= same
        return np.sort(self.event_id[self._order[shared]])

    def without(self, event_ids: np.ndarray) -> "WholeLog":
        """The log less the events ``event_ids`` (its sort order kept, not sorted again)."""
        if not len(event_ids):
            return self
        kept = ~np.isin(self.event_id, event_ids)
        log = WholeLog(self.user_id[kept], self.item_id[kept], self.ts[kept], self.event_id[kept], self.negative[kept])
        if "_order" in self.__dict__:
            new_position = np.cumsum(kept) - 1
            log.__dict__["_order"] = new_position[self._order[kept[self._order]]]
        return log
