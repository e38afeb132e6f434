"""Worker processes: a bounded queue of jobs, results back as small records, stopped with their parent."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing import connection

from .. import io
from ..app.settings import FileResult, PoolSettings
from ..backends import opencv
from .files import failed_result, process_file
from .options import IN_FLIGHT_PER_WORKER, STOP_GRACE_SECONDS, STOP_SIGNALS, BatchOptions, Job
from .paths import sweep


class _Worker:
    """One process and its pipe; `jobs` are those sent and not yet answered, oldest first."""

    def __init__(self, context, settings: PoolSettings, options: BatchOptions):
        here, there = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(there, settings, options), daemon=True)
        with _signals_blocked():  # until the worker has its own handlers
            self.process.start()
        there.close()
        self.conn = here
        self.jobs: deque[Job] = deque()

    def send(self, job: Job) -> None:
        self.jobs.append(job)
        self.conn.send(job)


class WorkerPool:
    """`jobs` worker processes fed from a lazy job iterator, at most two files each in flight."""

    def __init__(self, jobs: int, settings: PoolSettings, options: BatchOptions):
        self.settings, self.options = settings, options
        methods = multiprocessing.get_all_start_methods()
        # fork: workers start at once with everything imported. They start before the progress
        # display starts its thread; only a replacement for a dead worker forks beside it.
        self.context = multiprocessing.get_context("fork" if "fork" in methods else None)
        opencv.cv2()  # loaded once here, so that every worker decodes with it from its first file
        self.workers: list[_Worker] = []
        for _ in range(jobs):
            self.workers.append(_Worker(self.context, settings, options))

    def run(self, jobs: Iterator[Job | FileResult], emit: Callable[[FileResult], None]) -> None:
        retry: deque[Job] = deque()
        exhausted = False

        def next_job() -> Job | None:
            nonlocal exhausted
            while retry or not exhausted:
                item = retry.popleft() if retry else next(jobs, None)
                if item is None:
                    exhausted = True
                elif isinstance(item, FileResult):
                    emit(item)
                else:
                    return item
            return None

        while True:
            for worker in self.workers:
                while len(worker.jobs) < IN_FLIGHT_PER_WORKER and (job := next_job()) is not None:
                    try:
                        worker.send(job)
                    except OSError:  # it died: its sentinel says so below, and _replace re-queues the job
                        break
            busy = [worker for worker in self.workers if worker.jobs]
            if not busy:
                return
            ready = connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                while worker.jobs and worker.conn.poll():
                    try:
                        record = worker.conn.recv()
                    except (EOFError, OSError):
                        break
                    worker.jobs.popleft()
                    emit(record)
                if worker.process.sentinel in ready and not worker.process.is_alive():
                    self._replace(worker, retry, emit)

    def _replace(self, worker: _Worker, retry: deque[Job], emit: Callable[[FileResult], None]) -> None:
        """A worker died (a decoder crashed, or it was killed): its file fails, the others go on."""
        code = worker.process.exitcode
        worker.conn.close()
        if worker.jobs:
            victim = worker.jobs.popleft()
            sweep(victim)
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            emit(failed_result(victim.source, victim.target, f"{victim.source}: the worker process died ({how}) while "
                         "pooling it; the file may crash the decoder, or memory ran out"))
            retry.extendleft(reversed(worker.jobs))
        self.workers[self.workers.index(worker)] = _Worker(self.context, self.settings, self.options)

    def close(self, *, stop: bool) -> None:
        """Finish (send each worker its end) or stop (SIGTERM, then SIGKILL after the grace time)."""
        for worker in self.workers:
            with contextlib.suppress(OSError, ValueError):
                if stop:
                    worker.process.terminate()
                else:
                    worker.conn.send(None)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in self.workers:
            worker.process.join(max(deadline - time.monotonic(), 0.0))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            for job in worker.jobs:
                sweep(job)
            worker.conn.close()


_busy = False


def _worker_main(conn, settings: PoolSettings, options: BatchOptions) -> None:
    """Pool jobs from `conn` until it closes. SIGTERM: an idle worker exits at once; a busy one
    raises KeyboardInterrupt, so io.atomic_output removes its temporary file, then exits."""
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # so does a hang-up
    signal.signal(signal.SIGTERM, _worker_stop)
    _stop_with_parent(parent)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    opencv.cv2().setNumThreads(1)  # one worker per core already
    os.environ["POOLCLI_THREADS"] = "1"  # so the engine pools each file on this worker's thread alone
    try:
        with _chatter_held():
            _serve(conn, settings, options)
    except KeyboardInterrupt:
        os._exit(130)


def _chatter_held() -> contextlib.AbstractContextManager:
    """Decoder chatter caught for the worker's whole life (io.decoder_chatter_held), unless
    POOLCLI_CHATTER_PER_CALL=1 asks for the per-call capture (the twin tests compare both)."""
    if os.environ.get("POOLCLI_CHATTER_PER_CALL") == "1":
        return contextlib.nullcontext()
    return io.decoder_chatter_held()


def _serve(conn, settings: PoolSettings, options: BatchOptions) -> None:
    global _busy
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            break
        if job is None:
            break
        _busy = True
        record = process_file(job, settings, options)
        _busy = False
        try:
            conn.send(record)
        except OSError:  # the parent is gone
            break


def _stop_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the parent dies, even by SIGKILL (Linux);
    the worker then cleans up as on any stop. Elsewhere a worker ends when its pipe closes."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(0)


def _worker_stop(signum, frame) -> None:
    if not _busy:
        os._exit(0)
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """While stopping (bounded by the grace time), a second Ctrl-C must not cut the clean-up short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)

