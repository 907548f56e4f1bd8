"""The chip stage: cut a chip for every face of a faces XML, write the chip images and
the chips XML, and count the faces that could not be chipped, with the reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bearid.chip import ChipSpec, chip_faces
from bearid.data.layout import location_of
from bearid.fsio import atomic_path
from bearid.metadata import Chip, ChipSet, ChipSource, Dataset, relative_file


@dataclass
class ChipReport:
    faces: int = 0
    chipped: int = 0
    problems: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"faces": self.faces, "chipped": self.chipped, "not_chipped": dict(self.problems)}


def chip_dataset(faces: Dataset, images_dir: Path, xml_base: Path, spec: ChipSpec) -> tuple[ChipSet, ChipReport]:
    """Chips of every labelled or unlabelled face; images go to images_dir/<location>/<label>/."""
    report = ChipReport()
    chips: list[Chip] = []
    for image in faces.images:
        if not image.boxes:
            continue
        path = faces.path_of(image)
        marks = [{k: (float(x), float(y)) for k, (x, y) in box.parts.items()} for box in image.boxes]
        try:
            results = chip_faces(path, marks, spec)
        except Exception as exc:
            report.faces += len(image.boxes)
            report.problems[f"photo unreadable: {exc}"] += len(image.boxes)
            continue
        for i, (box, result) in enumerate(zip(image.boxes, results)):
            report.faces += 1
            if result.image is None:
                report.problems[result.problem or "unknown"] += 1
                continue
            label = box.label or "unlabelled"
            out = images_dir / location_of(path) / label / f"{path.stem}_chip_{i}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp:
                result.image.save(tmp, "PNG")
            chips.append(
                Chip(
                    file=relative_file(out, xml_base),
                    label=box.label,
                    parts={n: (round(x), round(y)) for n, (x, y) in result.landmarks.items()},
                    source=ChipSource(relative_file(path, xml_base), box.left, box.top, box.width, box.height),
                    width=spec.size,
                    height=spec.size,
                    transform_features=list(spec.points),
                    resolution=box.width * box.height,
                )
            )
            report.chipped += 1
    return ChipSet(
        chips, name="bearid chips", comment=f"size {spec.size}, points {' '.join(spec.points)}", base_dir=xml_base
    ), report
