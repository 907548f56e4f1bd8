"""The mmod face backend: an imported dlib CNN face detector (bearface's, or dlib's human one)
and its shape predictor, as a face stage of the results tree: used as they are (steps: 0), or
trained further on the labelled faces (steps: N), the original team's path from dlib's dog or
human detector to bears.

The stage's model/ folder holds what export and `bearid face detect` need, so the original
files may move: face.dat (the detector network as imported), face.pt (its fine-tuned
parameters, where it was fine-tuned), face_tuned.dat (the same, written back as a dlib file
that dlib's own tools run), bearface_tuned.dat (face_tuned.dat followed by the shape
predictor as dlib wrote it and two images: the one file bearface.cpp loads), landmarks.npz
(the shape predictor's arrays: the imported one, or one dlib's own trainer made from the
labels) and mmod.json (the detector's settings and the landmarks' names).

Fine-tuning follows dlib's MMOD training (dnn_mmod_ex.cpp): random crops of the photos, each
face at a size the windows can match (and half the crops anywhere), mirrored at random, each
crop through the same tiled pyramid as inference, dlib's loss (training/face/mmod_loss.py),
SGD as dlib's trainer (see `optimiser`).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bearid.dlibformat.faces import skip_hipsterizer_images
from bearid.dlibformat.network import Con, Network, Pool, read_network, read_network_file
from bearid.dlibformat.network_writer import write_network_file
from bearid.dlibformat.reader import DlibFormatError, Reader
from bearid.dlibformat.shape_predictor import read_shape_predictor
from bearid.errors import BearIDError
from bearid.face.mmod import MmodFinder, MmodSpec, network_input, output_to_input
from bearid.face.shape_predictor import ShapeModel
from bearid.fsio import atomic_path, atomic_write_bytes, atomic_write_text
from bearid.metadata import LANDMARKS
from bearid.training.config import CHIP_TEMPLATES, MMOD_RATES, MMOD_RECIPE_LR, FaceConfig
from bearid.training.data import Loaded, Sample, load_all
from bearid.training.dlibnet import DlibNet
from bearid.training.face.mmod_loss import MmodLoss, Truth, mmod_loss
from bearid.training.optim import KeepBest
from bearid.training.progress import Log
from bearid.training.torchnet import network

VALIDATIONS = 4  # times a fine-tune measures the validation photos (each runs the detector on them all)
KEPT_FACE_FIGURE = "ap50"  # the validation figure whose best step's weights are kept

# Landmark names by the shape predictor's number of parts: bearface's six (its training XML's
# parts in dlib's sorted order), and dlib's 5-point human model (the dlib_face chip template).
PARTS = {6: ("head_top", "lear", "leye", "nose", "rear", "reye"), 5: CHIP_TEMPLATES["dlib_face"][1]}
# What follows the shape predictor in a bearface file written from an init file without images:
# two empty matrix<rgb_alpha_pixel> as dlib 20.0.1 serialises them (rows 0 and columns 0, each
# integer 0 as a control byte 0x01 and one byte 0x00), the glasses and mustache bearface.cpp
# reads after the shape predictor (and never uses).
NO_IMAGES = b"\x01\x00" * 4


def spec_of(net: Network, cfg: FaceConfig) -> MmodSpec:
    """The detector's settings: its windows, normalisation and geometry from the file."""
    if net.mmod is None or net.input.pyramid is None:
        raise BearIDError(f"{cfg.init}: a dlib {net.architecture} network, not an MMOD detector on an image pyramid")
    geometry = [(op.stride[0], op.padding[0], op.weight.shape[2]) if isinstance(op, Con) else
                (op.stride[0], op.padding[0], op.size[0]) for op in net.ops if isinstance(op, Con | Pool)]  # fmt: skip
    return MmodSpec(
        windows=tuple((w.width, w.height) for w in net.mmod.windows),
        mean=net.input.mean,
        output_to_input=output_to_input(geometry),
        padding=net.input.pyramid[0],
        outer_padding=net.input.pyramid[1],
        nms_iou=net.mmod.nms_iou,
        nms_covered=net.mmod.nms_covered,
        threshold=cfg.threshold,
    )


