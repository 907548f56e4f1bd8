"""A cache for the tests' costliest fixture: the tiny world trained, exported and shared.

Training it takes minutes on two cores, which on a busy machine ate most of the first test's
timeout. An entry is made once per code version (a hash of the source it depends on) in a
fixed folder, so the absolute paths inside the results tree stay right, and later runs reuse
it. The tests share it read-only: a run that leaves it changed fails at the end, naming the
files, and the entry is made anew next time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

KEEP = 3  # entries of other code versions kept (other checkouts' runs may be using them)
DERIVED = ("chip_cache", "__pycache__")  # written on first use by design: not part of the entry


def code_key(paths: list[Path], ignore: tuple[Path, ...] = ()) -> str:
    """sha256 of every Python and TOML file under `paths` but those under `ignore` (code the
    entry's build never runs), names and contents, and the Python version."""
    digest = hashlib.sha256(sys.version.encode())
    for root in paths:
        files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.suffix in (".py", ".toml"))
        for f in files:
            if "__pycache__" not in f.parts and not any(f.is_relative_to(i) for i in ignore):
                digest.update(str(f.relative_to(root.parent)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def fingerprint(folder: Path) -> dict[str, list[int]]:
    """Each file's size and modification time, less the caches made on first use."""
    return {
        str(f.relative_to(folder)): [f.stat().st_size, f.stat().st_mtime_ns]
        for f in sorted(folder.rglob("*"))
        if f.is_file() and f.name != "READY" and not any(d in f.relative_to(folder).parts for d in DERIVED)
    }


class TinyCache:
    def __init__(self, root: Path, key_of: list[Path], ignore: tuple[Path, ...] = ()):
        self.root, self.key_of, self.ignore = root, key_of, ignore
        self.built_seconds: float | None = None  # set when this run made the entry

    def open(self, build: Callable[[Path], None]) -> Path:
        """The entry's folder, made by `build(folder)` unless an intact one is there."""
        self.built_seconds = None
        self.root.mkdir(parents=True, exist_ok=True)
        folder = self.root / f"tiny-{code_key(self.key_of, self.ignore)}"
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a second run waits for the first one's build
            ready = folder / "READY"
            if not (ready.is_file() and json.loads(ready.read_text()) == fingerprint(folder)):
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                t0 = time.perf_counter()
                build(folder)
                self.built_seconds = time.perf_counter() - t0
                ready.write_text(json.dumps(fingerprint(folder)))
            folder.touch()  # most recently used
            self._prune(keep=folder)
        return folder

    def close(self, folder: Path) -> None:
        """After the run: AssertionError naming what the tests changed (the entry is made anew next run)."""
        changed = self._changed(folder)
        if changed:
            (folder / "READY").unlink(missing_ok=True)
            raise AssertionError(f"tests changed the shared tiny pipeline in {folder}: {', '.join(changed[:10])}")

    @contextmanager
    def entry(self, build: Callable[[Path], None]) -> Iterator[Path]:
        folder = self.open(build)
        yield folder
        self.close(folder)

    def _changed(self, folder: Path) -> list[str]:
        before, now = json.loads((folder / "READY").read_text()), fingerprint(folder)
        return sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))

    def _prune(self, keep: Path) -> None:
        others = sorted((d for d in self.root.glob("tiny-*") if d != keep), key=lambda d: d.stat().st_mtime)
        for old in others[: max(0, len(others) - KEEP)]:
            shutil.rmtree(old, ignore_errors=True)
