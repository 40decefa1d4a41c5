"""Training past one process: ``torchrun`` starts N copies of ``nextpick train``, and they form a Team.

    torchrun --nproc_per_node 4 -m core.cli train --db shop.sqlite           # one machine, 4 GPUs
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
             --rdzv_id shop -m core.cli train --db /shared/shop.sqlite      # two machines

Every process (a rank) reads the same workspace and trains a replica of the network on its share of
each batch; DistributedDataParallel all-reduces the gradients (``gloo`` on CPUs, ``nccl`` on GPUs),
so the replicas stay equal. The leader (rank 0) is the one process that does what must happen once:
it records the run, validates after each epoch, decides early stopping, keeps time against the
budget, writes checkpoints and the bundle, and reports progress; its decisions reach the others
through the few collective calls below. Any rank can cancel; the leader's clock decides the budget.

A Team of one (``SOLO``, or ``Team()``) makes every call here a no-op, so the one training loop
serves both. Nothing here reads the command line: ``join_team`` reads the environment torchrun sets.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

# How long a rank waits in a collective call for the others: followers wait there while the leader
# validates and writes a checkpoint between epochs (minutes on a big catalogue), so well above that.
COLLECTIVE_TIMEOUT = timedelta(minutes=60)
DDP = nn.parallel.DistributedDataParallel
# torch 2.13 renamed broadcast_buffers (and warns about the old name); older versions know only that.
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
                   else {"broadcast_buffers": False})
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Team:
    """The processes training one run together; ``rank`` 0 leads."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the rank on this machine: which GPU it drives
    backend: str = ""  # "gloo" | "nccl"; "" for a team of one

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    @property
    def joined(self) -> bool:
        """Whether a process group connects this process to others (torchrun started it)."""
        return bool(self.backend)

    def place(self, device: torch.device) -> torch.device:
        """The device this rank trains on: its own GPU on a machine with several."""
        return torch.device("cuda", self.local_rank) if self.joined and device.type == "cuda" else device

    def wrap(self, model: nn.Module) -> nn.Module:
        """What the training step calls: the model itself, or a DistributedDataParallel replica of it
        whose backward pass all-reduces the gradients (and whose construction copies the leader's weights).

        ``find_unused_parameters``: a rank whose share of a batch has no interest targets leaves the
        interest head out of its loss; the others must not wait for those gradients. Buffers are not
        broadcast before every forward pass: they are the data's maps (and text vectors), equal on every
        rank, and the one that changes (interest clusters) is copied from the leader when it does."""
        if not self.joined:
            return model
        device_ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        return DDP(model, device_ids=device_ids, find_unused_parameters=True, **_NO_BUFFER_SYNC)

    def share(self, batches: Sequence[np.ndarray]) -> list[np.ndarray]:
        """This rank's rows of every batch (rows are length-sorted, so every rank gets similar lengths).
        A batch with fewer rows than ranks (an epoch's last, at most) is left out: each rank must step."""
        if self.size == 1:
            return list(batches)
        return [rows[self.rank::self.size] for rows in batches if len(rows) >= self.size]

    def seed(self, seed: int) -> int:
        """A torch seed of this rank's own (dropout, sampled negatives); the leader's is ``seed`` itself."""
        return seed + 1_000_003 * self.rank

    def stop_now(self, cancelled: bool, overdue: bool) -> tuple[bool, bool]:
        """(cancelled, overdue) as all ranks must act on them before the next step: cancelled when any
        rank was, overdue when the leader's clock says so (other ranks' clocks do not count)."""
        if not self.joined:
            return cancelled, overdue
        flags = self._tensor([float(cancelled), float(overdue and self.is_leader)])
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bool(flags[0]), bool(flags[1])

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the ranks (an epoch's training loss)."""
        if not self.joined:
            return value
        total = self._tensor([value])
        dist.all_reduce(total)
        return float(total[0]) / self.size

    def from_leader(self, *values: float) -> tuple[float, ...]:
        """The leader's ``values`` on every rank (its decisions and measurements)."""
        if not self.joined:
            return values
        numbers = self._tensor(values)
        dist.broadcast(numbers, src=0)
        return tuple(float(v) for v in numbers.cpu())

    def choice_from_leader(self, value: str, choices: Sequence[str]) -> str:
        """The leader's pick among ``choices`` on every rank."""
        (index,) = self.from_leader(choices.index(value))
        return choices[int(index)]

    def copy_from_leader(self, tensor: torch.Tensor) -> None:
        """Overwrite ``tensor`` with the leader's (a buffer every rank recomputes, e.g. interest clusters)."""
        if self.joined:
            dist.broadcast(tensor, src=0)

    @contextlib.contextmanager
    def leader_first(self) -> Iterator[None]:
        """The leader runs the block first (it may write: the sequence cache, item text vectors), then
        the others run it and find the work done."""
        if not self.is_leader:
            dist.barrier()
        yield
        if self.is_leader and self.joined:
            dist.barrier()

    def describe(self, device_name: str) -> str:
        """"CPU (1 thread)" alone, "2 × CPU (1 thread)" for a team of two."""
        return device_name if self.size == 1 else f"{self.size} × {device_name}"

    def _tensor(self, values) -> torch.Tensor:
        """Numbers for a collective call, on the device the backend moves (nccl: this rank's GPU)."""
        device = torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")
        return torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)


SOLO = Team()


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


@contextlib.contextmanager
def join_team(device: torch.device) -> Iterator[Team]:
    """The team torchrun started this process in (its process group open until the block ends), or
    ``SOLO`` when it was started on its own. ``device``: where the run trains (cuda: nccl, else gloo)."""
    if not launched_by_torchrun():
        yield SOLO
        return
    rank, size, local_rank = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, rank=rank, world_size=size, timeout=COLLECTIVE_TIMEOUT)
    try:
        yield Team(rank, size, local_rank, backend)
    finally:
        dist.destroy_process_group()
