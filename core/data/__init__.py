"""From the behaviour log to model-ready arrays: sequences, vocabularies, splits. The batches
(``core.data.batches``, torch) are imported from their module, so that reading sequences never
imports torch."""

from core.data.sequence_cache import build_sequences
from core.data.sequences import SequenceData, sequences_from_arrays
from core.data.split_choice import SplitChoice, SplitError
from core.data.splits import EvalMode, EvalSet, Split, SplitKind, Validation, leave_one_out, time_split

__all__ = [
    "EvalMode",
    "EvalSet",
    "SequenceData",
    "Split",
    "SplitChoice",
    "SplitError",
    "SplitKind",
    "Validation",
    "build_sequences",
    "leave_one_out",
    "sequences_from_arrays",
    "time_split",
]
