"""Safe file writes: every file BearID writes appears whole or not at all.

A crash or a kill mid-write must leave the old file intact, so writers go to a temporary
file in the same directory, fsync it, and `os.replace` it over the target (atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write `data` to `target` so readers see the old content or the new, never a mix."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(target, text.encode(encoding))


def write_temp(target: Path, data: bytes) -> Path:
    """Write `data` to a new hidden temporary file beside `target` (not yet synced)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return Path(tmp)


def publish(tmp: Path, target: Path) -> None:
    """Make a finished (synced) temporary file appear as `target`, never replacing one.

    A hard link is the step that makes it appear, and linking refuses to overwrite: if
    `target` exists this raises FileExistsError and keeps `tmp` for another name.
    """
    os.link(tmp, target)
    os.unlink(tmp)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def copy_hashed(src: Path, tmp: Path, chunk: int = 1 << 20) -> str:
    """Copy `src` to `tmp` (fsynced), hashing the bytes as they are written: the sha256 of
    what landed, so a copy is verified without reading it back."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        while block := fin.read(chunk):
            h.update(block)
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest()


TEMP_MARKERS = (".tmp",)


def remove_stale_temps(folder: Path) -> int:
    """Delete temporary files a killed writer left in `folder` (hidden, ending in .tmp)."""
    removed = 0
    if Path(folder).is_dir():
        for item in Path(folder).iterdir():
            if item.name.startswith(".") and item.name.endswith(TEMP_MARKERS) and item.is_file():
                item.unlink()
                removed += 1
    return removed
