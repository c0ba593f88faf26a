"""What ``convert`` tells the user while it runs: stderr lines and, on long runs, a progress bar.

The bar appears only when stderr is a terminal (or ``--progress`` asks for it) and the run has
lasted a second: a short run prints no bar and loads no rich. While the bar shows, lines go
through its console, above it, so that neither garbles the other.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING, Final

import typer

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

SHOW_AFTER_SECONDS: Final = 1.0


class Reporter:
    def __init__(self, files: int, progress: bool | None) -> None:
        self.files = files
        self.wanted = sys.stderr.isatty() if progress is None else progress
        self.started = time.monotonic()
        self.messages = 0
        self.files_done = 0
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Reporter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def line(self, text: str) -> None:
        """One line on stderr, as given: data in it is never read as markup."""
        if self._bar is None:
            typer.echo(text, err=True)
        else:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def advance_message(self) -> None:
        self.messages += 1
        self._update()

    def advance_file(self) -> None:
        self.files_done += 1
        self._update()

    def _update(self) -> None:
        if self._bar is None:
            if not self.wanted or time.monotonic() - self.started < SHOW_AFTER_SECONDS:
                return
            self._start()
        assert self._bar is not None
        assert self._task is not None
        self._bar.update(
            self._task, completed=self.files_done, messages=f"{self.messages:,} messages"
        )

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("convert"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files, {task.fields[messages]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task("convert", total=self.files, messages="")
        self._bar.tasks[-1].start_time = self.started  # elapsed counts from the run's start
        self._bar.start()
