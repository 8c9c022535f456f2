"""torchrun / DistributedDataParallel support: detection, wrapping and rank-0 helpers.

Launched with ``torchrun --nproc_per_node N -m aekit train ...`` the same training loop runs under
DDP (gloo on CPU, nccl on GPU). Every rank draws the same permutation from the same seeded
generator and takes every world_size-th batch of it, so no sampler object is needed; only rank 0
writes files.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str) -> None:
    """Start the process group when launched by torchrun and not yet started."""
    if is_launched() and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if active():
        dist.barrier()
