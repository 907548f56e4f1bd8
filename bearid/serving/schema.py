"""The service's answers and errors as pydantic models: the OpenAPI document's schemas, what
the service returns and what `bearid.client` hands back (base install: pydantic only).

Answers take fields they do not know and keep them (`model_extra`, and again in
`model_dump`): a client of one release reads the answers of a service a release newer,
which may add a field, rather than refusing them. The fields they do know are checked.

docs/serving.md, "A request and its answer", shows one of each."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


def _absent(value: object) -> bool:
    return value is None  # left out of the JSON, rather than sent as null


class _Record(BaseModel):
    """An answer, or a part of one: unknown fields are kept (a newer service may add some)."""

    model_config = ConfigDict(extra="allow")


class Box(_Record):
    """In the photo's displayed pixels (EXIF orientation applied)."""

    left: float
    top: float
    width: float
    height: float


class Candidate(_Record):
    bear_id: str
    score: float = Field(description="the classifier's probability for this bear")


class Face(_Record):
    box: Box
    score: float = Field(description="the face detector's confidence")
    landmarks: dict[str, tuple[float, float]] = Field(
        description="x, y of each landmark the bundle's face stage places (eyes, ears, nose)"
    )
    bear_id: str | None = Field(description="null: an unknown bear (or no chip could be cut)")
    known: bool = Field(description="whether the open-set test took the face for a bear the model knows")
    confidence: float
    familiarity: float = Field(description="the open-set score, against the bundle's threshold")
    candidates: list[Candidate] = Field(default_factory=list, description="the most likely bears, best first")
    problem: str | None = Field(None, exclude_if=_absent, description="why the face has no ID (e.g. too small to chip)")


class ImageSize(_Record):
    width: int
    height: int


class ModelRef(_Record):
    version: str


class Identified(_Record):
    """`POST /identify`: every bear face of one photo."""

    image: ImageSize
    faces: list[Face]
    model: ModelRef


class Refused(_Record):
    """Every error the service answers with: what went wrong, and a code to branch on."""

    error: str
    code: str = Field(description="bad_image, too_many_pixels, too_large, no_model, unauthorized, ...")


class BatchItem(_Record):
    """One photo of `POST /identify_batch`: its answer, or its error with the status it would have had alone."""

    image: ImageSize | None = Field(None, exclude_if=_absent)  # an answer's fields, or an error's: not both
    faces: list[Face] | None = Field(None, exclude_if=_absent)
    model: ModelRef | None = Field(None, exclude_if=_absent)
    error: str | None = Field(None, exclude_if=_absent)
    code: str | None = Field(None, exclude_if=_absent)
    status: int | None = Field(None, exclude_if=_absent)

    @property
    def refused(self) -> bool:
        return self.error is not None

    def answer(self) -> Identified:
        """This photo's answer as `POST /identify` gives it (with any fields a newer service adds)."""
        return Identified(image=self.image, faces=self.faces, model=self.model, **(self.model_extra or {}))  # type: ignore[arg-type]


class Batch(_Record):
    """`POST /identify_batch`: one item per photo, in the order sent."""

    results: list[BatchItem]


class ModelInfo(BaseModel):
    """`GET /model`: the bundle served, and its manifest (less the per-file records)."""

    model_config = ConfigDict(extra="allow")

    loaded: bool
    error: str | None = Field(None, description="why no model is loaded")
    version: str | None = None
    providers: list[str] | None = Field(None, description="ONNX Runtime's execution providers")
    threads: int | None = None
    source: str | None = Field(None, description="the bundle folder, or the model store's champion pointer")
    ids: list[str] | None = Field(None, description="the bears the model knows")


class Reloaded(ModelInfo):
    """`POST /admin/reload`: whether a new champion was swapped in, and what is served now."""

    swapped: bool


# One answer, for the OpenAPI document: a real one's shape (the answer docs/serving.md shows):
# the five landmarks every bundle places, a bundle version (12 hex digits of its files'
# hashes), familiarity as the default open-set score gives it (minus the relative
# Mahalanobis distance: above the threshold for a known bear), the five best candidates.
EXAMPLE = {
    "image": {"width": 708, "height": 472},
    "faces": [
        {
            "box": {"left": 599.1, "top": 132.7, "width": 49.6, "height": 47.3},
            "score": 0.1548,
            "landmarks": {
                "leye": [640.8, 153.2],
                "reye": [618.3, 150.1],
                "nose": [628.9, 167.4],
                "lear": [646.3, 137.7],
                "rear": [608.8, 133.3],
            },
            "bear_id": "bf_511",
            "known": True,
            "confidence": 0.5733,
            "familiarity": 3.846,
            "candidates": [
                {"bear_id": "bf_511", "score": 0.5733},
                {"bear_id": "bf_976", "score": 0.2667},
                {"bear_id": "bf_881", "score": 0.0958},
                {"bear_id": "bf_726", "score": 0.0449},
                {"bear_id": "bf_940", "score": 0.0193},
            ],
        }
    ],
    "model": {"version": "92b03156e5c4"},
}
