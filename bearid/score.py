"""`bearid score`: batch-identify a folder of photos through the service.

Results go to a JSON Lines journal, one line per photo as it is answered, so a run that is
stopped can be started again and skips the photos already answered by the model the service
serves now (errors, and answers of an earlier model, are asked again).
From the journal come an imglab XML of the predictions (open it in `bearid label` or imglab
to check them) and a CSV with one row per bear.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bearid.client import BearIDClient
from bearid.data.layout import photos_under
from bearid.errors import BearIDError
from bearid.fsio import atomic_write_text
from bearid.metadata import Box, Dataset, ImageEntry, read_faces, write_faces
from bearid.metadata.candidates import CANDIDATES, encode

if TYPE_CHECKING:  # the in-process scorer needs the [serve] extra
    from bearid.serving.offline import InProcess

UNKNOWN = "unknown"


def photos_in(source: Path) -> tuple[Path, list[Path]]:
    """(base folder, photos): every photo under a folder, or every photo a faces XML lists."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".xml":
        ds = read_faces(source)
        photos = sorted({ds.path_of(img).resolve() for img in ds.images})
        if not photos:
            raise BearIDError(f"{source}: lists no photos")
        base = Path(os.path.commonpath([p.parent for p in photos]))
        return base, photos
    if not source.is_dir():
        raise BearIDError(f"{source}: not a folder of photos or a faces XML")
    return source, photos_under(source)


def read_journal(path: Path) -> dict[str, dict]:
    """Latest line per photo; a torn last line (a killed run) is ignored."""
    rows: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[row["photo"]] = row
    return rows


@dataclass
class ScoreReport:
    base: Path  # the folder photo names in the journal are relative to
    photos: int
    scored: int  # this run
    skipped: int  # answered by an earlier run, by the same model
    errors: int
    faces: int
    xml: Path
    csv: Path
    outdated: int  # of `scored`: answered before by another model, asked again
    model: dict  # the service's GET /model: the model that answered this run


def score(
    source: Path,
    client: BearIDClient | InProcess,
    out: Path,
    concurrency: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> ScoreReport:
    """Score a folder of photos (or the photos a faces XML lists) into the journal `out`;
    `progress(done, total)` after each answer. A service with no model loaded is an error
    before any photo is sent, in the service's words (e.g. run bearid promote)."""
    out = Path(out)
    folder, photos = photos_in(Path(source))
    info = client.model()
    if not info.loaded:
        where = getattr(client, "url", "the service")
        raise BearIDError(f"{where} serves no model yet: {info.error or 'none is loaded'}")
    model = info.model_dump(mode="json", exclude_unset=True)
    serving = model.get("version")  # answers of another model are asked again
    answered_by = {
        k: v["answer"].get("model", {}).get("version") for k, v in read_journal(out).items() if "answer" in v
    }
    names = {p: str(p.relative_to(folder)) for p in photos}
    todo = [p for p in photos if names[p] not in answered_by or answered_by[names[p]] != serving]
    outdated = sum(1 for p in todo if names[p] in answered_by)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and out.stat().st_size and not out.read_bytes().endswith(b"\n"):
        with open(out, "a") as fh:
            fh.write("\n")  # end a torn line so the next one starts clean
    errors = 0
    with open(out, "a", encoding="utf-8") as journal:
        for done, (photo, result) in enumerate(client.identify_many(todo, concurrency), 1):
            row: dict = {"photo": str(Path(photo).relative_to(folder))}
            if isinstance(result, Exception):
                errors += 1
                row["error"] = str(result)
            else:
                row["answer"] = result.model_dump(mode="json", exclude_unset=True)  # as the service sent it
            journal.write(json.dumps(row) + "\n")
            journal.flush()
            if progress:
                progress(done, len(todo))
    rows = read_journal(out)
    xml, table = out.with_suffix(".xml"), out.with_suffix(".csv")
    write_faces(predictions_dataset(rows, folder), xml)
    atomic_write_text(table, per_bear_csv(rows))
    faces = sum(len(r["answer"]["faces"]) for r in rows.values() if "answer" in r)
    return ScoreReport(
        folder, len(photos), len(todo), len(photos) - len(todo), errors, faces, xml, table, outdated, model
    )


def predictions_dataset(rows: dict[str, dict], folder: Path) -> Dataset:
    images = []
    for photo, row in sorted(rows.items()):
        if "answer" not in row:
            continue
        a = row["answer"]
        boxes = [
            Box(
                round(f["box"]["left"]),
                round(f["box"]["top"]),
                round(f["box"]["width"]),
                round(f["box"]["height"]),
                f["bear_id"],
                {n: (round(x), round(y)) for n, (x, y) in f["landmarks"].items()},
                attrs={
                    "detection_score": f"{f['score']:.4f}",
                    "confidence": f"{f['confidence']:.4f}",
                    "known": str(f["known"]).lower(),
                    CANDIDATES: encode(f.get("candidates", [])),
                },
            )
            for f in a["faces"]
        ]
        images.append(ImageEntry(str((folder / photo).resolve()), boxes, a["image"]["width"], a["image"]["height"]))
    return Dataset(images, name="bearid score predictions", comment="unlabelled boxes: bears the model does not know")


def per_bear_csv(rows: dict[str, dict]) -> str:
    stats: dict[str, dict] = defaultdict(lambda: {"photos": set(), "faces": 0, "confidence": 0.0})
    for photo, row in rows.items():
        for f in row.get("answer", {}).get("faces", []):
            s = stats[f["bear_id"] or UNKNOWN]
            s["photos"].add(photo)
            s["faces"] += 1
            s["confidence"] += f["confidence"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["bear_id", "photos", "faces", "mean_confidence"])
    for bear, s in sorted(stats.items(), key=lambda kv: (kv[0] == UNKNOWN, kv[0])):
        w.writerow([bear, len(s["photos"]), s["faces"], f"{s['confidence'] / s['faces']:.4f}"])
    return buf.getvalue()


def accuracy(rows: dict[str, dict], folder: Path, truth_xml: Path | Dataset, known_ids: set[str]) -> dict:
    """How the scored answers compare with a labelled faces XML of the same photos (its path,
    or the XML already read, as `bearid score --truth` does before it scores)."""
    from bearid.evaluate import tally

    truth = truth_xml if isinstance(truth_xml, Dataset) else read_faces(truth_xml)
    by_path = {truth.path_of(img).resolve(): img for img in truth.images}
    pairs = []
    for photo, row in rows.items():
        img = by_path.get((folder / photo).resolve())
        boxes = [b for b in img.boxes if b.label and not b.ignore] if img else []
        if "answer" in row and boxes:
            pairs.append((row["answer"], boxes))
    return tally(pairs, known_ids)
