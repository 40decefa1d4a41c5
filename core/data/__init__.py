"""From the behaviour log to model-ready tensors: sequences, vocabularies, splits, batches."""

from core.data.batches import TrainingWindows, pad_histories, training_windows
from core.data.sequences import SequenceData, build_sequences, sequences_from_arrays
from core.data.splits import EvalSet, Split, SplitChoice, SplitError, leave_one_out, time_split

__all__ = [
    "EvalSet",
    "SequenceData",
    "Split",
    "SplitChoice",
    "SplitError",
    "TrainingWindows",
    "build_sequences",
    "leave_one_out",
    "pad_histories",
    "sequences_from_arrays",
    "time_split",
    "training_windows",
]
