"""BearID's environment variables, read in this one place (docs/deployment.md, "Settings").

They are read with pydantic-settings when a `Settings` is made (`Settings.from_env()`),
never at import, so a test or a worker sees the environment it runs in. Every variable is
typed and bounded here, once: a value the variable cannot take is one BearIDError naming
the variable and the value (exit status 2 from the CLI). An empty variable counts as unset.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from bearid.errors import BearIDError

# The environment `from_env` was given (None: the process's own).
_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("bearid_environ", default=None)


def _var(name: str, default: object, doc: str, **bounds: Any):
    return Field(default=default, validation_alias=name, description=doc, json_schema_extra={"env": name}, **bounds)


class _Environment(EnvSettingsSource):
    """The environment variables, from the mapping `from_env` was given or the process's."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        given = _ENVIRON.get()
        if given is None:
            return super()._load_env_vars()
        return {name: value for name, value in given.items() if value}  # empty counts as unset


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True)

    store: Path | None = _var(
        "BEARID_STORE",
        None,
        "The model store a service follows: models/bearid/ and bearid/champion.json. Default: BentoML's home.",
    )
    bentoml_home: Path | None = _var(
        "BENTOML_HOME", None, "BentoML's home (default ~/bentoml): where bearid promote writes the store."
    )
    bundle: Path | None = _var(
        "BEARID_BUNDLE", None, "The service serves this bundle folder instead of the store's champion."
    )
    model: str = _var(
        "BEARID_MODEL",
        "bearid:latest",
        "The model the service declares: what `bearid bento` packs, and what it serves with no champion.",
        min_length=1,
    )
    workers: int = _var("BEARID_WORKERS", 1, "Service worker processes.", ge=1, le=256)
    watch_seconds: float = _var(
        "BEARID_WATCH_SECONDS", 2.0, "How often a service worker looks for a new champion.", gt=0, allow_inf_nan=False
    )
    ort_threads: int = _var(
        "BEARID_ORT_THREADS", 0, "ONNX Runtime threads per worker (0: the CPU share divided among the workers).", ge=0
    )
    max_upload_mb: int = _var("BEARID_MAX_UPLOAD_MB", 40, "The largest photo the service takes, in MiB.", ge=1)
    max_video_mb: int = _var("BEARID_MAX_VIDEO_MB", 200, "The largest clip POST /identify_video takes, in MiB.", ge=1)
    admin_token: str | None = _var(
        "BEARID_ADMIN_TOKEN", None, "Bearer token of POST /admin/reload; unset, the endpoint is closed."
    )
    loader_workers: int | None = _var(
        "BEARID_LOADER_WORKERS",
        None,
        "Embed training's loader processes. Default: half the CPUs, 1 to 4 (on a GPU: all CPUs but one, up to 8).",
        ge=0,
    )
    train_threads: int = _var(
        "BEARID_TRAIN_THREADS",
        0,
        "Training's torch CPU threads (0: torch's choice, one per core). The same seed gives the same weights "
        "only at the same thread count.",
        ge=0,
        le=1024,
    )
    device: Literal["auto", "cpu", "cuda"] = _var(
        "BEARID_DEVICE",
        "auto",
        "Where training runs: auto (a CUDA GPU when torch sees one, else the CPU), cpu or cuda.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        **_: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _Environment(settings_cls)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from `environ` (default: this process's environment)."""
        token = _ENVIRON.set(environ)
        try:
            return cls()
        except ValidationError as exc:
            raise BearIDError(_say(exc, environ)) from None
        finally:
            _ENVIRON.reset(token)

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

    @property
    def max_video_bytes(self) -> int:
        return self.max_video_mb * 1024 * 1024


_KINDS = {"int_parsing": "is not a whole number", "float_parsing": "is not a number", "literal_error": None}


def _say(exc: ValidationError, environ: Mapping[str, str] | None) -> str:
    """One line per bad variable: NAME='value' and what is wrong with it."""
    lines = []
    for e in exc.errors():
        name = str(e["loc"][0]) if e["loc"] else "?"
        raw = e.get("input")
        kind = e["type"]
        if kind in ("int_parsing", "float_parsing"):
            why = _KINDS[kind]
        elif kind == "literal_error":  # as the verbs that take the same choice say it
            field = next(n for n, f in Settings.model_fields.items() if f.validation_alias == name)
            choices = ", ".join(get_args(Settings.model_fields[field].annotation))
            lines.append(f"{name}: {field} {raw!r}: choose one of {choices}")
            continue
        else:
            why = "is not allowed: " + e["msg"].lower()
        lines.append(f"{name}={raw!r} {why}")
    return "; ".join(lines)


def documented() -> list[tuple[str, str, object]]:
    """(variable, what it does, default) of every setting, for the docs' table."""
    return [(f.validation_alias, f.description, f.default) for f in Settings.model_fields.values()]
