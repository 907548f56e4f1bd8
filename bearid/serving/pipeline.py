"""One inference pipeline: decode → detect → chip → embed → classify.

The service, `bearid promote`'s gate evaluation and the export parity check all answer
photos here. The three networks are plain callables (NumPy in, NumPy out): ONNX Runtime
sessions from a bundle in production (`Pipeline.from_bundle`), PyTorch modules while
exporting, so everything around them is this one implementation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from bearid.chip import chip_faces
from bearid.classify import Prediction
from bearid.embed import network_input
from bearid.errors import BearIDError
from bearid.face import Detection, FaceFinder, Network
from bearid.face.mmod import MmodFinder
from bearid.face.shape_predictor import ShapeModel
from bearid.imageio import load_photo
from bearid.serving.bundle import Bundle
from bearid.serving.runtime import ort_sessions
from bearid.serving.schema import Box, Candidate, Face, Identified, ImageSize, ModelRef


def face_answer(det: Detection, prediction: Prediction | None, problem: str | None = None) -> Face:
    """One face of an answer: the detection's box and landmarks (rounded to 0.1 px) and the
    classifier's decision; with no prediction (no chip could be cut), no ID and the problem."""
    box = Box(left=round(det.left, 1), top=round(det.top, 1), width=round(det.width, 1), height=round(det.height, 1))
    marks = {n: (round(x, 1), round(y, 1)) for n, (x, y) in det.landmarks.items()}
    if prediction is None:
        none = {"bear_id": None, "known": False, "confidence": 0.0, "familiarity": 0.0}
        return Face(box=box, score=round(det.score, 4), landmarks=marks, problem=problem, **none)
    return Face(
        box=box,
        score=round(det.score, 4),
        landmarks=marks,
        bear_id=prediction.bear_id,
        known=prediction.known,
        confidence=round(prediction.confidence, 4),
        familiarity=round(prediction.familiarity, 4),
        candidates=[Candidate(bear_id=b, score=round(s, 4)) for b, s in prediction.candidates],
    )


def finder_of(bundle: Bundle, networks: dict[str, Network]) -> FaceFinder | MmodFinder:
    """The bundle's face finder: BearID's detector and refiner, or an imported dlib detector
    and its shape predictor."""
    if bundle.detector_kind == "mmod":
        shapes = ShapeModel.load(bundle.path("landmarks.npz"))
        return MmodFinder(networks["face"], shapes, bundle.mmod_spec, bundle.parts)
    return FaceFinder(networks["face"], networks["landmarks"], bundle.detector_spec)


class Pipeline:
    """Photos in, faces with boxes, landmarks and bear IDs out."""

    def __init__(
        self, bundle: Bundle, networks: dict[str, Network], on_stage: Callable[[str, float], None] | None = None
    ):
        self.bundle, self.version = bundle, bundle.version
        self.refine_side, self.chip_spec = bundle.refine_side, bundle.chip_spec
        self.embed_size, self.embed_norm = bundle.embed_input_size, bundle.embed_norm
        self.classifier = bundle.classifier
        self.finder = finder_of(bundle, networks)
        self.embed_net = networks["embed"]
        self.providers = list(networks.get("providers", []))  # type: ignore[arg-type]
        self.on_stage = on_stage

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle,
        threads: int | None = None,
        providers: list[str] | None = None,
        on_stage: Callable[[str, float], None] | None = None,
    ) -> Pipeline:
        return cls(bundle, ort_sessions(bundle, threads, providers), on_stage)

    def _timed(self, stage: str, t0: float) -> float:
        now = time.perf_counter()
        if self.on_stage:
            self.on_stage(stage, now - t0)
        return now

    def identify(self, source: bytes | Path | str) -> Identified:
        """Identify every bear face in one photo (BearIDError if it cannot be read)."""
        [answer] = self.identify_many([source])
        if isinstance(answer, BearIDError):
            raise answer
        return answer

    def identify_many(self, sources: Iterable[bytes | Path | str]) -> list[Identified | BearIDError]:
        """Several photos, with one embedding call for all their faces. A photo that cannot
        be read gets its error in its place; the others are answered."""
        found: list[tuple[int, int, list[Detection], list] | BearIDError] = []
        for source in sources:
            try:
                t = time.perf_counter()
                photo = load_photo(source, max_side=self.refine_side)
                t = self._timed("decode", t)
                faces = self.finder.find(photo)
                t = self._timed("detect", t)
                chips = chip_faces(
                    source, [{k: tuple(v) for k, v in f.landmarks.items()} for f in faces], self.chip_spec, photo
                )
                self._timed("chip", t)
                found.append((photo.width, photo.height, faces, chips))
            except BearIDError as exc:
                found.append(exc)
        rows = self._rows([c for item in found if not isinstance(item, BearIDError) for c in item[3]])
        t = time.perf_counter()
        vectors = self.embed(np.stack(rows)) if rows else np.zeros((0, 1), np.float32)
        t = self._timed("embed", t)
        predictions = iter(self.classifier.predictions(vectors) if rows else [])
        answers: list[Identified | BearIDError] = []
        for item in found:
            if isinstance(item, BearIDError):
                answers.append(item)
                continue
            width, height, faces, chips = item
            out = [
                face_answer(det, next(predictions) if chip.image is not None else None, chip.problem)
                for det, chip in zip(faces, chips)
            ]
            answers.append(
                Identified(image=ImageSize(width=width, height=height), faces=out, model=ModelRef(version=self.version))
            )
        self._timed("classify", t)
        return answers

    def name_faces(self, source: bytes | Path | str, landmarks: list[dict[str, tuple[float, float]]]) -> list:
        """The classifier's Prediction for faces whose landmarks are known already (a labelled
        XML's), with no detection; None where no chip could be cut. The match review asks this."""
        chips = chip_faces(source, landmarks, self.chip_spec)
        vectors = self._embed_chips(chips)
        predictions = iter(self.classifier.predictions(vectors) if len(vectors) else [])
        return [next(predictions) if c.image is not None else None for c in chips]

    def embed_faces(self, source: bytes | Path | str, landmarks: list[dict[str, tuple[float, float]]]) -> np.ndarray:
        """Embeddings of faces whose landmarks are known (the faces that could be chipped)."""
        return self._embed_chips(chip_faces(source, landmarks, self.chip_spec))

    def _rows(self, chips: list) -> list[np.ndarray]:
        """The embedder's inputs: one per chip that could be cut."""
        return [network_input(c.image, self.embed_size, self.embed_norm) for c in chips if c.image is not None]

    def _embed_chips(self, chips: list) -> np.ndarray:
        rows = self._rows(chips)
        return self.embed(np.stack(rows)) if rows else np.zeros((0, 1), np.float32)

    def embed(self, x: np.ndarray, batch: int = 64) -> np.ndarray:
        return np.concatenate([self.embed_net(x[i : i + batch]) for i in range(0, len(x), batch)])
