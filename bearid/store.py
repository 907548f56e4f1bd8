"""Promoted bundles: kept in the BentoML model store as `bearid:<version>`, with a champion
pointer and its history beside the store (`$BEARID_STORE/bearid/champion.json`; BEARID_STORE
defaults to $BENTOML_HOME).

The pointer file is what a running service watches: promote or roll back, and every
worker loads the new champion and swaps it in between requests.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from bearid import bundle as bundles
from bearid.errors import BearIDError
from bearid.fsio import atomic_write_text, dir_mode
from bearid.settings import Settings

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")  # no usage reports from an offline tool

MODEL_NAME = "bearid"


class ModelStore:
    def __init__(self, home: Path | None = None):
        self.home = Path(home) if home else Settings.from_env().store_home
        self.pointer = self.home / "bearid" / "champion.json"

    # -- the BentoML model store ----------------------------------------------------------
    def _models(self):
        from bentoml._internal.models.model import ModelStore as BentoStore

        return BentoStore(self.home / "models")

    def add(self, folder: Path) -> str:
        """Store a verified bundle as bearid:<version> (nothing happens if it is there)."""
        import bentoml

        manifest = bundles.verify(folder)
        version = manifest["version"]
        store = self._models()
        try:
            store.get(f"{MODEL_NAME}:{version}")
            return version
        except bentoml.exceptions.NotFound:
            pass
        with bentoml.models.create(
            f"{MODEL_NAME}:{version}",
            metadata={"lineage": manifest.get("lineage", {}).get("path")},
            labels={"format": str(bundles.FORMAT)},
            _model_store=store,
        ) as model:
            bundles.copy(Path(folder), Path(model.path))
        # BentoML builds each model in a private temp folder (0700) and keeps its mode: give it
        # the mode the umask gives, so a pod running as another user can read the store.
        self.path_of(version).chmod(dir_mode())
        return version

    def path_of(self, version: str) -> Path:
        import bentoml

        try:
            return Path(self._models().get(f"{MODEL_NAME}:{version}").path)
        except bentoml.exceptions.NotFound:
            raise BearIDError(f"{MODEL_NAME}:{version} is not in the model store at {self.home / 'models'}") from None

    def versions(self) -> list[str]:
        return (
            [str(m.tag.version) for m in self._models().list(MODEL_NAME)]
            if (self.home / "models" / MODEL_NAME).exists()
            else []
        )

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
