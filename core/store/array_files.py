"""Caches kept beside the workspace as a folder of ``.npy`` files (memory-mappable, never pickled)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np


def save_array_folder(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Written beside, then renamed into place, so a reader never sees half of it; the folders of
    older contents (the same name up to its first ``-``) go. Another process saving the same content
    first wins."""
    kind = folder.name.split("-", 1)[0]
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=folder.parent))
    for name, values in arrays.items():
        np.save(staging / f"{name}.npy", values)
    try:
        os.replace(staging, folder)
    except OSError:  # the same content is already in place
        shutil.rmtree(staging, ignore_errors=True)
    for stale in folder.parent.glob(f"{kind}-*"):
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
