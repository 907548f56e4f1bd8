"""The bundle: what training hands to serving (docs/architecture.md, "The bundle"). It
owns its format: it writes the manifest and reads it back.

    BUNDLE/ manifest.json  face.onnx  landmarks.onnx | landmarks.npz  embed.onnx  classifier.pkl  ids.json

The detector is BearID's own (`centernet`, with a landmark refiner: landmarks.onnx) or an
imported dlib one (`mmod`, with a shape predictor: landmarks.npz); the manifest says which.

`manifest.json` records the format, the bundle version, its lineage (the results path it was
exported from), the detector's settings, how photos are decoded and chips are cut, the
embedding network's input, the open-set threshold, the metrics, the sha256 and size of every
file, and the library versions it was made with.

`load` checks every file against the manifest *before* anything is unpickled: a tampered,
truncated or incomplete bundle is refused with a message naming the file. (Checksums catch
corruption and accidents; who may write bundles is the store's access control.)
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bearid.chip import ChipSpec
from bearid.classify import OpenSetClassifier, load_classifier
from bearid.errors import BearIDError
from bearid.face import DetectorSpec
from bearid.face.mmod import MmodSpec
from bearid.fsio import atomic_write_text, sha256_file
from bearid.preprocess import Normalisation

FORMAT = 1
MANIFEST = "manifest.json"
FILES = ("face.onnx", "embed.onnx", "classifier.pkl", "ids.json")  # in every bundle
LANDMARK_FILES = {"refiner": "landmarks.onnx", "regression_trees": "landmarks.npz"}  # by the landmark model's kind


def files_of(fields: dict) -> tuple[str, ...]:
    """The files a bundle with these manifest fields holds."""
    return (*FILES, LANDMARK_FILES[(fields.get("landmarks") or {}).get("kind", "refiner")])


def file_record(path: Path) -> dict:
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def content_version(files: dict[str, dict]) -> str:
    """A bundle's version: the hash of its files' hashes, so the same models give the same
    version wherever they are exported."""
    digest = hashlib.sha256("".join(f"{n}:{r['sha256']}\n" for n, r in sorted(files.items())).encode()).hexdigest()
    return digest[:12]


OPEN_SET_SCORES = {
    "mahalanobis": "minus the relative Mahalanobis distance to the nearest known bear",
    "cosine": "cosine similarity to the nearest known bear's mean embedding",
    "nearest": "cosine similarity to the nearest training chip of a known bear",
}


def library_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("bearid", "torch", "onnx", "onnxruntime", "scikit-learn", "numpy", "pillow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def describe(
    *,
    lineage: dict,
    detector: dict,
    landmarks: dict,
    refine_side: int,
    chip: ChipSpec,
    embed_input_size: int,
    embed_norm: Normalisation,
    embed_dim: int,
    threshold: float,
    target_far: float,
    open_set: str,
    identities: int,
    metrics: dict,
) -> dict:
    """The manifest's fields (all but the format, version and file records) of a bundle.
    `detector` holds its "kind" (centernet or mmod) and its settings; `landmarks` its "kind"
    (refiner or regression_trees) and, for the second, the parts' names."""
    return {
        "lineage": lineage,
        "detector": detector,
        "landmarks": landmarks,
        "decode": {"refine_side": refine_side},
        "chip": {
            "size": chip.size,
            "points": list(chip.points),
            "padding": chip.padding,
            "template": {k: list(v) for k, v in chip.template.items()},
        },
        "embed": {
            "input_size": embed_input_size,
            "dim": embed_dim,
            "output": "embedding before L2 normalisation",
            "normalisation": embed_norm.record(),
        },  # fmt: skip
        "open_set": {"threshold": threshold, "target_far": target_far, "score": OPEN_SET_SCORES[open_set]},
        "identities": identities,
        "metrics": metrics,
        "libraries": library_versions(),
    }


def write_manifest(folder: Path, fields: dict) -> dict:
    """Checksum every bundle file in `folder` and write manifest.json (atomically, last, so a
    folder without a manifest is never mistaken for a finished bundle)."""
    names = files_of(fields)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise BearIDError(f"{folder}: cannot write a bundle manifest, missing {', '.join(missing)}")
    files = {n: file_record(folder / n) for n in names}
    manifest = {"format": FORMAT, "version": content_version(files), **fields, "files": files}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BearIDError(f"{folder}: not a bundle (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BearIDError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BearIDError(
            f"{path}: unsupported bundle format "
            f"{manifest.get('format') if isinstance(manifest, dict) else manifest!r} (expected {FORMAT})"
        )
    return manifest


