"""Planning a synthetic bear world: who lives where, who photographed whom, and when.

`plan_world` turns a `WorldConfig` into a list of `PhotoPlan`s, one per photo, each with its
own seed, so photos can be rendered independently (and in parallel) yet deterministically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from bearid.errors import BearIDError
from bearid.synth.geometry import Pose
from bearid.synth.render import FaceSpec, SceneSpec
from bearid.synth.traits import BearTraits, cub_of, make_population

# (directory, ID prefix, ground materials, upper materials)
LOCATIONS = [
    ("brooks_falls", "bf", ("water", "water", "rock"), ("forest", "rock", "sky")),
    ("glendale_cove", "gc", ("grass", "sedge", "water"), ("forest", "sky")),
    ("katmai_coast", "kc", ("sedge", "rock", "grass"), ("sky", "forest")),
    ("lake_clark", "lc", ("grass", "water"), ("forest", "sky")),
]
CONTRIBUTORS = ["freels", "nps", "brbrn", "hartley", "ostow", "katmaicam", "ranger", "vanduyn"]
# How each contributor names files: flickr-style, camera, or phone.
NAME_STYLES = ["flickr", "camera", "dsc"]
ORIENTATIONS_COMMON = (6, 8, 3)
ORIENTATIONS_RARE = (2, 4, 5, 7)


# Photos per bear. "skewed": a few bears are photographed a lot, some rarely (Zipf, capped at
# 12 to 1). "long-tail": as real archives are, a few bears (LONG_TAIL_HEAVY of them) hold most
# photos (LONG_TAIL_SHARE) and the rest two or three each, for the stages' settings to be
# chosen on the shape they meet.
SHOTS = ("skewed", "long-tail")
LONG_TAIL_HEAVY, LONG_TAIL_SHARE = 0.08, 0.7


@dataclass(frozen=True)
class WorldConfig:
    """Size, seed and difficulty knobs of a synthetic world."""

    bears: int = 12
    photos: int = 200
    seed: int = 0
    strangers: int = 0  # bears nobody has identified; 0: a quarter of the bears, at least 2
    shots: str = "skewed"  # photos per bear: "skewed" (a few bears often, some rarely) or "long-tail" (SHOTS)
    locations: int = 0  # 0: chosen from the number of bears
    # Identity difficulty.
    lookalike_rate: float = 0.25  # share of bears that are a sibling of another
    sibling_closeness: float = 0.8  # 1 = identical apart from one feature
    season_drift: float = 1.0  # appearance change with season and year
    trait_jitter: float = 0.02  # per-photo variation of a bear's geometry
    # Nuisance.
    max_yaw: float = 35.0
    max_pitch: float = 18.0
    max_roll: float = 20.0
    extreme_pose_rate: float = 0.04
    min_face: int = 40  # face box side, pixels
    max_face_frac: float = 0.75  # of the shorter photo side
    min_side: int = 640  # longer photo side
    max_side: int = 2400
    portrait_rate: float = 0.2
    rotated_exif_rate: float = 0.15
    blur_rate: float = 0.15
    occlusion_rate: float = 0.1
    light_range: float = 0.35
    jpeg_quality: tuple[int, int] = (70, 95)
    # What the tree holds besides single labelled bears.
    unknown_rate: float = 0.06
    multiple_rate: float = 0.06
    cub_rate: float = 0.04
    empty_rate: float = 0.04

    def __post_init__(self) -> None:
        """Refuse settings no world can be made with, naming the setting."""
        counts = {
            "bears": (self.bears, 1),
            "photos": (self.photos, 0),
            "strangers": (self.strangers, 0),
            "locations": (self.locations, 0),
            "min_face": (self.min_face, 8),
            "min_side": (self.min_side, 64),
        }
        for name, (value, least) in counts.items():
            if value < least:
                raise BearIDError(f"world setting {name}={value}: must be {least} or more")
        rates = [f.name for f in dataclasses.fields(self) if f.name.endswith("_rate")] + [
            "sibling_closeness",
            "max_face_frac",
        ]
        for name in rates:
            if not 0 <= getattr(self, name) <= 1:
                raise BearIDError(f"world setting {name}={getattr(self, name)}: a share, from 0 to 1")
        if self.shots not in SHOTS:
            raise BearIDError(f"world setting shots={self.shots!r}: one of {', '.join(SHOTS)}")
        if self.max_side < self.min_side:
            raise BearIDError(
                f"world settings min_side={self.min_side}, max_side={self.max_side}: max_side is the smaller"
            )
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise BearIDError(
                f"world setting jpeg_quality={self.jpeg_quality}: two qualities from 1 to 100, lower first"
            )

    def harder(self, difficulty: float) -> WorldConfig:
        """Scale every nuisance and look-alike knob by `difficulty` (1 = default)."""
        d = difficulty
        return dataclasses.replace(
            self,
            lookalike_rate=min(0.9, self.lookalike_rate * d),
            sibling_closeness=min(0.97, 1 - (1 - self.sibling_closeness) / max(d, 1e-3)),
            season_drift=self.season_drift * d,
            trait_jitter=self.trait_jitter * d,
            max_yaw=min(60.0, self.max_yaw * d),
            max_pitch=min(35.0, self.max_pitch * d),
            max_roll=min(45.0, self.max_roll * d),
            extreme_pose_rate=min(0.3, self.extreme_pose_rate * d),
            blur_rate=min(0.6, self.blur_rate * d),
            occlusion_rate=min(0.5, self.occlusion_rate * d),
            light_range=min(0.6, self.light_range * d),
        )


@dataclass(frozen=True)
class Contribution:
    location: str
    contributor: str
    date: dt.date
    dirname: str  # e.g. freels_201708
    name_style: str


@dataclass
class PhotoPlan:
    index: int
    kind: str  # single | unknown | multiple | cub | empty
    contribution: Contribution
    folder: str  # bear_id, bear_unknown, bear_multiple, <bear>_cub
    filename: str
    taken: dt.datetime
    orientation: int  # EXIF orientation tag stored in the file
    quality: int
    scene: SceneSpec
    faces: list[FaceSpec] = field(default_factory=list)

    @property
    def relpath(self) -> str:
        c = self.contribution
        return f"{c.location}/{c.dirname}/{self.folder}/{self.filename}"


@dataclass
class World:
    config: WorldConfig
    bears: list[BearTraits]  # the identified bears
    strangers: list[BearTraits]  # bears nobody has identified (they appear as bear_unknown)
    home: dict[str, str]  # bear_id -> location
    contributions: list[Contribution]
    photos: list[PhotoPlan]


def plan_world(config: WorldConfig) -> World:
    rng = np.random.default_rng([config.seed, 0])
    n_loc = config.locations or int(np.clip(config.bears // 5, 1, 3))
    locations = LOCATIONS[:n_loc]

    bear_ids: list[str] = []
    home: dict[str, str] = {}
    for i in range(config.bears):
        loc, prefix, *_ = locations[i % n_loc]
        taken = {b for b in bear_ids if b.startswith(prefix)}
        while (bid := f"{prefix}_{int(rng.integers(1, 1000)):03d}") in taken:
            pass
        bear_ids.append(bid)
        home[bid] = loc
    bears = make_population(rng, bear_ids, config.lookalike_rate, config.sibling_closeness)
    strangers = []
    usual = max(2, config.bears // 4)
    for j in range(config.strangers or usual):
        loc, prefix, *_ = locations[j % n_loc]
        # Strangers beyond the usual number draw from their own stream, so asking for more
        # of them leaves the rest of the world (bears, contributions, photos) as it was.
        source = rng if j < usual else np.random.default_rng([config.seed, 2, j])
        stranger = make_population(source, [f"{prefix}_unknown_{j + 1:02d}"], 0.0, 0.0)[0]
        strangers.append(stranger)
        home[stranger.bear_id] = loc

    contributions = _contributions(rng, locations)
    popularity = _popularity(rng, [home[b.bear_id] for b in bears], config.shots)
    kinds = _kinds(rng, config)
    photos = [
        _plan_photo(
            np.random.default_rng([config.seed, 1, i]),
            i,
            kinds[i],
            config,
            bears,
            strangers,
            home,
            contributions,
            popularity,
        )
        for i in range(config.photos)
    ]
    _name_files(rng, photos)
    return World(config, bears, strangers, home, contributions, photos)


def _popularity(rng: np.random.Generator, homes: list[str], shots: str) -> np.ndarray:
    """Each bear's weight when a photo of a known bear of its location is planned (SHOTS)."""
    popularity = np.minimum(rng.zipf(1.6, size=len(homes)).astype(float), 12.0)  # drawn in both: worlds match
    if shots == "skewed":
        return popularity
    weights = np.zeros(len(homes))
    for place in sorted(set(homes)):
        local = np.array([i for i, h in enumerate(homes) if h == place])
        heavy = max(1, round(len(local) * LONG_TAIL_HEAVY))
        weights[local] = (1 - LONG_TAIL_SHARE) / max(1, len(local) - heavy)
        weights[local[np.argsort(-popularity[local], kind="stable")[:heavy]]] = LONG_TAIL_SHARE / heavy
    return weights


