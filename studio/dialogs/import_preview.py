"""One file (or query) of an import as the dialog shows it: what was detected, its first rows,
its roles.

``preview_source`` reads only the first 64 KiB of a CSV file (a Parquet file's schema and first
rows), so re-reading it whenever the user changes the encoding or delimiter is instant; the
preview always shows what the import will read.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.importing import SniffResult
from core.importing.parquet import ParquetSource
from core.importing.packed import packing
from core.importing.sources import Preview
from core.importing.roles import KIND_ROLES, REQUIRED_ROLES
from studio.widgets.tables import hint_label

NO_COLUMN = "(none)"
DELIMITER_NAMES = {",": "comma", "\t": "tab", "|": "pipe", ";": "semicolon"}
ROLE_HELP = {
    "user": "The column that identifies the customer",
    "item": "The column that identifies the product",
    "time": "When the event happened (unix time, a date, or a position in the user's history)",
    "event": "What the user did: view, cart, purchase, rating...",
    "value": "A number that came with the event: rating, price, quantity",
    "time_of_day": "The time of day, where the Time column holds dates alone (an export's order_date beside "
                   "its order_time): 14:05, 14:05:30 or 2:05 PM",
    "title": "The product's display name",
    "categories": "Categories of the product, several separated by |; the first is the main one",
}
KIND_HELP = {
    "events": "The behaviour log: one row per view, purchase or rating",
    "items": "Optional: product titles and categories",
    "users": "Optional: customer attributes (age group, region...) used for cold-start users",
}


class PreviewModel(QAbstractTableModel):
    """The sniffed first rows; header cells show each column's name and role."""

    def __init__(self) -> None:
        super().__init__()
        self.columns: list[str] = []
        self.rows: list[list[str]] = []
        self.roles: dict[str, str] = {}

    def show(self, sniffed: Optional[Preview], roles: dict[str, str]) -> None:
        self.beginResetModel()
        self.columns = list(sniffed.columns) if sniffed else []
        self.rows = [list(row) for row in sniffed.preview] if sniffed else []
        self.roles = dict(roles)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            row = self.rows[index.row()]
            return row[index.column()] if index.column() < len(row) else ""
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Vertical:
            return str(section + 1)
        column = self.columns[section]
        role_name = next((r for r, c in self.roles.items() if c == column), None)
        return f"{column}\n[{role_words(role_name)}]" if role_name else column


def role_words(role: str) -> str:
    """"time_of_day" -> "time of day": a role as the dialog names it."""
    return role.replace("_", " ")


class FileTab(QWidget):
    """The preview and the column roles of one file (events, items or users)."""

    roles_changed = Signal()

    def __init__(self, kind: str, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.sniffed: Optional[Preview] = None
        self.detected = hint_label("No file chosen.")
        self.model = PreviewModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setToolTip(f"The first rows of the {kind} file, as they will be read")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setMinimumSectionSize(70)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.combos: dict[str, QComboBox] = {}
        self._chosen: dict[str, str] = {}  # role -> column before the latest change
        form = QFormLayout()
        for role in KIND_ROLES[kind]:
            combo = QComboBox()
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # filled once a file is chosen
            required = role in REQUIRED_ROLES[kind]
            combo.setToolTip(ROLE_HELP[role] + (" (required)" if required else ""))
            combo.currentIndexChanged.connect(lambda _index, r=role: self._on_role_changed(r))
            self.combos[role] = combo
            form.addRow(f"{role_words(role).capitalize()}{' *' if required else ''}:", combo)
        roles_box = QWidget()
        roles_box.setLayout(form)
        roles_box.setMaximumWidth(300)  # "Time of day:" and a combo wide enough for "customer_id"
        body = QHBoxLayout()
        body.addWidget(self.table, 1)
        body.addWidget(roles_box)
        layout = QVBoxLayout(self)
        layout.addWidget(self.detected)
        layout.addLayout(body)
        self.setToolTip(KIND_HELP[kind])

    def show_file(self, sniffed: Optional[Preview]) -> None:
        """Show a sniffed file (or none) with its guessed roles pre-selected."""
        self.sniffed = sniffed
        guessed = {r: c for r, c in (sniffed.roles if sniffed else {}).items() if r in self.combos}
        for role, combo in self.combos.items():
            combo.blockSignals(True)
            combo.clear()
            if sniffed is not None:
                # ImportOptions can only name a column for a role, not take a guessed one away,
                # so "(none)" is offered only where nothing was guessed; but a time of day goes
                # with the time column chosen beside it (core.importing.roles.roles_for_kind).
                if role not in guessed or role == "time_of_day":
                    combo.addItem(NO_COLUMN)
                combo.addItems(sniffed.columns)
                combo.setCurrentText(guessed.get(role, NO_COLUMN))
            combo.setEnabled(sniffed is not None)
            combo.blockSignals(False)
        self._chosen = {role: combo.currentText() for role, combo in self.combos.items()}
        self.detected.setText(_describe(sniffed) if sniffed else "No file chosen.")
        self.model.show(sniffed, self.roles())
        self.table.resizeColumnsToContents()

    def roles(self) -> dict[str, str]:
        """role -> column as currently chosen."""
        chosen = {role: combo.currentText() for role, combo in self.combos.items()}
        return {role: column for role, column in chosen.items() if column and column != NO_COLUMN}

    def missing_roles(self) -> list[str]:
        if self.sniffed is None:
            return []
        return [role for role in REQUIRED_ROLES[self.kind] if role not in self.roles()]

    def _on_role_changed(self, role: str) -> None:
        """A column plays one role: the role that had the newly chosen column swaps to the old one."""
        column, previous = self.combos[role].currentText(), self._chosen.get(role, NO_COLUMN)
        other = next((r for r, c in self._chosen.items() if r != role and c == column and c != NO_COLUMN), None)
        if other is not None:
            combo = self.combos[other]
            combo.blockSignals(True)
            combo.setCurrentText(previous if combo.findText(previous) >= 0 else NO_COLUMN)
            combo.blockSignals(False)
        self._chosen = {r: c.currentText() for r, c in self.combos.items()}
        self.model.show(self.sniffed, self.roles())
        self.roles_changed.emit()


def _describe(sniffed: Preview) -> str:
    """What was found, in a sentence: a CSV file's reading, a Parquet source's size, a query's columns."""
    if isinstance(sniffed, ParquetSource):
        files = len(sniffed.fragments)
        return (f"{sniffed.name}: Parquet, {files:,} file{'s' if files != 1 else ''}, {len(sniffed.columns)} columns, "
                f"{sniffed.rows_expected:,} rows. Check the column roles on the right.")
    if not isinstance(sniffed, SniffResult):
        return (f"Query on {sniffed.label}: {len(sniffed.columns)} columns; the first {len(sniffed.preview)} rows "
                "are shown. Check the column roles on the right.")
    delimiter = DELIMITER_NAMES.get(sniffed.delimiter, repr(sniffed.delimiter))
    header = "first row is a header" if sniffed.has_header else "no header row"
    size = sniffed.size_bytes / 1e6
    packed = {"gzip": "gzip-packed, ", "zip": "zipped, "}.get(packing(sniffed.path), "")
    return (f"{sniffed.path.name}: {packed}{delimiter}-separated, {sniffed.encoding}, {header}, "
            f"{len(sniffed.columns)} columns, {size:,.1f} MB (about {sniffed.size_bytes / sniffed.bytes_per_row:,.0f} rows). "
            "Check the column roles on the right.")
