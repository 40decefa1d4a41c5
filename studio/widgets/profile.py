"""One line about the user beside their sequence: who they are and what their events say."""

from __future__ import annotations

from typing import Sequence

from studio.widgets.timeline_events import TimelineEvent, as_user_sequence
from studio.widgets.user_list import format_time

LOW_SHARE = 0.4  # of a rating scale's top: values at most this share read as dislike (2 of 5 stars)


def profile_line(attributes: dict, events: Sequence[TimelineEvent], time_kind: str = "unix") -> str:
    """"age 24 · gender M · occupation writer — 410 events, 1997-09-20 to 1998-04-22 · rating mean 3.6 (12 low)"."""
    who = " · ".join(f"{name} {value}" for name, value in attributes.items() if value not in (None, ""))
    sequence = as_user_sequence(events)
    what = [f"{sequence.stored_count:,} events"]
    if sequence.stored_times and time_kind == "unix":
        first = format_time(sequence.stored_times[0], time_kind, date_only=True)
        last = format_time(sequence.stored_times[-1], time_kind, date_only=True)
        what[0] += f", {first}" + (f" to {last}" if last != first else "")
    what.extend(_value_summaries(sequence.values_by_type))
    return (who + " — " if who else "") + " · ".join(what)


def _value_summaries(by_type: dict[str, list[float]]) -> list[str]:
    """Per event type that carries values: their mean, and how many read as low on a 5- or 10-point scale."""
    lines = []
    for kind, values in by_type.items():
        top = 5.0 if max(values) <= 5 else 10.0 if max(values) <= 10 else None
        low = sum(value <= top * LOW_SHARE for value in values) if top and min(values) >= 0 else 0
        lines.append(f"{kind} mean {sum(values) / len(values):.3g}" + (f" ({low} of {top * LOW_SHARE:g} or less)" if low else ""))
    return lines
