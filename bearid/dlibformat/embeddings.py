"""bearembed's output: one dlib matrix file per chip, and the embeddings XML that lists them.

bearembed --embed serializes each chip's `matrix<float,0,1>` embedding to its own .dat file and
writes (boost::property_tree, 4-space indents):

    <dataset>
        <command>...</command> <cwd>...</cwd> <filetype>embeddings</filetype>
        <embeddings>
            <embedding file="EMBED.dat">
                <embed_val> v1 v2 ...</embed_val>   (later versions: the values as text)
                <label>bf_051</label>                 (" " for a chip with no bear)
                <chip_source>CHIP.jpg</chip_source>
            </embedding> ...
        </embeddings>
        <name>bearid dataset</name> <comment>Created by bearembed</comment>
    </dataset>

bearsvm trains on such a file (the label of each embedding, its vector from the .dat). BearID
reads both ways, and writes them for `bearid embed run --format dlib`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from bearid.dlibformat.reader import DlibFormatError, Reader
from bearid.dlibformat.writer import Writer
from bearid.errors import BearIDError
from bearid.fsio import atomic_write_bytes, atomic_write_text
from bearid.metadata._xml import parse_root


@dataclass
class DlibEmbeddings:
    vectors: np.ndarray  # N x dim, float32: the network's outputs as bearembed wrote them
    labels: list[str]  # "" for a chip with no bear
    files: list[str]  # each embedding's .dat file, as the XML names it
    sources: list[str]  # each chip's image (chip_source), "" where the XML names none


def read_embedding_file(path: Path) -> np.ndarray:
    """One bearembed embedding file: a dlib column matrix of floats, and nothing after it."""
    r = Reader.open(path)
    m = r.matrix("an embedding")
    if m.shape[1] != 1 or m.shape[0] == 0:
        raise r.fail(f"a {m.shape[0]} x {m.shape[1]} matrix, not an embedding (a column)", 0)
    if r.left:
        raise r.fail(f"{r.left} bytes after the embedding (not bearembed's file?)")
    return m.ravel()


def write_embedding_file(path: Path, vector: np.ndarray) -> None:
    """A chip's embedding as bearembed writes it (`serialize(file) << matrix<float,0,1>`)."""
    atomic_write_bytes(path, Writer().matrix(np.asarray(vector, dtype=np.float32).ravel()).data())


def read_embeddings_xml(path: Path) -> DlibEmbeddings:
    """An embeddings XML and the files it lists (relative paths from the XML's folder). A file
    that is not there (bearembed wrote absolute paths of its own machine) is taken from the
    XML's embed_val where the XML has it."""
    path = Path(path)
    root = parse_root(path)
    listing = root.find("embeddings")
    if listing is None:
        raise BearIDError(f"{path}: no <embeddings> (not an embeddings XML from bearembed)")
    vectors, labels, files, sources = [], [], [], []
    for i, el in enumerate(listing.findall("embedding")):
        name = el.get("file")
        if not name:
            raise BearIDError(f"{path}: embedding {i + 1} names no file")
        target = Path(name) if Path(name).is_absolute() else path.parent / name
        text = (el.findtext("embed_val") or "").split()
        if target.is_file():
            vector = read_embedding_file(target)
        elif text:
            try:
                vector = np.array([float(v) for v in text], dtype=np.float32)
            except ValueError:
                raise BearIDError(f"{path}: embedding {name}: embed_val is not numbers") from None
        else:
            raise BearIDError(f"{path}: embedding {name}: no such file, and no embed_val in the XML")
        if vectors and len(vector) != len(vectors[0]):
            raise BearIDError(f"{path}: embedding {name} has {len(vector)} values, the first {len(vectors[0])}")
        vectors.append(vector)
        labels.append((el.findtext("label") or "").strip())
        files.append(name)
        sources.append((el.findtext("chip_source") or "").strip())
    if not vectors:
        raise BearIDError(f"{path}: lists no embeddings")
    return DlibEmbeddings(np.stack(vectors), labels, files, sources)


def write_embeddings_xml(
    xml: Path, folder: Path, vectors: np.ndarray, labels: list[str], sources: list[str], command: str = ""
) -> list[Path]:
    """bearembed's output: each chip's embedding file under `folder` (named after its chip, in a
    folder per bear as bearembed's later versions did), and the embeddings XML listing them
    (paths relative to the XML). The files written, in order."""
    xml, folder = Path(xml), Path(folder)
    written, used = [], set()
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<dataset>",
        f"    <command>{escape(command)}</command>",
        f"    <cwd>{escape(str(Path.cwd()))}</cwd>",
        "    <filetype>embeddings</filetype>",
        "    <embeddings>",
    ]
    for vector, label, source in zip(vectors, labels, sources):
        stem = Path(source).stem or "chip"
        target = folder / (label or "unknown") / f"{stem}.dat"
        n = 1
        while target in used:  # two chips of one bear from photos of one name
            n += 1
            target = target.with_name(f"{stem}_{n}.dat")
        used.add(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_embedding_file(target, vector)
        written.append(target)
        values = " ".join(f"{float(v):.9g}" for v in np.asarray(vector, dtype=np.float32))
        lines += [
            f"        <embedding file={quoteattr(_relative(target, xml.parent))}>",
            f"            <embed_val> {values}</embed_val>",
            f"            <label>{escape(label or ' ')}</label>",
            f"            <chip_source>{escape(source)}</chip_source>",
            "        </embedding>",
        ]
    lines += [
        "    </embeddings>",
        "    <name>bearid dataset</name>",
        "    <comment>Created by bearembed</comment>",
        "</dataset>",
    ]
    xml.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(xml, "\n".join(lines) + "\n")
    return written


def _relative(target: Path, base: Path) -> str:
    return Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()


__all__ = [
    "DlibEmbeddings",
    "DlibFormatError",
    "read_embedding_file",
    "read_embeddings_xml",
    "write_embedding_file",
    "write_embeddings_xml",
]
