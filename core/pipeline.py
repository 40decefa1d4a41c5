"""The neural recommender as one module, and its ``Scorer`` face for the rest of the engine.

``SequenceModel`` chains encoder -> predictor -> generator so training optimises all three at
once; ``NeuralScorer`` is what evaluation, candidate generation, bundles and the engine see,
exactly like a baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from core.data.batches import pad_histories
from core.encoder import EncoderConfig, SequenceEncoder
from core.generator import CatalogueHead
from core.predictor import InterestHead

SCORE_BATCH = 512  # users per forward pass when scoring
SMALL_BATCH = 8  # batches up to this size keep their answer for the next question about them


@dataclass(frozen=True)
class DataDims:
    """Sizes the network is built for; saved with every bundle."""

    n_items: int  # items 1..n_items (0 = padding)
    n_categories: int  # category indices including 0 = none
    n_interests: int  # outputs of the interest head (categories without "none", or clusters)


class SequenceModel(nn.Module):
    """Encoder + interest head + catalogue head, trained jointly."""

    def __init__(self, encoder_config: EncoderConfig, n_interests: int) -> None:
        super().__init__()
        self.encoder = SequenceEncoder(encoder_config)
        self.predictor = InterestHead(encoder_config.hidden, n_interests, encoder_config.n_items)
        self.generator = CatalogueHead()

    def forward(self, items: torch.Tensor, select: Optional[torch.Tensor] = None,
                candidates: Optional[torch.Tensor] = None,
                table: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Item logits and interest logits at the selected positions.

        items:      (B, L) left-padded item indices
        select:     (B, L) bool positions to score; default = the last position of each row
        candidates: (C,) item indices to score instead of the whole catalogue (sampled softmax)
        table:      precomputed ``item_table()`` of a frozen model (serving)
        returns:    logits (N, n_items + 1) or (N, C), interest logits (N, n_interests);
                    N = select.sum() or B
        """
        hidden = self.encoder(items)  # (B, L, d)
        rows = hidden[:, -1] if select is None else hidden[select]  # (N, d)
        interest_logits = self.predictor(rows)  # (N, K)
        logits = self.generator(rows, interest_logits, self.predictor.item_interest, self.encoder.embeddings,
                                candidates, table)
        return logits, interest_logits

    def item_table(self) -> torch.Tensor:
        """(n_items + 1, d) item representations the generator scores against; fixed while the weights are."""
        return self.encoder.embeddings.table()


class NeuralScorer:
    """A trained ``SequenceModel`` behind the ``core.scorer.Scorer`` interface."""

    def __init__(self, model: SequenceModel, name: str) -> None:
        """``model`` must stay frozen while this scorer serves it: its item table is computed once.

        Training wraps a fresh scorer around the model for every validation pass.
        """
        self.model = model.eval()
        self.name = name
        self._table: Optional[torch.Tensor] = None
        self._last: Optional[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_len(self) -> int:
        return self.model.encoder.config.max_len

    def _inputs(self, histories: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(pad_histories(histories, self.max_len)).to(self.device)

    def _forward(self, histories: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Item and interest logits for up to SCORE_BATCH users.

        Serving one user asks for scores, interests and explanations in turn; the last small
        batch's answer is kept so the encoder runs once per question, not three times, and the
        catalogue's item table is built once per scorer rather than per call (0.5 s at 1M items).
        """
        inputs = self._inputs(histories)
        last = self._last
        if last is not None and last[0].shape == inputs.shape and torch.equal(last[0], inputs):
            return last[1]
        if self._table is None:
            self._table = self.model.item_table()
        answer = self.model(inputs, table=self._table)
        if len(histories) <= SMALL_BATCH:
            self._last = (inputs, answer)
        return answer

    @torch.no_grad()
    def score(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> torch.Tensor:
        """(B, n_items + 1) float scores on the CPU; column 0 = -inf. Profile segments are not used."""
        self.model.eval()
        parts = []
        for start in range(0, len(histories), SCORE_BATCH):
            logits, _ = self._forward(histories[start : start + SCORE_BATCH])
            parts.append(logits.float().cpu())
        scores = torch.cat(parts) if parts else torch.zeros(0, self.model.encoder.config.n_items + 1)
        scores[:, 0] = float("-inf")
        return scores

    @torch.no_grad()
    def interests(self, history: np.ndarray) -> Optional[np.ndarray]:
        """(n_interests,) probabilities of the next interest; None before interests exist."""
        if not self.model.predictor.ready:
            return None
        return self.interests_batch([np.asarray(history)])[0]

    @torch.no_grad()
    def interests_batch(self, histories: list[np.ndarray]) -> np.ndarray:
        """(B, n_interests) probabilities for many users in one pass (the ranker asks for whole batches)."""
        if not self.model.predictor.ready:
            return np.zeros((len(histories), 0), dtype=np.float32)
        self.model.eval()
        parts = [self._forward(histories[start : start + SCORE_BATCH])[1].float().softmax(dim=-1).cpu().numpy()
                 for start in range(0, len(histories), SCORE_BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, self.model.predictor.n_interests), dtype=np.float32)

    @torch.no_grad()
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
        self.model.eval()
        recent = history[-self.max_len :]
        embed = self.model.encoder.embeddings
        asked = nn.functional.normalize(embed(torch.as_tensor(items, device=self.device)).float(), dim=1)
        seen = nn.functional.normalize(embed(torch.as_tensor(recent, device=self.device)).float(), dim=1)
        similarity = asked @ seen.T
        similarity = similarity.clamp(min=0).cpu().numpy()  # (n_items_asked, len(recent))
        if self.model.encoder.config.kind == "sasrec":
            _, attention = self.model.encoder.encode(self._inputs([recent]), need_attention=True)
            similarity = similarity * attention[0, -len(recent) :].float().cpu().numpy()[None, :]
        totals = similarity.sum(axis=1, keepdims=True)
        weights[:, len(history) - len(recent) :] = np.divide(similarity, totals, out=np.zeros_like(similarity), where=totals > 0)
        return weights

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Weights and buffers (item -> category / interest maps) as contiguous CPU tensors."""
        return {key: value.detach().cpu().contiguous() for key, value in self.model.state_dict().items()}

    @classmethod
    def from_state(cls, config, tensors: dict[str, torch.Tensor], data_dims: DataDims,
                   device: str | torch.device = "cpu") -> "NeuralScorer":
        """Rebuild from a bundle: ``config`` is the run's TrainConfig, ``tensors`` its state_tensors()."""
        model = build_model(config, data_dims)
        model.load_state_dict(tensors, strict=True)
        return cls(model.to(device), config.model)


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
    )


def build_model(config, dims: DataDims) -> SequenceModel:
    return SequenceModel(encoder_config(config, dims), dims.n_interests)
