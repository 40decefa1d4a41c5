"""The Help menu: keyboard shortcuts, a short guide, the welcome tour and About.

The shortcuts list is read from the window's own actions, so it can never drift from what the
keys really do; About names the versions and the device the engine would train on.
"""

from __future__ import annotations

import platform

from PySide6 import __version__ as pyside_version
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox

import core

GUIDE = """<h3>From a log to recommendations, in four steps</h3>
<ol>
<li><b>Data</b>: File &gt; Import CSV (Ctrl+I) reads a behaviour log (a CSV or Parquet file, a folder
of Parquet files, or a query on a database): one row per event, with a user,
an item and a time (optionally an event type and a value such as a rating), plus optional item
and user files. Rows that cannot be read are skipped and listed, never guessed.</li>
<li><b>Train</b>: choose a preset; the estimate says how long it takes. The chart shows how well
the model predicts held-out next events, against the popularity baseline it has to beat.</li>
<li><b>Explore</b>: pick a shopper to see their history, the ranked recommendations and the reasons
for each. Edit the history (what-if) to see what moves.</li>
<li><b>Evaluate</b>: compare finished runs on the same split; the significance test says whether
a difference is real. File &gt; Export recommendations (Ctrl+E) writes them for your shop.</li>
</ol>"""


def build_help_menu(window: QMainWindow, show_welcome) -> None:
    """Add Help to ``window``'s menu bar; ``show_welcome`` reopens the welcome dialog."""
    menu = window.menuBar().addMenu("&Help")
    menu.setToolTipsVisible(True)
    entries = (
        ("&Keyboard shortcuts", QKeySequence(QKeySequence.StandardKey.HelpContents), "Every shortcut of the studio",
         lambda: _message(window, "Keyboard shortcuts", shortcuts_text(window), "shortcutsDialog")),
        ("Short &guide", None, "The four steps from a behaviour log to recommendations",
         lambda: _message(window, "Short guide", GUIDE, "guideDialog")),
        ("&Welcome and tour", None, "Open the welcome screen with its tour of the pages", show_welcome),
        ("&About NextPick Studio", None, "Version, PyTorch and the device models train on",
         lambda: _message(window, "About NextPick Studio", about_text(window), "aboutDialog")),
    )
    for text, shortcut, tip, slot in entries:
        action = QAction(text, window)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _=False, run=slot: run())
        menu.addAction(action)


def shortcuts_text(window: QMainWindow) -> str:
    """An HTML table of every action with a shortcut, by menu."""
    rows = []
    for menu_action in window.menuBar().actions():
        for action in menu_action.menu().actions():
            key = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if key:
                rows.append(f"<tr><td>{action.text().replace('&', '').rstrip('…')}</td><td><b>{key}</b></td></tr>")
    return "<table cellspacing='6'>" + "".join(rows) + "</table>"


def about_text(window: QMainWindow) -> str:
    """Versions and the device; torch is loaded by then (the engine loads it when a workspace opens)."""
    import torch

    from core.training import device_name, resolve_device

    return (f"<h3>NextPick Studio {core.__version__}</h3>"
            "<p>Sequence-aware recommendations from a shop's behaviour log, on your own computer.</p>"
            f"<p>PyTorch {torch.__version__} · PySide6 {pyside_version} · Python {platform.python_version()}<br>"
            f"Models train on: {device_name(resolve_device('auto'))}</p>")


def _message(window: QMainWindow, title: str, html: str, name: str) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.NoIcon, title, html, QMessageBox.StandardButton.Ok, window)
    box.setObjectName(name)
    box.open()
    return box
