"""Training the face stage's networks: the detector on random crops of shrunk photos, the
landmark refiner on jittered face crops from larger ones."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bearid.face.centernet import SIZE_UNIT, STRIDE, DetectorSpec, crop_box
from bearid.imageio import load_photo
from bearid.preprocess import normalise
from bearid.training.config import FaceConfig
from bearid.training.data import Loaded, Sample, load_all
from bearid.training.device import Device
from bearid.training.face.model import Detector, Refiner
from bearid.training.optim import Curves, Optimiser
from bearid.training.progress import Log


def _seed(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def detector_batch(
    loaded: list[Loaded], cfg: FaceConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random crops at random scales around the inference scale, with their targets:
    heat (B x 1 x h x w) and regression values + mask (B x 15 x h x w)."""
    crop, out = cfg.crop, cfg.crop // STRIDE
    images = np.zeros((cfg.batch, 3, crop, crop), dtype=np.float32)
    heat = np.zeros((cfg.batch, 1, out, out), dtype=np.float32)
    reg = np.zeros((cfg.batch, 15, out, out), dtype=np.float32)  # 14 values + mask
    for b in range(cfg.batch):
        item = loaded[int(rng.integers(len(loaded)))]
        s = item.sample
        faces = [f for f in s.faces if not f.ignore]
        jitter = float(np.exp(rng.uniform(np.log(0.75), np.log(1.33))))
        levels = [side / max(s.width, s.height) for side in cfg.input_sides]  # display -> input
        if faces and rng.random() < 0.75:
            f = faces[int(rng.integers(len(faces)))]
            # The pyramid level that will see this face at inference (the finest that keeps it).
            fits = [k for k in levels[:-1] if max(f.box[2], f.box[3]) * k <= cfg.max_face_input]
            k = (fits[0] if fits and rng.random() < 0.85 else levels[-1]) * jitter
            half = crop / (2 * k)  # half the crop side, in displayed pixels
            cx = f.box[0] + f.box[2] / 2 + rng.uniform(-0.8, 0.8) * half
            cy = f.box[1] + f.box[3] / 2 + rng.uniform(-0.8, 0.8) * half
        else:
            k = levels[int(rng.integers(len(levels)))] * jitter
            half = crop / (2 * k)
            cx, cy = rng.uniform(0, s.width), rng.uniform(0, s.height)
        x0, y0 = cx - half, cy - half
        region = tuple(v * item.scale for v in (x0, y0, x0 + 2 * half, y0 + 2 * half))
        patch = item.image.transform((crop, crop), Image.EXTENT, data=region, resample=Image.BILINEAR)
        arr = np.asarray(patch)
        if rng.random() < 0.8:  # light and colour jitter
            arr = np.clip(arr.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20, 3), 0, 255).astype(
                np.uint8
            )
        images[b] = normalise(arr)
        for f in faces:
            fx, fy = (f.box[0] + f.box[2] / 2 - x0) * k / STRIDE, (f.box[1] + f.box[3] / 2 - y0) * k / STRIDE
            if not (0 <= fx < out and 0 <= fy < out):
                continue
            w, h = f.box[2] * k, f.box[3] * k
            sigma = max(0.6, w / STRIDE / 6)
            yy, xx = np.mgrid[0:out, 0:out]
            heat[b, 0] = np.maximum(heat[b, 0], np.exp(-((xx - fx) ** 2 + (yy - fy) ** 2) / (2 * sigma**2)))
            ix, iy = int(fx), int(fy)
            heat[b, 0, iy, ix] = 1.0
            values = [math.log(max(w, 1) / SIZE_UNIT), math.log(max(h, 1) / SIZE_UNIT), fx - ix, fy - iy]
            if f.landmarks is not None:
                centre = np.array([f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2])
                values += list(((f.landmarks - centre) / np.array([f.box[2], f.box[3]])).ravel())
                reg[b, 14, iy, ix] = 2.0  # mask: 2 = with landmarks
            else:
                values += [0.0] * 10
                reg[b, 14, iy, ix] = 1.0
            reg[b, :14, iy, ix] = values
    return torch.from_numpy(images), torch.from_numpy(heat), torch.from_numpy(reg)


