"""The Explore page's item text: new or changed items' text embedded in the job process, then the
text search loaded in the window's process, with a note saying how far that is (or, without the
[text] extra, what it would add to the item details)."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QObject, Signal

from studio.context import StudioContext
from studio.dialogs.errors import describe_error
from studio.pages.explore_queries import load_text_search
from studio.widgets.item_details import ItemDetails
from studio.widgets.tables import hint_label


class ItemTextReader(QObject):
    """Reads the open workspace's item text; ``ready`` once items can be searched by meaning and shown
    with the items most similar to them."""

    ready = Signal()

    def __init__(self, context: StudioContext, details: ItemDetails, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.context = context
        self.details = details
        self.note = hint_label()
        self.note.hide()
        self._job = None  # the running item-text job of this workspace

    def start(self, engine) -> None:
        """Embed ``engine``'s new or changed items' text in the job process; without the text extra,
        the details pane says what it would add."""
        from core.jobs import embed_item_text
        from core.text import INSTALL_HINT

        if not engine.text_available():
            self.details.no_text_reason = f"Similar items by text: {INSTALL_HINT}."
            return
        self.details.no_text_reason = ""
        job = self._job = self.context.run_in_process(embed_item_text, name="item-text reading")
        job.progress.connect(self._on_progress)
        job.returned.connect(self._load_text_search)  # bound methods: once deleted, this hears nothing more
        job.errored.connect(self._on_failed)

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def _load_text_search(self, _used: bool) -> None:
        if self.context.engine is None:
            return
        job = self.context.run(load_text_search, self.context.engine, progress=False, cancel=False)
        job.returned.connect(self._on_read)
        job.errored.connect(self._on_failed)

    def _on_progress(self, report) -> None:
        self._show(report.message)

    def _on_failed(self, exc: BaseException) -> None:
        self._show(f"Reading item text failed: {describe_error(exc).what}")

    def _on_read(self, _result=None) -> None:
        self._show("")
        self.ready.emit()

    def _show(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))
