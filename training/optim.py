"""What every trainer here shares: AdamW with a warm-up + cosine schedule, one step, a
progress line, and the curves it records (the loss at every step, validation figures every
so often)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from bearid.training.progress import Log, advance


class Optimiser:
    """`params` are parameters, or groups of them (dicts with a "params" list and an optional
    "lr" of their own); every group follows the same warm-up and cosine. With a `scaler`
    (fp16 on CUDA) the loss is scaled against underflow."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict],
        lr: float,
        steps: int,
        weight_decay: float = 1e-4,
        scaler: torch.amp.GradScaler | None = None,
    ):
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        self.scaler = scaler
        warm = max(1, steps // 20)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
        )
        self.losses: list[float] = []
        self.validation: list[dict] = []  # {"step": n, figure: value, ...}
        self.started = time.perf_counter()

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad()
        if self.scaler is None:
            loss.backward()
            self.opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        self.sched.step()
        self.losses.append(loss.item())

    def report(self, name: str, step: int, steps: int, log: Log, every: int = 100) -> None:
        """A progress bar's step for `name` at every step, and a log line every `every`."""
        advance(log, f"{name} training steps", step + 1, steps)
        if step % every == 0 or step == steps - 1:
            log(
                f"{name} step {step}/{steps} loss {np.mean(self.losses[-every:]):.4g} "
                f"({time.perf_counter() - self.started:.0f} s)"
            )

    def validate(
        self,
        step: int,
        steps: int,
        model: torch.nn.Module,
        figures: Callable[[torch.nn.Module], dict] | None,
        log: Log,
        name: str,
        times: int = 10,
    ) -> None:
        """After step `step` (from 0): about `times` times a run, and after the last step,
        `figures(model)` with the model in eval mode, recorded and logged. The model's
        training state is left as it was (eval mode updates no batch-norm statistics, and
        no random generator of the training is drawn from)."""
        every = max(1, steps // times)
        if figures is None or ((step + 1) % every and step + 1 != steps):
            return
        was = model.training
        model.eval()
        with torch.no_grad():
            found = figures(model)
        model.train(was)
        self.validation.append({"step": step + 1, **found})
        log(f"{name} step {step + 1}/{steps} validation: " + ", ".join(f"{k} {v:.4g}" for k, v in found.items()))

    def state_dict(self) -> dict:
        return {
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "losses": self.losses,
            "validation": self.validation,
        } | ({"scaler": self.scaler.state_dict()} if self.scaler is not None else {})

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.losses = list(state["losses"])
        self.validation = list(state.get("validation", []))
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])

    def curves(self) -> Curves:
        return Curves(list(self.losses), list(self.validation))


@dataclass
class Curves:
    """What a trainer recorded: the loss at every step, and validation figures by step."""

    loss: list[float] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)
