"""What the Train page reads from the engine before it can offer settings; runs in a worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class TrainingSetup:
    """What the settings panel offers for the open workspace."""

    defaults: Any  # core.training.TrainConfig sized to the data
    neural: tuple[str, ...]  # models trained by core.training
    baselines: tuple[str, ...]  # models fitted by core.baselines
    gpu: Optional[str]  # the first CUDA GPU's name, None where torch sees none
    time_span: tuple[float, float]  # first and last event time (for the split's cut-off editor)
    default_cutoff: Optional[float]  # time split's default cut-off; None when the data cannot be cut by time
    no_time_split: str  # why not, when default_cutoff is None
    events: int = 0  # in the workspace's sequences: none means nothing to train on
    has_categories: bool = True  # items carry categories (else interests are k-means groups)
    text_model: bool = False  # the [text] extra's language model can be loaded (item text can be read)


def load_setup(engine, model: str) -> TrainingSetup:
    """Defaults sized to the data, the model kinds, the GPU and the time split's default; runs in a worker.

    Reading the sequences takes a while on a large log, and the modules involved load torch:
    neither may happen in the GUI thread, so the page imports none of them itself.
    """
    import torch

    from core.baselines import BASELINES
    from core.data import SplitChoice, SplitError
    from core.training import NEURAL_MODELS, TrainConfig

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    data = engine.sequence_data()
    try:
        cutoff, why_not = SplitChoice("time").resolve(data, engine.time_kind()).cutoff_ts, ""
    except SplitError as error:
        cutoff, why_not = None, str(error)
    span = (float(data.ts.min()), float(data.ts.max())) if len(data.ts) else (0.0, 0.0)
    return TrainingSetup(TrainConfig.for_data(data, model=model), tuple(NEURAL_MODELS), tuple(BASELINES), gpu,
                         span, cutoff, why_not, int(len(data.items)), bool(data.has_categories),
                         engine.text_available())
