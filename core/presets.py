"""Training presets: Quick, Balanced and Best, each a time budget and a few settings changed from the
defaults sized to the data (``TrainConfig.for_data``).

Defined once here for ``nextpick train --preset`` and the studio's Train page alike; how long
each takes on a given workspace is the engine's timed estimate (``Engine.estimate_presets``).
Needs neither torch nor Qt: the CLI parser and the Train page import it cheaply.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Literal

PresetName = Literal["quick", "balanced", "best"]


@dataclass(frozen=True)
class Preset:
    """A time budget and the changes made to a data-sized ``TrainConfig``."""

    name: PresetName
    label: str  # as a person reads it: "Quick"
    summary: str  # what it is for, in plain words
    minutes: float  # the time budget it sets
    changes: Callable[[Any], dict]  # config -> the fields it sets (besides the budget)

    def apply(self, config: Any) -> Any:
        """``config`` (data-sized defaults, model and device chosen) with this preset's budget and changes."""
        return dataclasses.replace(config, time_budget=self.minutes, **self.changes(config))


PRESETS: dict[str, Preset] = {preset.name: preset for preset in (
    Preset("quick", "Quick", "A first look in about a minute: a one-layer model that stops as soon as it "
           "stops improving.", 1.0, lambda config: {"layers": 1, "patience": 3, "epochs": 30}),
    Preset("balanced", "Balanced", "The defaults sized to this data, within a few minutes: good for most "
           "shops.", 6.0, lambda config: {}),
    Preset("best", "Best", "The most accurate model the data supports: twice as wide, more patient, given "
           "up to 25 minutes.", 25.0,
           lambda config: {"hidden": min(2 * config.hidden, 256), "layers": max(config.layers, 2), "patience": 20}),
)}


def apply_preset(config: Any, name: str) -> Any:
    """``config`` with the preset ``name`` applied (one of ``PRESETS``)."""
    return PRESETS[name].apply(config)


def about_minutes(seconds: float) -> str:
    """"about 6 min", "about 40 s": a duration as a preset's label shows it."""
    if seconds < 55:
        return f"about {max(5, int(round(seconds / 5.0)) * 5)} s"
    return f"about {max(1, int(round(seconds / 60.0)))} min"
