"""What the Train page reads from the engine before it can offer settings; runs in a worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class TrainingSetup:
    """What the settings panel offers for the open workspace."""

    defaults: Any  # core.training.TrainConfig sized to the data
    shape: Any  # core.training.DataShape: what the defaults and each preset's loss and batch are sized from
    neural: tuple[str, ...]  # models trained by core.training
    baselines: tuple[str, ...]  # models fitted by core.baselines
    gpu: Optional[str]  # the first CUDA GPU's name, None where torch sees none
    time_span: tuple[float, float]  # first and last event time (for the split's cut-off editor)
    default_cutoff: Optional[float]  # time split's default cut-off; None when the data cannot be cut by time
    no_time_split: str  # why not, when default_cutoff is None
    events: int = 0  # in the workspace's sequences: none means nothing to train on
    has_categories: bool = True  # items carry categories (else interests are k-means groups)
    text_model: bool = False  # the [text] extra's language model can be loaded (item text can be read)

    def preset_config(self, preset: str, model: str, device: str):
        """The ``TrainConfig`` preset ``preset`` trains ``model`` on ``device`` with: the CLI's ``--preset``
        path (``TrainConfig.for_data``), so the preset's budget and width decide the loss and batch.
        Cheap on the GUI thread: ``core.training`` and torch were loaded by ``load_setup``."""
        return type(self.defaults).for_shape(self.shape, model=model, preset=preset, device=device)


def load_setup(engine, model: str) -> TrainingSetup:
    """Defaults sized to the data, the model kinds, the GPU and the time split's default; runs in a worker.

    Reading the sequences takes a while on a large log, and the modules involved load torch:
    neither may happen in the GUI thread, so the page imports none of them itself.
    """
    import torch

    from core.baselines import BASELINES
    from core.data import SplitChoice, SplitError
    from core.training import NEURAL_MODELS, DataShape, TrainConfig

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    data = engine.sequence_data()
    try:
        cutoff, why_not = SplitChoice("time").resolve(data, engine.time_kind()).cutoff_ts, ""
    except SplitError as error:
        cutoff, why_not = None, str(error)
    span = (float(data.ts.min()), float(data.ts.max())) if len(data.ts) else (0.0, 0.0)
    shape = DataShape.of(data)
    return TrainingSetup(TrainConfig.for_shape(shape, model=model), shape, tuple(NEURAL_MODELS), tuple(BASELINES), gpu,
                         span, cutoff, why_not, int(len(data.items)), bool(data.has_categories),
                         engine.text_available())
