"""`bearid export`: turn a path of the results tree into a bundle (docs/architecture.md, "The bundle").

The face detector, the landmark refiner and the embedding network go to ONNX (dynamic batch
axis; the detector also takes any photo size), the classifier is copied as it was pickled.
Before the bundle is published, a parity check answers photos of the run's test split twice
through the one `bearid.serving.pipeline` — PyTorch networks, then ONNX Runtime — and compares every
network output (max abs diff) and every decision (faces found, bear named).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from bearid.errors import BearIDError
from bearid.face import Network
from bearid.fsio import temp_dir
from bearid.metadata import read_chips, read_faces
from bearid.serving import bundle as bundles
from bearid.serving.pipeline import Pipeline
from bearid.serving.runtime import ort_sessions
from bearid.training.config import read_config
from bearid.training.pathnet import exportable as runs_here
from bearid.training.pathnet import load_path
from bearid.training.progress import Log, advance
from bearid.training.results import STAGE_ORDER, is_pruned, read_metrics

OPSET = 17
DECISION_BOX_TOLERANCE = 1.0  # px: boxes of the two runtimes may differ by float noise only


def stage_dirs(path: Path) -> list[Path]:
    """face, chip, embed and class config dirs of a results path ending in a class config."""
    path = Path(path).resolve()
    dirs = [path, path.parent, path.parent.parent, path.parent.parent.parent][::-1]
    for d, stage in zip(dirs, STAGE_ORDER):
        if not d.name.startswith(stage + "_") or not (d / "config.yaml").is_file():
            raise BearIDError(
                f"{path}: not a results path ending in a class config "
                f"(expected RESULTS/face_config_XX/chip_config_XX/embed_config_XX/class_config_XX)"
            )
        if not read_metrics(d):
            raise BearIDError(f"{d}: this stage has not finished (no metrics.json); run bearid train first")
        if is_pruned(d):
            raise BearIDError(
                f"{d}: its weights were pruned (bearid runs prune); run bearid train again to recompute it"
            )
    return dirs


def exportable(path: list[Path]) -> bool:
    """Whether a results path's networks have an ONNX form (the dlib HOG face backend has none)."""
    return runs_here(path[0])


def best_exportable(results_dir: Path, by: str = "open_set") -> Path:
    """The class stage directory of the best exportable path, chosen on validation."""
    from bearid.training.runs import runs

    r = runs(results_dir, by, keep=exportable)
    if r.best is None:
        why = (
            "no finished face -> chip -> embed -> class path"
            if not r.paths
            else (f"no path with an ONNX face backend and a validation {by} figure")
        )
        raise BearIDError(f"{results_dir}: {why} to export")
    return r.best[-1]


def _to_onnx(model: torch.nn.Module, example: torch.Tensor, out: Path, image_axes: bool) -> None:
    axes = {0: "batch", 2: "height", 3: "width"} if image_axes else {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model.eval(),
            example,
            str(out),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": axes, "output": {0: "batch"} if not image_axes else {0: "batch", 2: "h", 3: "w"}},
            opset_version=OPSET,
            dynamo=False,
        )


def parity(
    bundle: bundles.Bundle, torch_nets: dict[str, Network], photos: list[Path], chips: list[Path], log: Log = print
) -> dict:
    """Answer `photos` with the PyTorch networks and with ONNX Runtime and compare the
    decisions; compare every network's raw outputs on the photos and on the run's `chips`
    (so the landmark and embedding networks are checked even where few faces are found)."""
    from PIL import Image

    from bearid.embed import network_input
    from bearid.preprocess import normalise

    ort_nets = ort_sessions(bundle, threads=None)
    diffs = {name: 0.0 for name in torch_nets}

    def compare(name: str, x: np.ndarray) -> np.ndarray:
        a, b = torch_nets[name](x), ort_nets[name](x)
        diffs[name] = max(diffs[name], float(np.abs(a - b).max()) if a.size else 0.0)
        return b

    reference = Pipeline(bundle, torch_nets)
    if chips:
        images = [Image.open(c).convert("RGB") for c in chips]
        compare("embed", np.stack([network_input(im, reference.embed_size, reference.embed_norm) for im in images]))
        if "landmarks" in torch_nets:
            crop = bundle.detector_spec.crop_size
            compare("landmarks", np.stack([normalise(np.asarray(im.resize((crop, crop)))) for im in images]))
    checked = Pipeline(bundle, {name: (lambda x, name=name: compare(name, x)) for name in diffs})
    same, faces, named, worst_box = 0, 0, 0, 0.0
    for i, photo in enumerate(photos):
        advance(log, "parity check (PyTorch and ONNX Runtime)", i + 1, len(photos))
        a, b = reference.identify(photo), checked.identify(photo)
        agree = len(a.faces) == len(b.faces)
        for fa, fb in zip(a.faces, b.faces):
            pairs = zip(fa.box.model_dump().values(), fb.box.model_dump().values())
            worst_box = max(worst_box, *(abs(x - y) for x, y in pairs))
            agree &= fa.bear_id == fb.bear_id and fa.known == fb.known
            named += fa.bear_id is not None
        faces += len(a.faces)
        same += agree and worst_box <= DECISION_BOX_TOLERANCE
    return {
        "photos": len(photos),
        "chips": len(chips),
        "faces": faces,
        "named": named,
        "identical_decisions": same == len(photos),
        "photos_with_identical_decisions": same,
        "max_box_diff_px": round(worst_box, 4),
        "max_abs_diff": {k: float(f"{v:.3g}") for k, v in diffs.items()},
    }


