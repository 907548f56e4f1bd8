"""A results path as one model, in PyTorch: its face, embed and class stages loaded with the
fields a bundle of it would carry, so the path answers photos with the one `Pipeline`
before (and without) being exported. `bearid train` answers each new path's validation
photos with it, end to end (`answer_validation`, what `bearid runs` ranks by), and
`bearid export` writes its networks to ONNX and checks them against it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bearid.classify import load_classifier
from bearid.errors import BearIDError
from bearid.evaluate import gate_metrics
from bearid.face import Network
from bearid.fsio import atomic_write_text, sha256_file
from bearid.serving import bundle as bundles
from bearid.serving.pipeline import Pipeline
from bearid.training.config import STAGES, as_dict, read_config
from bearid.training.embed.model import Descriptor
from bearid.training.results import read_metrics
from bearid.training.torchnet import network

ANSWERED = "answered.json"  # in a class stage's directory: its path's validation photos, answered end to end


@dataclass
class PathModel:
    """A results path's networks (PyTorch modules, and as `Network` callables) and the
    manifest fields of its bundle; `pipeline()` answers photos with them."""

    modules: dict[str, torch.nn.Module]  # face, landmarks (BearID's refiner), embed (the descriptor)
    fields: dict
    face_dir: Path
    class_dir: Path

    @property
    def networks(self) -> dict[str, Network]:
        return {name: network(module) for name, module in self.modules.items()}

    def bundle(self, version: str = "unexported") -> bundles.Bundle:
        """The path as a bundle in memory (its landmark model, for dlib's, read where it lies)."""
        classifier = load_classifier(self.class_dir / "classifier" / "classifier.pkl")
        ids = json.loads((self.class_dir / "classifier" / "ids.json").read_text())
        return bundles.Bundle(self.face_dir / "model", {**self.fields, "version": version}, classifier, ids)

    def pipeline(self) -> Pipeline:
        return Pipeline(self.bundle(), self.networks)


def exportable(face_dir: Path) -> bool:
    """Whether a face stage has networks to run here (the dlib HOG backend has none)."""
    return read_config(face_dir).backend in ("centernet", "mmod")


def load_path(dirs: list[Path]) -> PathModel:
    """The face, chip, embed and class stage directories of one path, loaded."""
    from bearid.training.embed import train as embed_train

    face_dir, chip_dir, embed_dir, class_dir = dirs
    face_cfg, chip_cfg, embed_cfg, classify_cfg = (read_config(d) for d in dirs)
    modules, detector, landmarks = _face(face_cfg, face_dir / "model")
    embed_net, input_size, norm = embed_train.load(embed_dir / "model")
    modules["embed"] = Descriptor(embed_net).eval()  # the classifier takes the vectors before normalisation
    results_root = face_dir.parent
    metrics = {stage: read_metrics(d) for stage, d in zip(STAGES, dirs)}
    fields = bundles.describe(
        lineage={
            "results": str(results_root),
            "path": str(class_dir.relative_to(results_root)),
            "configs": {stage: as_dict(c) for stage, c in zip(STAGES, (face_cfg, chip_cfg, embed_cfg, classify_cfg))},
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
        open_set=metrics["classify"].get("chosen", {}).get("open_set") or classify_cfg.open_set,
        identities=len(json.loads((class_dir / "classifier" / "ids.json").read_text())),
        metrics={
            "face": metrics["face"].get("test"),
            "embed": metrics["embed"].get("test"),
            "classify": {k: v for k, v in (metrics["classify"].get("test") or {}).items() if k != "confusion"},
        },
    )
    if "target_met" in metrics["classify"]:
        fields["open_set"]["target_met"] = metrics["classify"]["target_met"]
    return PathModel(modules, fields, face_dir, class_dir)


def _face(cfg, model_dir: Path) -> tuple[dict[str, torch.nn.Module], dict, dict]:
    """The face stage's networks, and the manifest's detector and landmarks records."""
    if cfg.backend == "mmod":
        from bearid.training.face import mmod

        _, module = mmod.load_network(model_dir)
        record = json.loads((model_dir / "mmod.json").read_text())
        return {"face": module.eval()}, {"kind": "mmod", **record["spec"]}, {
            "kind": "regression_trees", "parts": record["parts"]}  # fmt: skip
    from bearid.training.face import train as face_train

    detector, refiner = face_train.load(model_dir)
    spec = cfg.detector_spec()
    modules = {"face": detector.eval(), "landmarks": refiner.eval()}
    return modules, {"kind": "centernet", **asdict(spec)}, {"kind": "refiner"}


def answer_validation(dirs: list[Path], val_xml: Path) -> dict | None:
    """The path's validation photos answered end to end (a missed face is wrong, a false
    face a false accept: the promotion gate's measure), kept in the class stage's
    directory; None for a face backend with no networks here."""
    kept = dirs[-1] / ANSWERED
    models = {d.name: sha256_file(f) for d in dirs for f in sorted((d / "model").glob("*")) + sorted(
        (d / "classifier").glob("*.pkl")) if f.is_file()}  # fmt: skip
    if kept.is_file() and json.loads(kept.read_text()).get("models") == models:
        return json.loads(kept.read_text())
    if not exportable(dirs[0]):
        return None
    try:
        with torch.inference_mode():
            figures = {"val": gate_metrics(load_path(dirs).pipeline(), [val_xml]), "models": models}
    except BearIDError:  # no labelled validation photos: nothing to answer
        return None
    atomic_write_text(kept, json.dumps(figures, indent=1))
    return figures


def read_answered(class_dir: Path) -> dict:
    path = Path(class_dir) / ANSWERED
    return json.loads(path.read_text()) if path.is_file() else {}
