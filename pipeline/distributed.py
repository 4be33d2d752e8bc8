"""Data-parallel training under ``torchrun``: process group, sampler and rank-0 duties.

``torchrun --nproc_per_node N -m pipeline distill ...`` starts N processes with ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK`` set; each takes one GPU (``cuda:LOCAL_RANK``, NCCL) or, without
GPUs, one CPU process (Gloo). Every process trains on its own shard of each epoch, gradients
are averaged by DistributedDataParallel, and rank 0 alone validates, checkpoints and writes
history. Note: the distance-correlation term is computed within each process's batch, so with
N processes it sees batches of ``batch_size`` clips (the global batch is N times larger).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run (world 1 = not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on the process that validates, checkpoints and writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env(device: str) -> tuple[DistContext, str]:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Args:
        device: ``cpu`` or ``cuda`` as resolved for a single process.

    Returns:
        The context and this process's device (``cuda:<local rank>`` under torchrun with GPUs).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank), device


def wrap(model: Any, ctx: DistContext, device: str) -> Any:
    """``model`` wrapped in DistributedDataParallel when distributed, else unchanged."""
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.local_rank] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=ids)


def sampler(dataset: Any, ctx: DistContext, *, seed: int) -> Any:
    """A DistributedSampler (shuffled, equal shards) when distributed, else None."""
    if not ctx.active:
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(dataset, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=seed,
                              drop_last=True)


def agree(ctx: DistContext, flag: bool) -> bool:
    """Rank 0's ``flag`` on every process (e.g. "stop early"); waits for all processes."""
    if not ctx.active:
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0])
    dist.broadcast(value, src=0)
    return bool(value.item())
