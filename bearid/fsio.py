"""Safe file writes: every file BearID writes appears whole or not at all, readable by
whoever the process umask says may read it.

A crash or a kill mid-write must leave the old file intact, so writers go to a temporary
file in the same directory, fsync it, and `os.replace` it over the target (atomic on POSIX).
Temporary files and folders are made private (0600, 0700) by `tempfile`; before one becomes
a target it gets the mode a plain write would have given it (0644 and 0755 under umask 022,
0664 and 0775 under 002), so a lab's shared archive stays readable to colleagues; a file
written over keeps the mode it had.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bearid.errors import BearIDError


def umask() -> int:
    """The process umask (read without changing it where Linux says it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~umask()


def dir_mode() -> int:
    return 0o777 & ~umask()


def temp_dir(prefix: str, dir: Path, suffix: str = "") -> Path:
    """A new hidden folder in `dir` to build in and rename into place, with the mode a plain
    `mkdir` gives (not tempfile's private 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=dir))
    path.chmod(dir_mode())
    return path


def make_dirs(folder: Path) -> Path:
    """`folder` and its parents, made where missing; a file in the way is a BearIDError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise BearIDError(f"{blocker} is a file, not a folder: cannot write into {folder}") from None
    return folder


def check_file_target(target: Path) -> Path:
    """`target`, once it is sure a file can be written there (its folder made)."""
    target = Path(target)
    if target.is_dir():
        raise BearIDError(f"{target} is a folder: give the name of a file to write")
    make_dirs(target.parent)
    return target


def _temp_file(target: Path) -> tuple[int, Path]:
    """A temporary file beside `target`, with the mode `target` has (a rewrite keeps a
    private file private), or else the umask's."""
    check_file_target(target)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except OSError:
        mode = file_mode()
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, mode)
    return fd, Path(name)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` atomically."""
    fd, tmp = _temp_file(Path(target))
    target = Path(target)
    os.close(fd)
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


def write_unless_same(target: Path, data: bytes) -> bool:
    """`atomic_write_bytes`, unless `target` already holds exactly `data` (then it is left
    alone, modification time and all); True if it was written."""
    target = Path(target)
    try:
        if target.stat().st_size == len(data) and target.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(target, data)
    return True


def atomic_write_text(target: Path, text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(target, text.encode(encoding))


def write_temp(target: Path, data: bytes) -> Path:
    """Write `data` to a new hidden temporary file beside `target` (not yet synced)."""
    fd, tmp = _temp_file(Path(target))
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return tmp


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


def remove_stale_temps(folder: Path, prefix: str = ".") -> int:
    """Delete temporary files a killed writer left in `folder` (hidden, ending in .tmp; those
    of one target only, with `prefix` ".NAME.")."""
    removed = 0
    if Path(folder).is_dir():
        for item in Path(folder).iterdir():
            if item.name.startswith(prefix) and item.name.endswith(TEMP_MARKERS) and item.is_file():
                item.unlink()
                removed += 1
    return removed