def _contributions(rng: np.random.Generator, locations) -> list[Contribution]:
    out = []
    names = list(rng.permutation(CONTRIBUTORS))
    for li, (loc, *_rest) in enumerate(locations):
        for k in range(int(rng.integers(2, 4))):
            who = str(names[(li * 3 + k) % len(names)])
            for _ in range(int(rng.integers(1, 3))):
                day = dt.date(int(rng.integers(2014, 2020)), int(rng.integers(6, 10)), int(rng.integers(1, 29)))
                stamp = day.strftime("%Y%m") if rng.random() < 0.7 else day.strftime("%Y%m%d")
                out.append(Contribution(loc, who, day, f"{who}_{stamp}", str(rng.choice(NAME_STYLES))))
    # One dirname per contribution.
    unique = {c.location + "/" + c.dirname: c for c in out}
    return list(unique.values())


def _kinds(rng: np.random.Generator, cfg: WorldConfig) -> list[str]:
    """Photo kinds by quota (not by chance), so every world of a few dozen photos has each."""
    rates = {"unknown": cfg.unknown_rate, "multiple": cfg.multiple_rate, "cub": cfg.cub_rate, "empty": cfg.empty_rate}
    kinds: list[str] = []
    for kind, rate in rates.items():
        n = round(rate * cfg.photos)
        if rate > 0 and cfg.photos >= 25:
            n = max(1, n)
        kinds += [kind] * n
    kinds = kinds[: cfg.photos]
    kinds += ["single"] * (cfg.photos - len(kinds))
    return [str(k) for k in rng.permutation(kinds)]


