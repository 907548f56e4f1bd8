"""The catalog: an SQLite index of every image in the archive tree, at
ROOT/.bearid/catalog.sqlite.

The tree stays the truth: the catalog is rebuilt from it incrementally (a file whose size and
mtime are unchanged is not read again), and deleting it loses nothing. New or changed files
are probed on all cores; duplicate clusters (same bytes) and near-duplicate clusters (close
perceptual hashes) are recomputed whenever anything changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bearid.data import layout
from bearid.data.neardup import near_clusters
from bearid.data.probe import ImageFacts, probe
from bearid.errors import BearIDError
from bearid.workers import worker_pool

CATALOG = Path(".bearid") / "catalog.sqlite"
SCHEMA_VERSION = 1
NEAR_DISTANCE = 6  # default Hamming distance for near-duplicate clusters

_COLUMNS = """
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, sha256 TEXT, format TEXT,
    width INTEGER, height INTEGER, orientation INTEGER, taken TEXT,
    location TEXT, contributor TEXT, contribution_date TEXT, folder TEXT, label TEXT, kind TEXT,
    place_problem TEXT, sharpness REAL, brightness REAL, contrast REAL, phash INTEGER,
    error TEXT, dup_cluster INTEGER, near_cluster INTEGER
"""


@dataclass
class Entry:
    """One catalogued file (a row of the catalog)."""

    path: str  # relative to the archive root, forward slashes
    size: int
    mtime_ns: int
    sha256: str
    format: str | None
    width: int | None
    height: int | None
    orientation: int | None
    taken: str | None
    location: str | None
    contributor: str | None
    contribution_date: str | None
    folder: str | None
    label: str | None
    kind: str
    place_problem: str | None
    sharpness: float | None
    brightness: float | None
    contrast: float | None
    phash: int | None
    error: str | None
    dup_cluster: int | None = None  # smallest rowid... of files with the same bytes
    near_cluster: int | None = None  # cluster of near-duplicates (None: alone)

    @property
    def taken_at(self) -> dt.datetime | None:
        return dt.datetime.fromisoformat(self.taken) if self.taken else None


_FIELDS = [f.name for f in dataclasses.fields(Entry)]


@dataclass
class ScanReport:
    files: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    unreadable: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    skipped_names: list[str] = field(default_factory=list)  # non-image names, not catalogued


def _probe_one(args: tuple[str, str, bool]) -> tuple[str, ImageFacts]:
    root, rel, analyse = args
    return rel, probe(Path(root) / rel, analyse)


class Catalog:
    """Open (creating if needed) the catalog of the archive at `root`."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BearIDError(f"{self.root}: no such archive directory")
        self.path = self.root / CATALOG
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # SQLite would make it 0644 whatever the umask; its -wal and -shm copy its mode
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o666))
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self._migrate()
        self._recorded = False  # files added by record() since the last clustering

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            # The catalog is derived data: an old schema is simply rebuilt from the tree.
            self.db.executescript(
                f"DROP TABLE IF EXISTS images; CREATE TABLE images ({_COLUMNS});"
                "CREATE INDEX images_sha ON images(sha256);"
                f"PRAGMA user_version={SCHEMA_VERSION};"
            )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------
    def entries(self, where: str = "", params: tuple = ()) -> list[Entry]:
        sql = f"SELECT {', '.join(_FIELDS)} FROM images {('WHERE ' + where) if where else ''} ORDER BY path"
        return [Entry(*row) for row in self.db.execute(sql, params)]

    def get(self, path: str) -> Entry | None:
        rows = self.entries("path = ?", (path,))
        return rows[0] if rows else None

    def find_sha(self, sha256: str) -> list[Entry]:
        return self.entries("sha256 = ?", (sha256,))

    # -- scanning --------------------------------------------------------------------
    def scan(
        self,
        workers: int = 0,
        progress: Callable[[int, int], None] | None = None,
        near_distance: int = NEAR_DISTANCE,
        quick: bool = False,
    ) -> ScanReport:
        """Bring the catalog up to date with the tree. `progress(done, total)` is called as
        changed files are probed. `quick` skips decoding pixels (no quality scores or
        perceptual hash): the next full scan completes those files."""
        t0 = dt.datetime.now()
        report = ScanReport()
        known = {p: (s, m) for p, s, m in self.db.execute("SELECT path, size, mtime_ns FROM images")}
        unanalysed = (
            set()
            if quick
            else {p for (p,) in self.db.execute("SELECT path FROM images WHERE phash IS NULL AND error IS NULL")}
        )
        seen: set[str] = set()
        todo: list[str] = []
        for rel, st in layout.walk(self.root):
            if not layout.is_image_name(rel):
                report.skipped_names.append(rel)
                continue
            seen.add(rel)
            if known.get(rel) == (st.st_size, st.st_mtime_ns) and rel not in unanalysed:
                report.unchanged += 1
            else:
                todo.append(rel)
        removed = [p for p in known if p not in seen]
        report.files = len(seen)
        report.removed = len(removed)
        self.db.executemany("DELETE FROM images WHERE path = ?", [(p,) for p in removed])
        for i, (rel, facts) in enumerate(self._probe_all(todo, workers, analyse=not quick)):
            report.added += rel not in known
            report.updated += rel in known
            report.unreadable += not facts.ok
            report.bytes_read += facts.size
            self._store(rel, facts)
            if i % 256 == 255:
                self.db.commit()
            if progress:
                progress(i + 1, len(todo))
        if todo or removed or self._recorded:
            self._recluster(near_distance)
            self._recorded = False
        self.db.commit()
        report.seconds = (dt.datetime.now() - t0).total_seconds()
        return report

    def _probe_all(self, paths: list[str], workers: int, analyse: bool) -> Iterator[tuple[str, ImageFacts]]:
        workers = workers or os.cpu_count() or 1
        jobs = [(str(self.root), p, analyse) for p in paths]
        if workers <= 1 or len(jobs) < 8:
            yield from map(_probe_one, jobs)
            return
        with worker_pool(workers) as pool:
            yield from pool.map(_probe_one, jobs, chunksize=8)

    def _store(self, rel: str, facts: ImageFacts) -> None:
        place = layout.place_of(rel)
        row = Entry(
            path=rel,
            size=facts.size,
            mtime_ns=facts.mtime_ns,
            sha256=facts.sha256,
            format=facts.format,
            width=facts.width,
            height=facts.height,
            orientation=facts.orientation,
            taken=facts.taken,
            location=place.location,
            contributor=place.contributor,
            contribution_date=place.contribution_date.isoformat() if place.contribution_date else None,
            folder=place.folder,
            label=place.label,
            kind=place.kind,
            place_problem=place.problem,
            sharpness=facts.sharpness,
            brightness=facts.brightness,
            contrast=facts.contrast,
            phash=facts.phash,
            error=facts.error,
        )
        values = dataclasses.astuple(row)
        self.db.execute(
            f"INSERT OR REPLACE INTO images ({', '.join(_FIELDS)}) VALUES ({', '.join('?' * len(_FIELDS))})", values
        )

    def _recluster(self, near_distance: int) -> None:
        rows = self.db.execute("SELECT rowid, sha256, phash FROM images ORDER BY path").fetchall()
        self.db.execute("UPDATE images SET dup_cluster = NULL, near_cluster = NULL")
        first_of: dict[str, int] = {}
        for rowid, sha, _ in rows:
            first_of.setdefault(sha, rowid)
        counts: dict[str, int] = {}
        for _, sha, _ in rows:
            counts[sha] = counts.get(sha, 0) + 1
        self.db.executemany(
            "UPDATE images SET dup_cluster = ? WHERE rowid = ?",
            [(first_of[sha], rowid) for rowid, sha, _ in rows if counts[sha] > 1],
        )
        hashed = [(rowid, ph) for rowid, _, ph in rows if ph is not None]
        if len(hashed) < 2:
            return
        ids = np.array([r for r, _ in hashed], dtype=np.int64)
        labels = near_clusters(np.array([h for _, h in hashed], dtype=np.int64), near_distance)
        sizes = np.bincount(labels, minlength=len(labels))
        self.db.executemany(
            "UPDATE images SET near_cluster = ? WHERE rowid = ?",
            [(int(ids[labels[k]]), int(ids[k])) for k in np.flatnonzero(sizes[labels] > 1)],
        )

    def record(self, rel: str, facts: ImageFacts) -> None:
        """Add a file whose facts the caller already has (e.g. ingest, which just wrote it).
        Committed by the next scan (the catalog is derived data: losing it costs a rescan)."""
        self._store(rel, facts)
        self._recorded = True
