"""Why an item is on a list, in the words of the user's own history: what they did to the items that
drove it, and how long ago (``studio.widgets.reasons``)."""

from __future__ import annotations

from core.serving import Recommendation
from studio.widgets.reasons import reason_in_words
from studio.widgets.timeline_events import TimelineEvent


def test_reasons_say_what_the_user_did_and_how_long_ago():
    day = 86_400.0
    events = [TimelineEvent("a", "Steel (1997)", (), "view", 0.0), TimelineEvent("b", "Cool Runnings", (), "view", day),
              TimelineEvent("c", "Heat", (), "purchase", 3 * day)]
    rec = Recommendation(1, "x", "X", (), 1.0, "because they took Steel (1997) and Cool Runnings",
                         [("a", 0.4), ("b", 0.3)], "Comedy")
    assert reason_in_words(rec, events) == ("because they viewed Steel (1997) and Cool Runnings, 2 days ago · "
                                            "fits their interest in Comedy")
    popular = Recommendation(2, "y", "Y", (), 1.0, "popular overall", [], None)
    assert reason_in_words(popular, events) == "popular overall"
    # lifted by the re-ranker for being often taken with an item of the history (tests/core/test_reasons.py)
    taken_with = Recommendation(3, "z", "Z", (), 1.0, "often taken with Heat, which they took", [("a", 0.5)], None,
                                taken_with="c")
    assert reason_in_words(taken_with, events) == "often taken with Heat, which they bought, just now"
    assert reason_in_words(taken_with, events[:2]) == taken_with.reason  # an event the timeline does not show


def test_reasons_name_event_types_without_an_english_verb_beside_the_item():
    """A German shop's "Warenkorb" read "often taken with Heat, which they Warenkorb:, just now"; the
    shops' own spellings of English types ("add_to_cart", "pv", "transaction") had no verb either."""
    events = [TimelineEvent("a", "Heat", (), "Warenkorb", 0.0), TimelineEvent("b", "Babe", (), "add_to_cart", 60.0),
              TimelineEvent("c", "Alien", (), "transaction", 120.0), TimelineEvent("d", "Up", (), "pv", 180.0)]
    taken_with = Recommendation(1, "z", "Z", (), 1.0, "often taken with Heat, which they took", [], None, taken_with="a")
    assert reason_in_words(taken_with, events) == "often taken with Heat (Warenkorb), which they took, 3 minutes ago"
    drivers = Recommendation(2, "y", "Y", (), 1.0, "because they took Babe, Alien", [("b", 0.4), ("c", 0.3)], None)
    assert reason_in_words(drivers, events) == "because they added to cart Babe and bought Alien, 1 minute ago"
    viewed = Recommendation(3, "x", "X", (), 1.0, "because they took Up", [("d", 0.4)], None)
    assert reason_in_words(viewed, events) == "because they viewed Up, just now"


def test_the_match_keeps_a_first_place_in_a_large_catalogue_above_zero():
    from types import SimpleNamespace

    from studio.widgets.reasons import match_text

    shares = (1.0, 0.04, 0.003, 1 / 9742, 1 / 1_000_000, 0.0)
    assert [match_text(SimpleNamespace(top_share=s)) for s in shares] == [
        "top 100%", "top 4%", "top 0.3%", "top 0.01%", "top 0.0001%", "top 0.0%"]
