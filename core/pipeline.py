"""The neural recommender as one module, and its ``Scorer`` face for the rest of the engine.

``SequenceModel`` chains encoder -> predictor -> generator so training optimises all three at
once; ``NeuralScorer`` is what evaluation, candidate generation, bundles and the engine see,
exactly like a baseline.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np
import torch
from torch import nn

from core.data.batches import pad_histories
from core.encoder import EncoderConfig, SequenceEncoder
from core.generator import Catalogue, CatalogueHead
from core.predictor import InterestHead, interest_names

SCORE_BATCH = 512  # users per forward pass when scoring
SMALL_BATCH = 64  # batches up to this size (a served batch: core.service.batching.MAX_BATCH) keep the
# attention the explanations read with their encoding


@dataclass(frozen=True)
class DataDims:
    """Sizes the network is built for; saved with every bundle."""

    n_items: int  # items 1..n_items (0 = padding)
    n_categories: int  # category indices including 0 = none
    n_interests: int  # outputs of the interest head (categories without "none", or clusters)
    text_dim: int = 0  # width of the item text vectors the model reads (core.text); 0 = none


class Encoded(NamedTuple):
    """The user side of a forward pass: everything but the catalogue scores."""

    rows: torch.Tensor  # (N, d) hidden state at each scored position
    interest_logits: torch.Tensor  # (N, n_interests)
    attention: Optional[torch.Tensor]  # (B, L) last-layer attention of the last position (SASRec, when asked)


class SequenceModel(nn.Module):
    """Encoder + interest head + catalogue head, trained jointly."""

    def __init__(self, encoder_config: EncoderConfig, n_interests: int) -> None:
        super().__init__()
        self.encoder = SequenceEncoder(encoder_config)
        self.predictor = InterestHead(encoder_config.hidden, n_interests, encoder_config.n_items)
        self.generator = CatalogueHead(encoder_config.n_items)

    def forward(self, items: torch.Tensor, select: Optional[torch.Tensor] = None,
                candidates: Optional[torch.Tensor] = None,
                catalogue: Optional[Catalogue] = None,
                targets: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Item logits and interest logits at the selected positions.

        items:      (B, L) left-padded item indices
        select:     (B, L) bool positions to score; default = the last position of each row
        candidates: (C,) item indices to score instead of the whole catalogue (sampled softmax)
        catalogue:  a prepared ``catalogue()`` of a frozen model (serving); wins over candidates
        targets:    (N,) column indices of the scored items: the first result is then the mean
                    cross-entropy of these targets instead of the logits (``CatalogueHead.loss``,
                    which never holds all of them); a training step asks it through here so a
                    DistributedDataParallel wrapper sees the forward pass
        returns:    logits (N, n_items + 1) or (N, C), interest logits (N, n_interests);
                    N = select.sum() or B
        """
        encoded = self.encode(items, select)
        catalogue = self.catalogue(candidates) if catalogue is None else catalogue
        if targets is not None:
            return self.generator.loss(encoded.rows, encoded.interest_logits, catalogue, targets), encoded.interest_logits
        return self.generator(encoded.rows, encoded.interest_logits, catalogue), encoded.interest_logits

    def encode(self, items: torch.Tensor, select: Optional[torch.Tensor] = None,
               need_attention: bool = False, item_table: Optional[torch.Tensor] = None) -> Encoded:
        """Encoder + interest head only: interests and explanations need no catalogue scores.
        ``item_table``: a frozen model's ``item_table()`` (``SequenceEncoder.encode``)."""
        hidden, attention = self.encoder.encode(items, need_attention, item_table, last_only=select is None)
        rows = hidden[:, -1] if select is None else hidden[select]  # (N, d)
        return Encoded(rows, self.predictor(rows), attention)

    def catalogue(self, items: Optional[torch.Tensor] = None) -> Catalogue:
        """The scored items (default: every item index, column 0 included) as the generator needs them."""
        return Catalogue.build(self.encoder.embeddings, self.generator.item_bias, self.predictor.item_interest,
                               self.predictor.n_interests, items)

    def item_table(self) -> torch.Tensor:
        """(n_items + 1, d) item representations the generator scores against; fixed while the weights are."""
        return self.encoder.embeddings.table()


