"""Backups of the archive to another directory (a portable drive, a NAS mount), and checks
that an archive or a backup still holds what it should.

A backup is content-addressed: `DEST/objects/ab/<sha256>` holds each distinct file once,
so a renamed or moved photo is not copied again, and `DEST/manifests/<time>.json` records,
per run, which path had which content. Nothing at the destination is deleted. Photo hashes
come from the catalog (the archive is not re-read for unchanged photos); other files — label
XML, chosen results paths — are hashed as they are copied. Every copy is hashed while it is
written, then renamed into place: a killed backup leaves only temp files, which the next
run removes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bearid.data.catalog import CATALOG, Catalog
from bearid.errors import BearIDError
from bearid.fsio import atomic_write_text, copy_hashed, publish, remove_stale_temps, sha256_file

OBJECTS, MANIFESTS = "objects", "manifests"


Progress = Callable[[int, int], None]  # (done, total), after each file


def object_path(dest: Path, sha: str) -> Path:
    return dest / OBJECTS / sha[:2] / sha


@dataclass
class BackupReport:
    files: int = 0
    copied: int = 0
    copied_bytes: int = 0
    already: int = 0  # content already in the backup (unchanged, renamed or duplicate)
    manifest: Path | None = None

    def count(self, copied_bytes: int) -> None:
        """One file backed up: `copied_bytes` 0 means its content was already there."""
        self.copied += copied_bytes > 0
        self.already += copied_bytes == 0
        self.copied_bytes += copied_bytes


def _other_files(root: Path, extra: list[Path]) -> list[tuple[str, Path]]:
    """Files besides the catalogued photos: everything under ROOT except .bearid/ and photos
    the catalog holds, plus the chosen extra paths (named `extra/<name>/...`)."""
    out = []
    for base, prefix in [(root, ""), *((Path(e), f"extra/{Path(e).name}/") for e in extra)]:
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = Path(dirpath).relative_to(base)
            if prefix == "" and rel_dir.parts[:1] == (".bearid",):
                dirnames[:] = []
                continue
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue
                out.append((prefix + (rel_dir / name).as_posix(), Path(dirpath) / name))
    return out


def _copy_object(src: Path, dest: Path, expected: str | None) -> tuple[str, int]:
    """Copy `src` into the object store, hashing as it goes; (sha256, bytes copied)."""
    tmp = dest / OBJECTS / f".incoming.{os.getpid()}.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    sha = copy_hashed(src, tmp)
    if expected and sha != expected:
        tmp.unlink()
        raise BearIDError(
            f"{src}: its content changed since the catalog hashed it; run bearid data scan, then back up again"
        )
    target = object_path(dest, sha)
    if target.exists():
        tmp.unlink()
        return sha, 0
    target.parent.mkdir(parents=True, exist_ok=True)
    size = tmp.stat().st_size
    os.replace(tmp, target)
    return sha, size


def backup(root: Path, dest: Path, extra: list[Path] | None = None, progress: Progress | None = None) -> BackupReport:
    """Back the archive `root` up into `dest`; `progress(done, total)` after each file."""
    root, dest = Path(root), Path(dest)
    if dest.resolve() == root.resolve() or root.resolve() in dest.resolve().parents:
        raise BearIDError(f"{dest}: a backup must live outside the archive {root}")
    dest.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dest / OBJECTS)
    report = BackupReport()
    entries: dict[str, dict] = {}
    with Catalog(root) as catalog:
        catalog.scan(quick=True)
        photos = {e.path: e for e in catalog.entries()}
    others = [(rel, path) for rel, path in _other_files(root, list(extra or [])) if rel not in photos]
    total = len(photos) + len(others)
    for done, (rel, e) in enumerate(sorted(photos.items()), 1):
        entries[rel] = {"sha256": e.sha256, "size": e.size, "mtime_ns": e.mtime_ns}
        if object_path(dest, e.sha256).exists():
            report.already += 1
        else:
            report.count(_copy_object(root / rel, dest, e.sha256)[1])
        progress and progress(done, total)
    for done, (rel, path) in enumerate(others, len(photos) + 1):
        st = path.stat()
        sha, n = _copy_object(path, dest, None)
        entries[rel] = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        report.count(n)
        progress and progress(done, total)
    report.files = len(entries)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    manifest = {"archive": str(root.resolve()), "made": stamp, "files": entries}
    report.manifest = dest / MANIFESTS / f"{stamp}.json"
    atomic_write_text(report.manifest, json.dumps(manifest, indent=0, sort_keys=True))
    return report


@dataclass
class VerifyReport:
    what: str  # "archive" or "backup"
    checked: int = 0
    bitrot: list[str] = field(default_factory=list)  # content no longer matches its hash
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.bitrot or self.missing)


def _sample(items: list, fraction: float | None, seed: int) -> list:
    if fraction is None or fraction >= 1:
        return items
    k = max(1, round(len(items) * fraction)) if items else 0
    return random.Random(seed).sample(items, k)


def verify(target: Path, sample: float | None = None, seed: int = 0, progress: Progress | None = None) -> VerifyReport:
    """Re-hash an archive against its catalog, or a backup against its latest manifest.
    `sample` (0-1) re-hashes a random share; missing and extra files are always all listed."""
    target = Path(target)
    if (target / CATALOG).exists():
        return _verify_archive(target, sample, seed, progress)
    if (target / MANIFESTS).is_dir():
        return _verify_backup(target, sample, seed, progress)
    raise BearIDError(f"{target}: neither an archive with a catalog nor a BearID backup")


def _verify_archive(root: Path, sample: float | None, seed: int, progress: Progress | None) -> VerifyReport:
    from bearid.data.layout import photos_under

    report = VerifyReport("archive")
    with Catalog(root) as catalog:
        known = {e.path: e for e in catalog.entries()}
    on_disk = {p.relative_to(root).as_posix() for p in photos_under(root)}
    report.missing = sorted(set(known) - on_disk)
    report.extra = sorted(on_disk - set(known))
    todo = _sample(sorted(set(known) & on_disk), sample, seed)
    for rel in todo:
        report.checked += 1
        progress and progress(report.checked, len(todo))
        if sha256_file(root / rel) != known[rel].sha256:
            report.bitrot.append(rel)
    return report


def _verify_backup(dest: Path, sample: float | None, seed: int, progress: Progress | None) -> VerifyReport:
    report = VerifyReport("backup")
    manifests = sorted((dest / MANIFESTS).glob("*.json"))
    latest = json.loads(_manifest(dest, None).read_text())["files"]
    wanted = {}
    for rel, rec in latest.items():
        wanted.setdefault(rec["sha256"], []).append(rel)
    referenced = set()
    for m in manifests:
        referenced |= {rec["sha256"] for rec in json.loads(m.read_text())["files"].values()}
    present = {p.name for p in (dest / OBJECTS).glob("*/*") if p.is_file()}
    report.missing = sorted(rel for sha, rels in wanted.items() if sha not in present for rel in rels)
    report.extra = sorted(f"{OBJECTS}/{sha[:2]}/{sha}" for sha in present - referenced)
    todo = _sample(sorted(set(wanted) & present), sample, seed)
    for sha in todo:
        report.checked += 1
        progress and progress(report.checked, len(todo))
        if sha256_file(object_path(dest, sha)) != sha:
            report.bitrot += wanted[sha]
    report.bitrot.sort()
    return report


@dataclass
class RecoverReport:
    manifest: Path
    restored: int = 0
    already: int = 0  # the file is there with the right content
    conflicts: list[str] = field(default_factory=list)  # a different file is in the way: left alone
    damaged: list[str] = field(default_factory=list)  # the backup's copy fails its hash: not restored
    missing: list[str] = field(default_factory=list)  # the backup lacks the content

    @property
    def ok(self) -> bool:
        return not (self.conflicts or self.damaged or self.missing)


def _manifest(dest: Path, name: str | None) -> Path:
    manifests = sorted((dest / MANIFESTS).glob("*.json"))
    if not manifests:
        raise BearIDError(f"{dest}: not a BearID backup (no manifests/)")
    if name is None:
        return manifests[-1]
    found = [m for m in manifests if m.name == name or m.stem == name or str(m) == name]
    if not found:
        raise BearIDError(f"{dest}: no manifest {name!r}; there are {', '.join(m.stem for m in manifests)}")
    return found[0]


def recover(
    dest: Path, to: Path, manifest: str | None = None, only: str = "", progress: Progress | None = None
) -> RecoverReport:
    """Rebuild the files of one backup run (the latest, or `manifest`) under `to`, or only
    those whose path starts with `only`. Each copy is hashed while written and must match the
    manifest; files already there with the right content are skipped, and a different file in
    the way is reported and never overwritten. Modification times are restored."""
    dest, to = Path(dest), Path(to)
    if to.resolve() == dest.resolve() or dest.resolve() in to.resolve().parents:
        raise BearIDError(f"{to}: recover into a folder outside the backup {dest}")
    path = _manifest(dest, manifest)
    report = RecoverReport(path)
    todo = [(rel, rec) for rel, rec in sorted(json.loads(path.read_text())["files"].items()) if rel.startswith(only)]
    for done, (rel, rec) in enumerate(todo, 1):
        progress and progress(done, len(todo))
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts:
            raise BearIDError(f"{path}: unsafe path {rel!r} in the manifest")
        target, source = to / rel, object_path(dest, rec["sha256"])
        if target.exists():
            if sha256_file(target) == rec["sha256"]:
                report.already += 1
            else:
                report.conflicts.append(rel)
            continue
        if not source.exists():
            report.missing.append(rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        if copy_hashed(source, tmp) != rec["sha256"]:
            tmp.unlink()
            report.damaged.append(rel)
            continue
        os.utime(tmp, ns=(rec["mtime_ns"], rec["mtime_ns"]))
        publish(tmp, target)
        report.restored += 1
    return report
