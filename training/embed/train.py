"""Training the embed stage: P x K identity-balanced batches, augmentation, ArcFace or
triplet loss, checkpoints and resume, deterministic for a seed; DistributedDataParallel under
torchrun; on a GPU where there is one (training/device.py). A pretrained backbone can be
frozen for the first `freeze` steps (the head learns alone) and then fine-tuned at
`backbone_lr` x lr, its rate warmed up again from the step it is unfrozen.

Fine-tuning keeps what a pretrained network knew (docs/experiments.md, 2026-12-02): its
ArcFace centres start at the class means of its own embeddings, not at random directions;
dlib's ResNet moves each tensor by a share of its own scale (DlibEmbedNet.step_scales); and
the stage keeps the weights of its best validation step (`KEPT_FIGURE`), not its last."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset, Sampler

from bearid.errors import BearIDError
from bearid.fsio import atomic_path, atomic_write_text
from bearid.preprocess import Normalisation
from bearid.training.config import FINE_TUNE_RATES, RECIPE_LR, EmbedConfig
from bearid.training.device import Device, distributed, of
from bearid.training.embed.loader import ChipData, PKBatches, Sequential, batches
from bearid.training.embed.losses import ArcFace, triplet_semihard
from bearid.training.embed.madeup import MadeUpBears
from bearid.training.embed.model import EmbeddingNet, build, load_file, save_file
from bearid.training.optim import Curves, KeepBest, Optimiser
from bearid.training.progress import Log

KEPT_FIGURE = "verification_auc"  # the validation figure whose best step's weights are kept
CHECKPOINT = "checkpoint.pt"
IMPRINT_CHIPS = 16  # chips per identity whose mean embedding starts its ArcFace centre


class Trainee(nn.Module):
    """The network and its loss head, as one module (so DDP keeps both in step)."""

    def __init__(self, cfg: EmbedConfig, classes: int, net: EmbeddingNet | None = None):
        super().__init__()
        self.net = net if net is not None else build(cfg)[0]
        self.head = ArcFace(self.net.dim, classes, cfg.scale, cfg.margin) if "arcface" in cfg.losses else None
        self.cfg = cfg

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters()) if self.head is not None else []

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = self.net(x)
        arcface = self.head(e, y) if self.head is not None else 0
        return arcface + (triplet_semihard(e, y, self.cfg.margin) if "triplet" in self.cfg.losses else 0)


def augment(x: torch.Tensor, gen: torch.Generator, cfg: EmbedConfig) -> torch.Tensor:
    """Rotation, scale and shift; light and colour jitter; optional mirror, blur and erase.
    What is switched off is not applied (an identity warp resamples the pixels: not the
    inputs serving gives), though its random numbers are still drawn, so the generator's
    stream is the same whichever are on."""
    n = x.shape[0]
    rnd = lambda *shape: torch.rand(*shape, generator=gen)
    angle = (rnd(n) - 0.5) * 2 * math.radians(cfg.rotate)
    scale = 1 + (rnd(n) - 0.5) * 2 * cfg.zoom
    shift = (rnd(n, 2) - 0.5) * 2 * cfg.shift
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    if cfg.flip:
        theta[:, 0, :2] *= torch.where(rnd(n) < 0.5, -1.0, 1.0)[:, None]
    if cfg.rotate or cfg.zoom or cfg.shift or cfg.flip:
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    gain = 1 + (rnd(n, 1, 1, 1) - 0.5) * 2 * cfg.light
    colour = 1 + (rnd(n, 3, 1, 1) - 0.5) * 2 * cfg.tint
    offset = (rnd(n, 1, 1, 1) - 0.5) * 2 * cfg.light
    if cfg.blur:
        x = _blur(x, rnd(n) < cfg.blur, 1.5 + 2.5 * rnd(n))
    if cfg.erase:
        x = _erase(x, rnd(n) < cfg.erase, rnd(n, 4))
    return x * gain * colour + offset if cfg.light or cfg.tint else x


def _blur(x: torch.Tensor, chosen: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Chosen chips shrunk by `factor` and enlarged back: the detail a soft photo lacks."""
    x = x.clone()
    side = x.shape[-1]
    for i in torch.nonzero(chosen).flatten().tolist():
        small = F.interpolate(x[i : i + 1], size=max(4, round(side / float(factor[i]))), mode="area")
        x[i] = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
    return x


