"""Shared fixtures: the original BearID files, and small synthetic worlds made once per run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from bearid.data.split import SplitConfig, split
from bearid.metadata import read_faces
from bearid.synth import WorldConfig, synthesize
from bearid.training.config import ChipConfig, ClassifyConfig, EmbedConfig, FaceConfig

FIXTURES = Path(__file__).parent / "fixtures" / "bearid"


def pytest_configure(config) -> None:
    """BentoML keeps one model store per process ($BENTOML_HOME): the tests' is their own, never
    ~/bentoml. The servers they start inherit it."""
    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="bearid-tests-bentoml-")


def model_store(folder: Path):
    """A model store with a champion pointer of its own in `folder`, whose models are the tests'
    BentoML store (BentoML writes to one per process): what `bearid promote` makes of
    BENTOML_HOME=folder, without a process per test."""
    from bearid.serving.store import ModelStore, models_home

    folder.mkdir(parents=True, exist_ok=True)
    models_home().mkdir(parents=True, exist_ok=True)
    (folder / "models").symlink_to(models_home(), target_is_directory=True)
    return ModelStore(folder)


# Small photos keep the suite fast; every kind of photo and defect is still there.
SMALL = dict(min_side=640, max_side=960)


@pytest.fixture(scope="session")
def gold_faces() -> Path:
    return FIXTURES / "bearid_gold_faces.xml"


@pytest.fixture(scope="session")
def image_list() -> Path:
    return FIXTURES / "bearid_image_list.xml"


@pytest.fixture(scope="session")
def messy_world(tmp_path_factory) -> Path:
    """A messy world of 10 bears and 120 photos (about 5 s on one core)."""
    root = tmp_path_factory.mktemp("world") / "messy"
    synthesize(WorldConfig(bears=10, photos=120, seed=11, **SMALL), root, messy=True, workers=2)
    return root


# A tiny trained pipeline, shared by the training and the serving tests.
TINY_FACE = FaceConfig(steps=250, refiner_steps=150, batch=8, score_threshold=0.15)  # finds most faces
TINY_CHIP = ChipConfig(source="truth")  # chips independent of the small detector
TINY_EMBED = EmbedConfig(steps=60, p=6, k=3)


@pytest.fixture(scope="session")
def splits(tmp_path_factory) -> Path:
    """A 6-bear world of 70 small photos, split by image."""
    root = tmp_path_factory.mktemp("tiny") / "world"
    synthesize(WorldConfig(bears=6, photos=70, seed=4, min_side=640, max_side=800), root, workers=2)
    out = root.parent / "splits"
    split(root, out, SplitConfig(by="image", min_images=3), read_faces(root / "_truth/faces.xml"))
    return out


@pytest.fixture(scope="session")
def trained(splits, tmp_path_factory) -> tuple[Path, object]:
    from bearid.training.config import Sweep
    from bearid.training.train import train

    results = tmp_path_factory.mktemp("results")
    report = train(
        Sweep([TINY_FACE], [TINY_CHIP], [TINY_EMBED], [ClassifyConfig()]), splits, results, log=lambda m: None
    )
    return results, report


@pytest.fixture(scope="session")
def bundle_dir(trained, tmp_path_factory) -> Path:
    """The tiny pipeline exported as a bundle."""
    from bearid.exporters.export import export

    results, report = trained
    out = tmp_path_factory.mktemp("bundles") / "tiny"
    export(report.branches[0][-1], out, parity_photos=4, log=lambda m: None)
    return out


@pytest.fixture(scope="session")
def pipeline(bundle_dir):
    """The bundle's ONNX Runtime pipeline, in process."""
    from bearid.serving import bundle as bundles
    from bearid.serving.pipeline import Pipeline

    return Pipeline.from_bundle(bundles.load(bundle_dir), threads=1)
