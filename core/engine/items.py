"""``Engine``'s items: their followers in the log, search by words and by meaning, similar items, and the
optional language model that reads their text (``core.text``)."""

from __future__ import annotations

from typing import Optional, Sequence

from core import serving
from core.data.successors import Successors
from core.serving import ItemInfo, NextItem, SimilarItem
from core.caches import item_successors
from core.text import TextModelSpec


class ItemMethods:
    """Items, their followers and their text: methods of ``core.engine.Engine`` (its workspace, lock and
    caches)."""

    def next_items(self, item: str, n: int = 10) -> list[NextItem]:
        return serving.next_items(self.sequence_data(), self.successors(), item, n)

    def successors(self) -> Successors:
        """Every item's followers in the log (``core.data.successors``): counted once per content
        and kept beside the workspace (not beside a read-only one), then a slice per item."""
        return self._for_content("_successors_cache",
                                 lambda content: item_successors(self.workspace, content, self.sequence_data()))

    def search_items(self, text: str, limit: int = 20) -> list[ItemInfo]:
        """Items whose id or title contains ``text``, then the items nearest to it in meaning once the
        catalogue's text is embedded (``embed_items``): ``search_by_words`` then ``search_by_meaning``."""
        by_words = self.search_by_words(text, limit)
        return by_words + self.search_by_meaning(text, limit - len(by_words), [info.item for info in by_words])

    def search_by_words(self, text: str, limit: int = 20) -> list[ItemInfo]:
        """Items whose id or title contains ``text``: instant, so the studio asks it on the GUI thread."""
        return serving.search_items(self.sequence_data(), text, limit)

    def search_by_meaning(self, text: str, limit: int = 20, exclude: Sequence[str] = ()) -> list[ItemInfo]:
        """The ``limit`` items whose text means most nearly ``text``, other than the ids ``exclude``; none
        until the catalogue's text is embedded. Runs the language model on the query (milliseconds) and
        loads it the first time (seconds): the studio asks it in a worker. Only an index already read
        (``embed_items``, ``text_index``) serves: a catalogue still being embedded is not re-read per keystroke."""
        from core.text import load_encoder
        from core.text.search import items_by_meaning

        with self._lock:
            current = self._text_index
        if current is None or current[1] is None or limit <= 0 or not text.strip() or not self.text_available() \
                or current[0] != (self.content_hash(), self.text_model.key()):
            return []
        index = current[1]
        if not index.has_text.any():  # a catalogue of ids alone: nothing to mean anything, no model to load
            return []
        data = self.sequence_data()
        return items_by_meaning(data, index, load_encoder(self.text_model), text, limit,
                                data.item_index_of(list(exclude)))

    def similar_items(self, item: str, n: int = 10) -> list[SimilarItem]:
        """Items whose text is nearest to ``item``'s; empty until the catalogue's text is embedded."""
        from core.text.search import similar_items

        index = self.text_index()
        return [] if index is None else similar_items(self.sequence_data(), index, item, n)

    def set_text_model(self, path: Optional[str]) -> None:
        """Read item text with the sentence-transformers model in folder ``path`` (None = the packaged one)."""
        with self._lock:
            self.text_model, self._text_index = TextModelSpec(path), None
            self._bundles.clear()

    def text_available(self) -> bool:
        """Whether a text model can be used: the extra is installed (and a named folder is a model)."""
        from core.text import TextModelError, packaged_model_installed, text_extra_installed

        if not self._text:
            return False
        if self.text_model.path is None:
            return packaged_model_installed()
        try:
            self.text_model.folder()
        except TextModelError:
            return False
        return text_extra_installed()

    def embed_items(self, progress=None, cancel=None):
        """Embed the text of every new or changed item (a background job: minutes for 100k items)
        and return the ``TextIndex`` searches, similar items and training use. TextModelError
        without the extra."""
        from core.text import embed_catalogue, load_encoder
        from core.text.search import TextIndex

        encoder = load_encoder(self.text_model)
        vectors = embed_catalogue(self.workspace, encoder, progress, cancel)
        index = TextIndex.build(self.sequence_data(), vectors)
        with self._lock:
            self._text_index = ((self.content_hash(), encoder.key), index)
        return index

    def text_index(self, reread: bool = False):
        """The catalogue's ``TextIndex`` when every item with text has a cached vector for the current
        model, else None (``embed_items`` makes one); never runs the language model. The answer is
        remembered for the content, None included: looking again read every item's text, a second
        per Explore user on a 200,000-item catalogue without any. ``reread`` looks again (after
        another process embedded the items)."""
        if not self.text_available():
            return None
        from core.text.catalogue import cached_vectors
        from core.text.search import TextIndex

        key = (self.content_hash(), self.text_model.key())
        with self._lock:
            if not reread and self._text_index is not None and self._text_index[0] == key:
                return self._text_index[1]
        vectors, missing = cached_vectors(self.workspace, key[1])
        index = None if missing or not len(vectors.store_ids) else TextIndex.build(self.sequence_data(), vectors)
        with self._lock:
            self._text_index = (key, index)
        return index
