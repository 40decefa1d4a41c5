"""The network a training run starts from: a fresh one sized to the data (its item -> category maps,
text vectors and popularity item bias in place) or an update's ``WarmStart``, and AdamW's moments by
parameter name, which a bundle stores so that an update continues the optimisation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from core.data.histories import Histories
from core.data.sequences import SequenceData
from core.pipeline import DataDims, SequenceModel, build_model
from core.predictor import interests_from_categories
from core.training import TrainConfig


@dataclass
class WarmStart:
    """What an update continues from instead of a fresh network: the parent's weights already fitted
    to the current catalogue (``core.update``) and its optimizer moments by parameter name (empty:
    the optimizer starts afresh)."""

    model: SequenceModel
    moments: dict[str, torch.Tensor] = field(default_factory=dict)


def data_dims(data: SequenceData, config: TrainConfig, text=None) -> DataDims:
    """Network sizes for ``data``; ``text`` (a ``core.text.search.TextIndex`` or None) adds its width."""
    n_interests = data.n_categories - 1 if data.has_categories else config.interest_clusters
    return DataDims(data.n_items, data.n_categories, max(1, n_interests), 0 if text is None else text.vectors.shape[1])


def model_for_data(data: SequenceData, config: TrainConfig, text=None, train=None) -> SequenceModel:
    """A fresh network with the data's item -> category (and interest) maps in its buffers; with ``text``,
    the items' text vectors too, and which items have events in the ``train`` sequences.

    Under the sampled objective (a catalogue too large for several epochs of full softmax in the budget)
    the item bias starts at the popularity of ``train`` (``popularity_bias``): such a run sees a few epochs
    or a fraction of one, and from a zero bias it spent them learning what is popular one item row at a
    time (at 200,000 items its network had not passed popularity when the 10-minute budget ended). Full
    softmax, which scores every item at every step over many epochs, keeps the bias at zero, unlearnt."""
    model = build_model(config, data_dims(data, config, text))
    model.encoder.embeddings.item_category.copy_(torch.from_numpy(data.item_category))
    counts = Histories.of(train if train is not None else []).item_counts(data.n_items)
    counts[0] = 0
    if config.loss == "sampled":
        with torch.no_grad():
            model.generator.item_bias.copy_(popularity_bias(counts))
    else:  # full softmax learns what is popular through the item rows; with a bias learnt beside them an
        # update did not learn a pattern among new items within its epochs (tests/core/test_update.py)
        model.generator.item_bias.requires_grad_(False)
    if text is not None:
        item_text = model.encoder.embeddings.text
        item_text.vectors.copy_(torch.from_numpy(text.vectors))
        item_text.has_events.copy_(torch.from_numpy(counts > 0))
    if data.has_categories:
        model.predictor.item_interest.copy_(torch.from_numpy(interests_from_categories(data.item_category)))
    return model


def popularity_bias(counts: np.ndarray) -> torch.Tensor:
    """(n_items + 1,) the item bias a network starts from: log(events + 1) of each item, centred on the
    items' mean (row 0, padding: 0). The softmax's optimum for a history that says nothing is the log
    of each item's share, so a network starts where popularity ranks; with no events, all zero."""
    values = np.log1p(np.asarray(counts, dtype=np.float64))
    values[1:] -= values[1:].mean() if len(values) > 1 else 0.0
    values[0] = 0.0
    return torch.from_numpy(values.astype(np.float32))


MOMENTS = ("exp_avg", "exp_avg_sq", "step")  # AdamW's state per parameter


def optimizer_moments(model: SequenceModel, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """AdamW's state as "<parameter name>.<moment>" CPU tensors: what a bundle stores (safetensors,
    no pickle) so that an update continues the optimisation where training left it."""
    moments = {}
    for name, parameter in model.named_parameters():
        for key, value in optimizer.state.get(parameter, {}).items():
            if key in MOMENTS:
                moments[f"{name}.{key}"] = torch.as_tensor(value).detach().float().cpu().contiguous()
    return moments


def restore_moments(model: SequenceModel, optimizer: torch.optim.Optimizer, moments: dict[str, torch.Tensor]) -> None:
    """Load ``optimizer_moments`` back (parameters without stored moments start afresh); through
    ``load_state_dict``, which puts each on the device and in the form the optimizer wants."""
    if not moments:
        return
    index = {id(p): i for i, p in enumerate(p for group in optimizer.param_groups for p in group["params"])}
    state = optimizer.state_dict()
    for name, parameter in model.named_parameters():
        if all(f"{name}.{key}" in moments for key in MOMENTS):
            state["state"][index[id(parameter)]] = {key: moments[f"{name}.{key}"].clone() for key in MOMENTS}
    optimizer.load_state_dict(state)