def _erase(x: torch.Tensor, chosen: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Chosen chips get a rectangle (a tenth to a third of each side) set to its mean."""
    h, w = x.shape[-2:]
    size = 0.1 + box[:, 2:] * 0.23
    corner = box[:, :2] * (1 - size)
    ys = torch.arange(h).float()[None, :, None] / h
    xs = torch.arange(w).float()[None, None, :] / w
    inside = (
        (ys >= corner[:, 0, None, None])
        & (ys < (corner[:, 0] + size[:, 0])[:, None, None])
        & (xs >= corner[:, 1, None, None])
        & (xs < (corner[:, 1] + size[:, 1])[:, None, None])
        & chosen[:, None, None]
    )
    return torch.where(inside[:, None], x.mean(dim=(2, 3), keepdim=True), x)


def checksum(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def training_inputs(
    data: Dataset, sampler: Sampler, gen: torch.Generator, cfg: EmbedConfig, workers: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(network inputs, item indices) of each training batch, augmented: what the network is
    trained on. With every augmentation off, each input is the chip's network input as
    serving makes it (bearid.embed.network_input), bit for bit."""
    for x, idx in batches(data, sampler, workers):
        yield augment(x, gen, cfg), idx


def pretrained(cfg: EmbedConfig) -> bool:
    """Whether the network starts from weights (a dlib file, an embed.pt, a timm backbone's)."""
    return bool(cfg.init or cfg.weights)


def imprint(trainee: Trainee, data: Dataset, y: np.ndarray, cfg: EmbedConfig, device: Device) -> None:
    """Start each ArcFace centre at the mean direction of its identity's embeddings (up to
    IMPRINT_CHIPS chips each, unaugmented), as the network gives them at the first step (its
    training mode and frozen state; batch-norm statistics left as they were).

    A centre at a random direction makes every chip's loss large and its gradient point at
    that direction, the same for all chips of a bear: the pretrained network is pulled, at
    full strength, toward an arbitrary layout of the bears before the head has learnt
    anything. Centred on the network's own embeddings, the loss starts from what the network
    already tells apart, and its gradient asks only for the margin (weight imprinting, Qi et
    al. 2018; a linear probe before fine-tuning, Kumar et al. 2022)."""
    if trainee.head is None:
        return
    rng = np.random.default_rng([cfg.seed, 31])
    classes = trainee.head.weight.shape[0]
    idx = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:IMPRINT_CHIPS] for c in range(classes) if (y == c).any()]
    )
    state = {k: v.clone() for k, v in trainee.net.state_dict().items()}
    was = trainee.training
    trainee.train()
    freeze_backbone(trainee, cfg.freeze > 0)
    batch = max(2, cfg.p * cfg.k)
    with torch.no_grad(), device.autocast():
        e = torch.cat(
            [
                trainee.net(device.batch(data.__getitems__(idx[i : i + batch].tolist())[0])).float()
                for i in range(0, len(idx), batch)
            ]
        )
    trainee.net.load_state_dict(state)  # batch-norm statistics as they were
    trainee.train(was)
    w = trainee.head.weight
    means = torch.zeros(classes, e.shape[1], device=e.device).index_add_(0, torch.as_tensor(y[idx], device=e.device), e)
    found = means.norm(dim=1) > 0
    with torch.no_grad():
        w[found] = F.normalize(means[found], dim=1).to(w.dtype) * w[found].norm(dim=1, keepdim=True)


def train_embedder(
    data: ChipData,
    cfg: EmbedConfig,
    model_dir: Path,
    resume: bool = False,
    log: Log = print,
    workers: int | None = None,
    validate: Callable[[EmbeddingNet], dict] | None = None,
) -> tuple[EmbeddingNet, list[str], Curves]:
    """Train on the labelled chips of `data`; checkpoints in `model_dir`. Batches come
    through the loader (`workers` processes; None: the default), augmentation runs here.
    `validate(net)` gives validation figures, taken about ten times a run (on rank 0), and
    before the first step of a pretrained network; where they hold KEPT_FIGURE, the weights of
    its best step are the ones returned (curves.kept says which step: 0 where no step of the
    fine-tune beat the network as it came). A fine-tune without a rate chooses one
    (`choose_rate`; curves.rate says what it tried). Returns the network (eval mode), the
    identity list and the curves."""
    rate: dict = {}
    if cfg.lr is None:
        cfg, rate = choose_rate(data, cfg, model_dir, resume, log, workers, validate)
        resume = resume or rate.get("trial_steps") is not None  # the chosen trial goes on
    net, classes, curves = _train(data, cfg, model_dir, resume, log, workers, validate)
    curves.rate = rate
    return net, classes, curves


