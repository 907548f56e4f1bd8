"""What every trainer here shares: AdamW with a warm-up + cosine schedule, one step, a
progress line, the curves it records (the loss at every step, validation figures every
so often), and the weights of its best validation step (`KeepBest`)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from bearid.training.progress import Log, advance


class Optimiser:
    """`params` are parameters, or groups of them (dicts with a "params" list and an optional
    "lr" of their own); every group follows the same warm-up and cosine. A group with a
    "start" step (a backbone frozen until then) gets no rate before it and warms up from it,
    over as many steps as the run's own warm-up: Adam's first updates of a parameter are
    full-sized whatever its gradient, so a network unfrozen mid-run is eased in as a fresh
    one is. With a `scaler` (fp16 on CUDA) the loss is scaled against underflow."""

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

        def factor(start: int) -> Callable[[int], float]:
            return lambda i: (
                min(1.0, max(0, i + 1 - start) / warm) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
            )

        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, [factor(g.get("start", 0)) for g in self.opt.param_groups]
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
    ) -> dict | None:
        """After step `step` (from 0; -1: before the first): about `times` times a run, and after the last step,
        `figures(model)` with the model in eval mode, recorded, logged and returned (None
        where there was no validation). The model's training state is left as it was (eval
        mode updates no batch-norm statistics, and no random generator of the training is
        drawn from)."""
        every = max(1, steps // times)
        if figures is None or ((step + 1) % every and step + 1 != steps):
            return None
        was = model.training
        model.eval()
        with torch.no_grad():
            found = figures(model)
        model.train(was)
        self.validation.append({"step": step + 1, **found})
        log(f"{name} step {step + 1}/{steps} validation: " + ", ".join(f"{k} {v:.4g}" for k, v in found.items()))
        return found

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
    """What a trainer recorded: the loss at every step, validation figures by step, and the
    step whose weights it kept: {"step": n} (the last, where nothing chose), with "figure" and
    "value" where the best validation figure chose it (step 0: the network as it came)."""

    loss: list[float] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)
    kept: dict = field(default_factory=dict)
    rate: dict = field(default_factory=dict)  # a learning rate chosen on validation, and what was tried


class KeepBest:
    """The weights of the best validation step so far (as Lightning's ModelCheckpoint and the
    HF Trainer's load_best_model_at_end keep them): `offer` a step's figures, `restore` the
    best into the module at the end. The earliest of equal figures is kept; figures without
    `figure` choose nothing (the last step is kept)."""

    def __init__(self, figure: str, higher_is_better: bool = True):
        self.figure, self.sign = figure, 1.0 if higher_is_better else -1.0
        self.step: int | None = None
        self.value: float | None = None
        self.weights: dict[str, torch.Tensor] | None = None

    def offer(self, step: int, figures: dict | None, module: torch.nn.Module) -> bool:
        """Keep `module`'s weights if `figures` (after step `step`) are the best yet."""
        value = (figures or {}).get(self.figure)
        if value is None or not math.isfinite(value):
            return False
        if self.value is not None and self.sign * value <= self.sign * self.value:
            return False
        self.step, self.value = step, float(value)
        self.weights = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
        return True

    def restore(self, module: torch.nn.Module, last_step: int) -> dict:
        """Load the best weights into `module` (where a validation chose them); what was kept."""
        if self.weights is None:
            return {"step": last_step}
        module.load_state_dict(self.weights)
        return {"step": self.step, "figure": self.figure, "value": self.value}

    def state_dict(self) -> dict:
        return {"step": self.step, "value": self.value, "weights": self.weights}

    def load_state_dict(self, state: dict | None) -> None:
        if state:
            self.step, self.value, self.weights = state["step"], state["value"], copy.copy(state["weights"])
