"""Forms made from the frozen stage configs: one field per dataclass field, checked by the
config itself (its ``__post_init__``), whose message is shown under the field."""

from __future__ import annotations

import dataclasses
import types
import typing

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from ..errors import InputError

#: Colour of a field's error message.
ERROR_STYLE = "color: #ff6060"


class ConfigForm(QWidget):
    """Fields for every field of the frozen dataclass ``cls`` (a stage config).

    A bool is a check box; anything else a line of text read by the field's type (numbers,
    words, ``z y x`` for a tuple, empty for ``None`` where the type allows it). What cannot be
    read as the type is handed to the config as typed, so that the config's own check names
    the problem. :meth:`value` builds the config or raises its :class:`InputError`.
    """

    edited = Signal()

    def __init__(self, cls, value=None):
        super().__init__()
        self.cls = cls
        self.hints = typing.get_type_hints(cls)
        self.editors: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        layout = QFormLayout(self)
        for f in dataclasses.fields(cls):
            editor = QCheckBox() if self.hints[f.name] is bool else QLineEdit()
            if isinstance(editor, QCheckBox):
                editor.toggled.connect(self._on_edit)
            else:
                editor.editingFinished.connect(self._on_edit)
            error = QLabel()
            error.setStyleSheet(ERROR_STYLE)
            error.setWordWrap(True)
            error.hide()
            cell = QWidget()
            column = QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            column.addWidget(editor)
            column.addWidget(error)
            layout.addRow(f.name, cell)
            self.editors[f.name], self.errors[f.name] = editor, error
        self.overall = QLabel()             # a problem of the combination (no single field)
        self.overall.setStyleSheet(ERROR_STYLE)
        self.overall.setWordWrap(True)
        self.overall.hide()
        layout.addRow(self.overall)
        self.set_value(value if value is not None else cls())

    def set_value(self, config) -> None:
        """Show the settings of ``config`` (an instance of the form's class)."""
        for name, editor in self.editors.items():
            value = getattr(config, name)
            editor.blockSignals(True)
            if isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            else:
                editor.setText(format_value(value))
            editor.blockSignals(False)
        self.check()

    def raw_values(self) -> dict:
        """Each field's value as read from its editor (not yet checked)."""
        return {name: editor.isChecked() if isinstance(editor, QCheckBox)
                else parse_value(editor.text(), self.hints[name])
                for name, editor in self.editors.items()}

    def check(self) -> list[str]:
        """Check every field on its own (the others at their defaults) and then all together;
        show each message under its field; return the messages."""
        values, base, messages = self.raw_values(), self.cls(), []
        for name, value in values.items():
            try:
                dataclasses.replace(base, **{name: value})
                problem = ""
            except (InputError, TypeError, ValueError) as exc:
                problem = str(exc)
                messages.append(problem)
            self.errors[name].setText(problem)
            self.errors[name].setVisible(bool(problem))
        problem = ""
        if not messages:
            try:
                self.cls(**values)
            except (InputError, TypeError, ValueError) as exc:
                problem = str(exc)
                messages.append(problem)
        self.overall.setText(problem)
        self.overall.setVisible(bool(problem))
        return messages

    def value(self):
        """The config the fields describe; :class:`InputError` with the config's own message
        (shown under its field too) when a field is not valid."""
        messages = self.check()
        if messages:
            raise InputError(messages[0])
        return self.cls(**self.raw_values())

    def _on_edit(self, *_):
        self.check()
        self.edited.emit()


def stage_config_classes(cls) -> dict:
    """The fields of dataclass ``cls`` that hold a stage config, and the config's class (for
    AnalyzeConfig: classical, instances, morphology)."""
    hints = typing.get_type_hints(cls)
    found = {}
    for f in dataclasses.fields(cls):
        options = typing.get_args(hints[f.name]) or (hints[f.name],)
        classes = [o for o in options if dataclasses.is_dataclass(o)]
        if classes:
            found[f.name] = classes[0]
    return found


def format_value(value) -> str:
    """A setting as the text of its field: ``z y x`` for a tuple, empty for None."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return " ".join(format_value(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_value(text: str, hint):
    """The text of a field as a value of type ``hint``; what does not read as the type is
    returned as typed (a string), for the config's check to name."""
    text = text.strip()
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if not text and type(None) in options:
        return None
    for option in options:
        if typing.get_origin(option) is tuple:
            parts = text.replace(",", " ").split()
            element = typing.get_args(option)[0] if typing.get_args(option) else float
            read = [_number(p, element) for p in parts]
            return tuple(read) if all(not isinstance(v, str) for v in read) else text
    for option in options:
        if option in (int, float):
            number = _number(text, option)
            if not isinstance(number, str):
                return number
    return text


def _number(text: str, kind):
    try:
        value = float(text)
    except ValueError:
        return text
    if kind is int and value.is_integer():
        return int(value)
    return value
