"""Who hears how far a long pooling call has come, and the flag that stops its worker threads.

The engine reports outputs done (`begin(total)` once per call, then `advance(done)` from the
loops, on any thread) to the one listener a caller installs with `listening` (the command line's
progress bar); with none, reporting costs a lookup. When the calling thread is interrupted
(Ctrl-C) while slabs run on worker threads, `stopping` makes their next `advance` end them, so
the call returns at once instead of finishing the work nobody will read.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Protocol


class Listener(Protocol):
    def begin(self, total: int) -> None: ...

    def advance(self, done: int) -> None: ...


class Stopped(Exception):
    """A worker thread's work, ended because the call it belongs to was interrupted."""


_listener: list[Listener] = []
_stop = threading.Event()


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[Listener]:
    """Report the progress of every pooling call in the block to `listener`."""
    _listener.append(listener)
    try:
        yield listener
    finally:
        _listener.remove(listener)


def begin(total: int) -> None:
    """A pooling call of `total` outputs starts."""
    for listener in _listener:
        listener.begin(total)


def advance(done: int) -> None:
    """`done` more outputs are computed; raises Stopped on a worker thread after an interrupt."""
    if _stop.is_set() and threading.current_thread() is not threading.main_thread():
        raise Stopped
    for listener in _listener:
        listener.advance(done)


@contextlib.contextmanager
def stopping() -> Iterator[None]:
    """Raise the stop flag for the block (while the interrupted caller waits for its workers)."""
    _stop.set()
    try:
        yield
    finally:
        _stop.clear()
