"""The match review's candidates from a bundle run in this process (the champion), for an XML
that `bearid score` did not write. Candidates written by scoring are read with
bearid.metadata.candidates; reference faces are bearid.references'."""

from __future__ import annotations

from pathlib import Path

from bearid.metadata import Box


class ModelCandidates:
    """Candidates from a bundle's pipeline for faces whose landmarks the XML holds (no
    detection), kept per photo and face while the boxes stay as they were."""

    def __init__(self, pipeline, top: int = 5):
        self.pipeline, self.top = pipeline, top
        self.version = pipeline.version
        self._kept: dict[tuple[Path, int, tuple], list[dict]] = {}

    def of(self, path: Path, face: int, box: Box) -> list[dict]:
        key = (path, face, (box.left, box.top, box.width, box.height, tuple(sorted(box.parts.items()))))
        if key not in self._kept:
            [prediction] = self.pipeline.name_faces(path, [{k: tuple(v) for k, v in box.parts.items()}])
            self._kept[key] = (
                [{"bear_id": b, "score": round(s, 4)} for b, s in prediction.candidates[: self.top]]
                if prediction
                else []
            )
        return self._kept[key]
