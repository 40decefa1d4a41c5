"""Encoder: a user's item sequence -> one hidden state H_t per position.

Each step's input is the item embedding plus the embedding of the item's category (X_c), so
items the model has rarely seen still carry what their category says; with item text
(``text_dim`` > 0, core.text) a learned projection of the item's frozen sentence embedding is
added too, and items without training events are represented by category and text alone. Three interchangeable
sequence models read those inputs: a GRU (GRU4Rec-style), an LSTM, and a causal
self-attention Transformer (SASRec-style, pre-layer-norm). Sequences are left-padded with 0;
padding never influences a real position, and no position ever sees a later one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from core.errors import UsageError

ENCODER_KINDS = ("sasrec", "gru", "lstm")
# Small initial embeddings keep the first logits near uniform. Larger ones (1/sqrt(d)) make the
# tied output table favour the input item itself, a bias the first epochs then spend unlearning
# (measured on amazon-toys: 0.4 nats worse after 60 steps).
EMBEDDING_INIT_STD = 0.02


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of the encoder; saved in every bundle so the network can be rebuilt."""

    kind: str  # "sasrec" (causal Transformer) | "gru" | "lstm"
    n_items: int  # catalogue size; item indices run 1..n_items, 0 = padding
    n_categories: int  # category indices including 0 = none
    hidden: int = 64  # width of embeddings and hidden states
    layers: int = 2  # Transformer blocks or stacked RNN layers
    heads: int = 1  # attention heads (Transformer only)
    dropout: float = 0.3  # on embeddings, attention weights and block outputs
    max_len: int = 50  # longest history read; older events are dropped
    text_dim: int = 0  # width of the items' text vectors (core.text); 0 = the model reads no text
    text_id_dropout: float = 0.0  # with text, share of the items seen in training whose ID embedding a step hides


class ItemEmbeddings(nn.Module):
    """Item + category (+ projected text) embedding per item index; also the output table the
    generator scores against."""

    def __init__(self, n_items: int, n_categories: int, hidden: int, text_dim: int = 0,
                 text_id_dropout: float = 0.0) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.category = nn.Embedding(max(n_categories, 1), hidden, padding_idx=0)
        self.register_buffer("item_category", torch.zeros(n_items + 1, dtype=torch.long))
        nn.init.normal_(self.item.weight, std=EMBEDDING_INIT_STD)
        nn.init.normal_(self.category.weight, std=EMBEDDING_INIT_STD)
        with torch.no_grad():
            self.item.weight[0].zero_()
            self.category.weight[0].zero_()
        self.text = ItemText(n_items, text_dim, hidden) if text_dim else None
        self.text_id_dropout = text_id_dropout

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        ids = self.item(items)
        if self.text is None:
            return ids + self.category(self.item_category[items])
        ids = ids * self._id_kept(self.text.has_events[items]).unsqueeze(-1)
        return ids + self.category(self.item_category[items]) + self.text(items)

    def table(self) -> torch.Tensor:
        """(n_items + 1, hidden) embedding of every item, row 0 = padding."""
        ids = self.item.weight
        if self.text is None:
            return ids + self.category.weight[self.item_category]
        ids = ids * self._id_kept(self.text.has_events).unsqueeze(-1)
        return ids + self.category.weight[self.item_category] + self.text()

    def _id_kept(self, has_events: torch.Tensor) -> torch.Tensor:
        """Where the ID embedding counts: items with training events, less, while training, a random
        ``text_id_dropout`` share of them represented by category and text alone (DropoutNet, Volkovs et
        al. 2017). Without it the text projection is learned only beside ID embeddings that already
        say everything, and an item with no events, scored by its text alone, is off the learned scale."""
        if not (self.training and self.text_id_dropout):
            return has_events
        return has_events & (torch.rand(has_events.shape, device=has_events.device) >= self.text_id_dropout)


class ItemText(nn.Module):
    """What the item's text adds to its embedding: a learned projection of its frozen text vector.

    The ID embedding of an item without training events never received a positive gradient
    (full softmax only pushed it down), so ``ItemEmbeddings`` masks it out: such an item is
    represented by its category and its text alone, and can be recommended from its first day.
    ``vectors`` and ``has_events`` are buffers, saved in the bundle, so a bundle serves on its own.
    """

    def __init__(self, n_items: int, text_dim: int, hidden: int) -> None:
        super().__init__()
        self.projection = nn.Linear(text_dim, hidden, bias=False)
        self.register_buffer("vectors", torch.zeros(n_items + 1, text_dim, dtype=torch.float16))  # unit rows; 0 = none
        self.register_buffer("has_events", torch.ones(n_items + 1, dtype=torch.bool))  # False: ID embedding unused

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """(..., hidden) projected text of ``items``, or (n_items + 1, hidden) of every item."""
        vectors = self.vectors if items is None else self.vectors[items]
        return self.projection(vectors.to(self.projection.weight.dtype))


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        if hidden % heads:
            raise UsageError(f"hidden size {hidden} must be divisible by the number of heads {heads}",
                             "Choose a hidden size that is a multiple of the number of heads.")
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, need_weights: bool = False, last_only: bool = False):
        """x (B, L, d); allowed (B, 1, L, L) bool, True where query i may read key j. ``last_only``: only
        the last position queries (B, 1, d out)."""
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        if last_only:
            q, allowed, length = q[:, :, -1:], allowed[:, :, -1:], 1
        if need_weights:
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            weights = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)  # (B, heads, L, L)
            y = weights @ v
        else:
            weights = None
            drop = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=drop)
        y = y.transpose(1, 2).reshape(batch, length, hidden)
        return self.out(y), weights