def import_model(
    cfg: FaceConfig,
    model_dir: Path,
    train: list[Sample] | None = None,
    log: Log = print,
    val: list[Sample] | None = None,
) -> dict:
    """Read the detector (and its shape predictor) named by `cfg` into `model_dir`; with
    `cfg.steps` > 0, train both further on `train`'s labelled faces, the detector's rate
    chosen and its best step kept on `val`'s AP. What training did (for metrics.json; empty
    when the files are used as they are)."""
    net, rest = read_network_file(Path(cfg.init))  # type: ignore[arg-type]
    if net.mmod and net.mmod.bounding_box_regression:
        raise BearIDError(f"{cfg.init}: a detector with bounding-box regression, which BearID does not run yet")
    spec = spec_of(net, cfg)
    tuning = cfg.steps > 0
    if tuning and not any(not f.ignore for s in train or [] for f in s.faces):
        raise BearIDError(
            f"{cfg.init}: steps {cfg.steps} fine-tunes the detector on labelled faces; the training split has none"
        )
    marked = tuning and any(f.landmarks is not None and not f.ignore for s in train or [] for f in s.faces)
    shapes, images = (None, NO_IMAGES) if marked else _imported_shapes(cfg, rest)
    record: dict = {}
    if tuning:
        loaded = load_all([s for s in train or [] if s.faces], cfg.refine_side)
        t0 = time.perf_counter()
        validate = validation(val, spec, cfg) if val else None
        module, curve, tuned = fine_tune(net, spec, cfg, loaded, log, validate)
        record = {**tuned, "fine_tuned_steps": cfg.steps, "detector_seconds": round(time.perf_counter() - t0, 1),
                  # dlib's loss, the mean of the first and of the last tenth of the steps (one batch is noisy)
                  "loss_start": _mean(curve.loss[: max(1, cfg.steps // 10)]),
                  "loss_end": _mean(curve.loss[-max(1, cfg.steps // 10) :])}  # fmt: skip
        if marked:
            t0 = time.perf_counter()
            shapes = train_landmarks(loaded, cfg.seed)
            record["landmark_seconds"] = round(time.perf_counter() - t0, 1)
            log(f"face: dlib trained the shape predictor on the labelled landmarks ({record['landmark_seconds']} s)")
    assert shapes is not None
    n_parts = shapes.model.parts
    parts = LANDMARKS if marked else tuple(cfg.parts) if cfg.parts else PARTS.get(n_parts)
    if parts is None or len(parts) != n_parts:
        raise BearIDError(f"the shape predictor has {n_parts} parts: name them (parts: [...], {n_parts} names)")
    model_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(model_dir / "face.dat", Reader.open(Path(cfg.init)).data[: net.end])  # type: ignore[arg-type]
    if tuning:
        with atomic_path(model_dir / TUNED) as tmp:
            torch.save({"params": [p.detach().clone() for p in module.params]}, tmp)
        params = [p.detach().numpy() for p in module.params]
        tuned_dat = write_network_file(model_dir / "face.dat", params, model_dir / TUNED_DAT)
        write_bearface_file(model_dir / BEARFACE_DAT, tuned_dat.read_bytes(), shapes, images)
        atomic_write_text(model_dir / "fine_tune.json", json.dumps({**record, "loss": curve.loss}, indent=1))
    shapes.model.save(model_dir / "landmarks.npz")
    atomic_write_text(model_dir / "mmod.json", json.dumps({"spec": asdict(spec), "parts": list(parts)}, indent=1))
    return record


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 4)


@dataclass
class Landmarks:
    """A shape predictor as BearID runs it and as dlib serialised it (kept byte for byte, so a
    bearface file can hand dlib its own object back rather than BearID's rewrite of it)."""

    model: ShapeModel
    dat: bytes  # dlib's serialize(shape_predictor): version 1, initial shape, forests, anchors, deltas


def _shape_predictor(r: Reader) -> Landmarks:
    """The shape predictor at the reader's position, and the bytes it took."""
    at = r.pos
    model = read_shape_predictor(r).check()
    return Landmarks(model, r.data[at : r.pos])


def _imported_shapes(cfg: FaceConfig, rest: Reader) -> tuple[Landmarks, bytes]:
    """The shape predictor given with the detector (its own file, or the one after the network),
    and the images that followed it in the init file (the hipsterizer's), else NO_IMAGES."""
    if cfg.landmarks:
        return _shape_predictor(Reader.open(Path(cfg.landmarks))), NO_IMAGES
    if rest.left:  # bearface's file: the shape predictor follows the network
        try:
            shapes = _shape_predictor(rest)
        except DlibFormatError as exc:
            raise BearIDError(f"{cfg.init}: after the network, no shape predictor BearID reads ({exc}); "
                              "give the landmarks file (landmarks: SHAPE_PREDICTOR.dat)") from None  # fmt: skip
        if not rest.left:
            return shapes, NO_IMAGES
        at = rest.pos  # the dog hipsterizer's layout: net >> sp >> glasses >> mustache
        skip_hipsterizer_images(rest)
        return shapes, rest.data[at : rest.pos]
    raise BearIDError(f"{cfg.init}: holds no shape predictor; give one (landmarks: SHAPE_PREDICTOR.dat)")


def write_bearface_file(target: Path, network: bytes, shapes: Landmarks, images: bytes = NO_IMAGES) -> Path:
    """bearface.cpp's model file: a dlib network, then its shape predictor as dlib serialised
    it, then two images. bearface.cpp reads `>> net >> sp >> glasses >> mustache` (and only
    loads the images), dlib's examples `>> net >> sp` (dlib ignores what follows), so both read
    this file; each part is bytes BearID's reader has already read whole."""
    atomic_write_bytes(Path(target), network + shapes.dat + images)
    return Path(target)


# -- fine-tuning the detector --------------------------------------------------------------------
TUNED = "face.pt"  # the fine-tuned parameters, in DlibNet's order, beside the imported face.dat
TUNED_DAT = "face_tuned.dat"  # the fine-tuned network as a dlib file (dlib.cnn_face_detection_model_v1 runs it)
BEARFACE_DAT = "bearface_tuned.dat"  # face_tuned.dat >> shape predictor >> two images: bearface.cpp's model file
BACKGROUND = 0.5  # share of crops taken anywhere, not around a face (dlib's random_cropper)
MAX_FACE = 0.7  # a face's longer side in a crop at most this share of the crop (dlib's random_cropper)


@dataclass
class Curve:
    loss: list[float] = field(default_factory=list)  # dlib's loss of each step's batch


def _scaled_box(box: tuple[float, float, float, float], k: float, x0: float, y0: float) -> tuple[int, ...]:
    """A face box (left, top, width, height) as a dlib rectangle of the crop that starts at
    (x0, y0) and is `k` times the photo's size."""
    left, top, w, h = box
    return tuple(
        int(np.floor(v + 0.5))
        for v in ((left - x0) * k, (top - y0) * k, (left + w - x0) * k - 1, (top + h - y0) * k - 1)
    )


def random_crop(item: Loaded, side: int, spec: MmodSpec, rng: np.random.Generator) -> tuple[np.ndarray, list[Truth]]:
    """A side x side crop of a photo and its truth boxes (dlib's random_cropper): around one of
    its faces, scaled so the face's longer side is between the smallest window's and MAX_FACE of
    the crop, or (BACKGROUND of the time) anywhere at any scale; mirrored half the time. A box
    whose centre leaves the crop is dropped; one cut by the crop's edge, or smaller than the
    windows can match, is marked ignore (a detection on it is neither a hit nor a false alarm)."""
    image, s = item.image, item.scale
    faces = [(tuple(v * s for v in f.box), f.ignore) for f in item.sample.faces]
    targets = [b for b, ignore in faces if not ignore]
    smallest = min(max(w, h) for w, h in spec.windows)
    if targets and rng.random() >= BACKGROUND:
        left, top, w, h = targets[int(rng.integers(len(targets)))]
        k = rng.uniform(smallest, max(smallest, MAX_FACE * side)) / max(w, h)
        x0 = left - rng.uniform(0, max(0.0, side - w * k)) / k
        y0 = top - rng.uniform(0, max(0.0, side - h * k)) / k
    else:
        short = min(image.width, image.height)
        k = side / (short * rng.uniform(0.3, 1.0))
        x0 = rng.uniform(0, max(0.0, image.width - side / k))
        y0 = rng.uniform(0, max(0.0, image.height - side / k))
    crop = image.transform(
        (side, side), Image.Transform.AFFINE, (1 / k, 0, x0, 0, 1 / k, y0), Image.Resampling.BILINEAR
    )
    pixels = np.asarray(crop.convert("RGB"))
    flip = rng.random() < 0.5
    truths = []
    for box, ignore in faces:
        r = _scaled_box(box, k, x0, y0)
        if flip:
            r = (side - 1 - r[2], r[1], side - 1 - r[0], r[3])
        cx, cy = (r[0] + r[2]) / 2, (r[1] + r[3]) / 2
        if not (0 <= cx <= side - 1 and 0 <= cy <= side - 1) or r[2] < r[0] or r[3] < r[1]:
            continue
        cut = r[0] < 0 or r[1] < 0 or r[2] > side - 1 or r[3] > side - 1
        small = max(r[2] - r[0] + 1, r[3] - r[1] + 1) < smallest * 0.9
        truths.append(Truth(r, ignore or cut or small))  # type: ignore[arg-type]
    return (pixels[:, ::-1] if flip else pixels).copy(), truths


def batch_of(
    loaded: list[Loaded], n: int, side: int, spec: MmodSpec, rng: np.random.Generator
) -> tuple[torch.Tensor, list[list[Truth]], list]:
    """n random crops through the inference pyramid: the network's input, the truth boxes, and
    where the pyramid's levels are (the same for every crop of one side)."""
    xs, truths, rects = [], [], []
    for _ in range(n):
        pixels, boxes = random_crop(loaded[int(rng.integers(len(loaded)))], side, spec, rng)
        x, rects = network_input(pixels, spec)
        xs.append(x[0])
        truths.append(boxes)
    return torch.from_numpy(np.stack(xs)), truths, rects


def batch_loss(module: DlibNet, batch: tuple, spec: MmodSpec, net: Network) -> tuple[torch.Tensor, MmodLoss]:
    """The network's output on a batch and dlib's loss (and gradient) there."""
    x, truths, rects = batch
    out = module(x)
    return out, mmod_loss(out.detach().numpy(), truths, rects, spec, net.mmod)  # type: ignore[arg-type]


def train_step(module: DlibNet, opt: torch.optim.Optimizer, batch: tuple, spec: MmodSpec, net: Network) -> MmodLoss:
    """One step: the network's output, dlib's loss and gradient there, handed back through the
    network as dlib hands it (`output.backward(gradient)`)."""
    out, loss = batch_loss(module, batch, spec, net)
    opt.zero_grad()
    out.backward(torch.from_numpy(loss.gradient))
    opt.step()
    return loss


def optimiser(module: DlibNet, cfg: FaceConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """SGD as dlib's dnn_trainer (momentum 0.9, weight decay 1e-4), at `lr` (default: cfg.lr's,
    else MMOD_RECIPE_LR). dlib trains at 0.1
    through batch norm; an imported network's is folded into fixed scales, and there 0.01 and
    0.003 diverged within ten steps on bear crops, while 0.001 and 0.0003 lowered the loss step
    by step on a fixed batch. Adam's first step (every weight moved by lr, whatever its
    gradient) multiplied the loss by 6 to 25 even at 1e-5."""
    rate = lr if lr is not None else cfg.lr if cfg.lr is not None else MMOD_RECIPE_LR
    return torch.optim.SGD(module.parameters(), lr=rate, momentum=0.9, weight_decay=1e-4)


def validation(val: list[Sample], spec: MmodSpec, cfg: FaceConfig) -> Callable[[DlibNet], dict]:
    """The detector's figures on the validation photos (AP@0.5 and the rest, as the face stage
    measures them at its end; boxes only, the landmarks are trained after)."""
    from bearid.training.face import detect as face_detect

    def figures(module: DlibNet) -> dict:
        find = MmodFinder(network(module), None, spec, ()).find
        found = face_detect.detect_all(val, find, cfg.refine_side, cfg.search_threshold, unreadable={})
        return face_detect.evaluate(val, found, cfg.threshold)

    return figures


@dataclass
class _Run:
    """One rate's fine-tune so far, to go on with: its network, optimiser, crops' generator."""

    lr: float
    module: DlibNet
    opt: torch.optim.Optimizer
    rng: np.random.Generator
    curve: Curve = field(default_factory=Curve)

    @classmethod
    def start(cls, net: Network, cfg: FaceConfig, lr: float) -> _Run:
        torch.manual_seed(cfg.seed)
        module = DlibNet(net).train()
        return cls(lr, module, optimiser(module, cfg, lr), np.random.default_rng(cfg.seed))

    def go(self, to: int, net: Network, spec: MmodSpec, cfg: FaceConfig, loaded: list[Loaded], log: Log) -> None:
        """Train on to step `to` (of cfg.steps)."""
        self.module.train()
        for step in range(len(self.curve.loss), to):
            loss = train_step(self.module, self.opt, batch_of(loaded, cfg.batch, cfg.crop, spec, self.rng), spec, net)
            self.curve.loss.append(round(loss.value, 5))
            if step == 0 or (step + 1) % max(1, cfg.steps // 10) == 0:
                log(f"face: mmod lr {self.lr:g} step {step + 1}/{cfg.steps}: loss {loss.value:.3f} ({loss.targets} "
                    f"faces, {loss.false_alarms} false alarms, {loss.ignored} ignored)")  # fmt: skip
        self.module.eval()


def _figure(figures: dict) -> float:
    value = figures.get(KEPT_FACE_FIGURE)
    return -math.inf if value is None else value


def fine_tune(
    net: Network,
    spec: MmodSpec,
    cfg: FaceConfig,
    loaded: list[Loaded],
    log: Log,
    validate: Callable[[DlibNet], dict] | None = None,
) -> tuple[DlibNet, Curve, dict]:
    """The imported network trained `cfg.steps` steps on batches of `cfg.batch` random crops of
    `cfg.crop` px (dlib's loss). With `validate`, the network is measured as it came and
    VALIDATIONS times a run, and the best step's weights are kept (the imported network where no
    step beat it); a config without `lr` tries each of MMOD_RATES for the run's first stretch
    (the same crops for each) and goes on with the one of the best validation KEPT_FACE_FIGURE.
    Returns the network (eval mode), its loss curve, and for metrics.json the kept step and
    the rate (chosen, and what was tried)."""
    every = max(1, cfg.steps // VALIDATIONS)
    keep = KeepBest(KEPT_FACE_FIGURE)
    if validate is not None:
        as_is = DlibNet(net).eval()
        keep.offer(0, validate(as_is), as_is)
    rates = (cfg.lr,) if cfg.lr is not None else MMOD_RATES if validate and cfg.steps > every else (MMOD_RECIPE_LR,)
    record: dict = {}
    if len(rates) > 1:
        tried, runs = [], []
        for lr in rates:
            run = _Run.start(net, cfg, lr)
            run.go(every, net, spec, cfg, loaded, log)
            figures = validate(run.module)  # type: ignore[misc]
            tried.append({"lr": lr, KEPT_FACE_FIGURE: figures.get(KEPT_FACE_FIGURE)})
            runs.append((run, figures))
        run, figures = max(runs, key=lambda r: _figure(r[1]))
        keep.offer(every, figures, run.module)
        record["chosen"] = {"lr": run.lr, "chosen_by": f"validation {KEPT_FACE_FIGURE}", "trial_steps": every,
                            "tried": tried}  # fmt: skip
        figures_text = ", ".join(f"{t['lr']:g}: {KEPT_FACE_FIGURE} {t[KEPT_FACE_FIGURE]}" for t in tried)
        log(f"face: chose lr {run.lr:g} for the mmod fine-tune ({figures_text}, after {every} steps)")
    else:
        run = _Run.start(net, cfg, rates[0])
        if cfg.lr is None:
            why = "no validation photos" if validate is None else "too few steps"
            record["chosen"] = {"lr": rates[0], "chosen_by": None, "why": why}
            log(f"face: the mmod fine-tune's rate is not chosen ({why} to choose it on): lr {rates[0]:g}")
    while len(run.curve.loss) < cfg.steps:
        run.go(min(cfg.steps, len(run.curve.loss) + every), net, spec, cfg, loaded, log)
        if validate is not None:
            keep.offer(len(run.curve.loss), validate(run.module), run.module)
    kept = keep.restore(run.module, cfg.steps)
    if kept["step"] != cfg.steps:
        log(f"face: kept the mmod weights of step {kept['step']} ({KEPT_FACE_FIGURE} {kept['value']:.4g})"
            + (", the imported network as it came" if kept["step"] == 0 else ""))  # fmt: skip
    return run.module.eval(), run.curve, {**record, "kept_step": kept["step"]}


# -- the landmarks, by dlib's own trainer ---------------------------------------------------------
def train_landmarks(loaded: list[Loaded], seed: int = 0) -> Landmarks:
    """A shape predictor of the five landmarks, trained by dlib's shape_predictor_trainer (its
    default options) on the labelled faces: as arrays BearID runs, and dlib's own serialisation
    of it (`save` writes `serialize(sp)` alone), which bearface_tuned.dat carries."""
    import dlib

    images, objects = [], []
    for item in loaded:
        s = item.scale
        dets = []
        for f in item.sample.faces:
            if f.ignore or f.landmarks is None:
                continue
            left, top, w, h = (v * s for v in f.box)
            rect = dlib.rectangle(*(int(np.floor(v + 0.5)) for v in (left, top, left + w - 1, top + h - 1)))
            points = [dlib.point(int(np.floor(x * s + 0.5)), int(np.floor(y * s + 0.5))) for x, y in f.landmarks]
            dets.append(dlib.full_object_detection(rect, points))
        if dets:
            images.append(np.asarray(item.image.convert("RGB")))
            objects.append(dets)
    options = dlib.shape_predictor_training_options()
    options.num_threads = torch.get_num_threads()
    options.random_seed = str(seed)
    predictor = dlib.train_shape_predictor(images, objects, options)
    with tempfile.TemporaryDirectory(prefix="bearid-sp-") as scratch:
        path = Path(scratch) / "sp.dat"
        predictor.save(str(path))
        r = Reader.open(path)
        shapes = _shape_predictor(r)
    if r.left:
        raise BearIDError(f"dlib's shape predictor file holds {r.left} bytes after the shape predictor BearID read")
    return shapes


def load_finder(model_dir: Path) -> MmodFinder:
    """The face finder of an mmod face stage's model/ folder, its network run by PyTorch."""
    net, module = load_network(model_dir)
    record = json.loads((model_dir / "mmod.json").read_text())
    spec = MmodSpec(**{k: tuple(map(tuple, v)) if k == "windows" else tuple(v) if isinstance(v, list) else v
                       for k, v in record["spec"].items()})  # fmt: skip
    return MmodFinder(network(module), ShapeModel.load(model_dir / "landmarks.npz"), spec, tuple(record["parts"]))


def load_network(model_dir: Path) -> tuple[Network, DlibNet]:
    """The stage's network: the imported one, with its fine-tuned parameters where it has them."""
    r = Reader.open(model_dir / "face.dat")
    net = read_network(r)
    module = DlibNet(net).eval()
    if (model_dir / TUNED).is_file():
        params = torch.load(model_dir / TUNED, weights_only=True)["params"]
        with torch.no_grad():
            for p, tuned in zip(module.params, params, strict=True):
                p.copy_(tuned)
    return net, module
