"""Stage configurations, and the sweep: the pipeline file that lists them.

A sweep file (YAML) names one or more configs per stage; every combination becomes a
branch of the results tree:

    face:     {backend: centernet, steps: 1200}
    chip:     [{size: 150}, {size: 150, points: [leye, reye]}]
    embed:    {loss: arcface, steps: 800}
    classify: {C: 1, target_far: 0.1}

Why the defaults are what they are: docs/experiments.md.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bearid.chip import ChipSpec
from bearid.errors import BearIDError
from bearid.face import DetectorSpec

_DETECTOR, _CHIP = DetectorSpec(), ChipSpec()  # the inference settings' defaults are the configs' defaults


@dataclass(frozen=True)
class FaceConfig:
    backend: str = "centernet"  # centernet | dlib
    input_sides: tuple[int, ...] = _DETECTOR.input_sides  # detector pyramid (long side), finest first
    max_face_input: float = _DETECTOR.max_face_input  # faces larger than this (input px) go to the coarser level
    width: int = 32
    crop: int = 192  # training crop side
    batch: int = 16
    steps: int = 1500
    lr: float = 2e-3
    refiner_steps: int = 1000
    refiner_batch: int = 64
    crop_size: int = _DETECTOR.crop_size  # refiner input side
    refine_side: int = 2048  # photos are decoded at most this long for landmark crops
    score_threshold: float = _DETECTOR.score_threshold
    max_train_photos: int = 0  # 0 = all (dlib bootstraps from a few dozen)
    seed: int = 0

    def detector_spec(self) -> DetectorSpec:
        """The inference settings of this config (what the bundle's manifest records)."""
        return dataclasses.replace(
            _DETECTOR,
            input_sides=tuple(self.input_sides),
            max_face_input=self.max_face_input,
            score_threshold=self.score_threshold,
            crop_size=self.crop_size,
        )


@dataclass(frozen=True)
class ChipConfig:
    size: int = _CHIP.size
    points: tuple[str, ...] = _CHIP.points
    padding: float = _CHIP.padding
    source: str = "detected"  # detected | truth: which landmarks make the chips

    def spec(self) -> ChipSpec:
        return dataclasses.replace(_CHIP, size=self.size, points=tuple(self.points), padding=self.padding)


@dataclass(frozen=True)
class EmbedConfig:
    loss: str = "arcface"  # arcface | triplet | arcface+triplet (summed)
    dim: int = 128
    input_size: int = 64  # chips are resized to this for the network
    width: int = 32
    steps: int = 1600
    lr: float = 2e-3
    p: int = 12  # identities per batch
    k: int = 4  # chips per identity
    margin: float = 0.3  # ArcFace angular margin (radians) or triplet margin
    scale: float = 30.0  # ArcFace scale
    flip: bool = False  # mirror images: bears are not symmetric (notches, scars), so off
    recolour: int = 2  # made-up bears per bear (its face in another bear's fur colour), each a new identity
    views: int = 4  # augmented views of each training chip, embedded for the classifier's Gaussians (0: none)
    # Augmentation: each training chip is moved, lit and degraded the way photos differ.
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
            raise BearIDError(
                f"embed config: unknown loss {', '.join(unknown)}; use arcface, triplet or arcface+triplet"
            )
        if self.views < 0:
            raise BearIDError(
                f"embed config: views is the number of augmented views per training chip, 0 or more; got {self.views}"
            )
        if self.recolour < 0:
            raise BearIDError(
                f"embed config: recolour is the number of made-up bears per bear, 0 or more; got {self.recolour}"
            )

    @property
    def losses(self) -> list[str]:
        return self.loss.split("+")


@dataclass(frozen=True)
class ClassifyConfig:
    C: float = 1.0
    class_weight: str | None = (
        "balanced"  # every bear's errors weigh alike, however many chips it has; null: every chip alike
    )
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


@dataclass(frozen=True)
class Stage:
    """One of the four stages: its name (the sweep's key, the CLI verb, the module in
    `bearid/` and `training/`), its config, and its results-tree directories' prefix (the
    original tools' names: face_config, chip_config, embed_config, class_config)."""

    name: str
    config: type
    dir_prefix: str


STAGES = {
    s.name: s
    for s in (
        Stage("face", FaceConfig, "face_config"),
        Stage("chip", ChipConfig, "chip_config"),
        Stage("embed", EmbedConfig, "embed_config"),
        Stage("classify", ClassifyConfig, "class_config"),
    )
}


def stage_of_dir(name: str) -> Stage:
    """The stage whose results-tree directory `name` is (e.g. class_config_03)."""
    prefix = name.rsplit("_", 1)[0]
    for stage in STAGES.values():
        if stage.dir_prefix == prefix:
            return stage
    raise BearIDError(
        f"{name}: not a results-tree stage directory ({', '.join(s.dir_prefix + '_NN' for s in STAGES.values())})"
    )


def make(stage: str, values: dict | None) -> object:
    """A stage config from a mapping, with clear errors for unknown keys or bad types."""
    cls = STAGES[stage].config
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


def read_config(stage_dir: Path) -> object:
    """The config a results-tree stage directory was computed with (its config.yaml)."""
    stage = stage_of_dir(Path(stage_dir).name)
    try:
        raw = yaml.safe_load((Path(stage_dir) / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BearIDError(f"{stage_dir}: cannot read its config.yaml: {exc}") from None
    raw.pop("stage", None)  # the directory says which stage it is
    return make(stage.name, raw)


def as_dict(config: object) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


@dataclass
class Sweep:
    """The configs to try per stage; every combination is a branch of the results tree."""

    face: list[FaceConfig] = field(default_factory=lambda: [FaceConfig()])
    chip: list[ChipConfig] = field(default_factory=lambda: [ChipConfig()])
    embed: list[EmbedConfig] = field(default_factory=lambda: [EmbedConfig()])
    classify: list[ClassifyConfig] = field(default_factory=lambda: [ClassifyConfig()])

    def branches(self) -> list[tuple[FaceConfig, ChipConfig, EmbedConfig, ClassifyConfig]]:
        return list(itertools.product(self.face, self.chip, self.embed, self.classify))


def read_sweep(path: Path | None) -> Sweep:
    if path is None:
        return Sweep()
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BearIDError(f"{path}: cannot read the pipeline file: {exc}") from None
    if not isinstance(raw, dict) or set(raw) - set(STAGES):
        raise BearIDError(f"{path}: expected a mapping with keys among {', '.join(STAGES)}")
    out = Sweep()
    for stage in STAGES:
        entry = raw.get(stage)
        items = entry if isinstance(entry, list) else [entry]
        setattr(out, stage, [make(stage, item) for item in items])
    return out
