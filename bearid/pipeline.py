"""One inference pipeline: decode → detect → chip → embed → classify.

The service, `bearid promote`'s gate evaluation and the export parity check all answer
photos here. The three networks are plain callables (NumPy in, NumPy out): ONNX Runtime
sessions from a bundle in production (`Pipeline.from_bundle`), PyTorch modules while
exporting, so everything around them is this one implementation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bearid.bundle import Bundle
from bearid.chips import ChipSpec, chip_faces, embed_input
from bearid.detection import Detection, DetectorSpec
from bearid.errors import BearIDError
from bearid.facefinder import FaceFinder, Network
from bearid.imageio import load_photo

STAGES = ("decode", "detect", "chip", "embed", "classify")


@dataclass
class Face:
    box: dict[str, float]  # left, top, width, height in the photo's displayed pixels
    score: float
    landmarks: dict[str, list[float]]
    bear_id: str | None  # None: an unknown bear (or no chip could be cut)
    known: bool
    confidence: float
    familiarity: float
    candidates: list[dict] = field(default_factory=list)
    problem: str | None = None  # why the face has no ID (e.g. too small to chip)


@dataclass
class Answer:
    width: int
    height: int
    faces: list[Face]
    version: str

    def as_json(self) -> dict:
        """The body of a `POST /identify` answer (ARCHITECTURE.md §7)."""
        faces = []
        for f in self.faces:
            d = asdict(f)
            if d["problem"] is None:
                del d["problem"]
            faces.append(d)
        return {"image": {"width": self.width, "height": self.height}, "faces": faces, "model": {"version": self.version}}


def cpu_share() -> int:
    """CPUs this process may use: the cgroup quota (a container's CPU limit) if set, else
    the CPUs it is allowed to run on."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, int(int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, len(os.sched_getaffinity(0)))


def ort_threads(workers: int = 1) -> int:
    """ONNX Runtime intra-op threads per worker: BEARID_ORT_THREADS, else the CPU share
    divided among the workers (more threads than cores only thrash)."""
    if env := os.environ.get("BEARID_ORT_THREADS"):
        return max(1, int(env))
    return max(1, cpu_share() // max(1, workers))


def ort_sessions(bundle: Bundle, threads: int | None = None, providers: list[str] | None = None) -> dict[str, Network]:
    """One ONNX Runtime session per network, CUDA first where the runtime has it."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    chosen = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or ort_threads()
    options.inter_op_num_threads = 1
    out: dict[str, Network] = {}
    for name in ("face", "landmarks", "embed"):
        session = ort.InferenceSession(str(bundle.path(f"{name}.onnx")), options, providers=chosen)
        input_name = session.get_inputs()[0].name

        def run(x: np.ndarray, session=session, input_name=input_name) -> np.ndarray:
            return session.run(None, {input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

        out[name] = run
    out["providers"] = session.get_providers()  # type: ignore[assignment]
    return out


class Pipeline:
    """Photos in, faces with boxes, landmarks and bear IDs out."""

    def __init__(self, bundle: Bundle, networks: dict[str, Network],
                 on_stage: Callable[[str, float], None] | None = None):
        m = bundle.manifest
        self.bundle, self.version = bundle, bundle.version
        self.spec = DetectorSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in m["detector"].items()})
        self.refine_side = int(m["decode"]["refine_side"])
        chip = m["chip"]
        self.chip_spec = ChipSpec(size=chip["size"], points=tuple(chip["points"]), padding=chip["padding"],
                                  template={k: tuple(v) for k, v in chip["template"].items()})
        self.embed_size = int(m["embed"]["input_size"])
        self.classifier = bundle.classifier
        self.finder = FaceFinder(networks["face"], networks["landmarks"], self.spec)
        self.embed_net = networks["embed"]
        self.providers = list(networks.get("providers", []))  # type: ignore[arg-type]
        self.on_stage = on_stage

    @classmethod
    def from_bundle(cls, bundle: Bundle, threads: int | None = None, providers: list[str] | None = None,
                    on_stage: Callable[[str, float], None] | None = None) -> "Pipeline":
        return cls(bundle, ort_sessions(bundle, threads, providers), on_stage)

    def _timed(self, stage: str, t0: float) -> float:
        now = time.perf_counter()
        if self.on_stage:
            self.on_stage(stage, now - t0)
        return now

    def identify(self, source: bytes | Path | str) -> Answer:
        """Identify every bear face in one photo (BearIDError if it cannot be read)."""
        [answer] = self.identify_many([source])
        if isinstance(answer, BearIDError):
            raise answer
        return answer

    def identify_many(self, sources: Iterable[bytes | Path | str]) -> list[Answer | BearIDError]:
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
                chips = chip_faces(source, [{k: tuple(v) for k, v in f.landmarks.items()} for f in faces], self.chip_spec, photo)
                self._timed("chip", t)
                found.append((photo.width, photo.height, faces, chips))
            except BearIDError as exc:
                found.append(exc)
        rows = [embed_input(c.image, self.embed_size) for item in found if not isinstance(item, BearIDError)
                for c in item[3] if c.image is not None]
        t = time.perf_counter()
        vectors = self.embed(np.stack(rows)) if rows else np.zeros((0, 1), np.float32)
        t = self._timed("embed", t)
        predictions = iter(self.classifier.predict(vectors) if rows else [])  # type: ignore[attr-defined]
        answers: list[Answer | BearIDError] = []
        for item in found:
            if isinstance(item, BearIDError):
                answers.append(item)
                continue
            width, height, faces, chips = item
            out = []
            for det, chip in zip(faces, chips):
                box = {"left": round(det.left, 1), "top": round(det.top, 1), "width": round(det.width, 1), "height": round(det.height, 1)}
                marks = {n: [round(x, 1), round(y, 1)] for n, (x, y) in det.landmarks.items()}
                if chip.image is None:
                    out.append(Face(box, round(det.score, 4), marks, None, False, 0.0, 0.0, [], chip.problem))
                    continue
                p = next(predictions)
                out.append(Face(box, round(det.score, 4), marks, p.bear_id, p.known, round(p.confidence, 4), round(p.familiarity, 4),
                                [{"bear_id": b, "score": round(s, 4)} for b, s in p.candidates]))
            answers.append(Answer(width, height, out, self.version))
        self._timed("classify", t)
        return answers

    def embed(self, x: np.ndarray, batch: int = 64) -> np.ndarray:
        return np.concatenate([self.embed_net(x[i : i + batch]) for i in range(0, len(x), batch)])
