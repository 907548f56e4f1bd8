"""Synthetic clips with truth: the world's bears walking through short videos.

`bearid synth OUT --videos N` writes OUT/_videos/clip_NNN.mp4 (H.264 and MPEG-4 in turn) and
OUT/_truth/videos.json, every frame's faces (box, landmarks, the bear's ID, its track). In a
clip one or two of the world's bears (sometimes a stranger) walk, turn their heads, pass
behind a clump of grass and leave the frame; some clips hold no bear, as camera-trap clips
mostly do. Bears are drawn by the photos' own renderer (`bearid.synth.render.draw_bear`),
so a bear in a clip is the bear of the photos. Deterministic for a world config and N.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bearid.errors import BearIDError
from bearid.fsio import atomic_write_text
from bearid.metrics import intersection
from bearid.synth.geometry import Pose
from bearid.synth.render import PALETTES, FaceSpec, SceneSpec, background, draw_bear, finish
from bearid.synth.traits import BearTraits
from bearid.synth.tree import TRUTH_DIR, assets_for, to_box
from bearid.synth.world import LOCATIONS, World, WorldConfig, plan_world
from bearid.video.encode import write_clip

VIDEO_DIR = "_videos"  # outside the archive: names starting with _ are not part of it
TRUTH_FILE = "videos.json"


@dataclass(frozen=True)
class ClipConfig:
    """Length, rate, size and what the clips hold."""

    seconds: tuple[float, float] = (2.0, 4.0)
    fps: tuple[int, ...] = (10, 15, 24, 30)
    size: tuple[int, int] = (640, 360)
    empty_rate: float = 0.25  # clips with no bear (at least one in three or more clips)
    two_rate: float = 0.3  # clips with two bears
    unknown_rate: float = 0.15  # a bear nobody has identified
    leave_rate: float = 0.5  # a bear walks out of the frame before the clip ends
    grass_rate: float = 0.5  # a clump of grass a bear passes behind
    face_side: tuple[float, float] = (60.0, 120.0)  # face box side, pixels


@dataclass(frozen=True)
class Walk:
    """One bear's way through a clip: where its head is and how it is turned at time t."""

    traits: BearTraits
    label: str
    known: bool
    start: tuple[float, float]  # head centre at t = 0
    velocity: tuple[float, float]  # pixels a second
    scale: float  # pixels per head half-width
    yaw: tuple[float, float, float]  # base, amplitude, period (s)
    pitch: float
    roll: float
    seed: int

    def at(self, t: float) -> FaceSpec:
        x = self.start[0] + self.velocity[0] * t
        y = self.start[1] + self.velocity[1] * t + 0.04 * self.scale * math.sin(2 * math.pi * t * 1.3)
        base, amp, period = self.yaw
        yaw = base + amp * math.sin(2 * math.pi * t / period)
        pose = Pose(yaw, self.pitch * math.cos(2 * math.pi * t / (period * 1.7)), self.roll)
        return FaceSpec(self.traits, self.label, pose, (x, y), self.scale)


@dataclass(frozen=True)
class ClipPlan:
    index: int
    file: str  # relative to the world's root
    kind: str  # "empty" | "one" | "two"
    codec: str
    fps: int
    frames: int
    scene: SceneSpec
    walks: tuple[Walk, ...] = ()
    grass: tuple[float, float, float] | None = None  # left x, width, top y of a clump in front


@dataclass
class VideoReport:
    root: Path
    clips: int
    frames: int
    faces: int
    per_kind: dict[str, int] = field(default_factory=dict)


def plan_clips(world: World, n: int, cfg: ClipConfig = ClipConfig()) -> list[ClipPlan]:
    """N clips of a world: each with its own seed, so it is the same whatever N is around it
    (the kinds are a quota over the N, as the photos' are)."""
    if n < 0:
        raise BearIDError(f"--videos {n}: must be 0 or more")
    seed = world.config.seed
    rng = np.random.default_rng([seed, 11])
    n_empty = max(1 if n >= 3 and cfg.empty_rate > 0 else 0, round(cfg.empty_rate * n))
    n_two = min(n - n_empty, round(cfg.two_rate * n))
    kinds = [str(k) for k in rng.permutation(["empty"] * n_empty + ["two"] * n_two + ["one"] * (n - n_empty - n_two))]
    return [_plan_clip(np.random.default_rng([seed, 12, i]), i, kinds[i], world, cfg) for i in range(n)]


