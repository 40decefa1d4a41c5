"""Typed settings: each config field carries its help (and a metavar) as dataclass metadata, and its
choices as a ``Literal[...]`` type, so the CLI flags and the studio's settings form are built from
the class itself, in an installed wheel as in a checkout (nothing is read back from source text).

Needs neither torch nor Qt: the form and the parser import it cheaply.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, Mapping, Optional, Union

NUMBER_TYPES = (bool, int, float)


def setting(default: Any, help: str, metavar: Optional[str] = None, low: Optional[float] = None,
            high: Optional[float] = None, label: Optional[str] = None,
            when: Optional[Mapping[str, tuple]] = None, when_text: str = "") -> Any:
    """A dataclass field with its help text, the placeholder a CLI shows for its value and the
    range a number must fall in (``low``/``high`` inclusive), so a bad value is refused where it is
    typed instead of failing deep inside training.

    ``label`` names it in plain words for a form. ``when`` says on what it depends: the values
    other fields (or facts a form knows, such as ``trains_on``) must have for it to matter at all,
    and ``when_text`` says so to a person ("Only with the sampled objective")."""
    metadata = {"help": help, "metavar": metavar, "low": low, "high": high, "label": label,
                "when": tuple((key, tuple(values)) for key, values in (when or {}).items()), "when_text": when_text}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class SettingInfo:
    """What an editor or a flag needs to know about one field."""

    name: str
    help: str
    kind: type  # bool, int, float or str: the value's type once present
    optional: bool  # None is allowed (the field's automatic value)
    choices: tuple[str, ...]  # the Literal's values; () for a free value
    default: Any
    metavar: Optional[str]
    low: Optional[float] = None  # smallest value allowed (numbers only)
    high: Optional[float] = None  # largest value allowed
    label: str = ""  # plain words for a form ("Model width"); the name when none was given
    when: tuple[tuple[str, tuple], ...] = ()  # (field or fact, the values under which this setting matters)
    when_text: str = ""  # that condition in words

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether this setting matters given the other fields' (and facts') ``values``; a key
        missing from ``values`` does not rule it out."""
        return all(values[key] in allowed for key, allowed in self.when if key in values)

    def range_error(self, value: Any) -> Optional[str]:
        """Why ``value`` is out of this setting's range ("must be at least 1"), or None when it fits."""
        if value is None or self.kind not in (int, float):
            return None
        if self.low is not None and value < self.low:
            return f"must be at least {self.low:g}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high:g}"
        return None


def settings_of(cls: type) -> list[SettingInfo]:
    """One ``SettingInfo`` per field of the dataclass ``cls``, in declaration order."""
    hints = typing.get_type_hints(cls)
    return [_info(field, hints[field.name]) for field in dataclasses.fields(cls)]


def _info(field: dataclasses.Field, hint: Any) -> SettingInfo:
    optional = typing.get_origin(hint) is Union and type(None) in typing.get_args(hint)
    if optional:
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    choices: tuple[str, ...] = ()
    if typing.get_origin(hint) is Literal:
        choices = tuple(str(value) for value in typing.get_args(hint))
        hint = str
    if hint not in (*NUMBER_TYPES, str):
        raise TypeError(f"setting {field.name!r} has type {hint!r}; settings are bool, int, float, str or a Literal")
    meta = field.metadata
    label = meta.get("label") or field.name.replace("_", " ").capitalize()
    return SettingInfo(field.name, meta.get("help", ""), hint, optional, choices, field.default,
                       meta.get("metavar"), meta.get("low"), meta.get("high"), label, meta.get("when", ()),
                       meta.get("when_text", ""))
