"""A bento that carries its model: `bearid bento` runs `bentoml build` on the checkout with the
service declaring one promoted bundle (BEARID_MODEL) and its worker count (BEARID_WORKERS), so
the bento holds the bundle and `bentoml containerize` makes an image that serves on its own
(docs/serving.md, "A bento that carries its model")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bearid.errors import BearIDError
from bearid.serving.store import MODEL_NAME, ModelStore

SOURCE = Path(__file__).resolve().parents[1]  # the checkout: pyproject.toml's [tool.bentoml.build]


def build(version: str | None = None, workers: int = 1, store: ModelStore | None = None) -> str:
    """Build the bento into BentoML's bento store; its tag (`bearid_service:<version>`).
    `version`: the bundle it carries (default: the champion)."""
    store = store or ModelStore()
    version = version or store.champion()
    if version is None:
        raise BearIDError("nothing has been promoted yet: give --version, or run bearid promote first")
    store.path_of(version)  # a version the store lacks is refused here, before BentoML asks BentoCloud
    if not (SOURCE / "pyproject.toml").is_file() or not (SOURCE / "service" / "service.py").is_file():
        raise BearIDError(f"bearid bento builds from a BearID checkout (pyproject.toml and service/ under {SOURCE})")
    env = dict(
        os.environ,
        BEARID_MODEL=f"{MODEL_NAME}:{version}",
        BEARID_WORKERS=str(workers),
        BENTOML_HOME=str(store.home),  # BentoML copies the model from here into the bento
        BENTOML_DO_NOT_TRACK="True",
    )
    out = _bentoml(["build", "--output", "tag", str(SOURCE)], env)
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
