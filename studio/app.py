"""``nextpick-studio``: start the desktop app.

    nextpick-studio                    # the last workspace, or the demo shop on a first launch
    nextpick-studio shop.sqlite        # a given workspace
    nextpick-studio --demo             # the built-in demo shop
    xvfb-run -a nextpick-studio --screenshots shots/   # save a PNG of every page, then quit
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from studio import RESOURCES_DIR
from studio.settings import APPLICATION, ORGANISATION, StudioSettings


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nextpick-studio", description="NextPick Studio desktop app")
    parser.add_argument("workspace", nargs="?", type=Path, help="workspace file to open")
    parser.add_argument("--demo", action="store_true", help="open the built-in demo shop")
    parser.add_argument("--screenshots", type=Path, metavar="FOLDER",
                        help="train a tiny model on the demo shop (or WORKSPACE), save every page as "
                             "FOLDER/<page>.png, then quit")
    return parser.parse_args(argv)


def create_application() -> QApplication:
    """The QApplication with the studio's names, icon and style sheet."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("NextPick Studio")
    app.setWindowIcon(QIcon(str(RESOURCES_DIR / "icons" / "app.svg")))
    app.setStyle("Fusion")
    app.setStyleSheet((RESOURCES_DIR / "style.qss").read_text(encoding="utf-8"))
    return app


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    app = create_application()
    from studio.context import StudioContext
    from studio.main_window import MainWindow

    settings = StudioSettings()
    window = MainWindow(StudioContext(), settings)
    window.show()
    if args.screenshots is not None:
        from studio.screenshots import ScreenshotTour

        tour = ScreenshotTour(window, args.screenshots, args.workspace)
        tour.done.connect(app.exit)
        tour.start()
    elif args.workspace is not None:
        window.open_workspace(args.workspace)
    elif args.demo or settings.last_workspace is None or not settings.last_workspace.exists():
        window.open_demo()
    else:
        window.open_workspace(settings.last_workspace)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