def _plan_photo(rng, index, kind, cfg: WorldConfig, bears, strangers, home, contributions, popularity) -> PhotoPlan:
    contribution = contributions[int(rng.integers(len(contributions)))]
    local = [i for i, b in enumerate(bears) if home[b.bear_id] == contribution.location]
    local_strangers = [s for s in strangers if home[s.bear_id] == contribution.location] or strangers
    # Photos are taken on a few days before the contribution date, in bursts.
    day = contribution.date - dt.timedelta(days=int(rng.integers(0, 6)) * 3)
    taken = dt.datetime.combine(
        day, dt.time(int(rng.integers(7, 20)), int(rng.integers(0, 60)), int(rng.integers(0, 60)))
    )

    if not local:
        kind = "unknown" if kind != "empty" else kind

    def pick_known() -> BearTraits:
        w = popularity[local] / popularity[local].sum()
        return bears[local[int(rng.choice(len(local), p=w))]]

    who: list[tuple[BearTraits, str, bool]] = []  # traits, label, cub?
    folder = "bear_unknown"
    if kind == "single":
        b = pick_known()
        who, folder = [(b, b.bear_id, False)], b.bear_id
    elif kind == "unknown":
        s = local_strangers[int(rng.integers(len(local_strangers)))]
        who = [(s, s.bear_id, False)]
    elif kind == "multiple":
        folder = "bear_multiple"
        chosen = {pick_known().bear_id: None for _ in range(3)}
        pool = [b for b in bears if b.bear_id in chosen][: int(rng.integers(2, 4))]
        if len(pool) < 2:
            pool.append(local_strangers[0])
        who = [(b, b.bear_id, False) for b in pool]
    elif kind == "cub":
        mother = pick_known()
        folder = f"{mother.bear_id}_cub"
        cub = cub_of(mother, np.random.default_rng([cfg.seed, 5, bears.index(mother)]))
        who = [(cub, cub.bear_id, True)] * int(rng.integers(1, 3))
        if rng.random() < 0.5:
            who.insert(0, (mother, mother.bear_id, False))
    else:  # empty: a photo with no bear, filed by a contributor under a bear or unknown
        folder = (
            "bear_unknown" if rng.random() < 0.5 or not local else bears[local[int(rng.integers(len(local)))]].bear_id
        )

    width, height = _photo_size(rng, cfg)
    scene = _scene(rng, cfg, contribution.location, width, height, seed=int(rng.integers(2**31)))
    faces = _place_faces(rng, cfg, who, taken.date(), width, height)
    orientation = 1
    if rng.random() < cfg.rotated_exif_rate:
        orientation = int(rng.choice(ORIENTATIONS_RARE if rng.random() < 0.15 else ORIENTATIONS_COMMON))
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    return PhotoPlan(index, kind, contribution, folder, "", taken, orientation, quality, scene, faces)


