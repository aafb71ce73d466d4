"""Data-parallel training: torch.distributed under torchrun (WORLD_SIZE > 1), else one process."""

from __future__ import annotations

import os

import torch

from hdnnp.errors import HDNNPError


# ---------------------------------------------------------------------------- distributed
class Distributed:
    """torch.distributed when launched by torchrun (WORLD_SIZE > 1), else a single process."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_group = False
        self.comm_device = torch.device("cpu")
        if self.world > 1:
            import torch.distributed as dist

            self.dist = dist
            if not dist.is_initialized():
                backend = "nccl" if device.startswith("cuda") else "gloo"
                dist.init_process_group(backend=backend)
                self.owns_group = True
            self.world = dist.get_world_size()
            self.rank = dist.get_rank()
            if dist.get_backend() == "nccl":  # NCCL reduces CUDA tensors only
                self.comm_device = torch.device("cuda", torch.cuda.current_device())

    @property
    def main(self) -> bool:
        return self.rank == 0

    def owner(self, g: int) -> int:
        return g % self.world

    def allreduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (returns t)."""
        if self.world > 1:
            if t.device != self.comm_device:
                tmp = t.to(self.comm_device)
                self.dist.all_reduce(tmp)
                t.copy_(tmp.to(t.device))
            else:
                self.dist.all_reduce(t)
        return t

    def gather_objects(self, obj) -> list:
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        if self.world == 1:
            return obj
        lst = [obj]
        self.dist.broadcast_object_list(lst, src=0)
        return lst[0]

    def check(self, error: str | None) -> None:
        """Raise the same HDNNPError on every rank if rank 0 found one."""
        error = self.broadcast_object(error)
        if error:
            raise HDNNPError(error)

    def close(self) -> None:
        if self.owns_group:
            self.dist.destroy_process_group()
