"""From the behaviour log to model-ready tensors: sequences, vocabularies, splits, batches."""

from core.data.batches import TrainingWindows, pad_histories, training_windows
from core.data.sequences import SequenceData, build_sequences, sequences_from_arrays
from core.data.splits import (
    EvalMode, EvalSet, Split, SplitChoice, SplitError, SplitKind, Validation, leave_one_out, time_split,
)

__all__ = [
    "EvalMode",
    "EvalSet",
    "SequenceData",
    "Split",
    "SplitChoice",
    "SplitError",
    "SplitKind",
    "TrainingWindows",
    "Validation",
    "build_sequences",
    "leave_one_out",
    "pad_histories",
    "sequences_from_arrays",
    "time_split",
    "training_windows",
]