def _photo_size(rng, cfg: WorldConfig) -> tuple[int, int]:
    long_side = int(rng.uniform(cfg.min_side, cfg.max_side))
    aspect = float(rng.choice([4 / 3, 3 / 2, 16 / 9]))
    short_side = int(long_side / aspect)
    if rng.random() < cfg.portrait_rate:
        return short_side, long_side
    return long_side, short_side


def _scene(rng, cfg: WorldConfig, location: str, width: int, height: int, seed: int) -> SceneSpec:
    _, _, grounds, uppers = next(loc for loc in LOCATIONS if loc[0] == location)
    lr = cfg.light_range
    warm = rng.uniform(-0.08, 0.08)
    return SceneSpec(
        width=width,
        height=height,
        ground=str(rng.choice(grounds)),
        upper=str(rng.choice(uppers)),
        horizon=float(rng.uniform(0.0, 0.5)),
        light=float(np.exp(rng.uniform(-lr, lr * 0.6))),
        tint=(1 + warm, 1.0, 1 - warm),
        gradient=(float(rng.uniform(-lr, lr)), float(rng.uniform(-lr, lr))),
        blur=float(rng.uniform(1.0, 3.5)) if rng.random() < cfg.blur_rate else 0.0,
        seed=seed,
    )


def _pose(rng, cfg: WorldConfig) -> Pose:
    if rng.random() < cfg.extreme_pose_rate:
        yaw = float(rng.choice([-1, 1]) * rng.uniform(cfg.max_yaw, min(70.0, cfg.max_yaw * 1.8)))
        return Pose(
            yaw,
            float(rng.uniform(-cfg.max_pitch, cfg.max_pitch) * 1.5),
            float(rng.uniform(-cfg.max_roll, cfg.max_roll)),
        )
    return Pose(*(float(rng.normal(0, m / 2.2)) for m in (cfg.max_yaw, cfg.max_pitch, cfg.max_roll)))


def _jitter(rng, t: BearTraits, amount: float) -> BearTraits:
    """Small per-photo variation: expression, fur lying differently, labeller-free noise."""
    if amount <= 0:
        return t
    geo = ("head_aspect", "eye_spacing", "ear_spacing", "ear_size", "muzzle_length", "muzzle_width")
    return dataclasses.replace(t, **{k: getattr(t, k) * float(1 + rng.normal(0, amount)) for k in geo})


def _place_faces(rng, cfg: WorldConfig, who, day: dt.date, width: int, height: int) -> list[FaceSpec]:
    """Sizes and positions: faces from ~min_face px up, side by side when several."""
    faces: list[FaceSpec] = []
    n = len(who)
    short = min(width, height)
    for k, (traits, label, cub) in enumerate(who):
        hi = max(cfg.min_face * 1.5, short * cfg.max_face_frac / max(1, n * 0.8))
        side = float(np.exp(rng.uniform(np.log(cfg.min_face), np.log(hi))))
        side = side * (0.6 if cub else 1.0)
        side = max(float(cfg.min_face), side)
        scale = side / 2.0  # box side is about two head half-widths
        slot_w = width / n
        margin = side * 0.75
        lo_x, hi_x = k * slot_w + margin, (k + 1) * slot_w - margin
        cx = float(rng.uniform(lo_x, hi_x)) if hi_x > lo_x else (k + 0.5) * slot_w
        lo_y, hi_y = margin + 0.3 * side, height - margin
        cy = float(rng.uniform(lo_y, hi_y)) if hi_y > lo_y else height / 2
        occluder = None
        if rng.random() < cfg.occlusion_rate:
            occluder = str(rng.choice(["grass", "branch"]))
        looks = _jitter(rng, traits.on(day, cfg.season_drift), cfg.trait_jitter)
        faces.append(FaceSpec(looks, label, _pose(rng, cfg), (cx, cy), scale, occluder, cub))
    return faces


def _name_files(rng: np.random.Generator, photos: list[PhotoPlan]) -> None:
    """Give each photo a file name in its contributor's style, unique within its folder."""
    counters: dict[str, int] = {}
    for p in photos:
        key = p.contribution.location + p.contribution.dirname
        counters[key] = counters.get(key, int(rng.integers(100, 5000))) + int(rng.integers(1, 4))
        n = counters[key]
        style = p.contribution.name_style
        if style == "flickr":
            p.filename = f"{35000000000 + n * 7919:011d}_{int(rng.integers(16**10)):010x}_b.jpg"
        elif style == "camera":
            p.filename = f"IMG_{n:04d}.JPG"
        else:
            p.filename = f"DSC{n:05d}.jpg"
