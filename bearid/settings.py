"""BearID's environment variables, read in this one place (docs/deployment.md, "Settings").

They are read when a `Settings` is made (`Settings.from_env()`), never at import, so a test
or a worker sees the environment it runs in. A value the variable cannot take is refused,
naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from bearid.errors import BearIDError

_KINDS = {int: "a whole number", float: "a number", Path: "a path", str: "text"}


def _var(name: str, parse: Callable[[str], object], default: object, doc: str):
    return field(default=default, metadata={"env": name, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    store: Path | None = _var(
        "BEARID_STORE",
        Path,
        None,
        "The model store a service follows: models/bearid/ and bearid/champion.json. Default: BentoML's home.",
    )
    bentoml_home: Path | None = _var(
        "BENTOML_HOME", Path, None, "BentoML's home (default ~/bentoml): where bearid promote writes the store."
    )
    bundle: Path | None = _var(
        "BEARID_BUNDLE", Path, None, "The service serves this bundle folder instead of the store's champion."
    )
    model: str = _var(
        "BEARID_MODEL",
        str,
        "bearid:latest",
        "The model the service declares: what `bearid bento` packs, and what it serves with no champion.",
    )
    workers: int = _var("BEARID_WORKERS", int, 1, "Service worker processes.")
    watch_seconds: float = _var(
        "BEARID_WATCH_SECONDS", float, 2.0, "How often a service worker looks for a new champion."
    )
    ort_threads: int = _var(
        "BEARID_ORT_THREADS", int, 0, "ONNX Runtime threads per worker (0: the CPU share divided among the workers)."
    )
    max_upload_mb: int = _var("BEARID_MAX_UPLOAD_MB", int, 40, "The largest photo the service takes, in MiB.")
    admin_token: str | None = _var(
        "BEARID_ADMIN_TOKEN", str, None, "Bearer token of POST /admin/reload; unset, the endpoint is closed."
    )
    loader_workers: int | None = _var(
        "BEARID_LOADER_WORKERS",
        int,
        None,
        "Embed training's loader processes. Default: half the CPUs, 1 to 4 (on a GPU: all CPUs but one, up to 8).",
    )
    device: str = _var(
        "BEARID_DEVICE",
        str,
        "auto",
        "Where training runs: auto (a CUDA GPU when torch sees one, else the CPU), cpu or cuda.",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            name, raw = f.metadata["env"], env.get(f.metadata["env"])
            if raw:
                try:
                    values[f.name] = f.metadata["parse"](raw)
                except ValueError:
                    raise BearIDError(f"{name}={raw!r} is not {_KINDS[f.metadata['parse']]}") from None
        return cls(**values)

    @property
    def bentoml_root(self) -> Path:
        return self.bentoml_home or Path.home() / "bentoml"

    @property
    def store_home(self) -> Path:
        """The model store's folder."""
        return self.store or self.bentoml_root

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def documented() -> list[tuple[str, str, object]]:
    """(variable, what it does, default) of every setting, for the docs' table."""
    return [(f.metadata["env"], f.metadata["doc"], f.default) for f in fields(Settings)]
