"""The classic dlib backend: a HOG face detector and a shape predictor, trained straight
from imglab XML in seconds — for bootstrapping a new dataset from a few dozen photos.

Training works on crops around each face, scaled so faces are about the HOG window's size;
detection runs on the photo shrunk to `DETECT_SIDE` (faces much smaller than the window
there are missed: the price of the classic method's speed).
"""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
from PIL import Image

from bearid.face import Detection
from bearid.imageio import Photo, load_photo
from bearid.metadata import LANDMARKS, Box, Dataset, ImageEntry, write_faces
from bearid.training.config import FaceConfig
from bearid.training.data import Sample

WINDOW = 80  # HOG detection window (px)
DETECT_SIDE = 1280
CONTEXT = 3.0  # training crop side / face side


def _training_set(train: list[Sample], folder: Path) -> Path:
    """Crops around every face (scaled so the face is ~1.3 windows wide) as imglab XML."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for n, s in enumerate(train):
        faces = [f for f in s.faces if f.landmarks is not None and not f.ignore]
        if not faces:
            continue
        photo = load_photo(s.path, max_side=2048)
        for j, f in enumerate(faces):
            k = WINDOW * 1.3 / max(f.box[2], 1)
            side = CONTEXT * f.box[2]
            x0, y0 = f.box[0] + f.box[2] / 2 - side / 2, f.box[1] + f.box[3] / 2 - side / 2
            out = round(side * k)
            region = tuple(v * photo.scale for v in (x0, y0, x0 + side, y0 + side))
            crop = photo.image.transform((out, out), Image.EXTENT, data=region, resample=Image.BILINEAR)
            name = f"{n:05d}_{j}.png"
            crop.save(folder / name)
            parts = {m: (round((x - x0) * k), round((y - y0) * k)) for m, (x, y) in zip(LANDMARKS, f.landmarks)}
            # Other faces in the crop are left unmarked: dlib would count them as mistakes.
            box = Box(
                round((f.box[0] - x0) * k),
                round((f.box[1] - y0) * k),
                round(f.box[2] * k),
                round(f.box[3] * k),
                f.label,
                parts,
            )
            images.append(ImageEntry(name, [box], out, out))
    xml = folder / "training.xml"
    write_faces(Dataset(images, name="dlib training crops", base_dir=folder), xml)
    return xml


class DlibFinder:
    def __init__(self, detector, predictor):
        self.detector, self.predictor = detector, predictor

    def find(self, photo: Photo, threshold: float | None = None) -> list[Detection]:
        k = min(1.0, DETECT_SIDE / max(photo.width, photo.height))
        small = photo.image.resize((round(photo.width * k), round(photo.height * k)), Image.BILINEAR)
        rects, scores, _ = self.detector.run(np.asarray(small), 1, -0.5)
        full = np.asarray(photo.image)
        out = []
        for r, score in zip(rects, scores):
            conf = float(1 / (1 + np.exp(-2 * score)))  # HOG margin -> 0..1, 0.5 at the margin
            if threshold is not None and conf < threshold:
                continue
            left, top, w, h = r.left() / k, r.top() / k, r.width() / k, r.height() / k
            s = photo.scale
            rect = dlib.rectangle(round(left * s), round(top * s), round((left + w) * s), round((top + h) * s))
            shape = self.predictor(full, rect)
            marks = {name: (shape.part(i).x / s, shape.part(i).y / s) for i, name in enumerate(sorted(LANDMARKS))}
            out.append(Detection(left, top, w, h, conf, marks))
        return sorted(out, key=lambda d: -d.score)


def train(train_set: list[Sample], cfg: FaceConfig, model_dir: Path, log=print) -> DlibFinder:
    model_dir.mkdir(parents=True, exist_ok=True)
    xml = _training_set(train_set, model_dir / "crops")
    options = dlib.simple_object_detector_training_options()
    options.detection_window_size = WINDOW * WINDOW
    options.C = 5
    options.num_threads = 2
    options.add_left_right_image_flips = False  # bear faces are not symmetric
    dlib.train_simple_object_detector(str(xml), str(model_dir / "detector.svm"), options)
    sp = dlib.shape_predictor_training_options()
    sp.num_threads = 2
    sp.tree_depth = 4
    sp.cascade_depth = 12
    sp.oversampling_amount = 10
    dlib.train_shape_predictor(str(xml), str(model_dir / "landmarks.dat"), sp)
    log(f"dlib: trained on {len(list((model_dir / 'crops').glob('*.png')))} face crops")
    return load(model_dir)


def load(model_dir: Path) -> DlibFinder:
    return DlibFinder(
        dlib.fhog_object_detector(str(model_dir / "detector.svm")),
        dlib.shape_predictor(str(model_dir / "landmarks.dat")),
    )