def trial_steps(cfg: EmbedConfig) -> int:
    """How far each rate is tried: the frozen steps and a quarter of the rest (at least one
    step, and one short of the run, so the winner has steps left to go on with)."""
    return min(cfg.steps - 1, cfg.freeze + max(1, math.ceil((cfg.steps - cfg.freeze) / 4)))


def choose_rate(
    data: ChipData,
    cfg: EmbedConfig,
    model_dir: Path,
    resume: bool,
    log: Log,
    workers: int | None,
    validate: Callable[[EmbeddingNet], dict] | None,
) -> tuple[EmbedConfig, dict]:
    """A fine-tune's learning rate, chosen on validation: each of FINE_TUNE_RATES runs the
    first `trial_steps` of the run (the same batches, schedule and seed), and the one whose
    best validation KEPT_FIGURE after a step is highest wins (the earliest of equals). The
    winner's trial is the first part of its run, so its checkpoint is left in `model_dir`
    for the run to go on from. Without validation chips or steps to try, the recipe's rate.
    (The config with its rate, and what was tried, for metrics.json.)"""
    record = model_dir / "rate.json"
    if resume and record.is_file():
        rate = json.loads(record.read_text())
        log(f"embed: the fine-tune's rate chosen before, lr {rate['lr']:g}")
        return cfg.model_copy(update={"lr": rate["lr"]}), rate
    trial = trial_steps(cfg)
    if validate is None or trial < 1:
        why = "no validation chips" if validate is None else "a single step"
        log(f"embed: the fine-tune's rate is not chosen ({why} to choose it on): lr {RECIPE_LR:g}, the recipe's")
        return cfg.model_copy(update={"lr": RECIPE_LR}), {"lr": RECIPE_LR, "chosen_by": None, "why": why}
    rows = []
    for lr in FINE_TUNE_RATES:
        log(f"embed: trying lr {lr:g} for the fine-tune's first {trial} steps of {cfg.steps}")
        trial_dir = model_dir / "trials" / f"lr-{lr:g}"
        _, _, curves = _train(data, cfg.model_copy(update={"lr": lr}), trial_dir, resume, log, workers, validate,
                              stop_at=trial)  # fmt: skip
        figures = [v[KEPT_FIGURE] for v in curves.validation if v["step"] > 0 and KEPT_FIGURE in v]
        rows.append({"lr": lr, KEPT_FIGURE: max(figures) if figures else None})
    best = max(rows, key=lambda r: -math.inf if r[KEPT_FIGURE] is None else r[KEPT_FIGURE])
    ddp = torch.distributed.is_initialized()
    if ddp:  # rank 0 validated (and wrote the checkpoints): its choice is every rank's
        chosen = [best, rows]
        torch.distributed.broadcast_object_list(chosen, 0)
        best, rows = chosen
    rate = {"lr": best["lr"], "chosen_by": f"validation {KEPT_FIGURE}", "trial_steps": trial, "tried": rows}
    if not ddp or torch.distributed.get_rank() == 0:
        with atomic_path(model_dir / CHECKPOINT) as tmp:
            shutil.copyfile(model_dir / "trials" / f"lr-{best['lr']:g}" / CHECKPOINT, tmp)
        atomic_write_text(record, json.dumps(rate, indent=1))
        shutil.rmtree(model_dir / "trials")
    if ddp:
        torch.distributed.barrier()
    log(f"embed: chose lr {best['lr']:g} for the fine-tune (" + ", ".join(
        f"{r['lr']:g}: {KEPT_FIGURE} {'-' if r[KEPT_FIGURE] is None else format(r[KEPT_FIGURE], '.4g')}" for r in rows
    ) + f", after {trial} steps)")  # fmt: skip
    return cfg.model_copy(update={"lr": best["lr"]}), rate


