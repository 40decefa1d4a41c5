"""A pretrained sentence-embedding model over the catalogue's text (the optional ``[text]`` extra).

``model``: loading a model offline; ``catalogue``: each item's text, the cached vectors, search.
Importing this package needs neither torch nor sentence-transformers; only loading a model does.
"""

from core.text.catalogue import ItemVectors, embed_catalogue, item_text, nearest
from core.text.model import (INSTALL_HINT, TextEncoder, TextModelError, TextModelSpec, load_encoder,
                             packaged_model_installed, text_extra_installed)

__all__ = ["INSTALL_HINT", "ItemVectors", "TextEncoder", "TextModelError", "TextModelSpec", "embed_catalogue",
           "item_text", "load_encoder", "nearest", "packaged_model_installed", "text_extra_installed"]