def verify(folder: Path) -> dict:
    """The manifest, once every file listed in it exists with the recorded size and sha256."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    files = manifest.get("files") or {}
    for name in files_of(manifest):
        if name not in files:
            raise BearIDError(f"{folder}: the manifest does not list {name}")
    for name, record in files.items():
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise BearIDError(f"{folder}: bundle file {name} is missing")
        if path.stat().st_size != record["size"]:
            raise BearIDError(
                f"{folder}: bundle file {name} is {path.stat().st_size} bytes, "
                f"the manifest says {record['size']} (truncated or replaced)"
            )
        if sha256_file(path) != record["sha256"]:
            raise BearIDError(
                f"{folder}: bundle file {name} does not match its checksum (tampered or corrupted); refusing to load it"
            )
    if content_version(files) != manifest.get("version"):
        raise BearIDError(f"{folder}: the manifest's version does not match its files")
    return manifest


@dataclass
class Bundle:
    folder: Path
    manifest: dict
    classifier: OpenSetClassifier
    ids: list[str]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def detector_kind(self) -> str:
        return self.manifest["detector"].get("kind", "centernet")  # bundles made before mmod have none

    @property
    def detector_spec(self) -> DetectorSpec:
        """The settings of BearID's own detector (a centernet bundle)."""
        fields = {
            k: tuple(v) if isinstance(v, list) else v for k, v in self.manifest["detector"].items() if k != "kind"
        }
        return DetectorSpec(**fields)

    @property
    def mmod_spec(self) -> MmodSpec:
        """The settings of an imported dlib detector (an mmod bundle)."""
        fields = {k: v for k, v in self.manifest["detector"].items() if k != "kind"}
        fields["windows"] = tuple(tuple(w) for w in fields["windows"])
        return MmodSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    @property
    def landmark_kind(self) -> str:
        return (self.manifest.get("landmarks") or {}).get("kind", "refiner")

    @property
    def parts(self) -> tuple[str, ...]:
        """The landmarks' names of a shape predictor bundle."""
        return tuple(self.manifest["landmarks"]["parts"])

    @property
    def embed_norm(self) -> Normalisation:
        return Normalisation.of(self.manifest["embed"].get("normalisation"))

    @property
    def refine_side(self) -> int:
        """Photos are decoded at most this long for detection and landmark crops."""
        return int(self.manifest["decode"]["refine_side"])

    @property
    def chip_spec(self) -> ChipSpec:
        chip = self.manifest["chip"]
        return ChipSpec(
            size=chip["size"],
            points=tuple(chip["points"]),
            padding=chip["padding"],
            template={k: tuple(v) for k, v in chip["template"].items()},
        )

    @property
    def embed_input_size(self) -> int:
        return int(self.manifest["embed"]["input_size"])

    def path(self, name: str) -> Path:
        return self.folder / name

    def summary(self) -> dict:
        """What `GET /model` shows: everything but the per-file records."""
        return {k: v for k, v in self.manifest.items() if k != "files"}


def load(folder: Path) -> Bundle:
    """Verify, then load, a bundle. Nothing is unpickled before every checksum matched."""
    folder = Path(folder)
    manifest = verify(folder)
    classifier = load_classifier(folder / "classifier.pkl")
    ids = json.loads((folder / "ids.json").read_text())
    if list(getattr(classifier, "ids", [])) != ids:
        raise BearIDError(f"{folder}: classifier.pkl and ids.json name different bears")
    return Bundle(folder, manifest, classifier, ids)


def copy(src: Path, dest: Path) -> None:
    """Copy a verified bundle's files (manifest last) into `dest`, as new files (the modes the umask gives)."""
    manifest = verify(src)
    dest.mkdir(parents=True, exist_ok=True)
    for name in manifest["files"]:
        shutil.copyfile(src / name, dest / name)
    shutil.copyfile(src / MANIFEST, dest / MANIFEST)
