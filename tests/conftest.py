"""Shared fixtures: the original BearID files, and small synthetic worlds made once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bearid.synth import WorldConfig, synthesize

FIXTURES = Path(__file__).parent / "fixtures" / "bearid"

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
