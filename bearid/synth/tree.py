"""Writing a synthetic world to disk: the source tree, its ground truth, and a summary.

OUT/<location>/<contributor>_<date>/<bear_id | bear_unknown | bear_multiple | <bear>_cub>/*.jpg
OUT/_truth/faces.xml     every photo with its faces (box, 5 landmarks + head_top, label),
                         in display coordinates (after EXIF orientation)
OUT/_truth/world.json    config, bears and their traits, per-photo facts (kind, pose, ...)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from bearid.fsio import atomic_write_text, write_unless_same
from bearid.metadata import Box, Dataset, ImageEntry, write_faces
from bearid.synth.photo_io import encode_jpeg
from bearid.synth.render import Assets, RenderedFace, render
from bearid.synth.world import PhotoPlan, World, WorldConfig, plan_world
from bearid.workers import worker_pool

TRUTH_DIR = "_truth"


@dataclass
class SynthReport:
    root: Path
    bears: int
    photos: int
    faces: int
    seconds: float
    per_location: dict[str, int] = field(default_factory=dict)
    per_kind: dict[str, int] = field(default_factory=dict)
    megapixels: float = 0.0
    planted: dict[str, int] = field(default_factory=dict)  # defect -> count, with --messy

    @property
    def photos_per_second(self) -> float:
        return self.photos / self.seconds if self.seconds else 0.0


@lru_cache(maxsize=4)
def assets_for(seed: int) -> Assets:
    return Assets(seed)


def to_box(face: RenderedFace) -> Box:
    """Ground-truth imglab box for a rendered face (integer pixels, like imglab)."""
    left, top, side, _ = face.head.box
    parts = {name: (round(x), round(y)) for name, (x, y) in face.head.landmarks.items()}
    return Box(
        left=round(left),
        top=round(top),
        width=round(side),
        height=round(side),
        label=face.spec.label,
        parts=parts,
        occluded=face.spec.occluder is not None,
    )


def render_photo(plan: PhotoPlan, root: Path, seed: int) -> ImageEntry:
    """Render one planned photo, write it (atomically) and return its ground truth."""
    img, faces = render(plan.scene, plan.faces, assets_for(seed))
    data = encode_jpeg(img, plan.orientation, plan.taken, plan.quality, make=f"{plan.contribution.contributor} camera")
    write_unless_same(root / plan.relpath, data)
    return ImageEntry(file=plan.relpath, boxes=[to_box(f) for f in faces], width=img.width, height=img.height)


def _render_one(args: tuple[PhotoPlan, Path, int]) -> ImageEntry:
    return render_photo(*args)


def write_world(
    config: WorldConfig,
    root: Path,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[World, Dataset, SynthReport]:
    """Plan, render and write a world under `root`; return it with its ground truth."""
    root = Path(root)
    t0 = time.perf_counter()
    world = plan_world(config)
    jobs = [(p, root, config.seed) for p in world.photos]
    entries: list[ImageEntry] = []
    if workers > 1:
        with worker_pool(workers) as pool:
            for entry in pool.map(_render_one, jobs, chunksize=4):
                entries.append(entry)
                progress and progress(1)
    else:
        for job in jobs:
            entries.append(_render_one(job))
            progress and progress(1)
    truth_dir = root / TRUTH_DIR
    # Ground-truth paths are written relative to the XML file, as BearID always does.
    dataset = Dataset(
        images=entries, name="bearid synthetic world", comment=f"ground truth, seed {config.seed}", base_dir=root
    )
    write_faces(dataset, truth_dir / "faces.xml")
    atomic_write_text(truth_dir / "world.json", json.dumps(world_facts(world), indent=1))
    seconds = time.perf_counter() - t0
    report = SynthReport(
        root=root,
        bears=len(world.bears),
        photos=len(entries),
        faces=sum(len(e.boxes) for e in entries),
        seconds=seconds,
        per_location=dict(Counter(p.contribution.location for p in world.photos)),
        per_kind=dict(Counter(p.kind for p in world.photos)),
        megapixels=sum(e.width * e.height for e in entries) / 1e6,  # type: ignore[operator]
    )
    return world, dataset, report


def world_facts(world: World) -> dict:
    """What a test or a person needs to score tools against the world."""
    return {
        "config": dataclasses.asdict(world.config),
        "bears": [dataclasses.asdict(b) | {"location": world.home[b.bear_id]} for b in world.bears],
        "strangers": [dataclasses.asdict(b) | {"location": world.home[b.bear_id]} for b in world.strangers],
        "photos": [
            {
                "path": p.relpath,
                "kind": p.kind,
                "folder": p.folder,
                "location": p.contribution.location,
                "contributor": p.contribution.contributor,
                "contribution": p.contribution.dirname,
                "taken": p.taken.isoformat(),
                "orientation": p.orientation,
                "quality": p.quality,
                "blur": round(p.scene.blur, 2),
                "light": round(p.scene.light, 3),
                "faces": [
                    {
                        "label": f.label,
                        "cub": f.cub,
                        "occluder": f.occluder,
                        "yaw": round(f.pose.yaw, 1),
                        "pitch": round(f.pose.pitch, 1),
                        "roll": round(f.pose.roll, 1),
                    }
                    for f in p.faces
                ],
            }
            for p in world.photos
        ],
    }


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
