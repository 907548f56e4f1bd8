"""How training says what it is doing: a `Log` takes one line at a time (the CLI prints it,
above progress bars; tests pass a function that drops it). A log that shows bars also has
`advance(what, done, total)`, which `advance` here calls where there is one."""

from __future__ import annotations

from collections.abc import Callable

Log = Callable[[str], None]


def advance(log: Log, what: str, done: int, total: int) -> None:
    """Tell `log` how far `what` is, if it shows that (a plain function does not)."""
    show = getattr(log, "advance", None)
    if show is not None:
        show(what, done, total)