def _plan_clip(rng: np.random.Generator, index: int, kind: str, world: World, cfg: ClipConfig) -> ClipPlan:
    width, height = cfg.size
    place = LOCATIONS[int(rng.integers(len({world.home[b.bear_id] for b in world.bears})))]
    location, _, grounds, uppers = place
    scene = SceneSpec(
        width=width,
        height=height,
        ground=str(rng.choice(grounds)),
        upper=str(rng.choice(uppers)),
        horizon=float(rng.uniform(0.0, 0.35)),
        light=float(np.exp(rng.uniform(-0.2, 0.15))),
        tint=(1.0, 1.0, 1.0),
        gradient=(float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.2, 0.2))),
        blur=0.0,
        seed=int(rng.integers(2**31)),
    )
    fps = int(rng.choice(cfg.fps))
    frames = max(2, round(float(rng.uniform(*cfg.seconds)) * fps))
    local = [b for b in world.bears if world.home[b.bear_id] == location] or world.bears
    strangers = [s for s in world.strangers if world.home[s.bear_id] == location] or world.strangers
    day = next((c.date for c in world.contributions if c.location == location), world.contributions[0].date)
    walks: list[Walk] = []
    chosen: set[str] = set()
    for k in range({"empty": 0, "one": 1, "two": 2}[kind]):
        unknown = bool(strangers) and rng.random() < cfg.unknown_rate
        pool = [b for b in (strangers if unknown else local) if b.bear_id not in chosen] or local
        bear = pool[int(rng.integers(len(pool)))]
        chosen.add(bear.bear_id)
        walks.append(_walk(rng, bear, unknown, k, kind == "two", day, world.config, cfg, frames / fps))
    grass = None
    if walks and rng.random() < cfg.grass_rate:
        w = walks[0]
        mid = w.start[0] + w.velocity[0] * frames / fps * float(rng.uniform(0.3, 0.6))
        grass = (mid - 0.4 * w.scale, 0.8 * w.scale, w.start[1] - 0.1 * w.scale)
    codec = "h264" if index % 2 == 0 else "mpeg4"
    return ClipPlan(index, f"{VIDEO_DIR}/clip_{index:03d}.mp4", kind, codec, fps, frames, scene, tuple(walks), grass)


def _walk(rng, bear: BearTraits, unknown: bool, k: int, two: bool, day, world_cfg: WorldConfig, cfg, seconds) -> Walk:
    width, height = cfg.size
    side = float(np.exp(rng.uniform(np.log(cfg.face_side[0]), np.log(cfg.face_side[1]))))
    scale = side / 2
    # Two bears keep to their own band of the frame, walking opposite ways.
    band = (0.3, 0.45) if two and k == 0 else (0.6, 0.7) if two else (0.35, 0.6)
    y = float(rng.uniform(*band)) * height
    direction = (1 if rng.random() < 0.5 else -1) * (-1 if k == 1 else 1)
    x0 = float(rng.uniform(0.2, 0.45) if direction > 0 else rng.uniform(0.55, 0.8)) * width
    if rng.random() < cfg.leave_rate:  # out of the frame before the end
        x1 = (width + side) if direction > 0 else -side
    else:
        x1 = x0 + direction * float(rng.uniform(0.1, 0.3)) * width
    velocity = ((x1 - x0) / seconds, float(rng.uniform(-0.05, 0.05)) * height / seconds)
    yaw = (float(direction * rng.uniform(0, 15)), float(rng.uniform(10, 30)), float(rng.uniform(1.2, 3.0)))
    looks = bear.on(day, world_cfg.season_drift)
    return Walk(
        looks,
        bear.bear_id,
        not unknown,
        (x0, y),
        velocity,
        scale,
        yaw,
        float(rng.uniform(-10, 10)),
        float(rng.uniform(-8, 8)),
        int(rng.integers(2**31)),
    )


