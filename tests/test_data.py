"""Data management on a messy synthetic world: catalog, ingest, clean/restore, split, stats."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from bearid.data import layout, quarantine
from bearid.data.catalog import Catalog
from bearid.data.clean import clean
from bearid.data.ingest import ingest
from bearid.data.neardup import clusters, hamming, near_pairs
from bearid.data.report import write_clean_report
from bearid.data.split import SplitConfig, split
from bearid.data.stats import archive_stats, write_stats_html
from bearid.errors import BearIDError
from bearid.metadata import read_faces
from bearid.synth.scoring import score_clean

DROP = "_drops/hartley_20190815"
ID_FROM = [r"filename:(bf_\d{3})"]


@pytest.fixture
def archive(tmp_path, messy_world) -> Path:
    """A private copy of the messy world (tests may change it)."""
    root = tmp_path / "archive"
    shutil.copytree(messy_world, root, ignore=shutil.ignore_patterns(".bearid"))
    return root


def tree_state(root: Path) -> dict[str, tuple[str, int]]:
    """Every archive file (not quarantine, not the catalog) with its hash and mtime."""
    out = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith((".bearid", "_quarantine")):
            out[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return out


def test_layout_conventions():
    p = layout.place_of("brooks_falls/freels_201708/bf_051/x.jpg")
    assert (p.location, p.contributor, str(p.contribution_date), p.label, p.kind) == (
        "brooks_falls",
        "freels",
        "2017-08-01",
        "bf_051",
        "known",
    )
    assert layout.place_of("brooks_falls/nps_20170907/bf_051_cub/x.jpg").kind == "cub"
    assert layout.place_of("brooks_falls/nps_20170907/bear_unknown/x.jpg").kind == "unknown"
    bad = layout.place_of("brooks_falls/nps_20170907/BF 51 (Otis)/x.jpg")
    assert bad.kind == "nonconforming" and "not a bear ID" in bad.problem
    assert layout.place_of("brooks_falls/nps/bf_051/x.jpg").problem
    assert layout.place_of("loose.jpg").kind == "outside"


def test_catalog_indexes_every_image_and_rescans_incrementally(archive):
    facts = json.loads((archive / "_truth/world.json").read_text())
    with Catalog(archive) as cat:
        first = cat.scan(workers=2)
        entries = {e.path: e for e in cat.entries()}
        assert first.added == first.files == len(entries) > len(facts["photos"])
        for photo in facts["photos"]:
            e = entries[photo["path"]]
            assert e.taken == photo["taken"] and e.orientation == photo["orientation"]
            assert e.location == photo["location"] and e.contributor == photo["contributor"]
            assert e.label == (
                photo["folder"]
                if photo["kind"] == "single" or (photo["kind"] == "empty" and e.kind == "known")
                else None
            )
            assert e.width and e.height and e.sha256 and e.phash is not None and e.error is None
        again = cat.scan()
        assert (again.unchanged, again.added, again.updated, again.bytes_read) == (first.files, 0, 0, 0)
        # A changed file is re-read; a deleted one leaves the catalog.
        victim, gone = sorted(entries)[0], sorted(entries)[1]
        (archive / victim).write_bytes((archive / gone).read_bytes())
        (archive / gone).unlink()
        third = cat.scan()
        assert (third.updated, third.removed) == (1, 1)
        assert cat.get(victim).sha256 == entries[gone].sha256 and cat.get(gone) is None
    # The tree is the truth: a deleted catalog is rebuilt with the same rows.
    before = {e.path: (e.sha256, e.label, e.taken) for e in Catalog(archive).entries()}
    (archive / ".bearid/catalog.sqlite").unlink()
    with Catalog(archive) as cat:
        cat.scan()
        assert {e.path: (e.sha256, e.label, e.taken) for e in cat.entries()} == before


def test_catalog_reports_unreadable_files_with_a_reason(archive):
    planted = {p["path"]: p["defect"] for p in json.loads((archive / "_truth/messy.json").read_text())}
    with Catalog(archive) as cat:
        cat.scan()
        errors = {e.path: e.error for e in cat.entries() if e.error}
    assert {
        p for p, d in planted.items() if d in ("truncated", "garbage", "not_image") and not p.startswith("_")
    } == set(errors)
    assert all(reason for reason in errors.values())


def test_near_duplicate_search_matches_brute_force():
    rng = np.random.default_rng(1)
    base = rng.integers(-(2**63), 2**63 - 1, size=3000, dtype=np.int64)
    flips = rng.integers(0, 64, size=(300, 5))
    near = base[:300].view(np.uint64).copy()
    for c in range(5):
        near ^= np.uint64(1) << flips[:, c].astype(np.uint64)
    hashes = np.concatenate([base, near.view(np.int64)])
    got = {(int(i), int(j)) for i, j, _ in near_pairs(hashes, 6)}
    i, j = np.triu_indices(len(hashes), k=1)
    d = hamming(hashes[i], hashes[j])
    truth = {(int(a), int(b)) for a, b in zip(i[d <= 6], j[d <= 6])}
    assert got <= truth and len(got & truth) >= 0.99 * len(truth)
    labels = clusters(5, np.array([[0, 1, 0], [3, 4, 0], [1, 2, 0]]))
    assert labels.tolist() == [0, 0, 0, 3, 3]


def drop_truth(root: Path) -> dict[str, str]:
    planted = json.loads((root / "_truth/messy.json").read_text())
    return {p["path"]: p["detail"]["label"] for p in planted if p["defect"] in ("drop_photo", "drop_name_clash")}


def test_ingest_files_every_photo_under_the_right_bear_and_never_touches_the_drop(archive):
    drop = archive / DROP
    before = tree_state(drop)
    report = ingest(drop, archive, "brooks_falls", "hartley", "20190815", id_from=ID_FROM)
    assert tree_state(drop) == before
    by_source = {f"{DROP}/{r.source}": r for r in report.records}
    for source, label in drop_truth(archive).items():
        rec = by_source[source]
        assert rec.action in ("copied", "renamed"), rec
        assert rec.dest.startswith(f"brooks_falls/hartley_20190815/{label}/")
        assert hashlib.sha256((archive / rec.dest).read_bytes()).hexdigest() == rec.sha256
    actions = Counter(r.action for r in report.records)
    assert actions["renamed"] == 1 and actions["already_archived"] == 1 and actions["unreadable"] == 2
    assert all(r.reason for r in report.records if r.action == "unreadable")
    lines = report.manifest.read_text().splitlines()
    assert len(lines) == len(report.records) and json.loads(lines[0])["source"]
    again = ingest(drop, archive, "brooks_falls", "hartley", "20190815", id_from=ID_FROM)
    assert not [r for r in again.records if r.action in ("copied", "renamed", "linked")]


def test_ingest_reads_archives_and_checks_its_arguments(archive, tmp_path):
    drop = tmp_path / "zipdrop"
    drop.mkdir()
    src = next(p for p in drop_truth(archive) if "/card2/" in p)
    with zipfile.ZipFile(drop / "card.zip", "w") as zf:
        zf.write(archive / src, "DCIM/bear_cub_folder/../" + Path(src).parent.name + "/P1.jpg")
    report = ingest(drop, archive, "glendale_cove", "hartley", "201909")
    assert [r.action for r in report.records] == ["copied"]
    assert report.records[0].dest.split("/")[2] == Path(src).parent.name
    # --link: hard links where the drop is on the same disk, verified all the same.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    linked = ingest(archive / DROP, fresh, "glendale_cove", "linker", "201910", id_from=ID_FROM, link=True)
    done = [r for r in linked.records if r.action == "linked"]
    assert len(done) >= 10
    for r in done:
        assert (fresh / r.dest).stat().st_ino == (archive / DROP / r.source).stat().st_ino
    for bad in (dict(location="Brooks Falls"), dict(contributor="a b"), dict(date="2019")):
        args = dict(location="brooks_falls", contributor="x", date="201908") | bad
        with pytest.raises(BearIDError):
            ingest(drop, archive, **args)


INGEST = """
import sys
from bearid.data.ingest import ingest
ingest(sys.argv[1], sys.argv[2], "brooks_falls", "hartley", "20190815", id_from=[sys.argv[3]])
"""


def test_ingest_killed_at_random_points_then_rerun_files_each_photo_once(archive):
    drop = archive / DROP
    rng = np.random.default_rng(0)
    for delay in rng.uniform(0.3, 1.5, size=3):
        proc = subprocess.Popen([sys.executable, "-c", INGEST, str(drop), str(archive), ID_FROM[0]])
        time.sleep(float(delay))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ingest(drop, archive, "brooks_falls", "hartley", "20190815", id_from=ID_FROM)
    filed = Counter(
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (archive / "brooks_falls/hartley_20190815").rglob("*")
        if p.is_file()
    )
    wanted = {hashlib.sha256((archive / p).read_bytes()).hexdigest() for p in drop_truth(archive)}
    assert set(filed) == wanted and set(filed.values()) == {1}
    assert not [p for p in (archive / "brooks_falls/hartley_20190815").rglob(".*")]  # no temp files left


def test_clean_finds_the_planted_defects(archive):
    faces = [read_faces(archive / "_truth/faces.xml"), read_faces(archive / "_labels/faces_imglab.xml")]
    report = clean(archive, faces=faces)
    scores = {s.reason: s for s in score_clean(report, archive)}
    for reason in (
        "exact_duplicate",
        "near_duplicate",
        "corrupt",
        "not_image",
        "tiny",
        "blurry",
        "too_dark",
        "too_bright",
        "bad_place",
        "no_bear",
        "cub",
        "unknown_part",
        "missing_landmarks",
        "missing_label",
        "label_mismatch",
    ):
        s = scores[reason]
        assert s.planted >= 1 and s.recall == 1.0 and s.precision == 1.0, s
    # Pose from landmark geometry is a heuristic (pitch and roll blur it): what it flags must
    # be turned much further than the rest.
    yaw = {
        p["path"]: max(abs(f["yaw"]) for f in p["faces"])
        for p in json.loads((archive / "_truth/world.json").read_text())["photos"]
        if p["faces"]
    }
    posed = {f.path for f in report.findings if f.reason == "extreme_pose" and f.path in yaw}
    assert posed and np.mean([yaw[p] for p in posed]) > 2 * np.mean([y for p, y in yaw.items() if p not in posed])
    json_path, html_path = write_clean_report(report, archive / ".bearid" / "clean")
    assert json.loads(json_path.read_text())["counts"]["exact_duplicate"] == scores["exact_duplicate"].flagged
    page = html_path.read_text()
    assert page.count("data:image/jpeg;base64,") >= 10 and "near_duplicate" in page


def test_apply_then_restore_is_exact_and_safe(archive):
    before = tree_state(archive)
    report = clean(archive, faces=[read_faces(archive / "_truth/faces.xml")])
    moved = quarantine.apply(report)
    flagged = set(report.to_quarantine())
    assert {src for src, _ in moved.moved} == flagged and len(flagged) >= 10
    after = tree_state(archive)
    assert set(before) - set(after) == flagged
    for src, dst in moved.moved:
        assert dst.startswith(f"_quarantine/{report.to_quarantine()[src].reason}/")
        assert hashlib.sha256((archive / dst).read_bytes()).hexdigest() == before[src][0]
    with Catalog(archive) as cat:
        assert not flagged & {e.path for e in cat.entries()}
    assert len(quarantine.restore(archive).moved) == len(flagged)
    assert tree_state(archive) == before  # same files, bytes and timestamps
    assert quarantine.restore(archive).moved == []  # restoring twice does nothing
    # A file that reappeared at its place is never overwritten by a restore.
    again = quarantine.apply(
        clean(archive, faces=[read_faces(archive / "_truth/faces.xml")]), reasons={"exact_duplicate"}
    )
    src, _ = again.moved[0]
    (archive / src).write_bytes(b"new")
    result = quarantine.restore(archive)
    assert (archive / src).read_bytes() == b"new" and [p for p, _ in result.skipped] == [src]


def _split(archive, tmp_path, **kw):
    config = SplitConfig(**kw)
    return split(
        archive,
        tmp_path / f"split_{kw.get('by', 'image')}_{kw.get('seed', 0)}",
        config,
        read_faces(archive / "_truth/faces.xml"),
    )


def test_split_by_bear_keeps_identities_disjoint(archive, tmp_path):
    r = _split(archive, tmp_path, by="bear")
    bears = defaultdict(set)
    for path, s in r.assignment.items():
        bears[r.labels[path]].add(s)
    assert all(len(s) == 1 for s in bears.values())
    counts = r.counts()
    assert counts["train"]["bears"] >= 2 and counts["test"]["bears"] >= 1 and counts["holdout"]["photos"] >= 1
    train = read_faces(r.files["train"])
    assert all(box.label for _, box in train.faces()) and len(train.images) == counts["train"]["photos"]


def test_split_by_time_never_splits_a_day_and_honours_a_year_cutoff(archive, tmp_path):
    r = _split(archive, tmp_path, by="time")
    with Catalog(archive) as cat:
        taken = {e.path: e.taken for e in cat.entries()}
    days = defaultdict(set)
    for path, s in r.assignment.items():
        if s != "holdout":
            days[(r.labels[path], taken[path][:10])].add(s)
    assert days and all(len(s) == 1 for s in days.values())
    cut = _split(archive, tmp_path, by="time", year_cutoff=2018, seed=1)
    for path, s in cut.assignment.items():
        if s != "holdout":
            assert (s == "test") == (int(taken[path][:4]) >= 2018)


def test_split_by_image_is_stratified_deterministic_and_reports_leaks(archive, tmp_path):
    a = _split(archive, tmp_path, by="image", min_images=4)
    per_bear = defaultdict(Counter)
    for path, s in a.assignment.items():
        per_bear[a.labels[path]][s] += 1
    for bear, c in per_bear.items():
        assert c["holdout"] == 0 or set(c) == {"holdout"}
        if "holdout" not in c:
            assert c["train"] >= max(1, sum(c.values()) // 2)
        else:
            assert sum(c.values()) < 4 or bear.split("_")[1] == "unknown"
    b = _split(archive, tmp_path / "again", by="image", min_images=4)
    assert a.assignment == b.assignment
    train_a, train_b = read_faces(a.files["train"]), read_faces(b.files["train"])
    assert [train_a.path_of(i) for i in train_a.images] == [train_b.path_of(i) for i in train_b.images]
    assert a.leaks, "the world's exact and near duplicates straddle splits"
    fixed = _split(archive, tmp_path / "fixed", by="image", min_images=4, fix_leaks=True)
    assert fixed.leaks == []


def test_stats_count_the_archive(archive, tmp_path):
    s = archive_stats(archive, read_faces(archive / "_truth/faces.xml"))
    assert s.photos == sum(s.per_location.values()) + s.unreadable
    assert sum(s.per_bear.values()) == s.per_kind["known"]
    assert sum(s.images_per_bear_histogram().values()) == len(s.per_bear)
    assert min(s.face_sides) >= 5 and "face size, px (faces)" in s.tables()
    page = write_stats_html(s, tmp_path / "stats.html", "test").read_text()
    assert "<table>" in page and "brooks_falls" in page


def test_backup_is_incremental_and_verify_catches_bit_rot_and_missing_files(archive, tmp_path):
    from bearid.data.backup import OBJECTS, backup, object_path, verify

    dest = tmp_path / "nas"
    first = backup(archive, dest)
    assert first.files > 100 and first.copied > 0 and verify(dest).ok and verify(archive).ok
    photo = next(p for p in sorted(archive.rglob("*.jpg")) if "_" not in p.parent.name[:1])
    photo.rename(photo.with_name("renamed_" + photo.name))  # a rename is not copied again
    second = backup(archive, dest)
    assert second.copied == 0 and second.files == first.files
    assert len(list((dest / "manifests").glob("*.json"))) == 2
    # Plant bit rot and a lost object in the backup: verify names both and fails.
    manifest = json.loads(sorted((dest / "manifests").glob("*.json"))[-1].read_text())["files"]
    rel_a, rel_b = sorted(p for p in manifest if p.endswith(".jpg"))[:2]
    rotten = object_path(dest, manifest[rel_a]["sha256"])
    data = bytearray(rotten.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rotten.write_bytes(bytes(data))
    object_path(dest, manifest[rel_b]["sha256"]).unlink()
    r = verify(dest)
    assert not r.ok and rel_a in r.bitrot and rel_b in r.missing
    sampled = verify(dest, sample=0.01)
    assert sampled.checked < r.checked and rel_b in sampled.missing
    # And in the archive itself: a file whose bytes changed behind the catalog's back.
    from bearid.data.catalog import Catalog

    with Catalog(archive) as catalog:
        target = archive / catalog.entries()[0].path
    st = target.stat()
    flipped = bytearray(target.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    target.write_bytes(bytes(flipped))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.relative_to(archive).as_posix() in verify(archive).bitrot
    assert not any(p.name.endswith(".tmp") for p in (dest / OBJECTS).rglob("*"))


def test_recover_rebuilds_a_backup_verified_and_never_overwrites(archive, tmp_path):
    from bearid.data.backup import backup, object_path, recover
    from bearid.fsio import sha256_file

    dest = tmp_path / "nas"
    backup(archive, dest)
    files = json.loads(sorted((dest / "manifests").glob("*.json"))[-1].read_text())["files"]
    out = tmp_path / "restored"
    r = recover(dest, out)
    assert r.ok and r.restored == len(files)
    for rel, rec in files.items():
        assert sha256_file(out / rel) == rec["sha256"] and (out / rel).stat().st_mtime_ns == rec["mtime_ns"]
    again = recover(dest, out)
    assert again.ok and again.restored == 0 and again.already == len(files)  # re-running is safe
    # A different file in the way is reported and left alone; damaged content is not restored.
    a, b = sorted(rel for rel in files if rel.endswith(".jpg"))[:2]
    (out / a).write_bytes(b"mine")
    (out / b).unlink()
    rotten = object_path(dest, files[b]["sha256"])
    rotten.write_bytes(rotten.read_bytes()[:-10])
    r = recover(dest, out)
    assert (
        not r.ok
        and r.conflicts == [a]
        and r.damaged == [b]
        and (out / a).read_bytes() == b"mine"
        and not (out / b).exists()
    )
    only = recover(dest, tmp_path / "part", only=a.split("/")[0] + "/")
    assert 0 < only.restored < len(files)
    assert not [p for p in out.rglob("*.tmp")]


def test_workset_copies_verified_photos_incrementally_within_a_budget_and_evicts(archive, tmp_path):
    from bearid.data.workset import MANIFEST, workset
    from bearid.errors import BearIDError
    from bearid.fsio import sha256_file

    r = _split(archive, tmp_path, by="image")
    train, val = r.files["train"], r.files["val"]
    fast = tmp_path / "ssd"
    with pytest.raises(BearIDError, match="does not fit"):
        workset(archive, [train, val], fast, max_size=1000)
    assert not list(fast.rglob("*.jpg"))  # refused before copying anything
    first = workset(archive, [train, val], fast)
    assert first.copied == first.photos > 10 and first.kept == 0
    copy_xml = read_faces(fast / "train.xml")
    original = read_faces(train)
    assert len(copy_xml.images) == len(original.images)
    for a, b in zip(copy_xml.images, original.images):
        assert copy_xml.path_of(a).resolve().is_relative_to(fast.resolve()) and a.boxes == b.boxes
        assert sha256_file(copy_xml.path_of(a)) == sha256_file(original.path_of(b))
    again = workset(archive, [train, val], fast)
    assert again.copied == 0 and again.kept == first.photos
    # A photo changed in the archive (and rescanned) is copied again; nothing else is.
    changed = original.path_of(original.images[0])
    changed.write_bytes(changed.read_bytes() + b"\0")
    third = workset(archive, [train, val], fast)
    assert third.copied == 1
    # Dropping a set and evicting removes exactly the copies no remaining set needs.
    only_train = workset(archive, [train], fast, evict=True)
    val_only = {
        read_faces(val).path_of(i).resolve().relative_to(archive.resolve()).as_posix() for i in read_faces(val).images
    }
    val_only -= {original.path_of(i).resolve().relative_to(archive.resolve()).as_posix() for i in original.images}
    assert set(only_train.evicted) == val_only and all(not (fast / rel).exists() for rel in val_only)
    assert set(json.loads((fast / MANIFEST).read_text())["files"]) == {
        original.path_of(i).resolve().relative_to(archive.resolve()).as_posix() for i in original.images
    }


POOL = """
import sys, time
from pathlib import Path
from bearid.workers import worker_pool

def slow(name):
    time.sleep(2)
    Path(name).write_text("written")

if __name__ == "__main__":
    with worker_pool(2) as pool:
        list(pool.map(slow, [f"{sys.argv[1]}/{k}" for k in range(8)]))
"""


def test_pool_workers_end_with_a_killed_command(tmp_path):
    """The workers of a killed ingest must not write its queued copies after it is gone."""
    proc = subprocess.Popen([sys.executable, "-c", POOL, str(tmp_path)])
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(3.0)
    assert not list(tmp_path.iterdir())