class NeuralScorer:
    """A trained ``SequenceModel`` behind the ``core.scorer.Scorer`` interface."""

    def __init__(self, model: SequenceModel, name: str) -> None:
        """``model`` must stay frozen while this scorer serves it: its catalogue is prepared once.

        Training wraps a fresh scorer around the model for every validation pass.
        """
        self.model = model.eval()
        self.name = name
        self._catalogue: Optional[Catalogue] = None
        self._last: Optional[_Kept] = None
        self._vectors: Optional[np.ndarray] = None

    def scoring_as_new(self, items: np.ndarray) -> "NeuralScorer":
        """This network scoring ``items`` (indices) as it scores items without training events: from
        their category and text alone, their ID embeddings masked (a model that reads item text; the
        re-ranker learns from such items how a new item's scores behave, ``core.ranker``)."""
        model = copy.deepcopy(self.model)
        model.encoder.embeddings.text.has_events[torch.as_tensor(np.asarray(items, dtype=np.int64))] = False
        return NeuralScorer(model, self.name)

    def text_vectors(self) -> Optional[torch.Tensor]:
        text = self.model.encoder.embeddings.text
        return None if text is None else text.vectors.detach().cpu()

    @property
    def device(self) -> torch.device:
        """Where the weights are: the item table's device (``model.parameters()`` walks every submodule,
        ~0.1 ms, asked several times per served user)."""
        return self.model.encoder.embeddings.item.weight.device

    @property
    def max_len(self) -> int:
        return self.model.encoder.config.max_len

    def _inputs(self, histories: list[np.ndarray]) -> torch.Tensor:
        """(B, L) left-padded inputs, L the longest history's length (at most max_len, at least 1): the
        columns every row pads change no real position's state (position embeddings count from the
        newest event), so a served batch of short histories encodes only the columns it fills."""
        return torch.from_numpy(pad_histories(histories, self._width(histories))).to(self.device)

    def _width(self, histories: list[np.ndarray]) -> int:
        return max(1, min(self.max_len, max((len(h) for h in histories), default=0)))

    def catalogue(self) -> Catalogue:
        """The whole catalogue, prepared on first use (0.5 s at 1M items) and kept: the model is frozen."""
        if self._catalogue is None:
            with torch.no_grad():
                self._catalogue = self.model.catalogue()
        return self._catalogue

    def _encode(self, histories: list[np.ndarray]) -> Encoded:
        """The user side for up to SCORE_BATCH users.

        Serving one user asks for scores, interests and explanations in turn, and evaluating a
        re-ranked run asks a batch for scores, then interests: the last batch's encoding is kept
        (a small batch's with the attention the explanations need; large ones, evaluation's, skip
        it), so the encoder runs once per batch, not once per question.
        """
        read = tuple(np.asarray(h[-self.max_len:], dtype=np.int64).tobytes() for h in histories)  # the key
        last = self._last
        if last is not None and last.read == read:
            return last.encoded
        if self.model.training:  # eval() walks every submodule: worth skipping on each question
            self.model.eval()
        small = len(histories) <= SMALL_BATCH
        encoded = self.model.encode(self._inputs(histories), need_attention=small, item_table=self.catalogue().vectors)
        attention = {} if encoded.attention is None else dict(zip(read, encoded.attention.float().cpu().numpy()))
        self._last = _Kept(read, encoded, attention)
        return encoded

    @torch.no_grad()
    def score(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> torch.Tensor:
        """(B, n_items + 1) float scores on the CPU, a new tensor each call; column 0 = -inf.

        Profile segments are not used.
        """
        catalogue = self.catalogue()
        parts = []
        for start in range(0, len(histories), SCORE_BATCH):
            encoded = self._encode(histories[start : start + SCORE_BATCH])
            parts.append(self.model.generator(encoded.rows, encoded.interest_logits, catalogue).float().cpu())
        if len(parts) == 1:
            scores = parts[0]  # torch.cat would copy even a single part: 4 MB a user at 1M items
        else:
            scores = torch.cat(parts) if parts else torch.zeros(0, self.model.encoder.config.n_items + 1)
        scores[:, 0] = float("-inf")
        return scores

    @torch.no_grad()
    def interests(self, history: np.ndarray) -> Optional[np.ndarray]:
        """(n_interests,) probabilities of the next interest; None before interests exist."""
        if not self.catalogue().has_interests:
            return None
        return self.interests_batch([np.asarray(history)])[0]

    @torch.no_grad()
    def interests_batch(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> np.ndarray:
        """(B, n_interests) probabilities for many users in one pass; zero rows before interests exist.

        Profile segments are not used.
        """
        n_interests = self.model.predictor.n_interests
        if not self.catalogue().has_interests or not histories:
            return np.zeros((len(histories), n_interests), dtype=np.float32)
        parts = [self._encode(histories[start : start + SCORE_BATCH]).interest_logits.float().softmax(dim=-1).cpu().numpy()
                 for start in range(0, len(histories), SCORE_BATCH)]
        return np.concatenate(parts)

    def attributions(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(len(items), len(history)) weights, each row summing to 1 (or 0 with no evidence).

        Similarity of each history item to the recommended item (cosine, negatives cut to 0);
        the Transformer multiplies in the attention its last layer paid to each event, so
        events it ignored do not get credit. Events older than max_len get 0.
        """
        history = np.asarray(history, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        weights = np.zeros((len(items), len(history)), dtype=np.float64)
        if not len(history) or not len(items):
            return weights
        recent = history[-self.max_len :]
        table = self._item_vectors()
        asked, seen = _unit_rows(table[items]), _unit_rows(table[recent])
        similarity = np.clip(asked @ seen.T, 0.0, None)  # (n_items_asked, len(recent))
        attention = self._attention_of(recent)
        if attention is not None:
            similarity = similarity * attention[None, -len(recent) :]
        totals = similarity.sum(axis=1, keepdims=True)
        weights[:, len(history) - len(recent) :] = np.divide(similarity, totals, out=np.zeros_like(similarity), where=totals > 0)
        return weights

    def _item_vectors(self) -> np.ndarray:
        """(n_items + 1, d) float32 item embeddings the generator scores against, as a NumPy array (a view
        of the catalogue's on the CPU): an explanation's few rows cost microseconds in NumPy, tens in torch."""
        if self._vectors is None:
            self._vectors = self.catalogue().vectors.detach().float().cpu().numpy()
        return self._vectors

    def _attention_of(self, recent: np.ndarray) -> Optional[np.ndarray]:
        """(max_len,) the last layer's attention over ``recent`` (at most max_len items), or None: the
        row of the batch it was just scored in (a served batch explains each of its users without a
        second encoder pass), else from encoding it alone; None at once for a recurrent encoder, which has
        none (a GRU run's served batch encoded each user a second time, alone, to learn that: half its CPU)."""
        if not self.model.encoder.attends:
            return None
        kept = None if self._last is None else self._last.attention.get(np.asarray(recent, dtype=np.int64).tobytes())
        if kept is not None:
            return kept
        with torch.no_grad():
            attention = self._encode([recent]).attention
        return None if attention is None else attention[0].float().cpu().numpy()

    def interest_vocabulary(self, data) -> tuple[np.ndarray, list[str]]:
        """Interest index of every item (-1 = none) and each interest's readable name.

        The model's own item -> interest map: categories, or k-means clusters named after
        their typical items.
        """
        item_interest = self.model.predictor.item_interest.detach().cpu().numpy()
        names = interest_names(item_interest, self.model.item_table().detach().float().cpu().numpy(), data.item_title,
                               data.item_external, data.category_names if data.has_categories else None)
        return item_interest, names

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Weights and buffers (item -> category / interest maps) as contiguous CPU tensors."""
        return {key: value.detach().cpu().contiguous() for key, value in self.model.state_dict().items()}

    @classmethod
    def from_state(cls, config, tensors: dict[str, torch.Tensor], data_dims: DataDims,
                   device: str | torch.device = "cpu") -> "NeuralScorer":
        """Rebuild from a bundle: ``config`` is the run's TrainConfig, ``tensors`` its state_tensors()."""
        model = build_model(config, data_dims)
        model.load_state_dict(with_item_bias(tensors, data_dims.n_items), strict=True)
        return cls(model.to(device), config.model)


class _Kept(NamedTuple):
    """The last batch ``NeuralScorer`` encoded, kept for the questions that follow about it."""

    read: tuple[bytes, ...]  # per history, the items the encoder read (its last max_len, int64 bytes)
    encoded: Encoded
    attention: dict[bytes, np.ndarray]  # those bytes -> the history's attention row (L,): its explanations read it


ITEM_BIAS = "generator.item_bias"


def with_item_bias(tensors: dict[str, torch.Tensor], n_items: int) -> dict[str, torch.Tensor]:
    """``tensors`` of a network, with the zero item bias that networks saved before it existed scored with."""
    if ITEM_BIAS in tensors:
        return tensors
    return {**tensors, ITEM_BIAS: torch.zeros(n_items + 1)}


def new_item_bias(bias: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``bias`` (n + 1,) with the rows of new items (``known`` False; row 0 is padding) at the known items'
    median: a new item has few events because it is new, not because shoppers pass it over."""
    grown = bias.clone()
    trained = bias[1:][known[1:]]
    new = ~known
    new[0] = False
    grown[new] = trained.median() if len(trained) else 0.0
    return grown


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero), in float64 as explanations are."""
    rows = rows.astype(np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def encoder_config(config, dims: DataDims) -> EncoderConfig:
    """The encoder shape a TrainConfig asks for on data of these sizes."""
    return EncoderConfig(
        kind=config.model,
        n_items=dims.n_items,
        n_categories=dims.n_categories,
        hidden=config.hidden,
        layers=config.layers,
        heads=config.heads,
        dropout=config.dropout,
        max_len=config.max_len,
        text_dim=dims.text_dim,
        text_id_dropout=config.text_id_dropout,
    )


def build_model(config, dims: DataDims) -> SequenceModel:
    return SequenceModel(encoder_config(config, dims), dims.n_interests)
