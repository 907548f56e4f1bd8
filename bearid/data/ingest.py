"""Ingest: file a contributor's drop, in whatever shape it came, into the archive tree.

    bearid data ingest DROP ROOT --location brooks_falls --contributor hartley --date 201908

Every photo is copied (or hard-linked) to ROOT/<location>/<contributor>_<date>/<label>/,
its hash verified, and a line written to the manifest ROOT/.bearid/ingest/<...>.jsonl saying
where it came from. The drop is only read. Re-running adds nothing; a killed run, re-run,
ends with every photo filed once: copies appear atomically and files already in the archive
(same bytes) are reported, not copied again. A different file with a taken name is kept
under a new name. Unreadable or non-image files are reported with the reason.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import re
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from bearid.data import layout
from bearid.data.catalog import Catalog
from bearid.data.probe import ImageFacts, describe
from bearid.errors import BearIDError
from bearid.fsio import remove_stale_temps, write_new

UNKNOWN_ALIASES = {"bear_unknown", "unknown", "unknowns", "unsorted", "unidentified", "unid"}
MULTIPLE_ALIASES = {"bear_multiple", "multiple", "multi"}
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class IdRule:
    """Where to find the bear ID: `filename:REGEX` or `dir:REGEX` (group 1, else the match)."""

    where: str
    pattern: re.Pattern

    @classmethod
    def parse(cls, text: str) -> IdRule:
        where, sep, regex = text.partition(":")
        if not sep or where not in ("filename", "dir"):
            raise BearIDError(f"--id-from '{text}': expected filename:REGEX or dir:REGEX")
        try:
            return cls(where, re.compile(regex))
        except re.error as exc:
            raise BearIDError(f"--id-from '{text}': bad regular expression: {exc}") from None

    def find(self, parts: tuple[str, ...]) -> str | None:
        names = [PurePosixPath(parts[-1]).stem] if self.where == "filename" else list(reversed(parts[:-1]))
        for name in names:
            if m := self.pattern.search(name):
                return m.group(1) if m.groups() else m.group(0)
        return None


@dataclass
class Record:
    source: str  # path inside the drop; "a.zip!member" for archive members
    action: str  # copied | linked | renamed | already_archived | unreadable | skipped
    sha256: str | None = None
    dest: str | None = None  # relative to the archive root
    label: str | None = None
    reason: str | None = None


@dataclass
class IngestReport:
    contribution: str
    records: list[Record] = field(default_factory=list)
    manifest: Path | None = None

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(r.action for r in self.records))


def folder_for(parts: tuple[str, ...], rules: list[IdRule]) -> str:
    """The archive folder a drop file belongs in: a bear ID, bear_unknown, bear_multiple or a cub folder."""
    for rule in rules:
        if found := rule.find(parts):
            return found
    for name in reversed(parts[:-1]):
        low = name.lower()
        if layout.is_bear_id(low) or (low.endswith("_cub") and layout.is_bear_id(low[:-4])):
            return low
        if low in UNKNOWN_ALIASES:
            return layout.UNKNOWN
        if low in MULTIPLE_ALIASES:
            return layout.MULTIPLE
    return layout.UNKNOWN


def drop_files(drop: Path) -> Iterator[tuple[str, tuple[str, ...], Callable[[], bytes], str | None]]:
    """(source name, path parts for labelling, reader, link-able path) for every file of a
    drop, looking inside zip and tar archives; in a stable order."""
    for dirpath, dirnames, filenames in os.walk(drop):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(drop).as_posix()
            if name.lower().endswith(ARCHIVE_SUFFIXES):
                yield from _archive_members(path, rel)
            else:
                yield rel, PurePosixPath(rel).parts, path.read_bytes, str(path)


def _archive_members(path: Path, rel: str):
    """Members of a zip or tar archive in the drop, as if they were files in a folder."""
    outer = PurePosixPath(rel).parts[:-1]
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = sorted(i.filename for i in zf.infolist() if not i.is_dir())
            for name in names:
                yield f"{rel}!{name}", outer + PurePosixPath(name).parts, functools.partial(_zip_member, path, name), None
            return
        with tarfile.open(path) as tf:
            names = sorted(m.name for m in tf.getmembers() if m.isfile())
        for name in names:
            yield f"{rel}!{name}", outer + PurePosixPath(name).parts, functools.partial(_tar_member, path, name), None
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        yield rel, PurePosixPath(rel).parts, functools.partial(_unreadable, f"unreadable archive: {exc}"), None


def _zip_member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def _tar_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tf:
        member = tf.extractfile(name)
        if member is None:
            raise OSError(f"{name} is not a regular file")
        return member.read()


def _unreadable(reason: str) -> bytes:
    raise OSError(reason)


def _check_args(location: str, contributor: str, date: str) -> str:
    if not re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", location):
        raise BearIDError(f"--location '{location}': use lower-case words joined by '_', like brooks_falls")
    if not re.fullmatch(r"[A-Za-z0-9-]+", contributor):
        raise BearIDError(f"--contributor '{contributor}': use letters, digits and '-' only, like freels")
    name = f"{contributor}_{date}"
    if layout.parse_contribution(name)[1] is None:
        raise BearIDError(f"--date '{date}': expected a real date as YYYYMM or YYYYMMDD, like 201708")
    return name


def ingest(drop: Path, root: Path, location: str, contributor: str, date: str,
           id_from: list[str] | None = None, link: bool = False, workers: int = 0,
           progress: Callable[[int], None] | None = None) -> IngestReport:
    drop, root = Path(drop), Path(root)
    if not drop.is_dir():
        raise BearIDError(f"{drop}: no such drop directory")
    if not root.is_dir():
        raise BearIDError(f"{root}: no such archive directory (create it first)")
    contribution = _check_args(location, contributor, date)
    rules = [IdRule.parse(t) for t in id_from or []]
    base = root / location / contribution
    report = IngestReport(contribution=f"{location}/{contribution}")
    manifest = root / ".bearid" / "ingest" / f"{location}__{contribution}.jsonl"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    report.manifest = manifest
    with Catalog(root) as catalog:
        catalog.scan(workers=workers)  # includes whatever a killed earlier run filed
        if base.is_dir():
            for folder in [base, *[p for p in base.iterdir() if p.is_dir()]]:
                remove_stale_temps(folder)
        seen: dict[str, str] = {}  # sha256 -> archive path, for this run and the catalog
        with open(manifest, "a", encoding="utf-8") as log:
            for source, parts, read, src_path in drop_files(drop):
                record = _file_one(source, parts, read, src_path, rules, root, base, catalog, seen, link)
                record_line = asdict(record) | {"time": dt.datetime.now().isoformat(timespec="seconds"), "drop": str(drop.resolve())}
                log.write(json.dumps(record_line) + "\n")
                log.flush()
                report.records.append(record)
                if progress:
                    progress(1)
        catalog.scan(workers=workers)
    return report


def _file_one(source, parts, read, src_path, rules, root: Path, base: Path, catalog: Catalog,
              seen: dict[str, str], link: bool) -> Record:
    name = parts[-1]
    if not layout.is_image_name(name):
        return Record(source, "skipped", reason="not an image file name")
    try:
        data = read()
    except (BearIDError, OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        return Record(source, "unreadable", reason=str(exc))
    sha = hashlib.sha256(data).hexdigest()
    facts = ImageFacts(size=len(data), mtime_ns=0, sha256=sha)
    try:
        describe(data, facts)
    except Exception as exc:
        facts.error = f"cannot decode: {type(exc).__name__}: {exc}"
    if not facts.ok:
        return Record(source, "unreadable", sha, reason=facts.error)
    label = folder_for(parts, rules)
    if sha in seen or (hits := catalog.find_sha(sha)):
        where = seen.get(sha) or hits[0].path
        return Record(source, "already_archived", sha, where, label, reason="the same bytes are already in the archive")
    folder = base / label
    stem, suffix = Path(name).stem, Path(name).suffix
    for k in range(1, 1000):
        target = folder / (name if k == 1 else f"{stem}_{k}{suffix}")
        try:
            action = _place(target, data, src_path, link)
        except FileExistsError:
            continue  # another file has this name: keep both, try the next name
        rel = target.relative_to(root).as_posix()
        _verify(target, sha)
        seen[sha] = rel
        return Record(source, "renamed" if k > 1 else action, sha, rel, label,
                      reason=f"{name} was taken by a different file" if k > 1 else None)
    raise BearIDError(f"{folder}: too many files named like {name}")


def _place(target: Path, data: bytes, src_path: str | None, link: bool) -> str:
    if link and src_path:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src_path, target)
            return "linked"
        except OSError as exc:
            if isinstance(exc, FileExistsError):
                raise
    write_new(target, data)
    return "copied"


def _verify(target: Path, sha: str) -> None:
    with open(target, "rb") as fh:
        if hashlib.sha256(fh.read()).hexdigest() != sha:
            raise BearIDError(f"{target}: the copy does not match its source (disk error?)")
