"""A user's events as the sequence views show them: the rows, and which of them the model held out.

Plain data (no widgets), shared by the sequence list, the strip of marks, the reasons and the
profile line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from typing import Optional, Sequence

from core.store.schema import split_categories
from studio.widgets.palette import primary_category


@dataclass(frozen=True)
class TimelineEvent:
    """One row of the timeline; ``what_if`` marks events the person added, not the shop's log."""

    item: str
    title: str
    categories: tuple[str, ...]  # names, primary first, as in core.serving
    event_type: str
    ts: Optional[float]
    what_if: bool = False
    value: Optional[float] = None  # a rating, price or quantity, as imported
    negative: bool = False  # a dislike (a low rating the import marked): shown, never scored from

    @property
    def action(self) -> str:
        """The event type with its value: "rating 4", "purchase 12.5", "view", "rating 1 (dislike)"."""
        action = self.event_type if self.value is None else f"{self.event_type} {self.value:g}"
        return f"{action} (dislike)" if self.negative else action

    @property
    def category(self) -> str:
        return primary_category(self.categories)


class UserSequence(tuple):
    """A user's events (a tuple of ``TimelineEvent``) with what the panes read from all of them,
    each found in one pass and kept.

    Read pane by pane in the window's thread (the reasons, the column widths, the legend, the time
    axis, the profile line), a 16,000-event user's sequence held the window ~45 ms per switch. The
    Explore page's worker builds the stored sequence and calls ``read_all``, so the window only looks
    the answers up; a what-if's sequence (the stored one edited) is read as the window asks.
    """

    def read_all(self) -> "UserSequence":
        """Find every kept fact now (in the worker), not when a pane first asks (in the window)."""
        for name in kept_facts():
            getattr(self, name)
        return self

    @cached_property
    def latest(self) -> dict[str, TimelineEvent]:
        """Each item's last event."""
        return {event.item: event for event in self}

    @cached_property
    def items(self) -> tuple[str, ...]:
        """The items a model scores from: every event but the dislikes, in order."""
        return tuple(event.item for event in self if not event.negative)

    @cached_property
    def stored_times(self) -> list[float]:
        """The times of the log's timed events (what-if ones aside), in order."""
        return [event.ts for event in self if event.ts is not None and not event.what_if]

    @cached_property
    def last_time(self) -> Optional[float]:
        return max(self.stored_times) if self.stored_times else None

    @cached_property
    def time_span(self) -> float:
        """Seconds from the first to the last timed event of the log."""
        return self.last_time - min(self.stored_times) if self.stored_times else 0.0

    @property
    def spans_years(self) -> bool:
        """Whether the first and last timed events fall in different calendar years (UTC)."""
        if not self.stored_times:
            return False
        first, last = (dt.datetime.fromtimestamp(float(t), tz=dt.timezone.utc).year
                       for t in (self.stored_times[0], self.stored_times[-1]))
        return first != last

    @cached_property
    def width_deciders(self) -> tuple[TimelineEvent, ...]:
        """One event per event type, dislike mark and length of its value's text: a value's digits are
        of one width in the studio's fonts, so these decide the width of a column of actions.
        Measuring every distinct text of a 16,000-event user (prices make most of them distinct) held
        the window ~100 ms."""
        return tuple({(event.event_type, event.negative, None if event.value is None else len(f"{event.value:g}")): event
                      for event in self}.values())

    @cached_property
    def event_types(self) -> frozenset[str]:
        """The event types of the log's events (what-if ones aside)."""
        return frozenset(event.event_type for event in self if not event.what_if)

    @cached_property
    def values_by_type(self) -> dict[str, list[float]]:
        """The values (ratings, prices) of the log's events, by event type."""
        by_type: dict[str, list[float]] = {}
        for event in self:
            if event.value is not None and not event.what_if:
                by_type.setdefault(event.event_type, []).append(event.value)
        return by_type

    @cached_property
    def stored_count(self) -> int:
        return sum(not event.what_if for event in self)


def kept_facts() -> list[str]:
    """The names of the facts a ``UserSequence`` finds once and keeps."""
    return [name for name, member in vars(UserSequence).items() if isinstance(member, cached_property)]


def as_user_sequence(events: Sequence[TimelineEvent]) -> UserSequence:
    """``events`` as a ``UserSequence`` (itself when it is one, keeping what it has read)."""
    return events if isinstance(events, UserSequence) else UserSequence(events)


def events_from_frame(frame) -> UserSequence:
    """Timeline events from a history frame with ts, event_type, item, title, categories columns
    (value and negative optional). Read a column at a time: a row at a time through pandas took
    0.3 s of a 16,000-event user's answer; an item's categories are split once per item."""
    rows = len(frame)
    column = (lambda name, default: frame[name].tolist() if name in frame else [default] * rows)
    categories_of = {text: split_categories(text) for text in set(frame["categories"].tolist())}
    return UserSequence(
        TimelineEvent(str(item), str(title or item), categories_of[categories], str(event_type), ts,
                      value=_number(value), negative=bool(negative))
        for item, title, categories, event_type, ts, value, negative in zip(
            frame["item"].tolist(), frame["title"].tolist(), frame["categories"].tolist(),
            frame["event_type"].tolist(), frame["ts"].tolist(), column("value", None), column("negative", 0))
    )


def interactions(events: Sequence[TimelineEvent]) -> list[str]:
    """The items of ``events`` a model scores from: every event but the dislikes, in order."""
    return list(as_user_sequence(events).items)


def _number(value) -> Optional[float]:
    return None if value is None or value != value else float(value)  # NaN: no value


def held_out_rows(events: Sequence[TimelineEvent], item: Optional[str], steps_before: Optional[int]) -> list[int]:
    """Rows of the held-out step: step ``steps_before`` when it is on ``item``, else the trailing events on ``item``."""
    if item is None:
        return []
    scored = [row for row, event in enumerate(events) if not event.negative]  # dislikes are no steps
    if steps_before is not None:
        step, rows, previous = -1, [], None
        for row in scored:
            if previous is None or events[row].item != previous:
                step += 1
            previous = events[row].item
            if step == steps_before and events[row].item == item:
                rows.append(row)
        if rows:
            return rows
    rows = []
    while len(rows) < len(scored) and events[scored[-1 - len(rows)]].item == item:
        rows.append(scored[-1 - len(rows)])
    return sorted(rows)


def after_held_out(held_out: list[int], row: int) -> bool:
    """Whether ``row`` comes after the held-out rows (ascending): an event the model had not seen."""
    return bool(held_out) and row > held_out[-1]
