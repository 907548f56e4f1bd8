"""`bearid export`: turn a path of the results tree into a bundle (docs/architecture.md, "The bundle").

The face detector, the landmark refiner and the embedding network go to ONNX (dynamic batch
axis; the detector also takes any photo size), the classifier is copied as it was pickled.
Before the bundle is published, a parity check answers photos of the run's test split twice
through the one `bearid.serving.pipeline` — PyTorch networks, then ONNX Runtime — and compares every
network output (max abs diff) and every decision (faces found, bear named).
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import asdict
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
from bearid.training.config import STAGES, as_dict, read_config
from bearid.training.embed.model import Descriptor
from bearid.training.progress import Log, advance
from bearid.training.results import STAGE_ORDER, is_pruned, read_metrics
from bearid.training.torchnet import network

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
    return read_config(path[0]).backend in ("centernet", "mmod")


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


def _export_face(cfg, model_dir: Path, work: Path) -> tuple[dict[str, Network], dict, dict]:
    """The face stage's networks into `work` (face.onnx, and landmarks.onnx or .npz): their
    PyTorch forms (for the parity check), and the manifest's detector and landmarks records."""
    if cfg.backend == "mmod":
        from bearid.training.face import mmod

        _, module = mmod.load_network(model_dir)
        record = json.loads((model_dir / "mmod.json").read_text())
        _to_onnx(module, torch.zeros(1, 3, 200, 240), work / "face.onnx", image_axes=True)
        shutil.copyfile(model_dir / "landmarks.npz", work / "landmarks.npz")
        return {"face": network(module)}, {"kind": "mmod", **record["spec"]}, {
            "kind": "regression_trees", "parts": record["parts"]}  # fmt: skip
    from bearid.training.face import train as face_train

    detector, refiner = face_train.load(model_dir)
    spec = cfg.detector_spec()
    _to_onnx(detector, torch.zeros(1, 3, 256, 192), work / "face.onnx", image_axes=True)
    _to_onnx(refiner, torch.zeros(2, 3, spec.crop_size, spec.crop_size), work / "landmarks.onnx", image_axes=False)
    nets = {"face": network(detector), "landmarks": network(refiner)}
    return nets, {"kind": "centernet", **asdict(spec)}, {"kind": "refiner"}


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
    from bearid.training.embed import train as embed_train

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
        nets, detector, landmarks = _export_face(face_cfg, face_dir / "model", work)
        embed_net, input_size, norm = embed_train.load(embed_dir / "model")
        descriptor = Descriptor(embed_net).eval()  # the classifier takes the vectors before normalisation
        _to_onnx(descriptor, torch.zeros(2, 3, input_size, input_size), work / "embed.onnx", image_axes=False)
        nets["embed"] = network(descriptor)
        shutil.copyfile(class_dir / "classifier" / "classifier.pkl", work / "classifier.pkl")
        shutil.copyfile(class_dir / "classifier" / "ids.json", work / "ids.json")
        results_root = face_dir.parent
        metrics = {stage: read_metrics(d) for stage, d in zip(STAGES, (face_dir, chip_dir, embed_dir, class_dir))}
        configs = {stage: as_dict(c) for stage, c in zip(STAGES, (face_cfg, chip_cfg, embed_cfg, classify_cfg))}
        fields = bundles.describe(
            lineage={
                "results": str(results_root),
                "path": str(class_dir.relative_to(results_root)),
                "configs": configs,
            },
            detector=detector,
            landmarks=landmarks,
            refine_side=face_cfg.refine_side,
            chip=chip_cfg.spec(),
            embed_input_size=input_size,
            embed_norm=norm,
            embed_dim=embed_net.dim,
            threshold=metrics["classify"].get("threshold"),
            target_far=classify_cfg.target_far,
            open_set=classify_cfg.open_set,
            identities=len(json.loads((work / "ids.json").read_text())),
            metrics={
                "face": metrics["face"].get("test"),
                "embed": metrics["embed"].get("test"),
                "classify": {k: v for k, v in (metrics["classify"].get("test") or {}).items() if k != "confusion"},
            },
        )
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
