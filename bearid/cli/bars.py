"""Progress bars for long verbs: a `Bars` is a log (lines print above the bars) that also
shows how far each piece of work is, one bar per piece, so a library function that reports
`(what, done, total)` shows a bar without knowing Rich."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Bars:
    def __init__(self, console: Console | None = None):
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def __call__(self, line: str) -> None:
        """A log line, printed above the bars."""
        self.progress.console.print(line, highlight=False, soft_wrap=True)

    def advance(self, what: str, done: int, total: int | None) -> None:
        if what not in self.tasks:
            self.tasks[what] = self.progress.add_task(what, total=total)
        self.progress.update(self.tasks[what], completed=done, total=total)

    def counter(self, what: str) -> Callable[[int, int], None]:
        """A `progress(done, total)` callback for one piece of work."""
        return lambda done, total: self.advance(what, done, total)

    def ticker(self, what: str, total: int | None = None) -> Callable[[int], None]:
        """A `progress(n)` callback: n more items of `what` done."""
        self.advance(what, 0, total)
        return lambda n: self.progress.advance(self.tasks[what], n)
