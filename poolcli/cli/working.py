"""The progress bar of a long pooling call in memory: on stderr, only where stderr is a terminal,
and only once the call has run for a while (POOLCLI_PROGRESS_AFTER seconds, 2 by default), so
quick calls print nothing more. The engine reports outputs done (engine/progress.py)."""

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

DEFAULT_AFTER = 2.0


@contextlib.contextmanager
def working_bar(label: str) -> Iterator[None]:
    """Show a bar for the engine's calls in the block once they run longer than the delay."""
    if not sys.stderr.isatty():
        yield
        return
    from ..engine import progress  # NumPy: imported with the work, not at start-up

    bar = _LateBar(label, _delay())
    try:
        with progress.listening(bar):
            yield
    finally:
        bar.close()


def _delay() -> float:
    try:
        return max(0.0, float(os.environ.get("POOLCLI_PROGRESS_AFTER", DEFAULT_AFTER)))
    except ValueError:
        return DEFAULT_AFTER


class _LateBar:
    """A listener of the engine's progress that draws nothing until `after` seconds have passed."""

    def __init__(self, label: str, after: float):
        self.label, self.after = label, after
        self.started = time.monotonic()
        self.total, self.done = 0, 0
        self.bar: Any = None  # rich's Progress, once shown
        self.task: Any = None
        self.lock = threading.Lock()  # workers report from their threads

    def begin(self, total: int) -> None:
        with self.lock:
            self.total, self.done = total, 0
            self._show()

    def advance(self, done: int) -> None:
        with self.lock:
            self.done += done
            self._show()

    def _show(self) -> None:
        if self.bar is None:
            if self.total <= 0 or time.monotonic() - self.started < self.after:
                return
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

            from .terminal import console

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                TimeRemainingColumn(), console=console(stderr=True), transient=True)
            self.task = self.bar.add_task(self.label, total=self.total)
            self.bar.start()
        self.bar.update(self.task, total=self.total, completed=min(self.done, self.total))

    def close(self) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.stop()