def detector_loss(pred: torch.Tensor, heat: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    p = pred[:, :1].clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p**2 * (1 - heat) ** 4 * (1 - pos)).sum()
    n = pos.sum().clamp(min=1)
    mask = reg[:, 14:15]
    box_mask = (mask > 0).float()
    lmk_mask = (mask > 1.5).float()
    box_l1 = (torch.abs(pred[:, 1:5] - reg[:, 0:4]) * box_mask).sum() / n
    lmk_l1 = (torch.abs(pred[:, 5:15] - reg[:, 4:14]) * lmk_mask).sum() / lmk_mask.sum().clamp(min=1)
    return (pos_loss + neg_loss) / n + box_l1 + 2.0 * lmk_l1


def train_detector(
    train: list[Sample], cfg: FaceConfig, log: Log = print, val: list[Sample] | None = None
) -> tuple[Detector, Curves]:
    """The detector, and its curves: the loss at every step and, with `val`, the loss on
    fixed batches of the validation photos about ten times a run."""
    rng = _seed(cfg.seed)
    t0 = time.perf_counter()
    loaded = load_all(train, max_side=int(max(cfg.input_sides) * 1.4))
    log(f"detector: {len(loaded)} photos loaded in {time.perf_counter() - t0:.1f} s")
    device = Device.choose()
    model = device.model(Detector(cfg.width))
    opt = Optimiser(model.parameters(), cfg.lr, cfg.steps, scaler=device.scaler())
    val_loss = _detector_val_loss(val, cfg, device)
    model.train()
    for step in range(cfg.steps):
        x, heat, reg = (device.batch(t) for t in detector_batch(loaded, cfg, rng))
        with device.autocast():
            pred = model(x)
        opt.step(detector_loss(pred.float(), heat, reg))
        opt.report("detector", step, cfg.steps, log)
        opt.validate(step, cfg.steps, model, val_loss, log, "detector")
    return model.cpu().eval(), opt.curves()


def _detector_val_loss(val: list[Sample] | None, cfg: FaceConfig, device: Device, batches: int = 4):
    """The loss on fixed batches of validation crops (their own generator: the training's
    draws are untouched), as a function of the model."""
    faces = [s for s in val or [] if any(not f.ignore for f in s.faces)]
    if not faces:
        return None
    loaded = load_all(faces, max_side=int(max(cfg.input_sides) * 1.4))
    rng = np.random.default_rng([cfg.seed, 99])
    fixed = [tuple(device.batch(t) for t in detector_batch(loaded, cfg, rng)) for _ in range(batches)]
    return lambda model: {"val_loss": float(np.mean([detector_loss(model(x), h, r).item() for x, h, r in fixed]))}


