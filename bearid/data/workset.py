"""Working sets: the photos a few split XML files need, copied from the big slow disk to a
fast one, with XML files whose paths point at the copies.

Incremental and verified: a photo is copied only when the fast disk lacks it or holds other
content, and each copy is hashed while written and compared with the catalog (the big disk
is not re-read to decide what changed). `FAST/.bearid-workset.json` records what is there.
A size budget refuses to overfill the fast disk; `evict` removes copies no set needs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bearid.data.catalog import Catalog
from bearid.errors import BearIDError
from bearid.fsio import atomic_write_text, copy_hashed, remove_stale_temps
from bearid.metadata import Dataset, read_faces, write_faces

MANIFEST = ".bearid-workset.json"
SAVE_EVERY_S = 2.0  # how often a long copy records its progress


@dataclass
class WorksetReport:
    photos: int = 0
    bytes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    kept: int = 0
    evicted: list[str] = field(default_factory=list)
    xml: list[Path] = field(default_factory=list)


def parse_size(text: str) -> int:
    """'400G', '1.5T', '800M', '12345' -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("B")
    try:
        return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)
    except (ValueError, KeyError):
        raise BearIDError(f"size {text!r}: give a number of bytes or e.g. 800M, 400G, 1.5T") from None


def _copy_verified(src: Path, target: Path, sha: str) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp"
    if copy_hashed(src, tmp) != sha:
        tmp.unlink()
        raise BearIDError(
            f"{src}: its content does not match the catalog (changed, or bit rot); run bearid data scan or verify"
        )
    os.replace(tmp, target)
    return target.stat().st_size


def workset(
    root: Path,
    splits: list[Path],
    fast: Path,
    max_size: int | None = None,
    evict: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> WorksetReport:
    """Copy the photos `splits` need to `fast` (see the module docstring); `progress(done,
    total)` after each photo."""
    root, fast = Path(root).resolve(), Path(fast)
    fast.mkdir(parents=True, exist_ok=True)
    state = json.loads((fast / MANIFEST).read_text()) if (fast / MANIFEST).exists() else {"files": {}}
    with Catalog(root) as catalog:
        catalog.scan(quick=True)
        known = {e.path: e for e in catalog.entries()}
    sets: list[tuple[Path, Dataset, list[str]]] = []  # each XML, its photos as archive paths
    needed: dict[str, int] = {}
    for xml in splits:
        ds = read_faces(xml)
        rels = []
        for image in ds.images:
            try:
                rel = ds.path_of(image).resolve().relative_to(root).as_posix()
            except ValueError:
                raise BearIDError(f"{xml}: {image.file} is not under the archive {root}") from None
            if rel not in known:
                raise BearIDError(f"{xml}: {rel} is not in the catalog of {root} (run bearid data scan)")
            needed[rel] = known[rel].size
            rels.append(rel)
        sets.append((Path(xml), ds, rels))
    report = WorksetReport(photos=len(needed), bytes=sum(needed.values()))
    if max_size is not None and report.bytes > max_size:
        over = report.bytes - max_size
        raise BearIDError(
            f"the working set needs {report.bytes / 2**30:.2f} GiB for {len(needed)} photos; the budget is "
            f"{max_size / 2**30:.2f} GiB: {over / 2**30:.2f} GiB does not fit (drop a split or raise --max-size)"
        )
    saved = time.monotonic()
    for done, rel in enumerate(sorted(needed), 1):
        progress and progress(done, len(needed))
        e, target = known[rel], fast / rel
        have = state["files"].get(rel)
        if have and have["sha256"] == e.sha256 and target.exists() and target.stat().st_size == e.size:
            report.kept += 1
            continue
        remove_stale_temps(target.parent)
        report.copied_bytes += _copy_verified(root / rel, target, e.sha256)
        report.copied += 1
        state["files"][rel] = {"sha256": e.sha256, "size": e.size}
        if time.monotonic() - saved > SAVE_EVERY_S:  # progress survives a kill, without rewriting the record per photo
            atomic_write_text(fast / MANIFEST, json.dumps(state, indent=0))
            saved = time.monotonic()
    if evict:
        for rel in sorted(set(state["files"]) - set(needed)):
            (fast / rel).unlink(missing_ok=True)
            del state["files"][rel]
            report.evicted.append(rel)
    atomic_write_text(fast / MANIFEST, json.dumps(state, indent=0))
    for xml, ds, rels in sets:
        images = [dataclasses.replace(img, file=rel) for img, rel in zip(ds.images, rels)]
        out = fast / xml.name
        write_faces(Dataset(images, ds.name, ds.comment, base_dir=fast), out)
        report.xml.append(out)
    return report
