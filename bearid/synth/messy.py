"""What real drops hold and the cleaning and ingest tools must handle, planted on purpose.

`add_mess` writes, beside a clean world:
- a contributor drop in another shape (`_drops/<name>/`): IDs inside flat file names, a
  nested card folder, an unsorted folder of unidentified bears, a photo already in the
  archive, a same-name-different-content clash, a corrupt file and a non-image;
- in the tree: exact duplicates, near-duplicates (burst shots a moment apart), truncated and
  garbage JPEGs, an HTML page named .jpg, tiny, very blurry, too dark and too bright photos,
  and a bear folder whose name breaks the ID convention;
- `_labels/faces_imglab.xml`: a curator's XML with structural errors (unknown part names,
  missing landmarks, missing labels, a label that disagrees with the folder).
Every planted thing is recorded in `_truth/messy.json` so tests can score the tools.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from bearid.fsio import atomic_write_text, write_unless_same
from bearid.metadata import Dataset, ImageEntry, write_faces
from bearid.synth.photo_io import encode_jpeg
from bearid.synth.render import render
from bearid.synth.tree import TRUTH_DIR, assets_for, to_box
from bearid.synth.world import LOCATIONS, PhotoPlan, World

DROPS_DIR = "_drops"
LABELS_DIR = "_labels"


@dataclass
class Planted:
    path: str  # relative to the world root
    defect: str  # reason code, e.g. exact_duplicate, near_duplicate, truncated, not_image
    detail: dict


def _variant(
    plan: PhotoPlan,
    rng: np.random.Generator,
    filename: str,
    *,
    folder: str | None = None,
    new_scene: bool = True,
    nudge: float = 0.0,
    seconds: int = 0,
) -> PhotoPlan:
    """Another shot of a planned photo: same bears, new file; optionally a new backdrop,
    faces nudged by a few pixels and degrees, taken `seconds` later."""
    scene = plan.scene
    if new_scene:
        scene = dataclasses.replace(scene, seed=int(rng.integers(2**31)))

    def inside(value: float, size: int, margin: float) -> float:
        return float(np.clip(value, margin, max(margin, size - margin)))

    faces = [
        dataclasses.replace(
            f,
            centre=(
                inside(f.centre[0] + rng.normal(0, nudge) * f.scale, scene.width, 1.2 * f.scale),
                inside(f.centre[1] + rng.normal(0, nudge) * f.scale, scene.height, 1.2 * f.scale),
            ),
            pose=dataclasses.replace(
                f.pose, yaw=f.pose.yaw + rng.normal(0, 40 * nudge), roll=f.pose.roll + rng.normal(0, 20 * nudge)
            ),
        )
        for f in plan.faces
    ]
    return dataclasses.replace(
        plan,
        filename=filename,
        folder=folder or plan.folder,
        scene=scene,
        faces=faces,
        taken=plan.taken + dt.timedelta(seconds=seconds),
    )


def _render(plan: PhotoPlan, seed: int) -> tuple[Image.Image, list]:
    img, faces = render(plan.scene, plan.faces, assets_for(seed))
    return img, [to_box(f) for f in faces]


def _save(root: Path, rel: str, img: Image.Image, plan: PhotoPlan, quality: int | None = None) -> bytes:
    data = encode_jpeg(img, plan.orientation, plan.taken, quality or plan.quality)
    write_unless_same(root / rel, data)
    return data


def add_mess(world: World, dataset: Dataset, root: Path) -> list[Planted]:
    """Plant the defects (see module docstring); extend `dataset` with the new photos."""
    root = Path(root)
    seed = world.config.seed
    rng = np.random.default_rng([seed, 99])
    planted: list[Planted] = []
    singles = [p for p in world.photos if p.kind == "single" and p.faces]
    by_path = {e.file: e for e in dataset.images}

    def pick() -> PhotoPlan:
        return singles[int(rng.integers(len(singles)))]

    def add_photo(
        plan: PhotoPlan, img: Image.Image, boxes, defect: str | None, detail: dict, quality: int | None = None
    ) -> str:
        rel = plan.relpath
        _save(root, rel, img, plan, quality)
        dataset.images.append(ImageEntry(rel, boxes, img.width, img.height))
        if defect:
            planted.append(Planted(rel, defect, detail))
        return rel

    # How many of each: enough to measure, growing with the world.
    n_dup, n_near, n_bad = max(3, len(singles) // 40), max(4, len(singles) // 30), max(1, len(singles) // 80)

    # Exact duplicates: byte copies under a new name, in the same folder and in another one.
    for k in range(n_dup):
        src = pick()
        data = (root / src.relpath).read_bytes()
        folder = "bear_unknown" if k % 3 == 2 else src.folder
        dup = dataclasses.replace(src, filename=f"copy_{k}_{src.filename}", folder=folder)
        write_unless_same(root / dup.relpath, data)
        entry = copy.deepcopy(by_path[src.relpath])
        entry.file = dup.relpath
        dataset.images.append(entry)
        planted.append(Planted(dup.relpath, "exact_duplicate", {"of": src.relpath}))

    # Near-duplicates: bursts, the same bear a second or two later, barely moved.
    for k in range(n_near):
        src = pick()
        burst = _variant(src, rng, f"burst_{k}_{src.filename}", new_scene=False, nudge=0.03, seconds=1 + k)
        img, boxes = _render(burst, seed)
        add_photo(burst, img, boxes, "near_duplicate", {"of": src.relpath})

    # Quality outliers: tiny, very blurry, too dark, too bright (fresh shots, not duplicates).
    degrade = {
        "tiny": lambda im: im.resize((max(8, im.width // 12), max(8, im.height // 12)), Image.BILINEAR),
        "blurry": lambda im: im.filter(ImageFilter.GaussianBlur(max(10.0, max(im.size) / 60))),
        "too_dark": lambda im: im.point(lambda v: int(v * 0.12)),
        "too_bright": lambda im: im.point(lambda v: min(255, int(120 + v * 2.5))),
    }
    for k, (defect, fn) in enumerate([item for item in degrade.items() for _ in range(n_bad)]):
        src = pick()
        shot = _variant(src, rng, f"{defect}_{k}_{src.filename}", nudge=0.2, seconds=3600 + k)
        img, boxes = _render(shot, seed)
        out = fn(img)
        if out.size != img.size:
            kx, ky = out.width / img.width, out.height / img.height
            boxes = [_scaled(b, kx, ky) for b in boxes]
        add_photo(shot, out, boxes, defect, {"source": src.relpath})

    # Broken files that only look like photos.
    src = pick()
    good = (root / src.relpath).read_bytes()
    broken = {
        "truncated": good[: len(good) * 2 // 5],
        "garbage": rng.integers(0, 256, 20000, dtype=np.uint8).tobytes(),
        "not_image": b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Session expired</body></html>\n",
    }
    for defect, data in broken.items():
        rel = f"{src.contribution.location}/{src.contribution.dirname}/{src.folder}/{defect}_{src.filename}"
        write_unless_same(root / rel, data)
        planted.append(Planted(rel, defect, {}))

    # A bear folder whose name breaks the ID convention (same bear, written by hand).
    src = pick()
    bad_folder = src.folder.upper().replace("_", " ") + " (Otis)"
    for k in range(2):
        shot = _variant(src, rng, f"hand_{k}_{src.filename}", folder=bad_folder, nudge=0.2, seconds=7200 + k)
        img, boxes = _render(shot, seed)
        add_photo(shot, img, boxes, "bad_label_dir", {"folder": bad_folder, "label": src.folder})

    planted += _write_drop(world, root, rng)
    planted += _write_bad_labels(dataset, root, rng)

    write_faces(dataset, root / TRUTH_DIR / "faces.xml")
    atomic_write_text(root / TRUTH_DIR / "messy.json", json.dumps([dataclasses.asdict(p) for p in planted], indent=1))
    return planted


def _scaled(box, kx: float, ky: float):
    out = copy.deepcopy(box)
    out.left, out.top = round(box.left * kx), round(box.top * ky)
    out.width, out.height = max(1, round(box.width * kx)), max(1, round(box.height * ky))
    out.parts = {n: (round(x * kx), round(y * ky)) for n, (x, y) in box.parts.items()}
    return out


def _write_drop(world: World, root: Path, rng: np.random.Generator) -> list[Planted]:
    """A contributor drop shaped unlike the archive; truth says where each photo belongs."""
    seed = world.config.seed
    singles = [p for p in world.photos if p.kind == "single" and p.faces]
    unknowns = [p for p in world.photos if p.kind == "unknown" and p.faces] or singles[:1]
    # The drop is from the first location (every world has brooks_falls bears).
    loc = min((p.contribution.location for p in singles), key=[name for name, *_ in LOCATIONS].index)
    local = [p for p in singles if p.contribution.location == loc]
    name = "hartley_20190815"
    base = f"{DROPS_DIR}/{name}"
    planted: list[Planted] = []
    entries: list[ImageEntry] = []

    def shoot(src: PhotoPlan, rel_in_drop: str, label: str, defect: str = "drop_photo") -> None:
        shot = _variant(src, rng, Path(rel_in_drop).name, nudge=0.25, seconds=86400 * 30)
        img, boxes = _render(shot, seed)
        data = encode_jpeg(img, shot.orientation, shot.taken, shot.quality)
        write_unless_same(root / base / rel_in_drop, data)
        entries.append(ImageEntry(f"{base}/{rel_in_drop}", boxes, img.width, img.height))
        planted.append(Planted(f"{base}/{rel_in_drop}", defect, {"label": label}))

    flat: list[tuple[PhotoPlan, str]] = []
    for k in range(6):  # IDs in flat file names, in two naming styles
        src = local[int(rng.integers(len(local)))]
        fname = f"{src.folder}_{k:04d}.jpg" if k % 2 else f"IMG_{2000 + k}_{src.folder}.jpg"
        shoot(src, fname, src.folder)
        flat.append((src, fname))
    for k in range(3):  # a nested memory-card folder with bear-ID directories
        src = local[int(rng.integers(len(local)))]
        shoot(src, f"card2/DCIM/{src.folder}/P{1000 + k}.jpg", src.folder)
    for k in range(2):  # unsorted: nobody knows who these are
        src = unknowns[int(rng.integers(len(unknowns)))]
        shoot(src, f"unsorted/DSC_{300 + k}.jpg", "bear_unknown")
    # A photo already in the archive (same bytes), and a different photo of the same bear
    # under a name the drop already uses for that bear.
    src = local[0]
    write_unless_same(root / base / f"{src.folder}_dup.jpg", (root / src.relpath).read_bytes())
    planted.append(
        Planted(f"{base}/{src.folder}_dup.jpg", "drop_already_archived", {"label": src.folder, "of": src.relpath})
    )
    src, fname = flat[1]
    shoot(src, f"clash/{src.folder}/{fname}", src.folder, defect="drop_name_clash")
    planted[-1].detail["clashes_with"] = f"{base}/{fname}"
    write_unless_same(root / base / "thumbs_0007.jpg", b"\xff\xd8\xff\xe0" + bytes(300))
    planted.append(Planted(f"{base}/thumbs_0007.jpg", "corrupt", {}))
    write_unless_same(root / base / "README.jpg", b"Photos from the August trip, IDs in the file names.\n")
    planted.append(Planted(f"{base}/README.jpg", "not_image", {}))
    write_faces(Dataset(entries, name="drop ground truth", base_dir=root), root / TRUTH_DIR / "drop_faces.xml")
    return planted


def _write_bad_labels(dataset: Dataset, root: Path, rng: np.random.Generator) -> list[Planted]:
    """A curator's imglab file with structural errors, each recorded."""
    labelled = [e for e in dataset.images if len(e.boxes) == 1 and e.boxes[0].label and "/bear_" not in e.file]
    chosen = [labelled[int(i)] for i in rng.choice(len(labelled), size=min(len(labelled), 12), replace=False)]
    bad = Dataset(
        [copy.deepcopy(e) for e in chosen], name="curator labels", comment="hand-fixed in imglab", base_dir=root
    )
    planted: list[Planted] = []
    errors = ["unknown_part", "missing_landmarks", "missing_label", "label_mismatch"]
    for k, code in enumerate(errors):
        box = bad.images[k].boxes[0]
        if code == "unknown_part":
            box.parts["chin"] = box.parts["nose"]
        elif code == "missing_landmarks":
            del box.parts["rear"]
        elif code == "missing_label":
            box.label = None
        else:
            box.label = next(e.boxes[0].label for e in labelled if e.boxes[0].label != box.label)
        planted.append(Planted(bad.images[k].file, code, {"xml": f"{LABELS_DIR}/faces_imglab.xml"}))
    write_faces(bad, root / LABELS_DIR / "faces_imglab.xml")
    return planted
