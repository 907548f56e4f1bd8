"""The packed chip cache: every chip of a chips XML as fixed-size uint8 pixels in memory-mapped
.npy shards, so the embed trainer reads chips at disk speed instead of decoding an image file
per chip, and never needs the whole set in memory.

Layout (beside the chips, `<chip_config>/chip_cache/<split>/<size>/`):

    index.json        format, chip size, shard size, the chips XML's sha256, labels, paths
    shard_00000.npy   up to SHARD_CHIPS chips, N x size x size x 3 uint8

The chip stage packs the chips at their own size (the pixels of the chip files, exactly). A
network that takes smaller inputs gets a cache at its input size, made once from that one:
each chip resized with the same PIL call the embedding preprocessing makes, so a trainer
reading it sees the very pixels serving computes, without paying the resize at every step.

A cache belongs to one chips XML: its sha256 is recorded, and a cache whose XML has changed
is stale and rebuilt. `open_cache` builds what is missing or stale.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from bearid.embed import input_pixels
from bearid.errors import BearIDError
from bearid.fsio import sha256_file, temp_dir
from bearid.metadata import ChipSet, read_chips

FORMAT = 1
SHARD_CHIPS = 2048


def cache_dir_for(chips_xml: Path, size: int) -> Path:
    """`<chip_config>/chip_cache/<split>/<size>` for a results tree's `chip_meta/<split>.xml`;
    `chip_cache/<name>/<size>` beside any other chips XML."""
    chips_xml = Path(chips_xml)
    home = chips_xml.parent.parent if chips_xml.parent.name == "chip_meta" else chips_xml.parent
    return home / "chip_cache" / chips_xml.stem / str(size)


@dataclass
class ChipCache:
    """A built cache, opened read-only. Shards are mapped on first use in each process, so a
    cache handed to DataLoader workers maps its files there rather than pickling pixels."""

    root: Path
    size: int
    shard_chips: int
    labels: list[str]  # "" where a chip has no label
    paths: list[str]
    xml_sha256: str
    _shards: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def _shard(self, shard: int) -> np.ndarray:
        if shard not in self._shards:
            self._shards[shard] = np.load(self.root / f"shard_{shard:05d}.npy", mmap_mode="r")
        return self._shards[shard]

    def pixels(self, i: int) -> np.ndarray:
        """Chip `i` as size x size x 3 uint8."""
        shard, row = divmod(int(i), self.shard_chips)
        return self._shard(shard)[row]

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """Chips `rows` as N x size x size x 3 uint8, one fancy-index read per shard."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.size, self.size, 3), np.uint8)
        shards = rows // self.shard_chips
        for shard in np.unique(shards):
            mine = shards == shard
            out[mine] = self._shard(int(shard))[rows[mine] % self.shard_chips]
        return out

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_shards": {}}


def chip_size(chipset: ChipSet) -> int:
    """The size most chips of a set have."""
    sizes = [c.width for c in chipset.chips if c.width]
    if sizes:
        return max(set(sizes), key=sizes.count)
    with Image.open(chipset.path_of(chipset.chips[0])) as img:
        return img.width


def _decoded(chipset: ChipSet, chips_xml: Path) -> Iterator[Image.Image]:
    for chip in chipset.chips:
        path = chipset.path_of(chip)
        try:
            with Image.open(path) as img:
                yield img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise BearIDError(f"chip {path} (in {chips_xml}) cannot be read: {exc}") from exc


def build_cache(chips_xml: Path, size: int | None = None, shard_chips: int = SHARD_CHIPS) -> ChipCache:
    """Pack every chip of `chips_xml` at `size` (None: the chips' own size). Read from the
    chips' own-size cache where it is fresh, else decoded from the chip files. Written to a
    temp dir and renamed into place, so a crash never leaves a half cache."""
    chips_xml = Path(chips_xml)
    chipset = read_chips(chips_xml)
    if not chipset.chips:
        raise BearIDError(f"{chips_xml}: no chips to cache")
    digest = sha256_file(chips_xml)
    native = chip_size(chipset)
    size = size or native
    source = cache_dir_for(chips_xml, native)
    if size != native and fresh(source, chips_xml):
        cache = _open(source)
        images: Iterator[Image.Image] = (Image.fromarray(np.asarray(cache.pixels(i))) for i in range(len(cache)))
    else:
        images = _decoded(chipset, chips_xml)
    root = cache_dir_for(chips_xml, size)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(f".{root.name}.", root.parent)
    try:
        for start in range(0, len(chipset.chips), shard_chips):
            rows = min(shard_chips, len(chipset.chips) - start)
            shard = np.lib.format.open_memmap(
                tmp / f"shard_{start // shard_chips:05d}.npy", "w+", np.uint8, (rows, size, size, 3)
            )
            for row in range(rows):
                shard[row] = input_pixels(next(images), size)
            shard.flush()
            del shard
        index = {
            "format": FORMAT,
            "size": size,
            "shard_chips": shard_chips,
            "xml_sha256": digest,
            "labels": [c.label or "" for c in chipset.chips],
            "paths": [str(chipset.path_of(c)) for c in chipset.chips],
        }
        (tmp / "index.json").write_text(json.dumps(index))
        if root.exists():
            old = root.with_name(f".{root.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            root.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _open(root)


def _open(root: Path) -> ChipCache:
    index = json.loads((root / "index.json").read_text())
    return ChipCache(root, index["size"], index["shard_chips"], index["labels"], index["paths"], index["xml_sha256"])


def fresh(root: Path, chips_xml: Path) -> bool:
    """Whether `root` holds a complete cache of `chips_xml` as it is now."""
    try:
        index = json.loads((root / "index.json").read_text())
        if index.get("format") != FORMAT or index["xml_sha256"] != sha256_file(chips_xml):
            return False
        n, per, size = len(index["labels"]), index["shard_chips"], index["size"]
        for s in range(-(-n // per)):
            rows = min(per, n - s * per)
            if np.load(root / f"shard_{s:05d}.npy", mmap_mode="r").shape != (rows, size, size, 3):
                return False
        return True
    except (OSError, ValueError, KeyError):
        return False


def open_cache(chips_xml: Path, size: int | None = None, log=None) -> ChipCache:
    """The cache of `chips_xml` at `size` (None: the chips' own), built if missing or stale."""
    root = cache_dir_for(chips_xml, size or chip_size(read_chips(chips_xml)))
    if fresh(root, chips_xml):
        return _open(root)
    if log:
        log(f"chip cache: packing {chips_xml} into {root}")
    return build_cache(chips_xml, size)
