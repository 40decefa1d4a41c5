"""One optimiser step: the training windows, the objective (full or sampled softmax over the catalogue
plus the next-interest loss), AdamW, bf16 autocast, gradient clipping. The loop and the time estimate
both step through here, so the estimate times what training does."""

from __future__ import annotations

import inspect
from typing import Optional

import torch
import torch.nn.functional as F

from core.data.batches import training_windows
from core.data.splits import Split
from core.distributed import SOLO, Team
from core.pipeline import SequenceModel
from core.errors import UsageError
from core.sampled_softmax import SampledSoftmax
from core.training import TrainConfig


def sampled_objective(windows, config: TrainConfig, n_items: int, device: torch.device) -> Optional[SampledSoftmax]:
    """The sampled objective over ``windows``' targets on ``device``; None under full softmax."""
    if config.loss != "sampled":
        return None
    return SampledSoftmax.for_windows(windows, n_items, config.n_negatives).to(device)


def windows_to_train(split: Split, config: TrainConfig, team: Team = SOLO):
    windows = training_windows(split.train, config.max_len)
    if not len(windows):
        raise UsageError("nothing to train on: no user has two or more events in the training part",
                         "Import a log where users have several events each.")
    if min(len(windows), config.batch_size) < team.size:  # every process needs a row of every batch
        raise UsageError(f"{team.size} processes cannot share batches of {min(len(windows), config.batch_size)} "
                         "training windows", "Use fewer processes, or a larger batch size.")
    return windows


def make_optimizer(model: SequenceModel, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay only on matrices (not on norms, biases or the interest scale)."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    device = next(model.parameters()).device
    fused = {"fused": True} if fused_adamw_available(device) else {}
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), **fused)


def fused_adamw_available(device: torch.device) -> bool:
    """The fused AdamW kernel exists in this torch and on this device (torch 2.2 has none on CPU)."""
    return "fused" in inspect.signature(torch.optim.AdamW).parameters and device.type == "cuda"


def autocast_for(device: torch.device, config: TrainConfig):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and config.bf16)


def optimizer_step(replica, optimizer, inputs, targets, config: TrainConfig, autocast, sampled) -> torch.Tensor:
    """One optimiser step; returns the (detached) loss. ``replica``: the model, or its DistributedDataParallel
    wrapper (whose backward pass all-reduces the gradients, so every rank clips and steps alike)."""
    with autocast:
        loss = batch_loss(_network(replica), inputs, targets, config, forward=replica, sampled=sampled)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(replica.parameters(), config.grad_clip)
    optimizer.step()
    return loss.detach()


def _network(replica) -> SequenceModel:
    """The SequenceModel inside a DistributedDataParallel wrapper, or the model itself."""
    return getattr(replica, "module", replica)


def batch_loss(model: SequenceModel, inputs: torch.Tensor, targets: torch.Tensor, config: TrainConfig,
               forward=None, sampled: Optional[SampledSoftmax] = None) -> torch.Tensor:
    """Next-item cross-entropy (full or sampled) plus the weighted next-interest loss. ``forward``: what runs
    the network (its DistributedDataParallel replica in a team); ``model`` itself by default. ``sampled``:
    the sampled objective's candidates and log-q correction (``sampled_objective``), needed under it."""
    forward = model if forward is None else forward
    select = targets > 0  # (B, L) real next-item examples
    next_items = targets[select]  # (N,)
    if config.loss == "sampled":
        if sampled is None:
            raise ValueError("the sampled objective needs its SampledSoftmax (the training targets' shares)")
        candidates, positives, log_q = sampled.candidates(next_items)
        logits, interest_logits = forward(inputs, select, candidates)  # (N, C), (N, K)
        item_loss = sampled.loss(logits, positives, log_q)
    elif config.loss == "softmax":
        catalogue = torch.arange(1, model.encoder.config.n_items + 1, device=inputs.device)
        if torch.is_autocast_enabled():  # a GPU's bfloat16 products: the logits in bfloat16, the loss in float32
            logits, interest_logits = forward(inputs, select, catalogue)  # (N, n_items), (N, K)
            item_loss = F.cross_entropy(logits.float(), next_items - 1)
        else:  # float32: in row chunks, never holding the (N, n_items) logits (core.chunked_softmax)
            item_loss, interest_logits = forward(inputs, select, catalogue, targets=next_items - 1)
    else:
        raise UsageError(f"unknown loss {config.loss!r}", "Choose the loss 'softmax' or 'sampled'.")
    interest_targets = model.predictor.targets(next_items)
    if config.interest_weight <= 0 or not bool((interest_targets >= 0).any()):
        return item_loss
    interest_loss = F.cross_entropy(interest_logits.float(), interest_targets, ignore_index=-1)
    return item_loss + config.interest_weight * interest_loss
