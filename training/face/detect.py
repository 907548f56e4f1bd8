"""Running and evaluating bearface: detect faces in a split, carry the labels over from
the truth, and measure AP@0.5, precision, recall and landmark NME."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bearid.detection import Detection, DetectorSpec
from bearid.facefinder import FaceFinder
from bearid.imageio import load_photo
from bearid.metadata import LANDMARKS, Box, Dataset, ImageEntry
from training.config import FaceConfig
from training.data import Sample
from training.face.model import Detector, Refiner
from training.metrics import detection_report, match_detections, nme


def detector_spec(cfg: FaceConfig) -> DetectorSpec:
    """The inference settings of a face config (what the bundle's manifest records)."""
    return DetectorSpec(input_sides=tuple(cfg.input_sides), max_face_input=cfg.max_face_input,
                        score_threshold=cfg.score_threshold, crop_size=cfg.crop_size)


def torch_finder(detector: Detector, refiner: Refiner, spec: DetectorSpec) -> FaceFinder:
    def run(model):
        def call(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()

        return call

    return FaceFinder(run(detector), run(refiner), spec)


def detect_all(samples: list[Sample], find: Callable, refine_side: int, threshold: float = 0.05) -> list[list[Detection]]:
    """Detections (down to a low score, for AP) for every photo."""
    out = []
    for s in samples:
        photo = load_photo(s.path, max_side=refine_side)
        if not s.width:
            s.width, s.height = photo.width, photo.height
        out.append(find(photo, threshold))
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
        if truth.landmarks is not None and det.score >= threshold:
            pred = np.array([det.landmarks[n] for n in LANDMARKS])
            errors.append(nme(pred, truth.landmarks))
    report["nme"] = round(float(np.mean(errors)), 4) if errors else None
    report["nme_p90"] = round(float(np.percentile(errors, 90)), 4) if errors else None
    return report


def faces_dataset(samples: list[Sample], detections: list[list[Detection]], threshold: float, base_dir: Path) -> Dataset:
    """The detected faces as imglab XML, each labelled with the truth face it matches."""
    images = []
    for s, dets in zip(samples, detections):
        kept = [d for d in dets if d.score >= threshold]
        truth = [f for f in s.faces if not f.ignore]
        _, _, matches, _ = match_detections([[(d.box, d.score) for d in kept]], [[f.box for f in truth]])
        label_of = {m.pred: truth[m.truth].label for m in matches}
        boxes = [
            Box(round(d.left), round(d.top), round(d.width), round(d.height), label_of.get(j),
                {n: (round(x), round(y)) for n, (x, y) in d.landmarks.items()}, attrs={"detection_score": f"{d.score:.4f}"})
            for j, d in enumerate(kept)
        ]
        images.append(ImageEntry(str(s.path.resolve()), boxes, s.width, s.height))
    return Dataset(images, name="bearface detections", comment="labels carried over from the truth by IoU >= 0.5", base_dir=base_dir)


def finder_from_dir(face_dir: Path):
    """The face finder of a face config directory (its config.yaml and model/), and its config."""
    import yaml

    from training.config import make

    raw = yaml.safe_load((face_dir / "config.yaml").read_text()) or {}
    raw.pop("stage", None)
    cfg = make("face", raw)
    if cfg.backend == "dlib":
        from training.face import dlib_backend

        return dlib_backend.load(face_dir / "model"), cfg
    from training.face.train import load

    detector, refiner = load(face_dir / "model")
    return torch_finder(detector, refiner, detector_spec(cfg)), cfg
