"""Shared fixtures: the original BearID files, and small synthetic worlds made once per run."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from bearid.data.split import SplitConfig, split
from bearid.metadata import read_faces
from bearid.synth import WorldConfig, synthesize
from bearid.training.config import ChipConfig, ClassifyConfig, EmbedConfig, FaceConfig

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "bearid"


def pytest_configure(config) -> None:
    """BentoML keeps one model store per process ($BENTOML_HOME): the tests' is their own, never
    ~/bentoml. The servers they start inherit it."""
    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="bearid-tests-bentoml-")
    config.pluginmanager.register(FixtureTimes(), "bearid-fixture-times")


class FixtureTimes:
    """Every fixture's setup time and the suite's wall time, printed after the tests. A plugin
    rather than a conftest hook: pytest asks a conftest below the rootdir about function-scoped
    fixtures only, and the session fixtures are the costly ones."""

    def __init__(self) -> None:
        self.start, self.seconds = time.monotonic(), {}

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        t0 = time.monotonic()
        try:
            return (yield)
        finally:
            name = f"{fixturedef.argname} ({fixturedef.scope})"
            self.seconds[name] = max(self.seconds.get(name, 0.0), time.monotonic() - t0)

    def pytest_terminal_summary(self, terminalreporter, config) -> None:
        """A session fixture's setup counts toward the timeout of the first test that asks for it."""
        terminalreporter.section("suite time and slowest fixture setups")
        terminalreporter.write_line(f"suite wall time {time.monotonic() - self.start:.1f} s")
        cache = config.stash.get(TINY, (None,))[0]
        if cache is not None:
            built = f"made in {cache.built_seconds:.1f} s" if cache.built_seconds else "reused"
            terminalreporter.write_line(f"the tiny trained pipeline (before the tests, no timeout): {built}")
        timeout = float(config.getini("timeout") or 0)
        for name, seconds in sorted(self.seconds.items(), key=lambda kv: -kv[1])[:8]:
            share = f" ({seconds / timeout:.0%} of the {timeout:.0f} s timeout)" if timeout else ""
            terminalreporter.write_line(f"{seconds:8.1f} s  {name}{share}")


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


def tiny_sweep():
    from bearid.training.config import Sweep

    return Sweep([TINY_FACE], [TINY_CHIP], [TINY_EMBED], [ClassifyConfig()])


TINY = pytest.StashKey[tuple]()
TINY_BUILD_SECONDS = 1800  # the build's own bound (it runs before the tests, outside their timeouts)


def _build_tiny(folder: Path) -> None:
    from bearid.exporters.export import export
    from bearid.training.train import train

    world = folder / "world"
    synthesize(WorldConfig(bears=6, photos=70, seed=4, min_side=640, max_side=800), world, workers=2)
    split(world, folder / "splits", SplitConfig(by="image", min_images=3), read_faces(world / "_truth/faces.xml"))
    report = train(tiny_sweep(), folder / "splits", folder / "results", log=lambda m: None)
    export(report.branches[0][-1], folder / "bundle", parity_photos=4, log=lambda m: None)


def _open_tiny():
    """The tiny pipeline's cache entry (tinycache), made if need be, bounded by TINY_BUILD_SECONDS."""
    import faulthandler

    from tinycache import TinyCache

    sources = [ROOT / "bearid", ROOT / "training", ROOT / "exporters", Path(__file__), ROOT / "pyproject.toml"]
    never_run = tuple(
        ROOT / p
        for p in ("bearid/label", "bearid/cli", "bearid/client.py", "training/cli", "bearid/video", "bearid/labels")
    )
    cache = TinyCache(ROOT / "build" / "test-cache", key_of=sources, ignore=never_run)
    faulthandler.dump_traceback_later(TINY_BUILD_SECONDS, exit=True)
    try:
        return cache, cache.open(_build_tiny)
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(session, config, items) -> None:
    """Make the tiny pipeline before the first test, when any test needs it: its build then
    counts toward no test's timeout, however busy the machine."""
    if not config.option.collectonly and any("tiny" in item.fixturenames for item in items):
        config.stash[TINY] = _open_tiny()


@pytest.fixture(scope="session")
def tiny(request) -> Path:
    """The folder that holds the tiny world, its splits, the pipeline trained on them and its
    bundle: made once per code version (tinycache) and shared read-only by the tests."""
    cache, folder = request.config.stash.get(TINY, None) or _open_tiny()
    yield folder
    cache.close(folder)


@pytest.fixture(scope="session")
def splits(tiny) -> Path:
    """A 6-bear world of 70 small photos, split by image."""
    return tiny / "splits"


@pytest.fixture(scope="session")
def trained(tiny) -> tuple[Path, object]:
    """The tiny pipeline's results tree and the report of training it (every stage reused:
    the tree was trained when the cache entry was made)."""
    from bearid.training.train import train

    results = tiny / "results"
    return results, train(tiny_sweep(), tiny / "splits", results, log=lambda m: None)


@pytest.fixture(scope="session")
def bundle_dir(tiny) -> Path:
    """The tiny pipeline exported as a bundle."""
    return tiny / "bundle"


@pytest.fixture(scope="session")
def pipeline(bundle_dir):
    """The bundle's ONNX Runtime pipeline, in process."""
    from bearid.serving import bundle as bundles
    from bearid.serving.pipeline import Pipeline

    return Pipeline.from_bundle(bundles.load(bundle_dir), threads=1)
