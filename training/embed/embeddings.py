"""Chips as an embed stage embedded them, and the files that hold them: an embedding file
(.npz, as the original tools wrote: a split's chip paths, labels, unit vectors and the
vectors' lengths) and its embeddings XML. Training, evaluation and the bench read them; the
service never does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bearid.embed import unit
from bearid.fsio import atomic_path
from bearid.metadata import ChipSet, write_chips

VIEWS_FILE = "train_views.npz"  # augmented views of the training chips, for the classifier's Gaussians


@dataclass
class Embedded:
    """Chips as the network embedded them: its outputs before L2 normalisation, and each
    chip's label ("" where it has none) and path."""

    vectors: np.ndarray
    labels: list[str]
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: list[int]) -> Embedded:
        return Embedded(self.vectors[rows], [self.labels[i] for i in rows], [self.paths[i] for i in rows])

    def __add__(self, other: Embedded) -> Embedded:
        return Embedded(
            np.concatenate([self.vectors, other.vectors]), self.labels + other.labels, self.paths + other.paths
        )

    def labelled(self) -> Embedded:
        return self.subset([i for i, label in enumerate(self.labels) if label])

    def split_known(self, classes: set[str]) -> tuple[Embedded, Embedded]:
        """(chips of bears in `classes`, labelled chips of bears not in it)."""
        known = [i for i, label in enumerate(self.labels) if label in classes]
        unknown = [i for i, label in enumerate(self.labels) if label and label not in classes]
        return self.subset(known), self.subset(unknown)

    def halves_by_bear(self) -> tuple[Embedded, Embedded]:
        """Split by identity (alternately, in sorted order) into two sets of different bears;
        a single anonymous group (plain bear_unknown photos) is split by chip instead."""
        names = sorted(set(self.labels))
        if len(names) >= 2:
            first = set(names[0::2])
            pick = [label in first for label in self.labels]
        else:
            pick = [i % 2 == 0 for i in range(len(self.labels))]
        return self.subset([i for i, p in enumerate(pick) if p]), self.subset([i for i, p in enumerate(pick) if not p])


def write_embedding_file(path: Path, vectors: np.ndarray, labels: list[str], paths: list[str]) -> None:
    """The original tools' embedding file: .npz with paths, labels, unit-length vectors, and
    the network outputs' lengths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            paths=np.array(paths),
            labels=np.array(labels),
            vectors=unit(vectors).astype(np.float32),
            lengths=np.linalg.norm(vectors, axis=1).astype(np.float32),
        )


def write_embeddings(
    npz: Path, xml: Path, chipset: ChipSet, vectors: np.ndarray, labels: list[str], paths: list[str]
) -> None:
    """A split's embedding file, and its embeddings XML (the chips with their unit vectors)."""
    write_embedding_file(npz, vectors, labels, paths)
    by_path = {p: v for p, v in zip(paths, unit(vectors))}
    chips = []
    for chip in chipset.chips:
        if (v := by_path.get(str(chipset.path_of(chip)))) is not None:
            chip.embedding = [float(a) for a in v]
            chips.append(chip)
    write_chips(
        ChipSet(chips, name="bearid embeddings", comment=f"{vectors.shape[1]}-D", base_dir=chipset.base_dir), xml
    )


def load_embeddings(path: Path) -> Embedded:
    """An embedding file as the network's outputs (unit vectors times their lengths; a file
    without lengths, as other tools write, is taken as unit vectors), or the original
    bearembed's embeddings XML (.xml) with the per-chip files it lists."""
    if Path(path).suffix.lower() == ".xml":
        from bearid.dlibformat.embeddings import read_embeddings_xml

        e = read_embeddings_xml(Path(path))
        return Embedded(e.vectors.astype(np.float64), e.labels, [s or f for s, f in zip(e.sources, e.files)])
    data = np.load(path)
    vectors = data["vectors"] * data["lengths"][:, None] if "lengths" in data else data["vectors"]
    return Embedded(vectors, [str(v) for v in data["labels"]], [str(v) for v in data["paths"]])


def load_views(embeddings: Path) -> Embedded | None:
    """The augmented views of the training chips in an embeddings folder, if its embed
    stage wrote them (`views: 0`, and folders of other tools, have none)."""
    return load_embeddings(embeddings / VIEWS_FILE) if (embeddings / VIEWS_FILE).exists() else None


def split_file(embeddings: Path, name: str) -> Path | None:
    """A split's embeddings in a folder: BearID's `NAME.npz`, else the original bearembed's
    `NAME_embeds.xml` (what `bearembed --embed NAME.xml` writes); None if neither is there."""
    for candidate in (embeddings / f"{name}.npz", embeddings / f"{name}_embeds.xml"):
        if candidate.is_file():
            return candidate
    return None


def write_dlib_embeddings(out: Path, vectors: np.ndarray, labels: list[str], paths: list[str], command: str) -> Path:
    """`bearid embed run --format dlib`: as the original bearembed --embed wrote them, one dlib
    matrix file per chip (under OUT's folder, embeds/STEM/BEAR/) and the embeddings XML `out`
    listing them; the folder they are in."""
    from bearid.dlibformat.embeddings import write_embeddings_xml

    folder = out.parent / "embeds" / out.name.removesuffix(".xml").removesuffix("_embeds")
    write_embeddings_xml(out, folder, vectors, labels, paths, command)
    return folder


def npz_folder(embeddings: Path, into: Path) -> Path:
    """`embeddings` if it holds BearID's embedding files; a folder of bearembed's embeddings
    XMLs (train_embeds.xml, ...) is converted to them in `into`, which is returned instead."""
    if (embeddings / "train.npz").is_file() or not (embeddings / "train_embeds.xml").is_file():
        return embeddings
    for name in ("train", "val", "test", "holdout"):
        if (source := embeddings / f"{name}_embeds.xml").is_file():
            e = load_embeddings(source)
            write_embedding_file(into / f"{name}.npz", e.vectors, e.labels, e.paths)
    return into
