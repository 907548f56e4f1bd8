"""Suite `gpu`: the trainers' steps on a CUDA GPU (bf16 or fp16 autocast, channels-last, the
gradient scaler where fp16) against the same steps on this machine's CPU, in one run.

The steps are the trainers' own parts (bearid.training.device, the Trainee and its loss, the
augmentation, the Optimiser; the face detector and its loss) on random inputs of the sizes
`configs/gpu.yaml` uses, so the CUDA paths are exercised without a dataset. Without a GPU the
suite says so and measures the CPU alone."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from common import Figure, Suite

CPU_STEPS, GPU_STEPS = 2, 30  # after one warm-up step on the CPU, five on the GPU


def _embed_step(device, backbone: str, size: int, batch: int):
    """One embed training step as train_embedder takes it, as a function (and its losses)."""
    from bearid.training.config import EmbedConfig
    from bearid.training.embed.train import Trainee, augment, parameter_groups
    from bearid.training.optim import Optimiser

    cfg = EmbedConfig(backbone=backbone, input_size=size, steps=1000, freeze=0, backbone_lr=0.1, p=batch // 4, k=4)
    trainee = device.model(Trainee(cfg, 64)).train()
    opt = Optimiser(parameter_groups(trainee, cfg), cfg.lr, cfg.steps, scaler=device.scaler())
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size)
    y = device.batch(torch.arange(batch) % 64)

    def step() -> None:
        with device.autocast():
            loss = trainee(device.batch(augment(x, gen, cfg)), y)
        opt.step(loss)

    return step, opt.losses


def _face_step(device, side: int, batch: int):
    from bearid.face.centernet import STRIDE
    from bearid.training.face.model import Detector
    from bearid.training.face.train import detector_loss
    from bearid.training.optim import Optimiser

    model = device.model(Detector(32)).train()
    opt = Optimiser(model.parameters(), 2e-3, 1000, scaler=device.scaler())
    x = device.batch(torch.rand(batch, 3, side, side))
    out = side // STRIDE
    heat = device.batch(torch.zeros(batch, 1, out, out))
    reg = device.batch(torch.zeros(batch, 15, out, out))

    def step() -> None:
        with device.autocast():
            pred = model(x)
        opt.step(detector_loss(pred.float(), heat, reg))

    return step, opt.losses


def _seconds_per_step(make, device, steps: int) -> tuple[float, list[float]]:
    step, losses = make(device)
    for _ in range(5 if device.cuda else 1):
        step()
    if device.cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps, losses


def run(work: Path) -> Suite:
    from bearid.training.device import Device

    suite = Suite("gpu")
    cpu = Device(torch.device("cpu"))
    gpu = Device.choose("auto")
    jobs = {
        "embed step, timm:convnext_tiny 224 px, batch 128": lambda d: _embed_step(d, "timm:convnext_tiny", 224, 128),
        "embed step, builtin 64 px, batch 48": lambda d: _embed_step(d, "builtin", 64, 48),
        "face detector step, 512 px, batch 16": lambda d: _face_step(d, 512, 16),
    }
    rows = []
    for name, make in jobs.items():
        cpu_s, _ = _seconds_per_step(make, cpu, CPU_STEPS)
        row = {"step": name, "CPU s": round(cpu_s, 4), "GPU s": None, "speed-up": None, "finite losses": None}
        if gpu.cuda:
            gpu_s, losses = _seconds_per_step(make, gpu, GPU_STEPS)
            row |= {"GPU s": round(gpu_s, 5), "speed-up": round(cpu_s / gpu_s, 1)}
            row["finite losses"] = bool(np.isfinite(losses).all())
            suite.add(Figure(name, gpu_s, "s/step", baseline=cpu_s, baseline_name="CPU", ratio=cpu_s / gpu_s,
                             note=f"{gpu.dtype} autocast, channels-last"))  # fmt: skip
        rows.append(row)
    device = torch.cuda.get_device_name() if gpu.cuda else "no CUDA device: the CPU alone was measured"
    suite.tables[f"trainer steps, {device}"] = rows
    return suite
