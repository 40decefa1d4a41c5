"""A run's checkpoint, written after every epoch and read to resume: the last and best weights, the
optimizer and the loop's state (``LoopState``), each file written whole or not at all; resuming is
refused when the network would differ."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from core.errors import UsageError


@dataclass
class LoopState:
    """Everything besides weights that a resumed run needs; saved as JSON."""

    epoch: int = 0  # last finished epoch
    best_epoch: int = 0
    best_score: float = -1.0
    mark: float = -1.0  # the score an epoch must beat by more than the validation noise to reset patience
    bad_epochs: int = 0
    best_metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    spent_s: float = 0.0  # training time of earlier sessions of this run (counted against the budget)
    estimate: Optional[dict] = None  # the TrainingEstimate measured when the run started


STATE_FILE = "state.json"
LAST_WEIGHTS = "last.safetensors"
BEST_WEIGHTS = "best.safetensors"
OPTIMIZER_FILE = "optimizer.pt"


def save_checkpoint(folder: Path, config, text_model: Optional[str], model, optimizer, state: LoopState,
                    best_weights) -> None:
    """Write every file under a temporary name, then rename: a crash never leaves half a file.

    ``text_model``: the key of the text model whose vectors the network reads (None: no text)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    staged = {
        LAST_WEIGHTS: lambda path: save_file(weights, str(path)),
        BEST_WEIGHTS: lambda path: save_file(best_weights, str(path)),
        OPTIMIZER_FILE: lambda path: torch.save(optimizer.state_dict(), path),
        STATE_FILE: lambda path: path.write_text(json.dumps(
            {"config": config.to_json(), "text_model": text_model, "state": dataclasses.asdict(state)}, indent=1)),
    }
    for name, write in staged.items():
        write(folder / (name + ".tmp"))
    for name in staged:  # state.json last: it names the epoch the other files belong to
        os.replace(folder / (name + ".tmp"), folder / name)


def load_checkpoint(folder: Path, config, text_model: Optional[str], model, optimizer, device
                    ) -> tuple[LoopState, dict]:
    """The loop state and best weights of ``folder``, the last weights loaded into ``model``; refused
    when the network would differ: other shape settings, or item text read otherwise (a text vector
    of another model means something else to the learned projection, even at the same width)."""
    saved = json.loads((folder / STATE_FILE).read_text())
    shape_fields = ("model", "hidden", "layers", "heads", "max_len", "interest_clusters")
    changed = [f for f in shape_fields if saved["config"].get(f) != getattr(config, f)]
    if changed:
        raise UsageError(f"cannot resume from {folder}: the checkpoint was trained with different {', '.join(changed)}",
                         "Resume with the settings the run started with, or start a new run.")
    if saved.get("text_model") != text_model:
        raise UsageError(f"cannot resume from {folder}: the checkpoint was trained {_reading(saved.get('text_model'))}, "
                         f"this session trains {_reading(text_model)}",
                         "Resume with the text model the run started with, or start a new run.")
    model.load_state_dict(load_file(str(folder / LAST_WEIGHTS), device=str(device)))
    optimizer.load_state_dict(torch.load(folder / OPTIMIZER_FILE, map_location=device, weights_only=True))
    return LoopState(**saved["state"]), load_file(str(folder / BEST_WEIGHTS))


def _reading(text_model: Optional[str]) -> str:
    return "without item text" if text_model is None else f"reading item text with {text_model}"
