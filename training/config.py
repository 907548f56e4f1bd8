"""Stage configurations and the pipeline file that lists them.

A pipeline file (YAML) names one or more configs per stage; every combination becomes a
branch of the results tree:

    face:     {backend: centernet, steps: 1200}
    chip:     [{size: 150}, {size: 150, points: [leye, reye]}]
    embed:    {loss: arcface, steps: 800}
    classify: {C: 1, target_far: 0.1}
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bearid.errors import BearIDError


@dataclass(frozen=True)
class FaceConfig:
    backend: str = "centernet"  # centernet | dlib
    input_sides: tuple[int, ...] = (768, 256)  # detector pyramid (long side), finest first
    max_face_input: float = 150.0  # faces larger than this (input px) go to the coarser level
    width: int = 32
    crop: int = 192  # training crop side
    batch: int = 16
    steps: int = 1500
    lr: float = 2e-3
    refiner_steps: int = 1000
    refiner_batch: int = 64
    crop_size: int = 64  # refiner input side
    refine_side: int = 2048  # photos are decoded at most this long for landmark crops
    score_threshold: float = 0.35
    max_train_photos: int = 0  # 0 = all (dlib bootstraps from a few dozen)
    seed: int = 0


@dataclass(frozen=True)
class ChipConfig:
    size: int = 150
    points: tuple[str, ...] = ("leye", "reye", "nose")
    padding: float = 0.15
    source: str = "detected"  # detected | truth: which landmarks make the chips


@dataclass(frozen=True)
class EmbedConfig:
    loss: str = "arcface"  # arcface | triplet | arcface+triplet (summed)
    dim: int = 128
    input_size: int = 64  # chips are resized to this for the network
    width: int = 32
    steps: int = 1600  # chosen on validation: 800 steps left BAKS at 0.85 (val), 1600 reach 0.94
    lr: float = 2e-3
    p: int = 12  # identities per batch
    k: int = 4  # chips per identity
    margin: float = 0.3  # ArcFace angular margin (radians) or triplet margin
    scale: float = 30.0  # ArcFace scale
    flip: bool = False  # mirror images: bears are not symmetric (notches, scars), so off
    recolour: int = 2  # made-up bears per bear (its face in another bear's fur colour), each a new identity
    views: int = 4  # augmented views of each training chip, embedded for the classifier's Gaussians (0: none)
    # Augmentation: each training chip is moved, lit and degraded the way photos differ.
    # Chosen on validation (bench world): these values raised the open-set AUROC from 0.992
    # to 0.999 and BAKS from 0.89 to 0.94 over rotate 10, zoom 0.1, shift 0.06, no blur or erase.
    rotate: float = 10.0  # degrees, either way
    zoom: float = 0.25  # scale change, either way (a turned head chips larger: its eyes look closer)
    shift: float = 0.1  # of the chip side, either way
    blur: float = 0.2  # share of chips blurred (out-of-focus and distant photos)
    erase: float = 0.2  # share of chips with a patch blanked out (grass, branches, another bear)
    light: float = 0.2  # brightness change either way (gain, and offset in normalised units)
    tint: float = 0.075  # per-channel colour change either way
    checkpoint_every: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        # Checked here, so a mistyped loss fails when the pipeline is read, not after the face stage.
        unknown = sorted(set(self.losses) - {"arcface", "triplet"})
        if unknown:
            raise BearIDError(f"embed config: unknown loss {', '.join(unknown)}; use arcface, triplet or arcface+triplet")
        if self.views < 0:
            raise BearIDError(f"embed config: views is the number of augmented views per training chip, 0 or more; got {self.views}")
        if self.recolour < 0:
            raise BearIDError(f"embed config: recolour is the number of made-up bears per bear, 0 or more; got {self.recolour}")

    @property
    def losses(self) -> list[str]:
        return self.loss.split("+")


@dataclass(frozen=True)
class ClassConfig:
    # Chosen on the development worlds (BearID used C=100, unweighted): a near-hard margin
    # fitted to the well-photographed bears misnamed the rarely photographed ones.
    C: float = 1.0
    class_weight: str | None = "balanced"  # every bear's errors weigh alike, however many chips it has; null: every chip alike
    kernel: str = "linear"
    target_far: float = 0.1  # false-accept rate of unknown bears on validation, per identity
    min_known_accept: float = 0.9  # the threshold never turns away more known bears' chips (validation, per bear)
    open_set: str = "mahalanobis"  # the familiarity score: relative Mahalanobis distance, or cosine similarity
    seed: int = 0

    def __post_init__(self) -> None:
        if self.class_weight not in ("balanced", None):
            raise BearIDError(f"classify config: unknown class_weight {self.class_weight!r}; use balanced or null")
        if self.open_set not in ("mahalanobis", "cosine"):
            raise BearIDError(f"classify config: unknown open_set score {self.open_set!r}; use mahalanobis or cosine")


STAGES = {"face": FaceConfig, "chip": ChipConfig, "embed": EmbedConfig, "classify": ClassConfig}
STAGE_DIRS = {"face": "face_config", "chip": "chip_config", "embed": "embed_config", "classify": "class_config"}


def make(stage: str, values: dict | None) -> object:
    """A stage config from a mapping, with clear errors for unknown keys or bad types."""
    cls = STAGES[stage]
    values = dict(values or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise BearIDError(f"{stage} config: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    for key, value in list(values.items()):
        default = getattr(cls(), key)
        if isinstance(default, tuple):
            values[key] = tuple(value)
        elif isinstance(default, bool):
            values[key] = bool(value)
        elif isinstance(default, (int, float)) and not isinstance(value, (int, float)):
            raise BearIDError(f"{stage} config: {key}={value!r} is not a number")
        elif isinstance(default, float):
            values[key] = float(value)
    return cls(**values)


def as_dict(config: object) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


@dataclass
class Pipeline:
    face: list[FaceConfig] = field(default_factory=lambda: [FaceConfig()])
    chip: list[ChipConfig] = field(default_factory=lambda: [ChipConfig()])
    embed: list[EmbedConfig] = field(default_factory=lambda: [EmbedConfig()])
    classify: list[ClassConfig] = field(default_factory=lambda: [ClassConfig()])

    def branches(self) -> list[tuple[FaceConfig, ChipConfig, EmbedConfig, ClassConfig]]:
        return list(itertools.product(self.face, self.chip, self.embed, self.classify))


def read_pipeline(path: Path | None) -> Pipeline:
    if path is None:
        return Pipeline()
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BearIDError(f"{path}: cannot read the pipeline file: {exc}") from None
    if not isinstance(raw, dict) or set(raw) - set(STAGES):
        raise BearIDError(f"{path}: expected a mapping with keys among {', '.join(STAGES)}")
    out = Pipeline()
    for stage in STAGES:
        entry = raw.get(stage)
        items = entry if isinstance(entry, list) else [entry]
        setattr(out, stage, [make(stage, item) for item in items])
    return out
