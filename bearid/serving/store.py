"""Promoted bundles: kept in BentoML's model store as `bearid:<version>` (`bentoml models list`
shows them, and a bento built by `bearid bento` carries one), with a champion pointer and its
history beside it. The store is one folder, BEARID_STORE (default: BentoML's home):
`models/bearid/<version>/` and `bearid/champion.json`.

Bundles are written with BentoML's public `bentoml.models` API, which writes to this process's
BentoML home; they are read by the folder layout, so a service can follow a store that is
mounted read-only, or while BentoML serves a bento from the bento's own store. The pointer
file is what a running service watches: promote or roll back, and every worker loads the new
champion and swaps it in between requests.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from bearid.errors import BearIDError
from bearid.fsio import atomic_write_text, dir_mode
from bearid.serving import bundle as bundles
from bearid.settings import Settings

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")  # no usage reports from an offline tool

MODEL_NAME = "bearid"


class ModelStore:
    def __init__(self, home: Path | None = None):
        """`home`: where the champion pointer lives (default BEARID_STORE, else BentoML's home)."""
        self.home = Path(home) if home else Settings.from_env().store_home
        self.pointer = self.home / "bearid" / "champion.json"

    # -- the BentoML model store ----------------------------------------------------------
    def add(self, folder: Path) -> str:
        """Store a verified bundle as bearid:<version> (nothing happens if it is there)."""
        import bentoml

        manifest = bundles.verify(folder)
        version = manifest["version"]
        if version in self.versions():
            return version
        if (self.home / "models").resolve() != models_home().resolve():
            raise BearIDError(
                f"BentoML writes models to {models_home()}, not to the store at {self.home}: "
                f"set BENTOML_HOME={self.home} to promote into it"
            )
        with bentoml.models.create(
            f"{MODEL_NAME}:{version}",
            metadata={"lineage": manifest.get("lineage", {}).get("path")},
            labels={"format": str(bundles.FORMAT)},
        ) as model:
            bundles.copy(Path(folder), Path(model.path))
        # BentoML builds each model in a private temp folder (0700) and keeps its mode: give it
        # the mode the umask gives, so a pod running as another user can read the store.
        self.path_of(version).chmod(dir_mode())
        return version

    def path_of(self, version: str) -> Path:
        folder = self.home / "models" / MODEL_NAME / version
        if not (folder / "model.yaml").is_file():
            raise BearIDError(f"{MODEL_NAME}:{version} is not in the model store at {self.home / 'models'}")
        return folder

    def versions(self) -> list[str]:
        """Stored versions, oldest first."""
        root = self.home / "models" / MODEL_NAME
        found = [d for d in root.iterdir() if (d / "model.yaml").is_file()] if root.is_dir() else []
        return [d.name for d in sorted(found, key=lambda d: (d.stat().st_mtime, d.name))]

    # -- champion and history -------------------------------------------------------------
    # `stack` holds the promoted champions, oldest first: promote pushes, rollback pops.
    def state(self) -> dict:
        if not self.pointer.exists():
            return {"champion": None, "stack": [], "history": []}
        try:
            state = json.loads(self.pointer.read_text())
            if not isinstance(state, dict) or not {"champion", "stack", "history"} <= set(state):
                raise ValueError("not a champion record")
        except (OSError, ValueError) as exc:
            raise BearIDError(
                f"{self.pointer}: the champion pointer is damaged ({exc}); restore it from a backup, "
                "or promote a bundle again with --force"
            ) from None
        return state

    def champion(self) -> str | None:
        return self.state()["champion"]

    def champion_path(self) -> Path | None:
        version = self.champion()
        return self.path_of(version) if version else None

    def _write(self, state: dict, version: str, action: str, detail: dict | None) -> None:
        state["history"].append(
            {
                "action": action,
                "version": version,
                "previous": state["champion"],
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                **(detail or {}),
            }
        )
        state["champion"] = version
        atomic_write_text(self.pointer, json.dumps(state, indent=1))

    def promote(self, version: str, detail: dict | None = None) -> None:
        state = self.state()
        if state["stack"][-1:] != [version]:
            state["stack"].append(version)
        self._write(state, version, "promote", detail)

    def rollback(self) -> str:
        """Make the champion before the current one champion again."""
        state = self.state()
        if len(state["stack"]) < 2:
            raise BearIDError(
                "there is no earlier champion to roll back to" if state["stack"] else "nothing has been promoted yet"
            )
        gone = state["stack"].pop()
        self._write(state, state["stack"][-1], "rollback", {"from": gone})
        return state["champion"]


def models_home() -> Path:
    """BentoML's model store, where this process writes (its BENTOML_HOME)."""
    return Settings.from_env().bentoml_root / "models"
