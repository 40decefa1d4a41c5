"""``nextpick-studio``: start the desktop app.

    nextpick-studio                    # the last workspace, or a welcome screen on a first launch
    nextpick-studio shop.sqlite        # a given workspace
    nextpick-studio --demo             # the built-in demo shop
    xvfb-run -a nextpick-studio --screenshots shots/   # save a PNG of every page, then quit

Nothing at this module's top imports Qt: the job process (``core.jobs``, started with
multiprocessing's spawn method) runs the launching script's imports again, and must not load Qt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from studio.settings import StudioSettings


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
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from studio import RESOURCES_DIR
    from studio.settings import APPLICATION, ORGANISATION

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("NextPick Studio")
    app.setWindowIcon(QIcon(str(RESOURCES_DIR / "icons" / "app.svg")))
    app.setStyle("Fusion")
    app.setStyleSheet((RESOURCES_DIR / "style.qss").read_text(encoding="utf-8"))
    return app


def main(argv: Optional[Sequence[str]] = None) -> int:
    from PySide6.QtCore import QTimer

    from studio.context import StudioContext
    from studio.main_window import MainWindow
    from studio.settings import StudioSettings

    args = parse_args(sys.argv[1:] if argv is None else argv)
    app = create_application()

    if args.screenshots is not None:
        return _run_screenshot_tour(app, args.screenshots, args.workspace)
    settings = StudioSettings()
    window = MainWindow(StudioContext(), settings)
    window.show()  # before the workspace opens: that runs in a worker, the window is up at once
    QTimer.singleShot(0, window.context.jobs.warm_up)  # the job process imports torch while the window paints
    start = choose_start(args, settings)
    if is_first_launch(args, settings):
        window.show_welcome()
    elif start is None:
        window.open_demo()
    else:
        window.open_workspace(start)
    return app.exec()


def choose_start(args: argparse.Namespace, settings: StudioSettings) -> Optional[Path]:
    """The workspace to open at launch; None means the built-in demo shop."""
    if args.workspace is not None:
        return args.workspace
    last = settings.last_workspace
    if args.demo or last is None or not last.exists():
        return None
    return last


def is_first_launch(args: argparse.Namespace, settings: StudioSettings) -> bool:
    """No workspace named and none ever opened: welcome the user instead of choosing for them."""
    return args.workspace is None and not args.demo and settings.last_workspace is None


def _run_screenshot_tour(app: QApplication, folder: Path, workspace: Optional[Path]) -> int:
    """The tour runs with throw-away settings, so it never changes the user's last workspace."""
    import tempfile

    from PySide6.QtCore import QSettings

    from studio.context import StudioContext
    from studio.main_window import MainWindow
    from studio.screenshots import ScreenshotTour
    from studio.settings import StudioSettings

    with tempfile.TemporaryDirectory(prefix="nextpick-settings-") as scratch:
        settings = StudioSettings(QSettings(str(Path(scratch) / "studio.ini"), QSettings.Format.IniFormat))
        window = MainWindow(StudioContext(), settings)
        window.show()
        tour = ScreenshotTour(window, folder, workspace)
        tour.done.connect(app.exit)
        tour.start()
        return app.exec()


if __name__ == "__main__":
    sys.exit(main())
