"""Running and evaluating the face stage: detect faces in a split, carry the labels over
from the truth, and measure AP@0.5, precision, recall and landmark NME."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from bearid.errors import BearIDError
from bearid.face import Detection, DetectorSpec, FaceFinder
from bearid.imageio import load_photo
from bearid.metadata import LANDMARKS, Box, Dataset, ImageEntry
from bearid.metrics import detection_report, match_detections, nme
from bearid.training.config import FaceConfig, read_config
from bearid.training.data import Sample
from bearid.training.face.model import Detector, Refiner
from bearid.training.progress import Log, advance
from bearid.training.torchnet import network


def torch_finder(detector: Detector, refiner: Refiner, spec: DetectorSpec) -> FaceFinder:
    return FaceFinder(network(detector), network(refiner), spec)


def detect_all(
    samples: list[Sample],
    find: Callable,
    refine_side: int,
    threshold: float = 0.05,
    unreadable: dict[Path, str] | None = None,
    log: Log | None = None,
) -> list[list[Detection]]:
    """Detections (down to a low score, for AP) for every photo. A photo that cannot be read
    is recorded in `unreadable` (path -> why) and has none; without `unreadable` it stops
    the run."""
    out = []
    for i, s in enumerate(samples):
        try:
            photo = load_photo(s.path, max_side=refine_side)
        except BearIDError as exc:
            if unreadable is None:
                raise
            unreadable[s.path] = str(exc)
            out.append([])
            continue
        if not s.width:
            s.width, s.height = photo.width, photo.height
        out.append(find(photo, threshold))
        if log:
            advance(log, "detecting faces", i + 1, len(samples))
    return out


def evaluate(samples: list[Sample], detections: list[list[Detection]], threshold: float) -> dict:
    """AP@0.5, precision and recall at `threshold`, landmark NME of matched faces."""
    truths = [[f.box for f in s.faces if not f.ignore] for s in samples]
    preds = [[(d.box, d.score) for d in dets] for dets in detections]
    report = detection_report(preds, truths, threshold)
    _, _, matches, _ = match_detections(preds, truths)
    errors = []
    for m in matches:
        truth = [f for f in samples[m.image].faces if not f.ignore][m.truth]
        det = detections[m.image][m.pred]
        if truth.landmarks is not None and det.score >= threshold and all(n in det.landmarks for n in LANDMARKS):
            pred = np.array([det.landmarks[n] for n in LANDMARKS])
            errors.append(nme(pred, truth.landmarks))
    report["nme"] = round(float(np.mean(errors)), 4) if errors else None
    report["nme_p90"] = round(float(np.percentile(errors, 90)), 4) if errors else None
    return report


def faces_dataset(
    samples: list[Sample],
    detections: list[list[Detection]],
    threshold: float,
    base_dir: Path,
    leave_out: set[Path] | frozenset = frozenset(),
) -> Dataset:
    """The detected faces as imglab XML, each labelled with the truth face it matches (the
    photos in `leave_out`, unreadable ones, are not in it)."""
    images = []
    for s, dets in zip(samples, detections):
        if s.path in leave_out:
            continue
        kept = [d for d in dets if d.score >= threshold]
        truth = [f for f in s.faces if not f.ignore]
        _, _, matches, _ = match_detections([[(d.box, d.score) for d in kept]], [[f.box for f in truth]])
        label_of = {m.pred: truth[m.truth].label for m in matches}
        boxes = [
            Box(
                round(d.left),
                round(d.top),
                round(d.width),
                round(d.height),
                label_of.get(j),
                {n: (round(x), round(y)) for n, (x, y) in d.landmarks.items()},
                attrs={"detection_score": f"{d.score:.4f}"},
            )
            for j, d in enumerate(kept)
        ]
        images.append(ImageEntry(str(s.path.resolve()), boxes, s.width, s.height))
    return Dataset(
        images,
        name="face detections",
        comment="labels carried over from the truth by IoU >= 0.5",
        base_dir=base_dir,
    )


def example(sample: Sample, dets: list[Detection], threshold: float) -> tuple[Image.Image, list, list[Detection]]:
    """A small upright photo with its true boxes and its detections, in its own pixels."""
    image = load_photo(sample.path, max_side=640).image
    k = image.width / sample.width
    found = [
        Detection(
            d.left * k,
            d.top * k,
            d.width * k,
            d.height * k,
            d.score,
            {n: (x * k, y * k) for n, (x, y) in d.landmarks.items()},
        )
        for d in dets
        if d.score >= threshold
    ]
    return image, [tuple(v * k for v in f.box) for f in sample.faces], found


def finder_from_dir(face_dir: Path) -> tuple[object, FaceConfig]:
    """The face finder of a face config directory (its config.yaml and model/), and its config."""
    cfg = read_config(face_dir, "face")
    assert isinstance(cfg, FaceConfig)
    if not (face_dir / "model").is_dir():
        raise BearIDError(f"{face_dir}: no model/ folder (is it a face stage directory that finished training?)")
    if cfg.backend == "dlib":
        from bearid.training.face import dlib_backend

        return dlib_backend.load(face_dir / "model"), cfg
    if cfg.backend == "mmod":
        from bearid.training.face import mmod

        return mmod.load_finder(face_dir / "model"), cfg
    from bearid.training.face.train import load

    detector, refiner = load(face_dir / "model")
    return torch_finder(detector, refiner, cfg.detector_spec()), cfg
