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
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bearid.chip import ChipSpec
from bearid.errors import BearIDError
from bearid.face import DetectorSpec

_DETECTOR, _CHIP = DetectorSpec(), ChipSpec()  # the inference settings' defaults are the configs' defaults

Landmark = Literal["leye", "reye", "nose", "lear", "rear"]
Positive = Annotated[int, Field(ge=1)]
Share = Annotated[float, Field(ge=0, le=1)]  # a fraction of the chips, 0 to 1


def _default(config: BaseModel, key: str, value: object) -> None:
    """Fill in a default that depends on other settings, leaving it unset: a --set that
    changes those settings later gets the default that fits them (training/config.py:
    with_overrides), not this one."""
    config.__dict__[key] = value


class StageConfig(BaseModel):
    """A stage's settings: typed and bounded, so a bad value is refused when the sweep file
    (or a --set) is read, not after the stages before it have trained."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# The mmod backend's own defaults: no training (steps 0), and when it trains, SGD's learning
# rate on dlib's loss chosen on the validation photos' AP among MMOD_RATES, or MMOD_RECIPE_LR
# where there are none (training/face/mmod.py: fine_tune). On bear crops 3e-3 and 1e-2 diverged
# within ten steps; 1e-3 and 3e-4 lowered the loss (training/face/mmod.py: optimiser).
MMOD_DEFAULTS = {"steps": 0, "lr": None}
MMOD_RATES = (1e-4, 3e-4, 1e-3)
MMOD_RECIPE_LR = 3e-4


class FaceConfig(StageConfig):
    # centernet: BearID's own detector and refiner; dlib: a HOG detector and shape predictor,
    # for bootstrapping; mmod: an imported dlib CNN detector (init) and shape predictor, used as is
    backend: Literal["centernet", "dlib", "mmod"] = "centernet"
    init: str | None = None  # mmod: the dlib network file (bearface_network.dat, mmod_human_face_detector.dat)
    landmarks: str | None = None  # mmod: a dlib shape predictor file, where the network file holds none
    parts: tuple[str, ...] | None = None  # mmod: the shape predictor's part names (default: by its number of parts)
    input_sides: tuple[Positive, ...] = Field(_DETECTOR.input_sides, min_length=1)  # detector pyramid, finest first
    max_face_input: float = Field(_DETECTOR.max_face_input, gt=0)  # larger faces (input px) go to the coarser level
    width: int = Field(32, ge=2)
    crop: int = Field(192, ge=32, multiple_of=32)  # training crop side (the detector's stride is 32)
    batch: Positive = 16
    steps: int = Field(1500, ge=0)  # mmod: fine-tuning steps, default 0 (the imported detector as it is)
    lr: float | None = Field(2e-3, gt=0)  # mmod: None, chosen on validation (MMOD_RATES)
    refiner_steps: Positive = 1000
    refiner_batch: Positive = 64
    crop_size: Literal[64] = _DETECTOR.crop_size  # refiner input side: its network takes 64 px crops
    refine_side: int = Field(2048, ge=256)  # photos are decoded at most this long for landmark crops
    # A face scores above this (default: 0.35 for centernet and dlib, whose scores run 0..1;
    # 0 for mmod, whose scores are dlib's margins, as dlib's own detector).
    score_threshold: float | None = None
    max_train_photos: int = Field(0, ge=0)  # 0 = all (dlib bootstraps from a few dozen)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _imported(self) -> FaceConfig:
        if self.backend == "mmod":  # the imported detector as it is, unless given steps to train it
            for key, value in MMOD_DEFAULTS.items():
                if key not in self.model_fields_set:
                    _default(self, key, value)
        if self.backend == "mmod" and not self.init:
            raise ValueError("the mmod backend runs an imported dlib network: give init (its .dat file)")
        if self.backend != "mmod" and (self.init or self.landmarks or self.parts):
            raise ValueError("init, landmarks and parts are for the mmod backend")
        if self.backend != "mmod" and self.lr is None:
            raise ValueError(f"lr: the {self.backend} backend trains from scratch at a rate: give one")
        if self.backend != "mmod" and self.steps == 0:
            raise ValueError(f"steps: the {self.backend} backend trains from scratch: give at least 1")
        if self.backend != "mmod" and self.score_threshold is not None and not 0 < self.score_threshold < 1:
            raise ValueError(
                f"score_threshold: the {self.backend} backend scores faces from 0 to 1; give a number between"
            )
        return self

    @property
    def search_threshold(self) -> float:
        """Detections down to this score are kept for AP (which ranks them all)."""
        return self.threshold - 1.0 if self.backend == "mmod" else 0.05

    @property
    def threshold(self) -> float:
        """The operating score threshold of this backend."""
        if self.score_threshold is not None:
            return self.score_threshold
        return 0.0 if self.backend == "mmod" else _DETECTOR.score_threshold

    def detector_spec(self) -> DetectorSpec:
        """The inference settings of this config (what the bundle's manifest records)."""
        return dataclasses.replace(
            _DETECTOR,
            input_sides=tuple(self.input_sides),
            max_face_input=self.max_face_input,
            score_threshold=self.threshold,
            crop_size=self.crop_size,
        )


# Chip templates: where the landmarks go in a chip (fractions of the unpadded side), the
# landmarks used, and the padding. bearid is the original bearchip (eyes only, padding -0.12,
# the chips bearembed was trained on); dlib_face is dlib's get_face_chip for its 5-point
# human model (the chips dlib's face ResNet was trained on).
CHIP_TEMPLATES: dict[str, tuple[dict[str, tuple[float, float]], tuple[str, ...], float]] = {
    "default": (dict(_CHIP.template), _CHIP.points, _CHIP.padding),
    "bearid": ({"leye": (0.62, 0.48), "reye": (0.38, 0.48)}, ("leye", "reye"), -0.12),
    "dlib_face": (
        {"leye_outer": (0.8595674595992, 0.2134981538014), "leye_inner": (0.6460604764104, 0.2289674387677),
         "reye_outer": (0.1205750620789, 0.2137274526848), "reye_inner": (0.3340850613712, 0.2290642403242),
         "nose": (0.4901123135679, 0.6277975316475)},
        ("leye_outer", "leye_inner", "reye_outer", "reye_inner", "nose"),
        0.25,
    ),
}  # fmt: skip


class ChipConfig(StageConfig):
    size: int = Field(_CHIP.size, ge=16, le=1024)
    template: Literal["default", "bearid", "dlib_face"] = "default"
    points: tuple[str, ...] | None = Field(None, min_length=2)  # the landmarks aligned on (default: the template's)
    padding: float | None = Field(None, gt=-0.5, le=1)  # default: the template's
    source: Literal["detected", "truth"] = "detected"  # which landmarks make the chips

    @model_validator(mode="after")
    def _points(self) -> ChipConfig:
        points = self.points or CHIP_TEMPLATES[self.template][1]
        if len(set(points)) != len(points):
            raise ValueError(f"points: each landmark once: {', '.join(points)}")
        unknown = sorted(set(points) - set(CHIP_TEMPLATES[self.template][0]))
        if unknown:
            raise ValueError(f"points: the {self.template} template places no {', '.join(unknown)}")
        return self

    def spec(self) -> ChipSpec:
        template, points, padding = CHIP_TEMPLATES[self.template]
        return dataclasses.replace(_CHIP, size=self.size, template=dict(template), points=tuple(self.points or points),
                                   padding=padding if self.padding is None else self.padding)  # fmt: skip


# The embed stage's learning rates. From scratch, the recipe's (AdamW, warm-up and cosine, P x K
# batches; docs/experiments.md). A fine-tune's depends on the network and the data, so it is
# chosen on the user's validation chips: the recipe's rate and a decade either side, each tried
# on the run's first steps (training/embed/train.py: choose_rate).
RECIPE_LR = 2e-3
FINE_TUNE_RATES = (2e-4, 2e-3, 2e-2)


class EmbedConfig(StageConfig):
    loss: Literal["arcface", "triplet", "arcface+triplet"] = "arcface"  # arcface+triplet: summed
    # builtin: BearID's small ResNet; dlib_resnet: dlib's metric ResNet (bearembed's), from init;
    # timm:NAME: any timm model (timm:convnext_tiny, timm:vit_small_patch14_dinov2, ...), from weights
    backbone: str = Field("builtin", pattern=r"^(builtin|dlib_resnet|timm:\S+)$")
    init: str | None = None  # start from this network: a dlib .dat, or an embed.pt of an earlier stage
    weights: str | None = None  # a timm backbone's pretrained weights: a .safetensors/.pth file, or hub
    mean: tuple[float, float, float] | None = None  # the backbone's input statistics, where its weights
    std: tuple[float, float, float] | None = None  # were trained with others than timm records (0..1 units)
    freeze: int = Field(0, ge=0)  # first steps with the backbone frozen (a linear probe of the head)
    backbone_lr: float = Field(1.0, gt=0, le=1)  # the backbone's learning rate, as a share of lr
    dim: int = Field(128, ge=2)
    input_size: int = Field(64, ge=16)  # chips are resized to this for the network
    width: Positive = 32
    steps: int = Field(1600, ge=0)  # 0: the network as it is (from init), no training
    # None: from scratch, RECIPE_LR; a fine-tune (init or weights, steps > 0) chooses its rate on
    # validation among FINE_TUNE_RATES (training/embed/train.py: choose_rate)
    lr: float | None = Field(None, gt=0)
    p: Positive = 12  # identities per batch
    k: Positive = 4  # chips per identity
    margin: float = Field(0.3, ge=0)  # ArcFace angular margin (radians) or triplet margin
    scale: float = Field(30.0, gt=0)  # ArcFace scale
    flip: bool = False  # mirror images: bears are not symmetric (notches, scars), so off
    recolour: int = Field(
        2, ge=0
    )  # made-up bears per bear (its face in another bear's fur colour), each a new identity
    views: int = Field(4, ge=0)  # augmented views of each training chip, for the classifier's Gaussians (0: none)
    # Augmentation: each training chip is moved, lit and degraded the way photos differ.
    rotate: float = Field(10.0, ge=0, le=180)  # degrees, either way
    zoom: float = Field(0.25, ge=0, lt=1)  # scale change, either way (a turned head chips larger: its eyes look closer)
    shift: float = Field(0.1, ge=0, le=0.5)  # of the chip side, either way
    blur: Share = 0.2  # share of chips blurred (out-of-focus and distant photos)
    erase: Share = 0.2  # share of chips with a patch blanked out (grass, branches, another bear)
    light: Share = 0.2  # brightness change either way (gain, and offset in normalised units)
    tint: Share = 0.075  # per-channel colour change either way
    checkpoint_every: int = Field(200, ge=0)  # steps (0: no checkpoints)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _network(self) -> EmbedConfig:
        timm = self.backbone.startswith("timm:")
        if self.steps == 0 and not self.init and not (timm and self.weights):
            raise ValueError(
                "steps: 0 uses a network as it is: give init (a dlib .dat or an embed.pt) or a timm backbone's weights"
            )
        if self.weights and not timm:
            raise ValueError(f"weights are a timm backbone's; the {self.backbone} backbone starts from init")
        if timm and self.init and Path(self.init).suffix != ".pt":
            raise ValueError("a timm backbone starts from weights (or from an embed.pt as init)")
        if self.freeze > self.steps:
            raise ValueError(f"freeze: {self.freeze} steps of {self.steps}: freeze at most every step")
        if self.backbone == "dlib_resnet" and not self.init:
            raise ValueError("the dlib_resnet backbone starts from a dlib network file: give init")
        if self.backbone == "dlib_resnet" and self.input_size != 150:
            raise ValueError("the dlib_resnet backbone takes 150 px chips: set input_size: 150")
        if self.lr is None and not self.fine_tune:
            _default(self, "lr", RECIPE_LR)
        return self

    @property
    def losses(self) -> list[str]:
        return self.loss.split("+")

    @property
    def fine_tune(self) -> bool:
        """Whether this trains a pretrained network further (its rate is then data-dependent)."""
        return bool(self.init or self.weights) and self.steps > 0


class ClassifyConfig(StageConfig):
    # "auto": chosen by the stage on the user's own chips (training/classify.py choose)
    classifier: Literal["auto", "svm", "knn", "ncm"] = "auto"  # SVM, nearest chip, nearest bear mean
    C: Annotated[float, Field(gt=0)] | Literal["auto"] = "auto"  # the SVM's; auto: the best decade of 0.01..1000
    class_weight: Literal["balanced"] | None = "balanced"  # every bear's errors weigh alike; null: every chip alike
    kernel: Literal["linear", "rbf"] = "linear"
    target_far: float = Field(0.1, gt=0, lt=1)  # false-accept rate of unknown bears on validation, per identity
    min_known_accept: Share = 0.9  # the threshold never turns away more known bears' chips (validation, per bear)
    open_set: Literal["auto", "mahalanobis", "cosine", "nearest"] = "auto"  # the familiarity score
    seed: int = Field(0, ge=0)
    # The original BearID's bearsvm_network.dat and its ids file, imported as they are (bearid
    # import-dlib --svm): dlib's one-vs-one vote names the bear, the familiarity (open_set;
    # auto: mahalanobis) and threshold are fitted on the splits beside it; the settings of
    # BearID's own classifier do not apply.
    svm: str | None = None
    svm_ids: str | None = None

    @model_validator(mode="after")
    def _imported(self) -> ClassifyConfig:
        if bool(self.svm) != bool(self.svm_ids):
            raise ValueError("svm and svm_ids come together (bearsvm_network.dat and bearsvm_network_ids.dat)")
        return self


@dataclass(frozen=True)
class Stage:
    """One of the four stages: its name (the sweep's key, the CLI verb, the module in
    `bearid/` and `training/`), its config, and its results-tree directories' prefix (the
    original tools' names: face_config, chip_config, embed_config, class_config)."""

    name: str
    config: type[StageConfig]
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


def make(stage: str, values: dict | None, where: str = "") -> StageConfig:
    """A stage config from a mapping; any bad key or value is one BearIDError naming it
    (and `where` it was read from: a file, or --set) and what it may be."""
    cls = STAGES[stage].config
    try:
        return cls.model_validate(dict(values or {}))
    except ValidationError as exc:
        raise BearIDError(f"{where + ': ' if where else ''}{_explain(stage, cls, exc)}") from None


def _explain(stage: str, cls: type[StageConfig], exc: ValidationError) -> str:
    problems = []
    for e in exc.errors():
        key = ".".join([stage, *(str(p) for p in e["loc"])])
        if e["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown setting; {stage} settings are {', '.join(cls.model_fields)}")
        elif e["type"] == "model_type":
            problems.append(f"{stage}: expected a mapping of settings, got {e['input']!r}")
        elif e["type"] in ("tuple_type", "list_type"):
            problems.append(f"{key}: expected a list, e.g. [a, b] (got {e['input']!r})")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {msg[0].lower() + msg[1:]} (got {e['input']!r})")
    return "; ".join(problems)


def with_overrides(config: StageConfig, items: list[str], stage: str) -> StageConfig:
    """`config` with `--set KEY=VALUE` overrides (VALUE read as YAML: 500, 0.5, false,
    [leye, reye]), checked as the sweep file is."""
    changes = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise BearIDError(f"--set {item}: use KEY=VALUE, e.g. --set steps=500")
        try:
            changes[key] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            changes[key] = raw
    return make(stage, {**config.model_dump(exclude_unset=True), **changes}, where="--set")


def stage_config(stage: str, path: Path | None = None, overrides: list[str] | None = None) -> StageConfig:
    """One stage's config: from a YAML file of its settings (or the defaults), with --set
    overrides; every value checked."""
    values = {}
    if path is not None:
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise BearIDError(f"{path}: cannot read the {stage} config: {exc}") from None
    return with_overrides(make(stage, values, where=str(path or "")), overrides or [], stage)


def read_config(stage_dir: Path, stage: str | None = None) -> StageConfig:
    """The config a stage directory was computed with (its config.yaml). The stage is the one
    `stage` names, else the one the directory's name says (face_config_01: face)."""
    stage = stage or stage_of_dir(Path(stage_dir).name).name
    path = Path(stage_dir) / "config.yaml"
    if not path.is_file():
        raise BearIDError(f"{stage_dir}: not a {stage} stage directory (no config.yaml)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BearIDError(f"{path}: unreadable: {exc}") from None
    if not isinstance(raw, dict):
        raise BearIDError(f"{path}: expected a mapping of settings")
    raw.pop("stage", None)  # the stage is known
    return make(stage, raw, where=str(path))


# Settings left out of config.yaml and the stage key while unset: added later, they leave the
# keys of the stages computed before them as they were.
OMITTED_UNSET = ("svm", "svm_ids")


def as_dict(config: StageConfig) -> dict:
    """A config as plain YAML/JSON values (what config.yaml and the stage key hold)."""
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in config.model_dump().items()
        if not (v is None and k in OMITTED_UNSET)
    }


@dataclass
class Sweep:
    """The configs to try per stage; every combination is a branch of the results tree."""

    face: list[FaceConfig] = field(default_factory=lambda: [FaceConfig()])
    chip: list[ChipConfig] = field(default_factory=lambda: [ChipConfig()])
    embed: list[EmbedConfig] = field(default_factory=lambda: [EmbedConfig()])
    classify: list[ClassifyConfig] = field(default_factory=lambda: [ClassifyConfig()])

    def branches(self) -> list[tuple[FaceConfig, ChipConfig, EmbedConfig, ClassifyConfig]]:
        return list(itertools.product(self.face, self.chip, self.embed, self.classify))

    @classmethod
    def of_dlib(
        cls,
        face: Path,
        embed: Path,
        landmarks: Path | None = None,
        parts: list[str] | None = None,
        chips: str = "bearid",
        svm: Path | None = None,
        svm_ids: Path | None = None,
    ) -> Sweep:
        """The one branch that imports dlib models: the detector (and shape predictor) used as
        they are, chips cut as the network was trained on (`chips`: a chip template), the
        ResNet used as it is, a class stage fitted on the splits (or, given `svm` and
        `svm_ids`, bearsvm's SVM as it is, with the open-set threshold fitted on them)."""
        if (svm is None) != (svm_ids is None):
            raise BearIDError("--svm and --ids come together: bearsvm_network.dat and bearsvm_network_ids.dat")
        for path in (face, embed, landmarks, svm, svm_ids):
            if path is not None and not Path(path).is_file():
                raise BearIDError(f"{path}: no such file")
        values = {
            "backend": "mmod",
            "init": str(Path(face).resolve()),
            "parts": parts,
            "landmarks": str(Path(landmarks).resolve()) if landmarks else None,
        }
        face_cfg = make("face", values, where="--face")
        chip_cfg = make("chip", {"template": chips}, where="--chips")
        embed_cfg = make(
            "embed",
            {"backbone": "dlib_resnet", "init": str(Path(embed).resolve()), "input_size": 150, "steps": 0},
            where="--embed",
        )
        imported = {"svm": str(Path(svm).resolve()), "svm_ids": str(Path(svm_ids).resolve())} if svm else {}
        class_cfg = make("classify", imported, where="--svm")
        return cls([face_cfg], [chip_cfg], [embed_cfg], [class_cfg])  # type: ignore[list-item]

    def with_overrides(self, items: list[str]) -> Sweep:
        """The sweep with `STAGE.KEY=VALUE` overrides applied to every config of that stage."""
        out = Sweep(*(list(getattr(self, stage)) for stage in STAGES))
        for item in items:
            stage, dot, setting = item.partition(".")
            if not dot or stage not in STAGES:
                raise BearIDError(f"--set {item}: use STAGE.KEY=VALUE with STAGE one of {', '.join(STAGES)}")
            setattr(out, stage, [with_overrides(c, [setting], stage) for c in getattr(out, stage)])
        return out


def read_sweep(path: Path | None) -> Sweep:
    if path is None:
        return Sweep()
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BearIDError(f"{path}: cannot read the pipeline file: {exc}") from None
    if not isinstance(raw, dict) or set(raw) - set(STAGES):
        unknown = sorted(set(raw) - set(STAGES)) if isinstance(raw, dict) else []
        raise BearIDError(
            f"{path}: expected a mapping with keys among {', '.join(STAGES)}"
            + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else "")
        )
    out = Sweep()
    for stage in STAGES:
        entry = raw.get(stage)
        items = entry if isinstance(entry, list) else [entry]
        if not items:
            raise BearIDError(f"{path}: {stage}: an empty list of configs; give at least one (or leave the key out)")
        setattr(out, stage, [make(stage, item, where=str(path)) for item in items])
    return out
