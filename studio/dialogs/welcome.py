"""The first-launch welcome: three ways in (the demo, a CSV, a workspace) and a tour of the pages.

It opens once, on a first launch, instead of building the demo shop unasked; Help > Welcome and
tour opens it again. The choices call the main window's own actions, so a choice made here does
exactly what the same menu item does.
"""

from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio import RESOURCES_DIR

TOUR = (  # (page, what it is for): the order an analyst works in
    ("Data", "Import a behaviour log (and item and user files) and see what it holds: users, items, "
             "activity over time, the long tail, and notes on what may mislead a model."),
    ("Train", "Pick a preset and train a sequence model; its curves are drawn live against the "
              "popularity baseline. Runs are kept, resumable, and one of them is the active model."),
    ("Explore", "Choose a shopper: their history, what the model recommends next and why, their "
                "interests, and what-if edits that show how recommendations move."),
    ("Evaluate", "Compare runs on held-out behaviour: accuracy, coverage and novelty per segment of "
                 "users, with a significance test between two runs."),
)


class WelcomeDialog(QDialog):
    """Open the demo, import a CSV or open a workspace; each button runs the window's action."""

    def __init__(self, open_demo: Callable[[], None], import_csv: Callable[[], None],
                 open_workspace: Callable[[], None], parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomeDialog")
        self.setWindowTitle("Welcome to NextPick Studio")
        heading = QLabel("Welcome to NextPick Studio")
        heading.setProperty("role", "heading")
        intro = QLabel("Turn your shop's behaviour log into per-shopper recommendations of what comes next. "
                       "Everything stays on this computer, in one workspace file.")
        intro.setWordWrap(True)
        self.demo_button = self._choice("Open the demo shop", "A ready shop of 3,000 shoppers to try every page on",
                                        open_demo, primary=True)
        self.import_button = self._choice("Import a CSV…", "Start a workspace from your own behaviour log",
                                          import_csv)
        self.open_button = self._choice("Open a workspace…", "Continue with a workspace file you already have",
                                        open_workspace)
        choices = QHBoxLayout()
        for button in (self.demo_button, self.import_button, self.open_button):
            choices.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(heading)
        layout.addWidget(intro)
        layout.addLayout(choices)
        layout.addWidget(self._tour())
        self.resize(720, 0)

    def _choice(self, text: str, tip: str, action: Callable[[], None], primary: bool = False) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.setMinimumHeight(40)
        if primary:
            button.setProperty("role", "primary")
            button.setDefault(True)
        button.clicked.connect(self.accept)
        button.clicked.connect(lambda: action())
        return button

    @staticmethod
    def _tour() -> QFrame:
        frame = QFrame()
        frame.setProperty("role", "card")
        grid = QGridLayout(frame)
        grid.setContentsMargins(14, 12, 14, 12)
        grid.setHorizontalSpacing(12)
        title = QLabel("A short tour: the four pages, left to right in the sidebar")
        title.setProperty("role", "figureCaption")
        grid.addWidget(title, 0, 0, 1, 3)
        for row, (page, text) in enumerate(TOUR, start=1):
            icon = QLabel()
            icon.setPixmap(QIcon(str(RESOURCES_DIR / "icons" / f"{page.lower()}.svg")).pixmap(QSize(22, 22)))
            name = QLabel(f"<b>{page}</b> <span style='color:#64748b'>Ctrl+{row}</span>")
            words = QLabel(text)
            words.setWordWrap(True)
            grid.addWidget(icon, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(name, row, 1, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(words, row, 2)
        grid.setColumnStretch(2, 1)
        return frame
