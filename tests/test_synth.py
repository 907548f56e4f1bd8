"""The synthetic bear world: layout, EXIF, ground truth that sits on the drawn faces,
determinism, and the planted defects recorded as ground truth."""

from __future__ import annotations

import filecmp
import json
import re
from collections import Counter
from pathlib import Path

import dlib
import numpy as np
import pytest
from conftest import SMALL
from PIL import Image, ImageOps

from bearid.errors import BearIDError
from bearid.metadata import LANDMARKS, read_faces, validate
from bearid.synth import WorldConfig, config_with, synthesize
from bearid.synth.photo_io import open_displayed

TREE = re.compile(r"^(?P<loc>[a-z_]+)/(?P<who>[a-z]+)_(?P<date>\d{6}|\d{8})/(?P<folder>[^/]+)/[^/]+\.(jpg|JPG)$")


def truth(root: Path):
    return read_faces(root / "_truth" / "faces.xml"), json.loads((root / "_truth" / "world.json").read_text())


def test_tree_follows_the_archive_layout(messy_world):
    faces, facts = truth(messy_world)
    folders = Counter()
    for photo in facts["photos"]:
        m = TREE.match(photo["path"])
        assert m, photo["path"]
        folders[m["folder"].split("_")[-1] if m["folder"].endswith("_cub") else m["folder"]] += 1
        assert (messy_world / photo["path"]).is_file()
    assert folders["bear_unknown"] and folders["bear_multiple"] and folders["cub"]
    assert len({p["location"] for p in facts["photos"]}) >= 2
    assert len({p["contribution"] for p in facts["photos"]}) >= 4
    kinds = Counter(p["kind"] for p in facts["photos"])
    assert set(kinds) == {"single", "unknown", "multiple", "cub", "empty"}
    bears = {b["bear_id"] for b in facts["bears"]}
    for photo in facts["photos"]:
        if photo["kind"] == "single":
            assert photo["folder"] in bears and photo["faces"][0]["label"] == photo["folder"]
        if photo["kind"] == "empty":
            assert photo["faces"] == []


def test_photos_have_varied_sizes_exif_dates_and_orientations(tmp_path):
    root = tmp_path / "w"
    synthesize(WorldConfig(bears=4, photos=40, seed=5, rotated_exif_rate=0.5), root)
    faces, facts = truth(root)
    sizes, orientations = [], Counter()
    for photo, entry in zip(facts["photos"], faces.images):
        with Image.open(root / photo["path"]) as img:
            exif = img.getexif()
            orientations[exif.get(0x0112)] += 1
            assert exif.get_ifd(0x8769).get(0x9003) == photo["taken"].replace("-", ":").replace("T", " ")
            shown = ImageOps.exif_transpose(img)
            assert (shown.width, shown.height) == (entry.width, entry.height)
            sizes.append(shown.size)
    assert orientations[1] < 40 and len(orientations) >= 3
    longs = [max(s) for s in sizes]
    assert min(longs) >= 640 and max(longs) <= 2400 and max(longs) - min(longs) > 600
    assert any(h > w for w, h in sizes), "some photos are portrait"


def _dark_at(img: np.ndarray, x: int, y: int, r: int) -> float:
    patch = img[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1]
    return float(patch.mean())


