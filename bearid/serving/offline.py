"""The service's answers without the service: `bearid score --bundle B` or `--champion` on a
field laptop with no network. The same `Pipeline`, in this process, behind the two client
calls `bearid.score` makes (`model`, `identify_many`), so the journal, XML and CSV are the
ones a scoring run through the service writes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from bearid.errors import BearIDError, require_in_process
from bearid.serving import bundle as bundles
from bearid.serving.pipeline import Pipeline
from bearid.serving.runtime import ort_threads
from bearid.serving.schema import Identified, ModelInfo

PHOTOS_PER_CALL = 8  # photos whose faces share one embedding call


class InProcess:
    def __init__(self, folder: Path):
        require_in_process()
        self.folder = Path(folder)
        self.threads = ort_threads(1)
        try:
            self.pipeline = Pipeline.from_bundle(bundles.load(self.folder), self.threads)
        except ImportError as exc:  # what the bundle's parts import: the [serve] extra's
            what = "a model run in this process (--bundle, --champion)"
            raise BearIDError(f"{what} needs {exc.name or exc}: pip install 'bearid[serve]'") from None

    @classmethod
    def champion(cls, store=None) -> InProcess:
        """The model store's champion (BEARID_STORE), as the service would serve it."""
        from bearid.serving.store import ModelStore

        store = store or ModelStore()
        version = store.champion()
        if version is None:
            raise BearIDError(f"no champion in the model store at {store.home} (run bearid promote, or give --bundle)")
        return cls(store.path_of(version))

    @classmethod
    def chosen(cls, bundle: Path | None, champion: bool) -> InProcess | None:
        """What `--bundle B` or `--champion` asks for (None: neither), for every verb that runs
        a model in this process (score, label, book)."""
        if bundle is not None and champion:
            raise BearIDError("give --bundle or --champion, not both")
        if bundle is not None:
            return cls(bundle)
        return cls.champion() if champion else None

    def model(self) -> ModelInfo:
        from bearid.serving.http import summary_of

        return ModelInfo.model_validate(summary_of(self.pipeline, str(self.folder), self.threads))

    def identify_many(
        self, photos: Iterable, concurrency: int = 4
    ) -> Iterator[tuple[object, Identified | BearIDError]]:
        """(photo, answer or error) for every photo, in order (`concurrency` is the client's
        argument; here ONNX Runtime's threads do the parallel work)."""
        photos = list(photos)
        for start in range(0, len(photos), PHOTOS_PER_CALL):
            chunk = photos[start : start + PHOTOS_PER_CALL]
            for photo, answer in zip(chunk, self.pipeline.identify_many(chunk)):
                if isinstance(answer, BearIDError):
                    yield photo, BearIDError(f"{photo}: {answer}")
                else:
                    yield photo, answer