def _grass(img: Image.Image, grass: tuple[float, float, float], seed: int) -> None:
    """A clump of sedge in front of the bears, the same in every frame."""
    rng = np.random.default_rng([seed, 13])
    left, width, top = grass
    draw = ImageDraw.Draw(img)
    for _ in range(24):
        base = left + float(rng.uniform(0, width))
        tip = (base + float(rng.uniform(-0.3, 0.3)) * width, top + float(rng.uniform(0, 0.3)) * width)
        half = max(2.0, width * float(rng.uniform(0.03, 0.07)))
        shade = np.array(PALETTES["sedge"]) * float(rng.uniform(0.6, 1.1))
        colour = tuple(int(c) for c in np.clip(shade * 255, 0, 255))
        draw.polygon([(base - half, img.height), (base + half, img.height), tip], fill=colour)  # type: ignore[arg-type]


def render_clip(plan: ClipPlan, seed: int) -> Iterator[tuple[Image.Image, dict]]:
    """Each frame as shown, with its truth: the faces at least half inside the frame."""
    assets = assets_for(seed)
    backdrop = background(plan.scene)
    for i in range(plan.frames):
        t = i / plan.fps
        img = backdrop.copy()
        specs = [(k, w.at(t)) for k, w in enumerate(plan.walks)]
        drawn = {}
        for k, spec in sorted(specs, key=lambda ks: ks[1].scale):  # far (small) bears first
            drawn[k] = draw_bear(img, spec, np.random.default_rng([plan.walks[k].seed, 1]))
        if plan.grass:
            _grass(img, plan.grass, plan.scene.seed)
        faces = []
        for k, face in sorted(drawn.items()):
            box = to_box(face)
            geometry = (box.left, box.top, box.width, box.height)
            area = box.width * box.height
            inside = intersection(geometry, (0, 0, plan.scene.width, plan.scene.height)) / max(1, area)
            if inside < 0.5:
                continue
            hidden = 0.0
            if plan.grass:
                g_left, g_width, g_top = plan.grass
                hidden = intersection(geometry, (g_left, g_top, g_width, plan.scene.height)) / max(1, area)
            faces.append(
                {
                    "track": k,
                    "bear_id": face.spec.label,
                    "known": plan.walks[k].known,
                    "box": list(geometry),
                    "landmarks": {n: list(p) for n, p in box.parts.items()},
                    "occluded": hidden > 0.15,
                    "truncated": inside < 1.0,
                    "yaw": round(face.spec.pose.yaw, 1),
                }
            )
        yield finish(img, plan.scene, assets), {"index": i, "time": round(t, 6), "faces": faces}


def write_videos(
    config: WorldConfig,
    out: Path,
    n: int,
    cfg: ClipConfig = ClipConfig(),
    progress: Callable[[int], None] | None = None,
) -> VideoReport:
    """Write N clips of the world `config` makes (its bears, by the same seed) under `out`,
    and their truth to OUT/_truth/videos.json. The same config and N give the same clips."""
    out = Path(out)
    world = plan_world(config)
    clips, total_faces, per_kind = [], 0, {}
    for plan in plan_clips(world, n, cfg):
        truth: list[dict] = []

        def frames(plan: ClipPlan = plan, truth: list[dict] = truth) -> Iterator[Image.Image]:
            for image, facts in render_clip(plan, config.seed):
                truth.append(facts)
                yield image

        write_clip(out / plan.file, frames(), plan.fps, plan.codec)
        total_faces += sum(len(f["faces"]) for f in truth)
        per_kind[plan.kind] = per_kind.get(plan.kind, 0) + 1
        clips.append(
            {
                "file": plan.file,
                "kind": plan.kind,
                "codec": plan.codec,
                "fps": plan.fps,
                "width": plan.scene.width,
                "height": plan.scene.height,
                "frames": plan.frames,
                "bears": [{"track": k, "bear_id": w.label, "known": w.known} for k, w in enumerate(plan.walks)],
                "grass": None if plan.grass is None else [round(v, 1) for v in plan.grass],
                "truth": truth,
            }
        )
        progress and progress(1)
    facts = {"seed": config.seed, "config": dataclasses.asdict(cfg), "clips": clips}
    atomic_write_text(out / TRUTH_DIR / TRUTH_FILE, json.dumps(facts, indent=1))
    return VideoReport(out, len(clips), sum(c["frames"] for c in clips), total_faces, per_kind)


def read_truth(root: Path) -> dict:
    """OUT/_truth/videos.json, as `write_videos` wrote it."""
    path = Path(root) / TRUTH_DIR / TRUTH_FILE
    if not path.exists():
        raise BearIDError(f"{path}: no synthetic clips' truth here (bearid synth OUT --videos N writes it)")
    return json.loads(path.read_text())
