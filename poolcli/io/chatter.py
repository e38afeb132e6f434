"""Decoder chatter: what libjpeg, libpng, libtiff and OpenCV print on file descriptor 2,
caught and turned into refusals or dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from typing import IO

from ..backends import opencv


class Chatter:
    """What the C decoders (libjpeg, libpng, libtiff, OpenCV) wrote to stderr during a call."""

    text = ""

    def has(self, *needles: str) -> bool:
        return any(needle in self.text for needle in needles)


_STDERR_LOCK = threading.RLock()  # re-entrant: a quiet call may nest in another


@contextlib.contextmanager
def quiet_decoders() -> Iterator[Chatter]:
    """Keep decoder chatter off stderr and hand it to the caller.

    Pillow's warnings are dropped (poolcli applies its own limits and checks); what the
    C libraries print on file descriptor 2 (libjpeg's "Corrupt JPEG data", libpng's and
    libtiff's warnings, OpenCV's log) is caught in a temporary file and returned, so a
    caller can refuse a file that libjpeg only warned about.
    """
    chatter = Chatter()
    if os.getpid() in _HELD:  # OpenCV's log is silenced for the whole hold
        with _STDERR_LOCK, warnings.catch_warnings(), _stderr_held(chatter):
            warnings.simplefilter("ignore")
            yield chatter
        return
    logging = opencv.cv2().utils.logging if opencv.loaded() else None
    previous = None if logging is None else logging.getLogLevel()
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        with _STDERR_LOCK, warnings.catch_warnings(), _stderr_caught(chatter):
            warnings.simplefilter("ignore")
            yield chatter
    finally:
        if logging is not None:
            logging.setLogLevel(previous)


def _stderr_to_sink() -> tuple[int, IO[bytes]] | None:
    """Descriptor 2 pointed at this process's emptied sink: (a duplicate of the real stderr, the
    sink), or None where there is no stderr."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return None
    sink = _stderr_sink()
    sink.seek(0)
    sink.truncate()
    os.dup2(sink.fileno(), 2)
    return saved, sink


@contextlib.contextmanager
def _stderr_caught(chatter: Chatter) -> Iterator[None]:
    redirected = _stderr_to_sink()
    if redirected is None:  # no stderr to guard
        yield
        return
    saved, sink = redirected
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        sink.seek(0)
        chatter.text = sink.read(1 << 16).decode("utf-8", "replace")


_SINKS: dict[int, IO[bytes]] = {}

_HELD: dict[int, list[int]] = {}  # process id -> [the real stderr's descriptor, quiet calls open]


@contextlib.contextmanager
def decoder_chatter_held() -> Iterator[None]:
    """Keep file descriptor 2 on this process's sink for the whole block (a batch worker, which
    decodes file after file and prints nothing itself): each `quiet_decoders` call then costs one
    seek instead of about a dozen system calls. Whatever is written outside a quiet call (a
    warning, a traceback) is passed on to the real stderr at the next call and when the block ends."""
    redirected = _stderr_to_sink()
    if redirected is None:  # no stderr to guard
        yield
        return
    saved, sink = redirected
    logging = opencv.cv2().utils.logging if opencv.loaded() else None
    previous = None if logging is None else logging.getLogLevel()
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    _HELD[os.getpid()] = [saved, 0]
    try:
        yield
    finally:
        del _HELD[os.getpid()]
        if logging is not None:
            logging.setLogLevel(previous)
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        _pass_on(sink.fileno(), saved)
        os.dup2(saved, 2)
        os.close(saved)
        sink.seek(0)  # the file object's position follows the descriptor's again


@contextlib.contextmanager
def _stderr_held(chatter: Chatter) -> Iterator[None]:
    """`_stderr_caught` while `decoder_chatter_held` keeps descriptor 2 on the sink; a nested call
    sees its outer call's text too and leaves it for the outer call."""
    held = _HELD[os.getpid()]
    sink = _stderr_sink().fileno()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    if held[1] == 0:
        _pass_on(sink, held[0])
    held[1] += 1
    try:
        yield
    finally:
        held[1] -= 1
        end = os.lseek(sink, 0, os.SEEK_CUR)
        if end:
            chatter.text = os.pread(sink, min(end, 1 << 16), 0).decode("utf-8", "replace")
            if held[1] == 0:
                _empty(sink)


def _pass_on(sink: int, stderr: int) -> None:
    """Write what the sink holds to the real stderr, and empty it."""
    end = os.lseek(sink, 0, os.SEEK_CUR)
    if end:
        data = os.pread(sink, end, 0)
        _empty(sink)
        with contextlib.suppress(OSError):
            while data:
                data = data[os.write(stderr, data):]


def _empty(sink: int) -> None:
    os.ftruncate(sink, 0)
    os.lseek(sink, 0, os.SEEK_SET)


def _stderr_sink() -> IO[bytes]:
    """One unnamed temporary file per process (a forked worker makes its own) that takes what
    the decoders print; made once, emptied before each use."""
    sink = _SINKS.get(os.getpid())
    if sink is None:
        sink = _SINKS[os.getpid()] = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for the process)
    return sink


class _Muted(logging.Filter):
    """Drops the records a logger emits on a thread inside `quiet_logs` (other threads' pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.depth, "value", 0)


_MUTED: dict[str, _Muted] = {}
_MUTED_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_logs(name: str = "tifffile") -> Iterator[None]:
    """Keep what the logger `name` (tifffile's, by default: "incorrect StripOffsets count", ...)
    reports on this thread off stderr while the block runs; poolcli checks what it warns about
    itself. Unlike `quiet_decoders` it leaves file descriptor 2 alone (a progress bar may be
    drawing there) and other threads' records untouched."""
    with _MUTED_LOCK:
        muted = _MUTED.get(name)
        if muted is None:
            muted = _MUTED[name] = _Muted()
            logging.getLogger(name).addFilter(muted)
    muted.depth.value = getattr(muted.depth, "value", 0) + 1
    try:
        yield
    finally:
        muted.depth.value -= 1