def test_landmarks_sit_on_the_drawn_features_as_a_viewer_sees_the_photo(tmp_path):
    """The nose pad and eyes are drawn near-black: at the truth's coordinates, in the upright
    photo, they must be among the darkest pixels of the face (also for rotated-EXIF photos)."""
    root = tmp_path / "w"
    config = WorldConfig(
        bears=4,
        photos=30,
        seed=8,
        rotated_exif_rate=0.6,
        blur_rate=0,
        occlusion_rate=0,
        max_yaw=15,
        max_pitch=10,
        extreme_pose_rate=0,
        min_face=90,
        light_range=0.1,
        **SMALL,
    )
    synthesize(config, root)
    faces, facts = truth(root)
    checked = rotated = 0
    for entry, photo in zip(faces.images, facts["photos"]):
        if not entry.boxes:
            continue
        img = np.asarray(open_displayed(faces.path_of(entry)).convert("L"), dtype=np.float32)
        for box in entry.boxes:
            if box.width < 90 or box.label.endswith("_cub"):
                continue
            face = img[box.top : box.bottom, box.left : box.right]
            if np.median(face) < 70:
                continue  # near-black fur: eyes hardly stand out, for people too
            # Among the darkest quarter of the face's pixels.
            dark = np.percentile(face, 25)
            r = max(1, box.width // 40)
            for name in ("nose", "leye", "reye"):
                x, y = box.parts[name]
                assert _dark_at(img, x, y, r) < dark, (entry.file, name)
            checked += 1
            rotated += photo["orientation"] != 1
    assert checked >= 10 and rotated >= 3


def test_ground_truth_is_complete_valid_and_loads_in_dlib(messy_world):
    faces, facts = truth(messy_world)
    assert validate(faces, messy_world / "_truth" / "faces.xml") == []
    for _, box in faces.faces():
        assert set(LANDMARKS) <= set(box.parts) and box.label
        # Bear's own left eye is on the image right for roughly frontal faces.
    frontal = [b for _, b in faces.faces() if b.width > 60]
    assert np.mean([b.parts["leye"][0] > b.parts["reye"][0] for b in frontal]) > 0.9
    # Faces from ~40 px up (the planted "tiny" photos come after the world's own photos).
    sides = [b.width for entry in faces.images[: len(facts["photos"])] for b in entry.boxes]
    assert min(sides) <= 60 and max(sides) >= 250 and min(sides) >= 30
    meta = dlib.image_dataset_metadata.load_image_dataset_metadata(str(messy_world / "_truth" / "faces.xml"))
    assert sum(len(i.boxes) for i in meta.images) == sum(len(i.boxes) for i in faces.images)
    labels = {b.label for _, b in faces.faces()}
    assert any(label.endswith("_cub") for label in labels) and any("unknown" in label for label in labels)


def test_same_seed_same_world_and_another_seed_another(tmp_path):
    config = WorldConfig(bears=4, photos=12, seed=3, **SMALL)
    synthesize(config, tmp_path / "a", messy=True)
    synthesize(config, tmp_path / "b", messy=True, workers=2)
    synthesize(WorldConfig(bears=4, photos=12, seed=4, **SMALL), tmp_path / "c")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", [str(p) for p in files_a], shallow=False)
    assert mismatch == [] and errors == []
    assert (tmp_path / "a/_truth/faces.xml").read_bytes() != (tmp_path / "c/_truth/faces.xml").read_bytes()


def test_rerun_is_safe_and_foreign_directories_are_refused(tmp_path):
    config = WorldConfig(bears=3, photos=6, seed=1, **SMALL)
    synthesize(config, tmp_path / "w")
    before = (tmp_path / "w/_truth/faces.xml").read_bytes()
    synthesize(config, tmp_path / "w")  # same settings: rewritten identically
    assert (tmp_path / "w/_truth/faces.xml").read_bytes() == before
    stamp = tmp_path / "w/_truth/synth.json"  # a world made before the `strangers` knob existed
    made = json.loads(stamp.read_text())
    del made["config"]["strangers"]
    stamp.write_text(json.dumps(made))
    synthesize(config, tmp_path / "w")  # still the same settings
    with pytest.raises(BearIDError, match="other settings"):
        synthesize(WorldConfig(bears=3, photos=6, seed=1, strangers=3, **SMALL), tmp_path / "w")
    with pytest.raises(BearIDError, match="other settings"):
        synthesize(WorldConfig(bears=3, photos=7, seed=1, **SMALL), tmp_path / "w")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.jpg").write_bytes(b"x")
    with pytest.raises(BearIDError, match="not empty"):
        synthesize(config, tmp_path / "mine")
    assert (tmp_path / "mine" / "precious.jpg").read_bytes() == b"x"


def test_difficulty_knobs(tmp_path):
    hard = WorldConfig().harder(2.0)
    assert hard.max_yaw > WorldConfig().max_yaw and hard.blur_rate > WorldConfig().blur_rate
    assert config_with(WorldConfig(), ["max_yaw=50", "jpeg_quality=60,80"]).jpeg_quality == (60, 80)
    with pytest.raises(BearIDError, match="unknown world setting"):
        config_with(WorldConfig(), ["yaw=3"])


def _decodes(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:
        return False


def test_messy_world_plants_defects_and_records_them(messy_world):
    planted = json.loads((messy_world / "_truth" / "messy.json").read_text())
    by_kind = Counter(p["defect"] for p in planted)
    for kind in (
        "exact_duplicate",
        "near_duplicate",
        "truncated",
        "garbage",
        "not_image",
        "tiny",
        "blurry",
        "too_dark",
        "too_bright",
        "bad_label_dir",
        "drop_photo",
        "drop_already_archived",
        "drop_name_clash",
        "corrupt",
        "unknown_part",
        "missing_landmarks",
        "missing_label",
        "label_mismatch",
    ):
        assert by_kind[kind] >= 1, kind
    for p in planted:
        path = messy_world / p["path"]
        assert path.is_file(), p
        if p["defect"] in ("truncated", "garbage", "not_image", "corrupt"):
            assert not _decodes(path), p
        if p["defect"] == "exact_duplicate":
            assert path.read_bytes() == (messy_world / p["detail"]["of"]).read_bytes()
        if p["defect"] == "near_duplicate":
            a = np.asarray(open_displayed(path), dtype=np.float32)
            b = np.asarray(open_displayed(messy_world / p["detail"]["of"]), dtype=np.float32)
            assert a.shape == b.shape and 0 < np.abs(a - b).mean() < 8
        if p["defect"] == "drop_already_archived":
            assert path.read_bytes() == (messy_world / p["detail"]["of"]).read_bytes()
    # The curator's XML: validation finds exactly the planted structural errors.
    labels = messy_world / "_labels" / "faces_imglab.xml"
    found = {(f.code, f.image) for f in validate(read_faces(labels))}
    want = {
        (p["defect"], "../" + p["path"])
        for p in planted
        if p["defect"] in ("unknown_part", "missing_landmarks", "missing_label")
    }
    assert found == want
    # Every drop photo has ground truth saying which bear it is.
    drop = read_faces(messy_world / "_truth" / "drop_faces.xml")
    drop_files = {Path(drop.path_of(i)).resolve() for i in drop.images}
    for p in planted:
        if p["defect"] in ("drop_photo", "drop_name_clash"):
            assert (messy_world / p["path"]).resolve() in drop_files
            assert p["detail"]["label"]


def test_bears_stay_bear_coloured_through_seasons_and_years():
    """Drift changes brightness, never hue: red >= green >= blue for every bear, every date."""
    import datetime as dt

    from bearid.synth.world import plan_world

    world = plan_world(WorldConfig(bears=30, photos=0, seed=2).harder(2.0))
    for bear in world.bears + world.strangers:
        for year in range(2014, 2021):
            for month in (5, 7, 9, 11):
                r, g, b = bear.on(dt.date(year, month, 15), drift=2.0).fur_rgb
                assert r >= g >= b, (bear.bear_id, year, month)


def test_more_strangers_change_only_the_strangers_photos():
    """`strangers` adds bears nobody has identified without redrawing the rest of the world,
    so a benchmark can ask for more of them and still compare its known bears' figures."""
    from bearid.synth.world import plan_world

    usual = plan_world(WorldConfig(bears=16, photos=300, seed=5))
    more = plan_world(WorldConfig(bears=16, photos=300, seed=5, strangers=8))
    assert len(usual.strangers) == 4 and len(more.strangers) == 8
    assert more.strangers[:4] == usual.strangers and more.bears == usual.bears
    changed = [a for a, b in zip(usual.photos, more.photos) if a != b]
    assert changed and {p.kind for p in changed} <= {"unknown", "multiple"}
    seen = {f.label for p in more.photos if p.kind == "unknown" for f in p.faces}
    assert len(seen) > 4  # the new strangers are photographed


def test_a_long_tailed_world_has_a_few_bears_with_most_photos_and_most_with_two_or_three():
    from collections import Counter

    from bearid.synth.world import plan_world

    def shots(kind: str) -> list[int]:
        world = plan_world(WorldConfig(bears=40, photos=400, seed=3, shots=kind))
        return sorted(Counter(f.label for p in world.photos if p.kind == "single" for f in p.faces).values())

    tail, skewed = shots("long-tail"), shots("skewed")
    heavy = tail[-3:]
    assert sum(heavy) > 0.5 * sum(tail) and min(heavy) > 10 * tail[len(tail) // 2]
    assert tail[len(tail) // 2] <= 3 < skewed[len(skewed) // 2]
    with pytest.raises(BearIDError, match="shots"):
        WorldConfig(shots="even")