def _train(
    data: ChipData,
    cfg: EmbedConfig,
    model_dir: Path,
    resume: bool,
    log: Log,
    workers: int | None,
    validate: Callable[[EmbeddingNet], dict] | None,
    stop_at: int | None = None,
) -> tuple[EmbeddingNet, list[str], Curves]:
    """train_embedder at a given rate; with `stop_at`, the run's first `stop_at` steps, left
    as a checkpoint in `model_dir` to go on from."""
    labels = data.labels
    if len(set(labels)) < 2:
        raise BearIDError(
            "embedding training needs labelled chips of at least 2 "
            f"bears; got {len(labels)} chip(s) of {len(set(labels))}"
            " (did the face stage find the faces? see its metrics.json)"
        )
    device = Device.choose()
    rank, world = distributed(device)
    classes = sorted(set(labels))
    if cfg.steps == 0:  # the network as it is (from its init)
        return build(cfg)[0].eval(), classes, Curves()
    y_all = np.array([classes.index(label) for label in labels])
    made_up = MadeUpBears.of(data, y_all, len(classes), cfg.recolour, cfg.seed)
    data, y_all = made_up.dataset(data), made_up.labels
    torch.manual_seed(cfg.seed)
    trainee = device.model(Trainee(cfg, len(classes) * (made_up.copies + 1)))
    ckpt = model_dir / CHECKPOINT
    resuming = resume and ckpt.exists()
    if pretrained(cfg) and not resuming:
        imprint(trainee, data, y_all, cfg, device)
    opt = Optimiser(parameter_groups(trainee, cfg), cfg.lr, cfg.steps, weight_decay=5e-4, scaler=device.scaler())
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    best = KeepBest(KEPT_FIGURE)
    start = 0
    if resuming:
        state = torch.load(ckpt, map_location=device.where, weights_only=False)
        trainee.load_state_dict(state["model"])
        opt.load_state_dict(state["optimiser"])
        gen.set_state(state["gen"])
        best.load_state_dict(state.get("best"))
        start = state["step"]
        log(f"embed: resumed at step {start}")
    if pretrained(cfg) and start == 0:  # the network as it came: a fine-tune must beat it to be kept
        best.offer(0, opt.validate(-1, cfg.steps, trainee.net, validate if rank == 0 else None, log, "embed"),
                   trainee.net)  # fmt: skip
    model: nn.Module = trainee
    frozen: bool | None = None
    stop = cfg.steps if stop_at is None else stop_at
    sampler = PKBatches(y_all, cfg.p, cfg.k, cfg.seed, rank, start, cfg.steps)
    for step, (x, idx) in zip(range(start, stop), training_inputs(data, sampler, gen, cfg, workers)):
        if (step < cfg.freeze) != frozen:  # DDP is (re)built on the parameters that train
            frozen = step < cfg.freeze
            freeze_backbone(trainee, frozen)
            model = torch.nn.parallel.DistributedDataParallel(trainee) if world > 1 else trainee
        trainee.train()
        freeze_backbone(trainee, frozen)  # its batch-norm statistics too (validation set train mode back)
        y = device.batch(torch.from_numpy(y_all[idx.numpy()]))
        with device.autocast():
            loss = model(device.batch(x), y)
        opt.step(loss)
        opt.report("embed", step, cfg.steps, log)
        found = opt.validate(step, cfg.steps, trainee.net, validate if rank == 0 else None, log, "embed")
        if best.offer(step + 1, found, trainee.net) and step + 1 < cfg.steps:
            log(f"embed step {step + 1}: the best {KEPT_FIGURE} yet ({best.value:.4g}), kept")
        every = cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0
        if rank == 0 and (every or step + 1 == stop_at) and step + 1 < cfg.steps:
            model_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(ckpt) as tmp:
                torch.save(
                    {
                        "model": trainee.state_dict(),
                        "optimiser": opt.state_dict(),
                        "gen": gen.get_state(),
                        "step": step + 1,
                        "best": best.state_dict(),
                    },
                    tmp,
                )
    if stop_at is not None:
        return trainee.net, classes, opt.curves()
    kept = best.restore(trainee.net, cfg.steps)
    if kept["step"] == 0:
        log(f"embed: no step of the fine-tune beat the network as it came ({KEPT_FIGURE} {kept['value']:.4g}): kept it")
    elif kept["step"] != cfg.steps:
        log(f"embed: kept the weights of step {kept['step']} ({KEPT_FIGURE} {kept['value']:.4g}), not the last")
    if world > 1:
        # Gradients are averaged, so weights agree; batch-norm statistics come from each
        # rank's own last batch, and only rank 0 validates (so keeps a best step): take rank
        # 0's weights and statistics, as DDP does at every forward pass.
        for tensor in trainee.state_dict().values():
            flat = tensor.contiguous()  # a channels_last weight, on CUDA, is sent as a plain one
            torch.distributed.broadcast(flat, 0)
            if flat is not tensor:
                tensor.copy_(flat)
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / f"rank{rank}.sha256").write_text(checksum(trainee.net))
        torch.distributed.barrier()
    curves = opt.curves()
    curves.kept = kept
    return trainee.net.eval(), classes, curves


