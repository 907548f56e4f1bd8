"""Where a trainer runs, and how: CUDA when present (or asked for), else the CPU.

On CUDA a trainer uses mixed precision (bf16 where the GPU has it, else fp16 with a gradient
scaler) and channels-last tensors; on the CPU it runs in full precision as it always has, so
figures measured on the CPU do not move. torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK)
are read here, where DDP starts: NCCL between GPUs, gloo between CPU processes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from bearid.errors import BearIDError
from bearid.settings import Settings

CHOICES = ("auto", "cpu", "cuda")


def pin_threads(settings: Settings | None = None) -> dict:
    """Set torch's CPU threads to BEARID_TRAIN_THREADS (0 leaves torch's choice, one per core)
    and say how this process computes. On the CPU a seed gives the same weights bit for bit
    at the same thread count and different ones at another (the reductions split differently;
    `torch.use_deterministic_algorithms` changes nothing there), so two machines agree only
    when this record does: every stage's metrics.json keeps it as `computed_with`."""
    threads = (settings or Settings.from_env()).train_threads
    if threads:
        torch.set_num_threads(threads)
    return {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }


@dataclass(frozen=True)
class Device:
    where: torch.device
    dtype: torch.dtype | None = None  # autocast's type on CUDA; None: full precision

    @classmethod
    def choose(cls, want: str | None = None) -> Device:
        """BEARID_DEVICE (or `want`): auto picks CUDA when torch sees a GPU."""
        want = want or Settings.from_env().device
        if want not in CHOICES:
            raise BearIDError(f"device {want!r}: choose one of {', '.join(CHOICES)}")
        cuda = torch.cuda.is_available()
        if want == "cuda" and not cuda:
            raise BearIDError("BEARID_DEVICE=cuda, but torch sees no CUDA GPU (a CPU build of torch, or no driver)")
        if want == "cpu" or not cuda:
            return cls(torch.device("cpu"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return cls(torch.device("cuda", local), torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)

    @property
    def cuda(self) -> bool:
        return self.where.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=self.dtype) if self.dtype else contextlib.nullcontext()

    def scaler(self) -> torch.amp.GradScaler | None:
        """fp16 needs its loss scaled against underflow; bf16 and fp32 do not."""
        return torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None

    def model(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.where)
        return module.to(memory_format=torch.channels_last) if self.cuda else module

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        if not self.cuda:
            return x
        x = x.to(self.where, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    @property
    def inference_batch(self) -> int:
        return 1024 if self.cuda else 256


def of(module: torch.nn.Module) -> Device:
    """The device a module's weights are on (the CPU for a module without any)."""
    p = next(module.parameters(), None)
    return Device(p.device) if p is not None and p.device.type == "cuda" else Device(torch.device("cpu"))


def distributed(device: Device | None = None) -> tuple[int, int]:
    """(rank, world size) under torchrun (0, 1 without it); starts the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device is not None and device.cuda else "gloo")
    return int(os.environ.get("RANK", "0")), world
