"""What the Explore page asks the engine, off the GUI thread: one query in, one answer out.

Plain functions and data, no widgets: each runs in a worker and returns what the panes paint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from studio.widgets.item_details import ItemFacts
from studio.widgets.profile import profile_line
from studio.widgets.timeline_events import UserSequence, events_from_frame, interactions

if TYPE_CHECKING:  # the engine loads torch: the page imports this module long before a workspace opens
    from core.engine import HeldOut

NEXT_ITEMS = 10
LEAST_PAIRS = 2  # "most often taken next" lists a pair seen at least this often: once is chance, not a habit


@dataclass(frozen=True)
class ExploreQuery:
    """Everything the panes depend on; equal queries give equal answers."""

    user: str
    run: Optional[int]
    compare_run: Optional[int]
    k: int
    diversity: float
    exclude_seen: bool
    history: Optional[tuple[str, ...]]  # a what-if sequence, or None for the stored one
    load_sequence: bool  # read the stored sequence too (the user changed)
    before_held_out: bool = False  # answer as of before the user's held-out item (compare mode)


@dataclass
class ExploreAnswer:
    query: ExploreQuery
    sequence: Optional[UserSequence]  # read whole in the worker (``UserSequence.read_all``)
    interests: list
    recommendations: list
    compared: list
    held_out: Optional[str]
    error: Optional[BaseException] = None  # the chosen runs could not answer (the sequence still shows)
    held: Optional[HeldOut] = None  # how ``held_out`` was held out: the split, its kind and evaluation mode
    steps_before_held_out: Optional[int] = None  # steps (repeats collapsed) of the stored sequence the model saw
    profile: Optional[str] = None  # the line about the user (``profile_line``), read with the sequence


def held_out_note(answer: ExploreAnswer, title: Optional[str]) -> str:
    """Compare mode's note on what the lists were made from: before the held-out item (``title``), or
    the whole sequence when the run's split holds out none for this user."""
    if answer.held_out is None:
        return ("This model's split holds out no test item for this user (too few events for leave-one-out, "
                "or nothing after a time split's cut-off); the lists use the whole sequence.")
    from core.data import EvalMode, SplitKind  # loaded with the engine that answered

    new = "new " if answer.held.eval_mode is EvalMode.NEW else ""
    if answer.held.kind is SplitKind.TIME:
        return (f"Both lists are made from what the user did before their first {new}item after the model's "
                f"cut-off ({answer.held.split}), “{title}” (shaded in the sequence, later events greyed); it is "
                "highlighted where a model ranks it.")
    return (f"Both lists are made as if the user had not yet taken their last {new}item, “{title}” (held out "
            "from training, shaded in the sequence); it is highlighted where a model ranks it.")


def facts_known(item: str, sequence: UserSequence, shown: list) -> ItemFacts:
    """``item``'s title and categories from what the panes hold (its latest event in ``sequence``, else any
    ``shown`` entry with ``item``, ``title`` and ``categories``: a recommendation, a listed next or similar
    item); only its id when none has it."""
    event = sequence.latest.get(item)
    if event is not None:
        return ItemFacts(item, event.title, event.categories)
    for entry in shown:
        if entry.item == item:
            return ItemFacts(item, entry.title, entry.categories)
    return ItemFacts(item, item, ())


def answer_query(engine, query: ExploreQuery) -> ExploreAnswer:
    """Ask the engine for everything the panes show; runs in a worker.

    In compare mode the lists are made from the sequence as it was before the user's held-out
    item under the chosen run's split (the protocol of its test metrics: the last new item, or
    last event when repeats are allowed, for leave-one-out; the first such after the cut-off for
    a time split), so a highlighted item is a real hit, not an echo. A what-if sequence only
    loses its trailing held-out events. Otherwise the lists come from the user's items as stored
    now, events another process added since the engine read the log included.
    """
    sequence = profile = None
    if query.load_sequence:
        sequence = events_from_frame(engine.user_history(query.user)).read_all()
        profile = profile_line(engine.user_profile(query.user), sequence, engine.time_kind())
    history = list(query.history) if query.history is not None else None

    def recommend(run):
        if run is None:
            return []
        return engine.recommend(run, query.user, k=query.k, diversity=query.diversity,
                                exclude_seen=query.exclude_seen, history=history)

    try:
        held = engine.held_out(query.user, query.run)
        if query.before_held_out and held is not None:
            history = held.before if history is None else before_item(history, held.item)
        elif history is None and sequence is not None:
            history = interactions(sequence)  # as stored now, dislikes left out, as in the service
        elif history is None:
            history = engine.user_items(query.user)
        interests = engine.interests(query.run, query.user, history=history) if query.run is not None else []
        lists = recommend(query.run), recommend(query.compare_run)
    except Exception as exc:  # noqa: BLE001 - a run that cannot serve must not hide the user's sequence
        return ExploreAnswer(query, sequence, [], [], [], None, exc, profile=profile)
    steps_seen = len(held.before) if held is not None and query.history is None else None
    return ExploreAnswer(query, sequence, interests, *lists, held.item if held else None, None,
                         held, steps_seen, profile)


def before_item(items: list[str], item: str) -> list[str]:
    """``items`` without their trailing events on ``item`` (a view, cart and purchase of it)."""
    end = len(items)
    while end and items[end - 1] == item:
        end -= 1
    return items[:end]


def prepare_workspace(engine) -> tuple[int, list[str]]:
    """The slow first reads, off the GUI thread: the user directory (then cached by the engine)
    and every category, so each gets its own colour before any pane paints."""
    return engine.user_count(None), [str(name) for name in engine.sequence_data().category_names[1:]]


def item_view(engine, facts: ItemFacts) -> tuple[ItemFacts, list[tuple[ItemFacts, int]], list[tuple[ItemFacts, float]]]:
    """An item's facts, its most common successors (pairs seen at least ``LEAST_PAIRS`` times)
    and the items most similar to it by text
    (empty until the catalogue's text is embedded); runs in a worker."""
    followers = [(_facts(row), int(row.count)) for row in engine.next_items(facts.item, n=NEXT_ITEMS)
                 if row.count >= LEAST_PAIRS]
    similar = [(_facts(row), float(row.similarity)) for row in engine.similar_items(facts.item, n=NEXT_ITEMS)]
    return facts, followers, similar


def _facts(row) -> ItemFacts:
    return ItemFacts(str(row.item), row.title or str(row.item), row.categories)


def load_text_search(engine) -> None:
    """After the job process has embedded the catalogue (``core.jobs.embed_item_text``): its vectors
    and the language model, loaded in this process, where a search's words are embedded; runs in a
    worker. A catalogue without any text leaves the model unloaded: nothing could be found by meaning,
    and loading it (its libraries, a few hundred thousand objects) held the window 0.3-1.7 s."""
    from core.text import load_encoder

    if engine.text_index(reread=True) is not None:
        load_encoder(engine.text_model)