def parameter_groups(trainee: Trainee, cfg: EmbedConfig) -> list[dict]:
    """The backbone's parameters at `backbone_lr` x lr, warmed up from step `freeze`; the
    head's (the network's last projection and the loss head) at lr. A network with step
    scales (dlib's, DlibEmbedNet.step_scales) has each of its tensors' rates times its scale.
    One group where every rate is the same."""
    head = {id(p) for p in trainee.net.head_parameters()} | {id(p) for p in trainee.head_parameters()}
    scales = trainee.net.step_scales() if hasattr(trainee.net, "step_scales") else {}
    params = list(trainee.parameters())
    if cfg.backbone_lr == 1.0 and not cfg.freeze and not scales:
        return [{"params": params}]
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for p in params:
        groups.setdefault((id(p) in head, scales.get(id(p), 1.0)), []).append(p)
    return [
        {"params": ps, "lr": cfg.lr * scale * (1.0 if is_head else cfg.backbone_lr)}
        | ({} if is_head or not cfg.freeze else {"start": cfg.freeze})
        for (is_head, scale), ps in groups.items()
    ]


def freeze_backbone(trainee: Trainee, frozen: bool) -> None:
    """Stop (or restart) the backbone's learning: its weights get no gradient, and its
    batch-norm layers keep the statistics they came with."""
    head = {id(p) for p in trainee.net.head_parameters()}
    for p in trainee.net.parameters():
        if id(p) not in head:
            p.requires_grad_(not frozen)
    if frozen:
        for m in trainee.net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in m.parameters(recurse=False)
            ):
                m.eval()


def save(model_dir: Path, net: EmbeddingNet, classes: list[str], cfg: EmbedConfig, norm: Normalisation) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    save_file(model_dir / "embed.pt", net, norm, cfg.input_size, classes)


def load(model_dir: Path) -> tuple[EmbeddingNet, int, Normalisation]:
    """(network, input size, normalisation) of an embed stage's model/ folder."""
    return load_file(Path(model_dir) / "embed.pt")


def embed(net: EmbeddingNet, data: ChipData, batch: int | None = None, workers: int | None = None) -> np.ndarray:
    """The network's descriptor (the embedding before L2 normalisation) of every chip of
    `data`, in order."""
    if not len(data):
        return np.zeros((0, net.dim), np.float32)
    device = of(net)
    with torch.inference_mode():
        return np.concatenate(
            [
                net.descriptor(device.batch(x)).float().cpu().numpy()
                for x, _ in batches(data, Sequential(len(data), batch or device.inference_batch), workers)
            ]
        )


def embed_views(
    net: EmbeddingNet, data: ChipData, cfg: EmbedConfig, batch: int | None = None, workers: int | None = None
) -> np.ndarray:
    """Descriptors of `cfg.views` augmented copies of every chip of `data` (all chips of the
    first view, then the second, ...), moved, lit, blurred and part-hidden as in training,
    from a generator seeded by the config. The network has learnt its training chips by
    heart, so they sit tighter around their bear than its new photos will; these views show
    the classifier how far a bear's chips stray with pose, blur and occlusion."""
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + 999)
    if not len(data) or not cfg.views:
        return np.zeros((0, net.dim), np.float32)
    device = of(net)
    with torch.inference_mode():
        return np.concatenate(
            [
                net.descriptor(device.batch(augment(x, gen, cfg))).float().cpu().numpy()
                for _ in range(cfg.views)
                for x, _ in batches(data, Sequential(len(data), batch or device.inference_batch), workers)
            ]
        )
