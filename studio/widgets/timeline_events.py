"""A user's events as the sequence views show them: the rows, and which of them the model held out.

Plain data (no widgets), shared by the sequence list, the strip of marks, the reasons and the
profile line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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


def events_from_frame(frame) -> list[TimelineEvent]:
    """Timeline events from a history frame with ts, event_type, item, title, categories columns
    (value and negative optional). Read a column at a time: a row at a time through pandas took
    0.3 s of a 16,000-event user's answer; an item's categories are split once per item."""
    rows = len(frame)
    column = (lambda name, default: frame[name].tolist() if name in frame else [default] * rows)
    categories_of = {text: split_categories(text) for text in set(frame["categories"].tolist())}
    return [
        TimelineEvent(str(item), str(title or item), categories_of[categories], str(event_type), ts,
                      value=_number(value), negative=bool(negative))
        for item, title, categories, event_type, ts, value, negative in zip(
            frame["item"].tolist(), frame["title"].tolist(), frame["categories"].tolist(),
            frame["event_type"].tolist(), frame["ts"].tolist(), column("value", None), column("negative", 0))
    ]


def interactions(events: Sequence[TimelineEvent]) -> list[str]:
    """The items of ``events`` a model scores from: every event but the dislikes, in order."""
    return [event.item for event in events if not event.negative]


def _number(value) -> Optional[float]:
    return None if value is None or value != value else float(value)  # NaN: no value


def spans_years(events: Sequence[TimelineEvent]) -> bool:
    """Whether the first and last timed events fall in different calendar years (UTC)."""
    times = [event.ts for event in events if event.ts is not None and not event.what_if]
    if not times:
        return False
    first, last = (dt.datetime.fromtimestamp(float(t), tz=dt.timezone.utc).year for t in (times[0], times[-1]))
    return first != last


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
