"""Why an item was recommended, in the words of the user's own history.

The engine names the history items that drove a recommendation (``Recommendation.because``);
the Explore page knows what the user did with each and when, so it can say "because they
bought Steel and viewed Cool Runnings, 2 days ago" instead of a list of titles. Times count
back from the user's latest event: a log is read after the fact, so "now" is their last visit.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from core.serving import REASON_TITLES, and_list, taken_with_words
from studio.widgets.timeline_events import TimelineEvent, as_user_sequence

# What the user did, by event type as shops name them (lower case, letters only: "add_to_cart" is "addtocart");
# a type not here ("Warenkorb") is named beside the item: "because they took Holzzug (Warenkorb)".
VERBS = {
    **dict.fromkeys(("view", "pageview", "pv", "detail", "detailview", "productview", "visit"), "viewed"),
    **dict.fromkeys(("click", "clicked"), "clicked"),
    **dict.fromkeys(("cart", "addtocart", "addcart", "addedtocart", "basket", "addtobasket"), "added to cart"),
    **dict.fromkeys(("removefromcart", "remove"), "removed from cart"),
    **dict.fromkeys(("purchase", "buy", "order", "transaction", "checkout", "sale", "bought"), "bought"),
    **dict.fromkeys(("rating", "rate", "rated"), "rated"),
    **dict.fromkeys(("review", "reviewed"), "reviewed"),
    **dict.fromkeys(("like", "fav", "favorite", "favourite", "wishlist", "save", "bookmark"), "liked"),
    "interaction": "took", "watch": "watched", "play": "played", "listen": "listened to", "read": "read",
    "download": "downloaded", "install": "installed", "search": "searched for", "share": "shared",
}
AGO_UNITS = ((365 * 86_400, "year"), (30 * 86_400, "month"), (7 * 86_400, "week"), (86_400, "day"),
             (3600, "hour"), (60, "minute"))


def reason_in_words(rec, events: Sequence[TimelineEvent], time_kind: str = "unix") -> str:
    """The engine's reason, with what the user did to each driving item (or to the item it is often
    taken with) and how long ago."""
    return reasons_in_words([rec], events, time_kind)[0]


def reasons_in_words(recs: Sequence, events: Sequence[TimelineEvent], time_kind: str = "unix") -> list[str]:
    """``reason_in_words`` of each of ``recs``, from what the sequence has read once for them all
    (``UserSequence``): each item's last event, and the time of the user's latest."""
    sequence = as_user_sequence(events)
    return [_reason(rec, sequence.latest, sequence.last_time, time_kind) for rec in recs]


def _reason(rec, latest: dict[str, TimelineEvent], last_time: Optional[float], time_kind: str) -> str:
    if rec.taken_with is not None:
        named = [latest[rec.taken_with]] if rec.taken_with in latest else []
    else:
        named = [latest[item] for item, _ in rec.because[:REASON_TITLES] if item in latest]
    if not named:
        return rec.reason
    verbs, whats = zip(*[_deed(event) for event in named])
    who = "you" if all(event.what_if for event in named) else "they"
    ago = _ago(named, last_time) if time_kind == "unix" else None
    if rec.taken_with is not None:
        said = taken_with_words(whats[0], verbs[0], who)
    elif len(set(verbs)) == 1:
        said = f"because {who} {verbs[0]} {and_list(list(whats))}"
    else:
        said = f"because {who} " + and_list([f"{verb} {what}" for verb, what in zip(verbs, whats)])
    parts = [said + (f", {ago}" if ago else "")]
    if rec.interest:
        parts.append(f"fits their interest in {rec.interest}")
    return " · ".join(parts)


def _deed(event: TimelineEvent) -> tuple[str, str]:
    """(what the user did, the item as named after it): "bought", "Heat"; for an event type with no
    English verb, "took" and the type beside the item: "took", "Heat (Warenkorb)"."""
    if event.what_if:
        return "added", event.title
    verb = VERBS.get("".join(char for char in event.event_type.lower() if char.isalpha()))
    return (verb, event.title) if verb else ("took", f"{event.title} ({event.event_type})")


def _ago(named: list[TimelineEvent], last_time: Optional[float]) -> Optional[str]:
    """How long before the user's latest event (at ``last_time``) the most recent driving event was."""
    driving = [event.ts for event in named if event.ts is not None and not event.what_if]
    if last_time is None or not driving:
        return None
    seconds = last_time - max(driving)
    for size, unit in AGO_UNITS:
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def match_text(rec) -> str:
    """The item's place in the model's ranking of the whole catalogue: "top 4%", "top 0.3%", and with as
    many decimals as a first place in a large catalogue needs ("top 0.01%" of 9,742 items: it read "top 0.0%")."""
    percent = 100.0 * rec.top_share
    if percent >= 1:
        return f"top {percent:.0f}%"
    decimals = max(1, -math.floor(math.log10(percent))) if percent > 0 else 1
    return f"top {percent:.{decimals}f}%"