def refiner_examples(train: list[Sample], cfg: FaceConfig, context: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Per face with all landmarks: a context crop (1.8x the refiner crop) and its landmarks
    and box corners (7 points) as fractions of that crop."""
    spec = DetectorSpec(crop_size=cfg.crop_size)  # the crop geometry the finder uses
    crops, marks = [], []
    for s in train:
        faces = [f for f in s.faces if f.landmarks is not None and not f.ignore]
        if not faces:
            continue
        photo = load_photo(s.path, max_side=cfg.refine_side)
        for f in faces:
            left, top, side = crop_box(f.box, spec.crop_expand * 1.8)
            region = tuple(v * photo.scale for v in (left, top, left + side, top + side))
            crops.append(
                np.asarray(
                    photo.image.transform((context, context), Image.EXTENT, data=region, resample=Image.BILINEAR)
                )
            )
            corners = np.array([[f.box[0], f.box[1]], [f.box[0] + f.box[2], f.box[1] + f.box[3]]])
            marks.append((np.vstack([f.landmarks, corners]) - np.array([left, top])) / side)
    return np.stack(crops), np.stack(marks).astype(np.float32)


def refiner_batch(
    crops: np.ndarray, marks: np.ndarray, cfg: FaceConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Jittered refiner crops (as the detector's boxes would place them) and targets."""
    ctx = crops.shape[1]
    idx = rng.integers(len(crops), size=cfg.refiner_batch)
    x = np.zeros((len(idx), 3, cfg.crop_size, cfg.crop_size), dtype=np.float32)
    y = np.zeros((len(idx), marks.shape[1] * 2), dtype=np.float32)
    for b, i in enumerate(idx):
        side = ctx / 1.8 * float(np.exp(rng.normal(0, 0.08)))
        cx, cy = ctx / 2 + rng.normal(0, 0.06) * side, ctx / 2 + rng.normal(0, 0.06) * side
        x0, y0 = cx - side / 2, cy - side / 2
        patch = Image.fromarray(crops[i]).transform(
            (cfg.crop_size, cfg.crop_size), Image.EXTENT, data=(x0, y0, x0 + side, y0 + side), resample=Image.BILINEAR
        )
        arr = np.asarray(patch)
        if rng.random() < 0.8:
            arr = np.clip(arr.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20, 3), 0, 255).astype(
                np.uint8
            )
        x[b] = normalise(arr)
        y[b] = ((marks[i] * ctx - np.array([x0, y0])) / side).ravel()
    return torch.from_numpy(x), torch.from_numpy(y)


def train_refiner(
    train: list[Sample], cfg: FaceConfig, log: Log = print, val: list[Sample] | None = None
) -> tuple[Refiner, Curves]:
    """The refiner, and its curves (with `val`, the loss on fixed validation crops)."""
    rng = _seed(cfg.seed + 1)
    t0 = time.perf_counter()
    crops, marks = refiner_examples(train, cfg)
    log(f"refiner: {len(crops)} faces cropped in {time.perf_counter() - t0:.1f} s")
    device = Device.choose()
    model = device.model(Refiner())
    opt = Optimiser(model.parameters(), cfg.lr, cfg.refiner_steps, scaler=device.scaler())
    val_loss = None
    if val and any(f.landmarks is not None and not f.ignore for s in val for f in s.faces):
        val_crops, val_marks = refiner_examples(val, cfg)
        val_rng = np.random.default_rng([cfg.seed, 98])
        fixed = [tuple(device.batch(t) for t in refiner_batch(val_crops, val_marks, cfg, val_rng)) for _ in range(2)]

        def val_loss(m):
            return {"val_loss": float(np.mean([refiner_loss(m(x), y).item() for x, y in fixed]))}

    model.train()
    for step in range(cfg.refiner_steps):
        x, y = (device.batch(t) for t in refiner_batch(crops, marks, cfg, rng))
        with device.autocast():
            pred = model(x)
        opt.step(refiner_loss(pred.float(), y))
        opt.report("refiner", step, cfg.refiner_steps, log, every=200)
        opt.validate(step, cfg.refiner_steps, model, val_loss, log, "refiner")
    return model.cpu().eval(), opt.curves()


def refiner_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.smooth_l1_loss(pred, target, beta=0.02)


def save(model_dir: Path, detector: Detector, refiner: Refiner, cfg: FaceConfig) -> None:
    from bearid.fsio import atomic_path

    model_dir.mkdir(parents=True, exist_ok=True)
    for name, model in (("detector.pt", detector), ("refiner.pt", refiner)):
        with atomic_path(model_dir / name) as tmp:
            torch.save({"state": model.state_dict(), "width": cfg.width}, tmp)


def load(model_dir: Path) -> tuple[Detector, Refiner]:
    d = torch.load(model_dir / "detector.pt", weights_only=True)
    r = torch.load(model_dir / "refiner.pt", weights_only=True)
    detector, refiner = Detector(d["width"]), Refiner()
    detector.load_state_dict(d["state"])
    refiner.load_state_dict(r["state"])
    return detector.eval(), refiner.eval()
