"""The main window: a sidebar of pages, the File menu, the status bar and dropped files.

The window owns the choice of workspace: it opens one in a worker, hands the engine to the
shared ``StudioContext`` and remembers it in the settings. Everything a page shows follows from
the context's signals, so the window never refreshes a page itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from PySide6.QtCore import QSize
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from core.store import default_workspace_path
from studio import RESOURCES_DIR
from studio.context import StudioContext
from studio.dialogs.errors import show_error
from studio.help import build_help_menu
from studio.pages import StudioPage
from studio.pages.data import DataPage
from studio.pages.evaluate import EvaluatePage
from studio.pages.explore import ExplorePage
from studio.pages.train import TrainPage
from studio.service_watch import ServiceWatcher
from studio.settings import StudioSettings
from studio.widgets.status_bar import StudioStatusBar
from studio.workers import Job
from studio.workspace_opening import DEMO_JOB, demo_workspace_path, open_engine, prepare_and_open_demo, read_status

if TYPE_CHECKING:  # core.demo loads the importer: the job process needs it, the window does not
    from core.demo import DemoConfig

PAGE_CLASSES: Sequence[type[StudioPage]] = (DataPage, TrainPage, ExplorePage, EvaluatePage)
IMPORTABLE_SUFFIXES = (".csv", ".tsv", ".dat", ".data", ".parquet", ".pq", ".gz", ".zip")
WORKSPACE_FILTER = "NextPick workspace (*.sqlite);;All files (*)"


class MainWindow(QMainWindow):
    """Pages Data / Train / Explore / Evaluate over one ``StudioContext``."""

    def __init__(
        self,
        context: StudioContext,
        settings: StudioSettings,
        page_classes: Sequence[type[StudioPage]] = PAGE_CLASSES,
    ) -> None:
        super().__init__()
        self.context = context
        self.settings = settings
        self.setWindowTitle("NextPick Studio")
        self.setWindowIcon(QIcon(str(RESOURCES_DIR / "icons" / "app.svg")))
        self.setAcceptDrops(True)
        self.pages: list[StudioPage] = [cls(context) for cls in page_classes]
        self._build_central()
        self._build_menus()
        self.status = StudioStatusBar()
        self.setStatusBar(self.status)
        context.workspace_changed.connect(self._on_workspace_changed)
        context.data_changed.connect(self._refresh_status)
        context.runs_changed.connect(self._refresh_status)
        context.active_run_changed.connect(lambda _run: self._refresh_status())
        self.service_watcher = ServiceWatcher(self)
        self.service_watcher.changed.connect(self._show_service)
        if settings.geometry is not None:
            self.restoreGeometry(settings.geometry)
        else:
            self.resize(1280, 800)

    # -- layout ---------------------------------------------------------------------------

    def _build_central(self) -> None:
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(150)
        self.sidebar.setIconSize(QSize(22, 22))
        self.stack = QStackedWidget()
        for number, page in enumerate(self.pages, start=1):
            item = QListWidgetItem(self._page_icon(page), page.title)
            item.setToolTip(f"{page.tooltip} (Ctrl+{number})")
            self.sidebar.addItem(item)
            self.stack.addWidget(page)
        self.sidebar.currentRowChanged.connect(self._show_page)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.sidebar.setCurrentRow(0)

    @staticmethod
    def _page_icon(page: StudioPage) -> QIcon:
        return QIcon(str(RESOURCES_DIR / "icons" / f"{page.title.lower()}.svg"))

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.new_action = self._action(file_menu, "&New workspace…", QKeySequence.StandardKey.New,
                                       "Create an empty workspace file", self._ask_new_workspace)
        self.open_action = self._action(file_menu, "&Open workspace…", QKeySequence.StandardKey.Open,
                                        "Open a workspace file", self._ask_open_workspace)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.setToolTipsVisible(True)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._action(file_menu, "Open &demo shop", None, "Open the built-in demo data", self.open_demo)
        file_menu.addSeparator()
        self.import_action = self._action(file_menu, "&Import CSV…", QKeySequence("Ctrl+I"),
                                          "Import a behaviour log (and item/user files) into this workspace",
                                          self.open_import_dialog)
        self.export_action = self._action(file_menu, "&Export recommendations…", QKeySequence("Ctrl+E"),
                                          "Write recommendations for all or some users to a CSV file",
                                          self.open_export_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Text model folder…", None, "Read item titles and attributes with another local "
                     "sentence-transformers model (e.g. a multilingual one)", self._ask_text_model)
        self._action(file_menu, "Use the &packaged text model", None,
                     "Read item text with the all-MiniLM-L6-v2 of the [text] extra", lambda: self.set_text_model(None))
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, "Close NextPick Studio", self.close)
        go_menu = self.menuBar().addMenu("&Go")
        for number, page in enumerate(self.pages, start=1):
            self._action(go_menu, page.title, QKeySequence(f"Ctrl+{number}"), page.tooltip,
                         lambda _=False, row=number - 1: self.sidebar.setCurrentRow(row))
        for menu in (file_menu, go_menu):
            menu.setToolTipsVisible(True)
        build_help_menu(self, self.show_welcome)
        self._set_workspace_actions_enabled(False)

    def _action(self, menu: QMenu, text: str, shortcut, tip: str, slot) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    # -- pages ----------------------------------------------------------------------------

    def _show_page(self, row: int) -> None:
        self.stack.setCurrentIndex(row)
        self.pages[row].page_shown()

    def page(self, title: str) -> StudioPage:
        return next(page for page in self.pages if page.title == title)

    def show_page(self, title: str) -> None:
        self.sidebar.setCurrentRow(self.pages.index(self.page(title)))

    # -- workspaces -----------------------------------------------------------------------

    def open_workspace(self, path: Path | str) -> Optional[Job]:
        """Open ``path`` in the background; the current workspace stays until it succeeds."""
        if self._long_job_running():
            return None
        path = Path(path).expanduser().resolve()
        job = self.context.run(open_engine, path, progress=False, cancel=False)
        job.returned.connect(self._use_engine)
        job.errored.connect(lambda exc: show_error(self, exc, "Opening the workspace"))
        self.status.track(job, f"Opening {path.name}…")
        return job

    def open_demo(self, path: Optional[Path] = None, config: Optional[DemoConfig] = None) -> Optional[Job]:
        """Open the demo shop (``config``: the default one), generated in the job process the first time."""
        if self._long_job_running():
            return None
        path = Path(path) if path else demo_workspace_path()
        job = self.context.run(prepare_and_open_demo, self.context.jobs.server, path, config)
        job.name = DEMO_JOB
        job.returned.connect(self._use_engine)
        job.errored.connect(lambda exc: show_error(self, exc, "Opening the demo shop"))
        self.status.track(job, "Preparing the demo shop…")
        return job

    def _long_job_running(self) -> bool:
        """A long job (one that takes a cancel token: an import, training, an evaluation…) works on the
        open workspace: switching under it would pull the workspace away from the job, so say which
        job it is instead."""
        names = list(dict.fromkeys(job.name for job in self.context.jobs.active() if job.can_cancel))
        if not names:
            return False
        box = QMessageBox(QMessageBox.Icon.Information, "A job is still running",
                          f"The {' and the '.join(names)} {'is' if len(names) == 1 else 'are'} still working on "
                          "this workspace. Stop it or let it finish, then open the other workspace.",
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("busyDialog")
        box.open()
        return True

    def _use_engine(self, engine) -> None:
        self.settings.remember_workspace(engine.workspace.path)
        engine.set_text_model(self.settings.text_model)
        self.context.set_engine(engine)

    def _ask_text_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Sentence-transformers model folder",
                                                  self.settings.text_model or str(Path.home()))
        if folder:
            self.set_text_model(folder)

    def set_text_model(self, folder: Optional[str]) -> None:
        """Read item text with the model in ``folder`` (None = packaged) from now on; pages re-read."""
        self.settings.text_model = folder
        engine = self.context.engine
        if engine is not None:
            engine.set_text_model(folder)
            self.context.announce_data_changed()

    def _ask_new_workspace(self) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self, "New workspace", str(default_workspace_path().parent / "shop.sqlite"), WORKSPACE_FILTER,
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if not name:
            return
        path = Path(name).with_suffix(".sqlite") if not Path(name).suffix else Path(name)
        if path.exists():
            QMessageBox.information(self, "New workspace", f"{path} already exists. Use File > Open workspace to open it, "
                                    "or choose another name for a new workspace.")
            return
        self.open_workspace(path)

    def _ask_open_workspace(self) -> None:
        start = self.settings.last_workspace or default_workspace_path()
        name, _ = QFileDialog.getOpenFileName(self, "Open workspace", str(start.parent), WORKSPACE_FILTER)
        if name:
            self.open_workspace(name)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_workspaces()
        for path in recent:
            action = self.recent_menu.addAction(path.name)
            action.setToolTip(str(path))
            action.triggered.connect(lambda _=False, p=path: self.open_workspace(p))
        if not recent:
            self.recent_menu.addAction("(no recent workspaces)").setEnabled(False)

    # -- dialogs --------------------------------------------------------------------------

    def show_welcome(self):
        """The welcome dialog: the demo, a CSV or a workspace, and a tour of the pages."""
        from studio.dialogs.welcome import WelcomeDialog

        dialog = WelcomeDialog(lambda: self.open_demo(), self.import_csv, self._ask_open_workspace, self)
        dialog.open()
        return dialog

    def import_csv(self) -> None:
        """The import dialog; with no workspace open, over the default workspace, opened first."""
        if self.context.engine is not None:
            self.open_import_dialog()
            return
        job = self.open_workspace(default_workspace_path())
        if job is not None:
            job.returned.connect(lambda _engine: self.open_import_dialog())

    def open_import_dialog(self, events_path: Optional[Path] = None):
        from studio.dialogs.import_dialog import ImportDialog

        dialog = ImportDialog(self.context, self, events_path=events_path)
        dialog.open()
        return dialog

    def open_export_dialog(self):
        from studio.dialogs.export_dialog import ExportDialog

        user = self.page("Explore").user  # the user on screen is the likely one to export
        dialog = ExportDialog(self.context, self, selected_users=[user] if user else [])
        dialog.open()
        return dialog

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.import_action.isEnabled() and _dropped_table(event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = _dropped_table(event.mimeData().urls())
        if path is not None:
            event.acceptProposedAction()
            self.open_import_dialog(path)

    # -- status ---------------------------------------------------------------------------

    def _on_workspace_changed(self) -> None:
        engine = self.context.engine
        self._set_workspace_actions_enabled(engine is not None)
        self.status.show_workspace(str(engine.workspace.path) if engine else None, self.context.read_only)
        read_only = " (read-only)" if self.context.read_only else ""
        self.setWindowTitle(f"{engine.workspace.path.name}{read_only} — NextPick Studio" if engine else "NextPick Studio")
        self.service_watcher.watch(engine.workspace.path if engine else None)
        self._refresh_status()

    def _set_workspace_actions_enabled(self, enabled: bool) -> None:
        self.import_action.setEnabled(enabled and not self.context.read_only)
        self.export_action.setEnabled(enabled)

    def _refresh_status(self) -> None:
        engine = self.context.engine
        if engine is None:
            self.status.show_contents(None)
            return
        job = self.context.run(read_status, engine, progress=False, cancel=False)
        job.returned.connect(self.status.show_contents)

    def _show_service(self, status) -> None:
        """A service's events are new rows of this workspace: the counts and the run's lag follow them."""
        self.status.show_service(status)
        if status is not None and status.events_received:
            self._refresh_status()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.geometry = self.saveGeometry()
        self.settings.sync()
        self.context.jobs.cancel_all()
        self.context.jobs.wait_all(timeout_s=10.0)
        self.context.empty_trash()
        if self.context.engine is not None:
            self.context.engine.workspace.close()
        super().closeEvent(event)


def _dropped_table(urls) -> Optional[Path]:
    """The first dropped local file that looks like a table the importer reads."""
    for url in urls:
        path = Path(url.toLocalFile()) if url.isLocalFile() else None
        if path is not None and path.suffix.lower() in IMPORTABLE_SUFFIXES and path.is_file():
            return path
    return None