class Block(nn.Module):
    """Pre-layer-norm Transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.attention = CausalSelfAttention(hidden, heads, dropout)
        self.norm2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, need_weights: bool = False, last_only: bool = False):
        """x (B, L, d) -> (B, L, d), or (B, 1, d) of the last position with ``last_only``."""
        attended, weights = self.attention(self.norm1(x), allowed, need_weights, last_only)
        x = x[:, -1:] if last_only else x
        x = x + self.drop(attended)
        x = x + self.drop(self.mlp(self.norm2(x)))
        return x, weights


class SequenceEncoder(nn.Module):
    """items (B, L) left-padded item indices -> H (B, L, hidden); rows of padding positions are 0."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        if config.kind not in ENCODER_KINDS:
            raise ValueError(f"unknown encoder {config.kind!r}; choose one of {', '.join(ENCODER_KINDS)}")
        self.config = config
        self.embeddings = ItemEmbeddings(config.n_items, config.n_categories, config.hidden, config.text_dim,
                                         config.text_id_dropout)
        self.input_drop = nn.Dropout(config.dropout)
        if self.attends:
            # Position embeddings count from the most recent event, so left padding never shifts them.
            self.positions = nn.Embedding(config.max_len, config.hidden)
            nn.init.normal_(self.positions.weight, std=EMBEDDING_INIT_STD)
            self.blocks = nn.ModuleList(Block(config.hidden, config.heads, config.dropout) for _ in range(config.layers))
            self.final_norm = nn.LayerNorm(config.hidden)
        else:
            rnn = nn.GRU if config.kind == "gru" else nn.LSTM
            self.rnn = rnn(
                config.hidden,
                config.hidden,
                num_layers=config.layers,
                batch_first=True,
                dropout=config.dropout if config.layers > 1 else 0.0,
            )

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.encode(items)[0]

    @property
    def attends(self) -> bool:
        """Whether ``encode`` can give attention over the events (the Transformer; a recurrent encoder has none)."""
        return self.config.kind == "sasrec"

    def encode(self, items: torch.Tensor, need_attention: bool = False, item_table: torch.Tensor | None = None,
               last_only: bool = False):
        """(H (B, L, d), last-layer attention of the last position (B, L) or None).

        ``item_table``: ``embeddings.table()`` of a frozen model (serving keeps it): its rows are the
        step inputs, looked up instead of recomputed (with item text, recomputing them projected
        every step's 384-dim vector: 40% of a served batch's encoding). ``last_only``: H of the last
        position only, (B, 1, d), what scoring reads: the Transformer's last block then runs its
        query, output and MLP for that position alone.
        """
        items = items[:, -self.config.max_len :]
        real = items > 0  # (B, L)
        x = self.embeddings(items) if item_table is None else F.embedding(items, item_table)
        if self.attends:
            hidden, attention = self._attend(x, real, need_attention, last_only)
        else:
            hidden, attention = self._recur(self.input_drop(x), real), None
            hidden = hidden[:, -1:] if last_only else hidden
        return hidden * real[:, -hidden.shape[1] :].unsqueeze(-1), attention

    def _attend(self, x: torch.Tensor, real: torch.Tensor, need_attention: bool, last_only: bool = False):
        length = x.shape[1]
        distance = torch.arange(length - 1, -1, -1, device=x.device)  # 0 = most recent position
        x = self.input_drop(x + self.positions(distance).unsqueeze(0))
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        # A query may read real keys at or before it; a padding query reads only itself (no empty rows).
        allowed = causal & (real.unsqueeze(1) | torch.eye(length, dtype=torch.bool, device=x.device))
        allowed = allowed.unsqueeze(1)  # (B, 1, L, L)
        weights = None
        for number, block in enumerate(self.blocks):
            final = number == len(self.blocks) - 1
            x, weights = block(x, allowed, need_weights=need_attention and final, last_only=last_only and final)
        attention = weights[:, :, -1, :].mean(dim=1) if weights is not None else None  # (B, L)
        return self.final_norm(x), attention

    def _recur(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Run the RNN over real steps only: left padding is moved right and packed away."""
        batch, length, _ = x.shape
        lengths = real.sum(dim=1)
        pad = length - lengths
        columns = torch.arange(length, device=x.device)
        to_left = (columns.unsqueeze(0) + pad.unsqueeze(1)) % length  # (B, L)
        left_aligned = x.gather(1, to_left.unsqueeze(-1).expand_as(x))
        packed = pack_padded_sequence(left_aligned, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=length)
        to_right = (columns.unsqueeze(0) - pad.unsqueeze(1)) % length
        return out.gather(1, to_right.unsqueeze(-1).expand_as(out))
