"""A form generated from a config dataclass: one editor per field, its help text from the code.

The help a person reads next to "dropout" is the comment or docstring the engine's author wrote
on that field, read from the class's source, so the form can never drift from the config it
edits: a field added to ``TrainConfig`` appears here with its explanation and nothing else to do.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
from typing import Any, Iterable, Optional

from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit, QSpinBox, QWidget,
)

_QUOTED = re.compile(r'"([A-Za-z0-9_\-]+)"')
INT_MAX = 10_000_000


def field_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's help: its docstring (a string right after it) or its trailing comment."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments = _line_comments(source)
    body = ast.parse(source).body[0].body  # the class's statements
    docs: dict[str, str] = {}
    for statement, following in zip(body, [*body[1:], None]):
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        if isinstance(following, ast.Expr) and isinstance(getattr(following, "value", None), ast.Constant) \
                and isinstance(following.value.value, str):
            docs[statement.target.id] = " ".join(following.value.value.split())
        elif statement.lineno in comments:
            docs[statement.target.id] = comments[statement.lineno]
    return docs


def _line_comments(source: str) -> dict[int, str]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0]: tok.string.lstrip("#").strip() for tok in tokens if tok.type == tokenize.COMMENT}


def choices_in(doc: str) -> list[str]:
    """Quoted alternatives a text field's help lists ("softmax" | "sampled"), in order, once each."""
    return list(dict.fromkeys(_QUOTED.findall(doc))) if "|" in doc else []


def _label(name: str) -> str:
    """"warmup_steps" → "Warmup steps"; two-letter abbreviations ("lr") read better in capitals."""
    return name.upper() if len(name) <= 2 else name.replace("_", " ").capitalize()


class ConfigForm(QWidget):
    """Editors for the fields of ``config``'s dataclass except those in ``skip``."""

    def __init__(self, config: Any, skip: Iterable[str] = (), parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._cls = type(config)
        self._skip = set(skip)
        self.docs = field_docs(self._cls)
        self.editors: dict[str, QWidget] = {}
        self.layout_ = QFormLayout(self)
        self.layout_.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for field in dataclasses.fields(self._cls):
            if field.name in self._skip:
                continue
            doc = self.docs.get(field.name, "")
            editor = self._editor_for(getattr(config, field.name), doc)
            editor.setObjectName(f"config_{field.name}")
            editor.setToolTip(doc or _label(field.name))
            label = QLabel(_label(field.name))
            label.setToolTip(doc)
            self.layout_.addRow(label, editor)
            self.editors[field.name] = editor
        self.set_config(config)

    @staticmethod
    def _editor_for(value: Any, doc: str) -> QWidget:
        if isinstance(value, bool):
            return QCheckBox()
        if isinstance(value, int):
            box = QSpinBox()
            box.setRange(0, INT_MAX)
            box.setGroupSeparatorShown(True)
            return box
        if isinstance(value, float):
            box = QDoubleSpinBox()
            box.setDecimals(6 if 0 < abs(value) < 0.01 else 4)
            box.setRange(0.0, 1e6)
            box.setSingleStep(abs(value) / 10 if value else 0.01)
            return box
        options = choices_in(doc)
        if options:
            combo = QComboBox()
            combo.addItems(options)
            return combo
        return QLineEdit()

    def set_config(self, config: Any) -> None:
        """Show ``config``'s values in the editors."""
        for name, editor in self.editors.items():
            value = getattr(config, name)
            if isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
                editor.setValue(value)
            elif isinstance(editor, QComboBox):
                if editor.findText(str(value)) < 0:
                    editor.addItem(str(value))
                editor.setCurrentText(str(value))
            else:
                editor.setText(str(value))

    def config(self, **fixed: Any) -> Any:
        """A new config from the editors' values, with ``fixed`` fields (the skipped ones) given."""
        values = dict(fixed)
        for name, editor in self.editors.items():
            if isinstance(editor, QCheckBox):
                values[name] = editor.isChecked()
            elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
                values[name] = editor.value()
            elif isinstance(editor, QComboBox):
                values[name] = editor.currentText()
            else:
                values[name] = editor.text()
        return self._cls(**values)
