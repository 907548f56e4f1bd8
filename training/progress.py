"""How training reports what it is doing: a `Log` takes one line at a time (the CLI prints
it; tests pass a function that drops it)."""

from __future__ import annotations

from collections.abc import Callable

Log = Callable[[str], None]
