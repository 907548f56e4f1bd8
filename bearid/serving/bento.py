"""A bento that carries its model: `bearid bento` runs `bentoml build` with the service
declaring one promoted bundle (BEARID_MODEL) and its worker count (BEARID_WORKERS), so the
bento holds the bundle and `bentoml containerize` makes an image that serves on its own
(docs/serving.md, "A bento that carries its model"). It builds from the checkout it runs in
(pyproject.toml's [tool.bentoml.build]), else, for a pip install, from the installed package's
files laid out as a checkout in a temporary folder with the same build settings (BUILD)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bearid.errors import BearIDError
from bearid.serving.store import MODEL_NAME, ModelStore

SOURCE = Path(__file__).resolve().parents[2]  # a checkout: pyproject.toml's [tool.bentoml.build]

# pyproject.toml's [tool.bentoml.build] (tests check they agree): what a pip install builds with.
BUILD = {
    "name": "bearid_service",
    "service": "service.service:BearID",
    "labels": {"project": "bearid"},
    "include": ["service/*.py", "service/requirements.txt", "bearid/**/*.py", "bearid/label/static/*"],
    "exclude": ["tests/", "build/", "bench/", "training/", "exporters/"],
}
# Installed, these parts of BearID live inside the package; the bento carries none of them.
_NOT_SERVED = ("training", "exporters", "service")


def is_checkout(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "service" / "service.py").is_file()


@contextlib.contextmanager
def build_context(checkout: Path = SOURCE) -> Iterator[Path]:
    """The folder `bentoml build` runs on: `checkout` when it is one, else a temporary folder
    laid out as one from the installed package (bearid/, and bearid.service as service/),
    with a bentofile.yaml holding BUILD; removed afterwards."""
    if is_checkout(checkout):
        yield checkout
        return
    package, service = (importlib.util.find_spec(name) for name in ("bearid", "bearid.service"))
    if package is None or service is None:
        raise BearIDError("bearid bento needs the bearid package and its service (bearid.service) installed")
    package_dir = Path(package.submodule_search_locations[0])
    service_dir = Path(service.submodule_search_locations[0])
    if not (service_dir / "service.py").is_file() or not (service_dir / "requirements.txt").is_file():
        raise BearIDError(f"{service_dir}: the installed service lacks service.py or requirements.txt")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    with tempfile.TemporaryDirectory(prefix="bearid-bento-") as scratch:
        root = Path(scratch)

        def ignore(folder: str, names: list[str]) -> set[str]:
            inside = Path(folder).resolve() == package_dir.resolve()
            return set(skip(folder, names)) | ({n for n in names if n in _NOT_SERVED} if inside else set())

        shutil.copytree(package_dir, root / "bearid", ignore=ignore)
        (root / "service").mkdir()
        for f in [*service_dir.glob("*.py"), service_dir / "requirements.txt"]:
            shutil.copy2(f, root / "service" / f.name)
        (root / "bentofile.yaml").write_text(json.dumps(BUILD, indent=1))  # JSON is YAML
        yield root


def build(version: str | None = None, workers: int = 1, store: ModelStore | None = None) -> str:
    """Build the bento into BentoML's bento store; its tag (`bearid_service:<version>`).
    `version`: the bundle it carries (default: the champion)."""
    store = store or ModelStore()
    version = version or store.champion()
    if version is None:
        raise BearIDError("nothing has been promoted yet: give --version, or run bearid promote first")
    store.path_of(version)  # a version the store lacks is refused here, before BentoML asks BentoCloud
    env = dict(
        os.environ,
        BEARID_MODEL=f"{MODEL_NAME}:{version}",
        BEARID_WORKERS=str(workers),
        BENTOML_HOME=str(store.home),  # BentoML copies the model from here into the bento
        BENTOML_DO_NOT_TRACK="True",
    )
    with build_context() as source:
        out = _bentoml(["build", "--output", "tag", str(source)], env)
    return out.strip().splitlines()[-1].removeprefix("__tag__:")


def export(tag: str, path: Path) -> Path:
    """Write the bento, with the model it carries, as one archive (`bentoml export`): what a
    machine with Docker takes (`bentoml import`, then `bentoml containerize`)."""
    path = Path(path)
    if path.is_dir():
        raise BearIDError(f"{path} is a folder; give the archive's file name (e.g. bearid.bento)")
    env = dict(os.environ, BENTOML_HOME=str(ModelStore().home), BENTOML_DO_NOT_TRACK="True")
    _bentoml(["export", tag, str(path)], env)
    return path


def _bentoml(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "bentoml", *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise BearIDError(f"bentoml {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout
