"""What every trainer here shares: AdamW with a warm-up + cosine schedule, one step, and a
progress line."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch


class Optimiser:
    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, steps: int, weight_decay: float = 1e-4):
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        warm = max(1, steps // 20)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
        )
        self.losses: list[float] = []
        self.started = time.perf_counter()

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.losses.append(loss.item())

    def report(self, name: str, step: int, steps: int, log: Callable[[str], None], every: int = 100) -> None:
        if step % every == 0 or step == steps - 1:
            log(
                f"{name} step {step}/{steps} loss {np.mean(self.losses[-every:]):.4g} "
                f"({time.perf_counter() - self.started:.0f} s)"
            )

    def state_dict(self) -> dict:
        return {"opt": self.opt.state_dict(), "sched": self.sched.state_dict(), "losses": self.losses}

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.losses = list(state["losses"])
