"""The Explore page: one user's behaviour, predicted interests and recommendations, side by side.

Every change (user, model, K, diversity, exclude-seen, a what-if edit) becomes one
``ExploreQuery``; ``answer_query`` (explore_queries.py) asks the engine everything the panes
need in one worker call, and only the answer to the latest query is painted. While one query runs, newer ones wait in a
single slot (latest wins), so dragging the diversity slider never queues a backlog.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from studio.context import StudioContext
from studio.dialogs.errors import describe_error, show_error
from studio.pages import StudioPage
from studio.pages.explore_queries import (ExploreAnswer, ExploreQuery, answer_query, facts_known, held_out_note,
                                         item_view, prepare_workspace)
from studio.pages.explore_text import ItemTextReader
from studio.pages.explore_what_if import WhatIfEdit
from studio.widgets import palette
from studio.widgets.interest_bars import InterestBars
from studio.widgets.item_details import ItemDetails, ItemFacts
from studio.widgets.item_search import ItemSearchField
from studio.widgets.ranked_list import RankedList
from studio.widgets.recommend_controls import RecommendControls
from studio.widgets.run_table import read_serving_runs
from studio.widgets.sequence_timeline import SequenceTimeline
from studio.widgets.tables import group_box, hint_label
from studio.widgets.timeline_events import UserSequence, interactions
from studio.widgets.user_list import UserList
from studio.widgets.reasons import reasons_in_words
from studio.widgets.what_if import WhatIfBar

NO_MODEL_TEXT = "No trained model yet — go to Train and train one (a baseline takes seconds)."


class ExplorePage(StudioPage):
    title = "Explore"
    tooltip = "Browse users: their behaviour, predicted interests and ranked recommendations, with why"

    def __init__(self, context: StudioContext, parent: Optional[QWidget] = None) -> None:
        super().__init__(context, parent)
        self.user: Optional[str] = None
        self.sequence = UserSequence()
        self.edit = WhatIfEdit()
        self.latest: Optional[ExploreQuery] = None
        self.answer: Optional[ExploreAnswer] = None
        self._waiting: Optional[ExploreQuery] = None
        self._running = False
        self._failed_runs: Optional[tuple] = None
        self._item_wanted: Optional[ItemFacts] = None
        self._panes_sized = False
        self._details_follow_user = False  # the next sequence shows its latest item in the details pane
        self._stored_interests: Optional[tuple[Optional[int], list]] = None  # (run, interests) without a what-if
        self.profile = ""  # the line about the user beside their sequence
        self._unpainted: set[str] = set()  # "sequence", "answer": arrived while another page was shown
        self._models_job = None  # the latest read of the runs for the model boxes
        self.users = UserList(run_job=context.run)
        self.users.setToolTip("Every user of the workspace; search by id, sort by activity or last seen")
        self.lay_out_side_by_side(self.users, self._build_panes(), (165, 1100))
        self.users.user_selected.connect(self.show_user)
        context.workspace_changed.connect(self.refresh)
        context.data_changed.connect(self.refresh)
        context.events_added.connect(self._on_events_added)
        context.runs_changed.connect(self._fill_models)
        context.active_run_changed.connect(lambda _run: self._fill_models(prefer_active=True))
        self.refresh()

    # -- layout ---------------------------------------------------------------------------

    PANE_SHARES = (0.56, 0.44)  # sequence (three columns), recommendations (titles wrap)
    LOWER_SHARES = (0.32, 0.68)  # interests, item details (its facts and two lists)
    LOWER_HEIGHT = 0.34  # of the page's height, for the interests and the item details

    def showEvent(self, event) -> None:
        """Share the panes' width out once the page has its real width (sizes set before that are
        squeezed to the panes' minimums, which left the sequence's Item column a few pixels wide),
        and paint what arrived while another page was in front."""
        super().showEvent(event)
        if not self._panes_sized:
            self._panes_sized = True
            for splitter, shares in ((self.panes, self.PANE_SHARES), (self.lower, self.LOWER_SHARES),
                                     (self.vertical, (1 - self.LOWER_HEIGHT, self.LOWER_HEIGHT))):
                total = sum(splitter.sizes())
                splitter.setSizes([int(total * share) for share in shares])
        self._paint_if_seen()

    def _build_panes(self) -> QWidget:
        self.heading = QLabel("Open a workspace to explore its users.")
        self.heading.setProperty("role", "heading")
        self.profile_label = hint_label("")
        self.profile_label.setToolTip("The user's imported profile, and what their events say: how many, when, "
                                      "and their values (such as ratings)")
        self.timeline = SequenceTimeline()
        self.what_if = WhatIfBar()
        self.interest_bars = InterestBars()
        self.ranked = RankedList()
        self.compared = RankedList()
        self.details = ItemDetails()
        self.item_text = ItemTextReader(self.context, self.details, self)
        self.item_text.ready.connect(self._on_item_text_read)
        self.item_search = ItemSearchField("Find an item… (type words from its title, or what it is)")
        self.item_search.setToolTip("Search the catalogue and pick an item to see its details. Titles holding the "
                                    "words come first; with the [text] extra, then the items that mean most nearly "
                                    "what you typed")
        sequence_box = group_box("Behaviour sequence", self.what_if, self.timeline)
        interests_box = group_box("Predicted next interests", self.interest_bars)
        self.lists = QSplitter(Qt.Orientation.Horizontal)
        self.lists.addWidget(self.ranked)
        self.lists.addWidget(self.compared)
        self.compare_note = hint_label()
        self.compare_note.hide()
        self.controls = RecommendControls()
        ranked_box = group_box("Recommendations", self.controls, self.compare_note, self.lists)
        details_box = group_box("Item details", self.item_search, self.details)
        # Two columns on top (sequence, recommendations), the interests beside the item details
        # below: three columns side by side left each a third of a laptop screen, and the item
        # titles a few characters of it.
        panes = self.panes = QSplitter(Qt.Orientation.Horizontal)
        for box in (sequence_box, ranked_box):
            panes.addWidget(box)
        panes.setStretchFactor(0, 1)
        panes.setStretchFactor(1, 1)
        self.lower = QSplitter(Qt.Orientation.Horizontal)
        self.lower.addWidget(interests_box)
        self.lower.addWidget(details_box)
        self.lower.setStretchFactor(1, 1)
        vertical = self.vertical = QSplitter(Qt.Orientation.Vertical)
        vertical.addWidget(panes)
        vertical.addWidget(self.lower)
        vertical.setStretchFactor(0, 1)
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.heading)
        layout.addWidget(self.item_text.note)
        layout.addWidget(self.profile_label)
        layout.addWidget(vertical, 1)
        for ranked in (self.ranked, self.compared):
            ranked.describe = lambda recs: reasons_in_words(recs, self.effective_sequence(), self.timeline.time_kind)
        self.what_if.add_item.connect(self._on_add_item)
        self.what_if.drop_last.connect(self._on_drop_last)
        self.what_if.reset.connect(self._on_reset_what_if)
        for source in (self.timeline, self.ranked, self.compared, self.details):
            source.item_clicked.connect(self.show_item)
        self.item_search.picked.connect(lambda row: self.show_item(row.item, ItemFacts(row.item, row.title,
                                                                                       row.categories)))
        self.controls.changed.connect(lambda: self.update_panes())
        self.controls.compare_toggled.connect(self._on_compare_toggled)
        self.compared.hide()
        return panel

    # -- following the workspace ------------------------------------------------------------

    @property
    def engine(self):
        return self.context.engine

    def refresh(self) -> None:
        self.user, self.answer, self.latest, self._failed_runs = None, None, None, None
        self._unpainted.clear()
        self._reset_what_if()
        self.details.clear()
        self.item_text.cancel()
        engine = self.engine
        for search in (self.what_if, self.item_search):
            if engine is None:
                search.set_search(None)
            else:
                search.set_search(engine.search_by_words, engine.search_by_meaning, self.context.run)
        self._fill_models()
        self.users.set_engine(None)
        if engine is None:
            self.heading.setText("Open a workspace (File ▸ Open) or import a CSV to explore its users.")
            self._paint_empty("No workspace is open.")
            return
        self.item_text.start(engine)
        self.heading.setText("Reading the users…")
        job = self.context.run(engine.prepared, progress=False, cancel=False)
        job.returned.connect(lambda cached: self._read_users(engine, cached))
        job.errored.connect(lambda exc: show_error(self, exc, "Reading the users"))

    def _read_users(self, engine, cached: bool) -> None:
        """Map the cached sequences and user directory here; a workspace imported elsewhere (the CLI) has
        them built first in the job process, whose scan of every event would hold this process's
        interpreter for seconds at a time. A read-only one cannot keep them: it is read here."""
        if engine is not self.engine:
            return
        if cached or engine.workspace.read_only:
            job = self.context.run(prepare_workspace, engine, progress=False, cancel=False)
            job.returned.connect(lambda result: self._on_prepared(engine, *result))
        else:
            from core.engine import Engine

            self.heading.setText("Preparing the users and their sequences (once per import)…")
            job = self.context.run_in_process(Engine.prepare, name="workspace preparation", progress=False,
                                              cancel=False)
            job.returned.connect(lambda _none: self._read_users(engine, True))
        job.errored.connect(lambda exc: show_error(self, exc, "Reading the users"))

    def _on_events_added(self) -> None:
        """Events stored by another process (a service, an import in another window): the open user's
        sequence, interests and lists are read again (a what-if edit stays on top)."""
        if self.user is not None:
            self.update_panes(load_sequence=True)

    def _on_prepared(self, engine, users: int, categories: list[str]) -> None:
        if engine is not self.engine:
            return  # another workspace was opened meanwhile
        palette.assign(categories)
        self.users.set_engine(engine)
        if not users:
            self.heading.setText("This workspace has no users yet — import a CSV on the Data page.")
            self._paint_empty("No users yet.")

    def _fill_models(self, prefer_active: bool = False) -> None:
        """Read the runs in a worker (the store's reads held the window's thread on a large
        workspace); the latest read started fills the model boxes."""
        self._models_job = None
        if self.engine is None:
            self._show_models(None, [], None, None, prefer_active)
            return
        job = self._models_job = self.context.run(read_serving_runs, self.engine, progress=False, cancel=False)
        job.returned.connect(lambda result: self._show_models(job, *result, prefer_active))
        job.errored.connect(lambda exc: self.answers_now(job, self._models_job) and show_error(self, exc, "Reading the runs"))

    def _show_models(self, job, every_run: list, active: Optional[int], serving: Optional[int],
                     prefer_active: bool) -> None:
        """The finished runs into the model boxes; a newly picked active model is shown at once."""
        if not self.answers_now(job, self._models_job):
            return
        self.controls.set_runs([run for run in every_run if run.status == "done"], active, prefer_active, serving)
        self.update_panes()

    # -- the selected user -------------------------------------------------------------------

    def show_user(self, user: str) -> None:
        self.user = user
        self._reset_what_if()
        self._details_follow_user = True
        self._stored_interests = None
        self.details.clear()
        self.heading.setText(f"User {user}")
        self.profile_label.setText("")
        self.update_panes(load_sequence=True)

    def current_query(self, load_sequence: bool = False) -> Optional[ExploreQuery]:
        if self.engine is None or self.user is None:
            return None
        history = tuple(interactions(self.effective_sequence())) if self.edit.active else None
        controls = self.controls
        return ExploreQuery(self.user, controls.run, controls.compare_run, controls.k, controls.diversity_weight,
                            controls.exclude, history, load_sequence, before_held_out=controls.comparing)

    def update_panes(self, load_sequence: bool = False) -> None:
        """Ask for the panes' content for the current controls; only the latest answer paints."""
        query = self.current_query(load_sequence)
        if query is None:
            return
        if self.latest is not None and self.latest.load_sequence and self._running:
            query = replace(query, load_sequence=True)  # the pending sequence read must not be lost
        self.latest = query
        if self._running:
            self._waiting = query
            return
        self._start(query)

    def _start(self, query: ExploreQuery) -> None:
        self._running = True
        job = self.context.run(answer_query, self.engine, query, progress=False, cancel=False)
        job.returned.connect(self._on_answer)
        job.errored.connect(lambda exc: show_error(self, exc, "Recommending"))
        job.finished.connect(self._on_query_ended)

    def _on_query_ended(self) -> None:
        self._running = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None and self.engine is not None:
            self._start(waiting)

    def _on_answer(self, answer: ExploreAnswer) -> None:
        if answer.sequence is not None and answer.query.user == self.user:
            self.sequence = answer.sequence
            self.profile = answer.profile or ""
            self._unpainted.add("sequence")
            if self.sequence and self._details_follow_user:
                self._details_follow_user = False
                self.show_item(self.sequence[-1].item)  # what usually follows the user's latest item
        if answer.query.user == self.user and answer.query.history is None and answer.error is None:
            self._stored_interests = (answer.query.run, answer.interests)
        if answer.query == self.latest:  # else a newer question is on its way: painting this one would flicker
            self.answer = answer
            self._unpainted.add("answer")
            if answer.query.history is not None:
                self._unpainted.add("sequence")  # the what-if line names what the edit moved
        self._paint_if_seen()

    def _paint_if_seen(self) -> None:
        """Paint what arrived, unless another page is in front: then ``showEvent`` paints it.
        Filling the panes of a page nobody sees (a long sequence's table sized row by row) took the
        window 40-60 ms just as a training run or an import started on the page in front."""
        if self.isHidden():
            return
        if "sequence" in self._unpainted:
            self._paint_sequence()
        if "answer" in self._unpainted and self.answer is not None:
            self._paint_answer(self.answer)
        self._unpainted.clear()

    def _paint_answer(self, answer: ExploreAnswer) -> None:
        no_model = NO_MODEL_TEXT if answer.query.run is None else None
        if answer.error is not None:
            no_model = f"This model could not answer: {describe_error(answer.error).what} Pick another run."
            self._report_failure(answer)
        self.interest_bars.set_interests(answer.interests, no_model or "This model predicts no interests.")
        # Outside compare mode the held-out item is part of the sequence the lists come from: no hit to show.
        held_out = answer.held_out if answer.query.before_held_out else None
        self.ranked.set_recommendations(answer.recommendations, held_out, no_model or "Nothing to recommend.")
        self.ranked.title.setText(self.controls.model_box.currentText())
        self.ranked.title.setVisible(answer.query.compare_run is not None)
        self.compared.set_recommendations(answer.compared, held_out)
        self.compare_note.setText(self._compare_note_text(answer))
        self.timeline.mark_held_out(held_out, answer.steps_before_held_out if held_out else None)
        self.compared.title.setText(self.controls.compare_model_box.currentText())
        self.compared.title.setVisible(True)

    def _report_failure(self, answer: ExploreAnswer) -> None:
        """One dialog per failing choice of runs, not one per user clicked."""
        runs = (answer.query.run, answer.query.compare_run)
        if runs != self._failed_runs:
            self._failed_runs = runs
            show_error(self, answer.error, "Recommending")

    def _compare_note_text(self, answer: ExploreAnswer) -> str:
        held = self.sequence.latest.get(answer.held_out) if answer.held_out is not None else None
        return held_out_note(answer, held.title if held is not None else answer.held_out)

    def _paint_empty(self, text: str) -> None:
        self.sequence = UserSequence()
        self.timeline.set_events([], text)
        self.interest_bars.set_interests([], text)
        self.ranked.set_recommendations([], None, text)
        self.compared.set_recommendations([], None, text)

    def _on_compare_toggled(self, on: bool) -> None:
        self.compared.setVisible(on)
        self.compare_note.setVisible(on)
        if on:
            half = self.lists.width() // 2
            self.lists.setSizes([half, half])

    # -- what-if ----------------------------------------------------------------------------

    def effective_sequence(self) -> UserSequence:
        return self.edit.applied_to(self.sequence)

    def _paint_sequence(self) -> None:
        self.timeline.time_kind = self.users.model.time_kind
        self.timeline.set_events(self.effective_sequence())
        self.profile_label.setText(self.profile if self.user is not None else "")
        self.what_if.state.setText(self.edit.describe(len(self.sequence), self.answer, self._stored_interests))

    def _on_add_item(self, row: Any) -> None:
        self.edit.add(row)
        self._what_if_changed()

    def _on_drop_last(self, count: int) -> None:
        self.edit.drop_last(count, len(self.sequence))
        self._what_if_changed()

    def _on_reset_what_if(self) -> None:
        self._reset_what_if()
        self._what_if_changed()

    def _reset_what_if(self) -> None:
        self.edit = WhatIfEdit()

    def _what_if_changed(self) -> None:
        self._paint_sequence()
        self.update_panes()

    # -- item text (the language model) ---------------------------------------------------

    def _on_item_text_read(self) -> None:
        if self._item_wanted is not None:
            self.show_item(self._item_wanted.item)  # now with its similar items

    # -- item details -----------------------------------------------------------------------

    def show_item(self, item: str, facts: Optional[ItemFacts] = None) -> None:
        """Details of ``item`` (``facts``: its title and categories when the caller has them) in the
        details pane; the latest item asked for wins."""
        if self.engine is None:
            return
        facts = facts or self._facts_of(item)
        self._item_wanted = facts
        job = self.context.run(item_view, self.engine, facts, progress=False, cancel=False)
        job.returned.connect(self._on_item_view)
        job.errored.connect(lambda exc: show_error(self, exc, "Reading the item"))

    def _on_item_view(self, result: tuple[ItemFacts, list]) -> None:
        if result[0] is self._item_wanted:
            self.details.show_item(*result)

    def _facts_of(self, item: str) -> ItemFacts:
        """What the panes already know about ``item``; the details pane needs no extra query."""
        answer = self.answer
        shown = [*(answer.recommendations if answer else []), *(answer.compared if answer else []),
                 *(facts for facts, _ in [*self.details.followers, *self.details.similar])]
        return facts_known(item, self.effective_sequence(), shown)