def _test_photos(face_dir: Path, n: int) -> list[Path]:
    """Photos of the run's test split, those with detected faces first."""
    xml = face_dir / "face_meta" / "test.xml"
    if not xml.exists():
        return []
    ds = read_faces(xml)
    ordered = sorted(ds.images, key=lambda img: not img.boxes)
    return [ds.path_of(img) for img in ordered][:n]


def _test_chips(chip_dir: Path, n: int) -> list[Path]:
    xml = chip_dir / "chip_meta" / "test.xml"
    if not xml.exists():
        return []
    cs = read_chips(xml)
    return [cs.path_of(c) for c in cs.chips][:n]


def export(path: Path, out: Path, parity_photos: int = 12, log=print) -> dict:
    """Export the results path `path` (…/class_config_XX) as a bundle at `out`; the manifest."""

    face_dir, chip_dir, embed_dir, class_dir = stage_dirs(path)
    face_cfg, chip_cfg, embed_cfg, classify_cfg = (read_config(d) for d in (face_dir, chip_dir, embed_dir, class_dir))
    if face_cfg.backend == "dlib":
        raise BearIDError(
            f"{face_dir.name} uses the dlib (HOG) face backend, which has no ONNX form; "
            "export a path whose face config uses the centernet or mmod backend"
        )
    out = Path(out)
    if out.exists() and not (out / bundles.MANIFEST).exists():
        raise BearIDError(f"{out} exists and is not a bundle; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = temp_dir(f".{out.name}.", out.parent, suffix=".partial")
    try:
        model = load_path([face_dir, chip_dir, embed_dir, class_dir])
        modules, fields = model.modules, model.fields
        if face_cfg.backend == "mmod":
            _to_onnx(modules["face"], torch.zeros(1, 3, 200, 240), work / "face.onnx", image_axes=True)
            shutil.copyfile(face_dir / "model" / "landmarks.npz", work / "landmarks.npz")
        else:
            crop = face_cfg.detector_spec().crop_size
            _to_onnx(modules["face"], torch.zeros(1, 3, 256, 192), work / "face.onnx", image_axes=True)
            _to_onnx(modules["landmarks"], torch.zeros(2, 3, crop, crop), work / "landmarks.onnx", image_axes=False)
        size = fields["embed"]["input_size"]
        _to_onnx(modules["embed"], torch.zeros(2, 3, size, size), work / "embed.onnx", image_axes=False)
        nets = model.networks
        shutil.copyfile(class_dir / "classifier" / "classifier.pkl", work / "classifier.pkl")
        shutil.copyfile(class_dir / "classifier" / "ids.json", work / "ids.json")
        bundles.write_manifest(work, fields)
        check = parity(
            bundles.load(work),
            nets,
            _test_photos(face_dir, parity_photos),
            _test_chips(chip_dir, 2 * parity_photos),
            log,
        )
        log(
            f"export: parity on {check['photos']} test photos ({check['faces']} faces) "
            f"and {check['chips']} chips: max abs diff {check['max_abs_diff']}, "
            f"identical decisions: {check['identical_decisions']}"
        )
        if not check["identical_decisions"]:
            raise BearIDError(
                f"ONNX Runtime and PyTorch disagree on {check['photos'] - check['photos_with_identical_decisions']} "
                f"of {check['photos']} photos; bundle not written ({check})"
            )
        manifest = bundles.write_manifest(work, {**fields, "parity": check})
        if out.exists():
            if bundles.read_manifest(out).get("version") == manifest["version"]:
                log(f"export: {out} already holds bundle {manifest['version']}")
                return bundles.verify(out)
            raise BearIDError(
                f"{out} holds another bundle ({bundles.read_manifest(out).get('version')}); choose another --out"
            )
        work.rename(out)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)
