"""The Explore page's what-if edit: items added to the end of a user's stored sequence, or its latest
events dropped. The lists are asked for the edited history; the line above the sequence says what
the edit is and, once its answer is in, which predicted interests it moved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from studio.widgets.timeline_events import TimelineEvent, UserSequence
from studio.widgets.what_if import interest_moves


@dataclass
class WhatIfEdit:
    """Either added events or a count of dropped ones: adding after dropping keeps the drop, and
    dropping while items are added takes the added ones back first."""

    added: list[TimelineEvent] = field(default_factory=list)
    dropped: int = 0

    @property
    def active(self) -> bool:
        return bool(self.added) or self.dropped > 0

    def applied_to(self, sequence: UserSequence) -> UserSequence:
        """``sequence`` as edited; unedited, the stored one itself (with what the worker read from it)."""
        if not self.active:
            return sequence
        return UserSequence((*sequence[: max(len(sequence) - self.dropped, 0)], *self.added))

    def add(self, row: Any) -> None:
        """``row``: a search result (item, title, categories)."""
        self.added.append(TimelineEvent(str(row.item), row.title or str(row.item), row.categories, "what-if",
                                        None, what_if=True))

    def drop_last(self, count: int, stored: int) -> None:
        """Drop the latest ``count`` events of a sequence of ``stored`` events."""
        if self.added:
            del self.added[-count:]
        else:
            self.dropped = min(self.dropped + count, stored)

    def describe(self, stored: int, answer, stored_interests: Optional[tuple[Optional[int], list]]) -> str:
        """"What-if: adding Star Wars" and, when ``answer`` (the edited history's) and ``stored_interests``
        ((run, interests) of the unedited one) come from the same run, the interests it moved; "" unedited."""
        if not self.active:
            return ""
        if self.added:
            names = [event.title for event in self.added]
            change = "adding " + (names[-1] if len(names) == 1 else f"{names[-1]} and {len(names) - 1} more")
        else:
            dropped = min(self.dropped, stored)
            change = "dropping the latest event" if dropped == 1 else f"dropping the latest {dropped} events"
        if (answer is None or answer.query.history is None or stored_interests is None
                or stored_interests[0] != answer.query.run or not answer.interests):
            return f"What-if: {change}"
        return "What-if: " + interest_moves(stored_interests[1], answer.interests, change)
