"""Data-parallel training under `torchrun` / `accelerate launch`.

The launchers start one engine process per GPU (or per CPU worker) and tell each its place
through the environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Every
process loads its own 4-bit copy of the base on its own device and trains on its share of
each global batch; only rank 0 writes the run folder (events, checkpoint markers, adapter),
so the folder looks exactly like a single-process run's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def ranks_from_env(env: dict[str, str] | None = None) -> Ranks:
    """This process's place in a launch (a plain `whetstone-engine train` is rank 0 of 1)."""
    env = os.environ if env is None else env

    def number(name: str, default: int) -> int:
        try:
            return int(env.get(name, default))
        except ValueError:
            return default

    world = max(1, number("WORLD_SIZE", 1))
    return Ranks(rank=number("RANK", 0), local_rank=number("LOCAL_RANK", 0), world_size=world)


def start(ranks: Ranks, device: str) -> None:
    """Join the launch's process group (NCCL on GPUs, gloo on CPUs) and pick this rank's GPU.

    Done before anything touches the run folder, so the ranks can wait for rank 0 to set it up.
    """
    if not ranks.distributed:
        return
    import torch
    import torch.distributed as dist

    if device == "cuda":
        if ranks.local_rank >= torch.cuda.device_count():
            from engine.errors import ConfigError

            raise ConfigError(
                f"Rank {ranks.rank} was given GPU {ranks.local_rank}, but this machine has "
                f"{torch.cuda.device_count()} GPU(s).",
                "Start no more processes per machine than it has GPUs (torchrun --nproc_per_node).",
            )
        torch.cuda.set_device(ranks.local_rank)  # device_map={"": local_rank} then follows it
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=timedelta(minutes=30))


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on any: a stop seen by one rank stops all at one step."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def finish() -> None:
    """Leave the process group so the launcher sees a clean exit."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
