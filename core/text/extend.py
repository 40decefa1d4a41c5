"""Serving a text-reading model on a catalogue that grew after training, without retraining.

Known items keep every trained weight; a new item gets no ID embedding (the model masks it)
and is scored, explained and matched to interests through its category and its text vector,
which the workspace's cache provides. Only the item-sized tensors change shape.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from core.pipeline import ITEM_BIAS, NeuralScorer, SequenceModel, new_item_bias
from core.predictor import NO_INTEREST


def reads_text(scorer) -> bool:
    """Whether ``scorer`` is a neural model with an item-text projection."""
    model = getattr(scorer, "model", None)
    return model is not None and getattr(model.encoder.embeddings, "text", None) is not None


def extended_scorer(scorer: NeuralScorer, new_to_old: np.ndarray, category_in_old: np.ndarray,
                    text_vectors: np.ndarray, item_interest: np.ndarray) -> NeuralScorer:
    """``scorer``'s model rebuilt on the current item indices.

    new_to_old:      (n + 1,) trained item index of each current item, 0 = new
    category_in_old: (n + 1,) each current item's category in the trained vocabulary (0 = none)
    text_vectors:    (n + 1, text_dim) the current items' unit text vectors (0 rows: no text)
    item_interest:   (n + 1,) interest per current item (NO_INTEREST = none)
    """
    old = scorer.model
    index = torch.as_tensor(np.asarray(new_to_old, dtype=np.int64))
    known = index > 0
    config = replace(old.encoder.config, n_items=len(index) - 1)
    model = SequenceModel(config, old.predictor.n_interests)
    state = old.state_dict()
    embeddings = "encoder.embeddings."
    item_weight = torch.where(known.unsqueeze(1), state[embeddings + "item.weight"][index], 0.0)
    item_bias = new_item_bias(state[ITEM_BIAS][index], known)
    has_events = known & state[embeddings + "text.has_events"][index]
    state.update({
        embeddings + "item.weight": item_weight,
        embeddings + "item_category": torch.as_tensor(np.asarray(category_in_old), dtype=torch.long),
        embeddings + "text.vectors": torch.as_tensor(np.asarray(text_vectors), dtype=torch.float16),
        embeddings + "text.has_events": has_events,
        "predictor.item_interest": torch.as_tensor(np.asarray(item_interest), dtype=torch.long),
        ITEM_BIAS: item_bias,
    })
    model.load_state_dict(state, strict=True)
    _place_new_items_in_clusters(model, known)
    return NeuralScorer(model.to(scorer.device), scorer.name)


@torch.no_grad()
def _place_new_items_in_clusters(model: SequenceModel, known: torch.Tensor) -> None:
    """New items without an interest join the cluster whose members' mean embedding is nearest
    (learned clusters only: with categories, the category already says)."""
    item_interest = model.predictor.item_interest
    members = known & (item_interest != NO_INTEREST)
    waiting = ~known & (item_interest == NO_INTEREST)
    waiting[0] = False
    if not bool(waiting.any()) or not bool(members.any()):
        return
    table = torch.nn.functional.normalize(model.item_table().float(), dim=1)
    n_interests = model.predictor.n_interests
    centres = torch.zeros(n_interests, table.shape[1]).index_add_(0, item_interest[members], table[members])
    nearest = (table[waiting] @ torch.nn.functional.normalize(centres, dim=1).T).argmax(dim=1)
    item_interest[waiting] = nearest
