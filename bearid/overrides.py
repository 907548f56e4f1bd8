"""`KNOB=VALUE` overrides (`--set`) for config dataclasses, as typed on a command line."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from bearid.errors import BearIDError

T = TypeVar("T")


def with_overrides(config: T, settings: list[str], what: str = "setting") -> T:
    """A copy of the dataclass `config` with overrides such as "max_yaw=50" or "ratios=0.8,0.1,0.1"."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    changes = {}
    for item in settings:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in values:
            raise BearIDError(f"unknown {what} '{item}'; use KNOB=VALUE with KNOB one of: {', '.join(sorted(values))}")
        current = values[key]
        try:
            if isinstance(current, tuple):
                changes[key] = tuple(type(current[0])(v) for v in raw.split(","))
            elif isinstance(current, bool):
                word = raw.strip().lower()
                if word not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise ValueError(raw)
                changes[key] = word in ("1", "true", "yes", "on")
            else:
                changes[key] = type(current)(raw)
        except ValueError:
            raise BearIDError(f"{what} {key}: '{raw}' is not a valid {type(current).__name__}") from None
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]  (the config checks its values)
