"""Pool every file of a folder tree into a mirror of that tree, in parallel. Nothing here prints.

`Batch(source, out_dir, settings, options).run(on_result=...)` finds the inputs lazily,
keeps at most two files per worker in flight, and reports each file's `FileResult`
through the callback as it finishes. One bad file never stops the batch: every failure,
a decoder that kills its worker process included, becomes a record with its reason.
Ctrl-C and SIGTERM stop it within two seconds, leaving no partial or temporary file;
`run` then returns the summary so far, marked `interrupted`.

What is an input: files under SRC (recursively unless `recursive=False`) with a suffix
poolcli reads, or matching one of the `patterns` (case-insensitive `fnmatch` patterns
anchored at the right of the relative path: `*.png` at any depth, `raw/*.jpg` in any
folder named raw). Hidden files and folders (a leading dot) are skipped, symlinked
folders are never entered, a symlinked file counts only when it resolves inside SRC,
and OUT (and the compare folder) are never read as inputs when they lie inside SRC.

Outputs: OUT/<relative path> with the input's stem and the suffix of `output_format`.
Each file goes through `pipeline.pool_file`, as in `poolcli pool`: the same decoders,
engine and encoders (io.py decides them all). Batch only asks for `channel_order="bgr"`,
so plain colour JPEG and PNG stay in OpenCV's channel order from decoder to encoder.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fnmatch
import io as _text_io
import json
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from multiprocessing import connection
from pathlib import Path

from . import io, opencv
from .errors import Interrupted, OutputError, PoolError, param, render, signals_interrupt
from .pipeline import ARRAY_SUFFIXES, IMAGE_SUFFIXES, FileResult, PoolSettings, pool_file, settings_summary

OUTPUT_FORMATS = {"same": None, **io.FORMAT_SUFFIXES}
INPUT_SUFFIXES = IMAGE_SUFFIXES + ARRAY_SUFFIXES
REPORT_SUFFIXES = (".json", ".csv")
IN_FLIGHT_PER_WORKER = 2  # one being pooled, one waiting: workers never idle on the parent
STOP_GRACE_SECONDS = 1.0  # after SIGTERM, a worker still alive this long is killed (then swept)
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
JOBS_PER_CORE = 4  # the most worker processes per core --jobs may ask for
PARALLEL_BYTES = 8 << 20  # less input than this is pooled in this process: workers would not pay off


def max_jobs() -> int:
    """The most worker processes a batch starts: JOBS_PER_CORE per core (pooling is CPU-bound;
    a few more than the cores hide file I/O, thousands would only exhaust memory)."""
    return JOBS_PER_CORE * default_jobs()


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass(frozen=True)
class BatchOptions:
    """How to walk SRC and write OUT (validated by `check`)."""

    recursive: bool = True
    patterns: tuple[str, ...] = ()
    output_format: str = "same"
    jobs: int = field(default_factory=default_jobs)
    jobs_given: bool = True  # False: --jobs was not given, so workers start only where they pay off
    skip_existing: bool = False
    overwrite: bool = False
    compare_dir: Path | None = None

    def check(self) -> None:
        """Raise PoolError for a bad option (a usage error).

        >>> BatchOptions(jobs=0).check()
        Traceback (most recent call last):
        ...
        poolcli.errors.PoolError: jobs 0 must be >= 1; use jobs 1 to run in this process
        """
        if self.output_format not in OUTPUT_FORMATS:
            raise PoolError(f"{param('output_format')} {self.output_format!r} is not known;"
                            f" use one of {', '.join(OUTPUT_FORMATS)}")
        if self.jobs < 1:
            raise PoolError(f"{param('jobs')} {self.jobs} must be >= 1; use {param('jobs')} 1 to run in this process")
        if self.skip_existing and self.overwrite:
            raise PoolError(f"{param('skip_existing')} and {param('overwrite')} disagree about existing outputs;"
                            f" give only one")
        for pattern in self.patterns:
            if not pattern or pattern.startswith("/"):
                raise PoolError(f"{param('patterns')} {pattern!r} must be a relative pattern"
                                " such as '*.png' or 'raw/*.jpg'")


@dataclass
class BatchSummary:
    """Counts, time and every failure of a run (the records themselves go to the callback)."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    output_bytes: int = 0
    interrupted: bool = False
    stop_signal: int | None = None  # the signal that interrupted the run
    failures: list[FileResult] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed

    def add(self, record: FileResult) -> None:
        if record.status == "done":
            self.done += 1
            self.output_bytes += record.output_bytes
        elif record.status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(record)

    def to_json(self) -> dict:
        counts = asdict(self)
        counts.pop("failures")
        return counts


@dataclass(frozen=True)
class _Job:
    source: Path
    target: Path
    compare: Path | None
    replace: bool = False  # --skip-existing found an incomplete file at the target: pool it again

    def outputs(self) -> tuple[Path, ...]:
        return (self.target,) if self.compare is None else (self.target, self.compare)


OnResult = Callable[[FileResult, BatchSummary], None]
OnStart = Callable[[int, int], None]


class Batch:
    """One run of SRC into OUT; `count()` and `inputs()` walk SRC, `run()` pools it.

    Creating it checks the options and SRC (PoolError: a usage error) and creates OUT.

    >>> import tempfile
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     src, out = Path(folder, "src"), Path(folder, "out")
    ...     (src / "scans").mkdir(parents=True)
    ...     _ = io.save(src / "scans" / "ramp.png", np.arange(16, dtype=np.uint8).reshape(4, 4))
    ...     run = Batch(src, out, PoolSettings(mode="max"), BatchOptions(jobs=1, output_format="npy"))
    ...     print([p.as_posix() for p in run.inputs()], run.target_for(Path("scans/ramp.png")).relative_to(out))
    ...     summary = run.run()
    ...     print(summary.done, summary.failed, np.load(out / "scans" / "ramp.npy")[..., 0].tolist())
    ['scans/ramp.png'] scans/ramp.npy
    1 0 [[5, 7], [13, 15]]
    """

    def __init__(self, source: Path, out_dir: Path, settings: PoolSettings, options: BatchOptions):
        options.check()
        self.source, self.out_dir, self.settings, self.options = Path(source), Path(out_dir), settings, options
        if not self.source.is_dir():
            what = "does not exist" if not self.source.exists() else "is not a folder"
            raise PoolError(f"SRC {source} {what}; give the folder of inputs")
        self._root = _real(self.source)
        self._out_root = _real_folder(self.out_dir, param("out_dir"))
        if self._out_root == self._root:
            raise PoolError(f"{param('out_dir')} {out_dir} is SRC itself; write the outputs to another folder")
        compare = options.compare_dir
        self._compare_root = None if compare is None else _real_folder(compare, param("compare_dir"))
        if self._compare_root == self._root:
            raise PoolError(f"{param('compare_dir')} {options.compare_dir} is SRC itself;"
                            f" write the figures to another folder")
        self._excluded = {p for p in (self._out_root, self._compare_root) if p is not None}
        self._suffix = OUTPUT_FORMATS[options.output_format]
        self._current: _Job | None = None  # the file being pooled in this process (--jobs 1)

    # ------------------------------------------------------------------ discovery

    def inputs(self) -> Iterator[Path]:
        """The inputs' paths relative to SRC, lazily, depth first, sorted by name in each folder."""
        folders = [Path()]
        while folders:
            relative = folders.pop()
            try:
                with os.scandir(self.source / relative) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except OSError:
                continue  # a folder that vanished or cannot be read: nothing to pool there
            subfolders = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                path = relative / entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if _real(entry.path) not in self._excluded:
                            subfolders.append(path)
                        continue
                    found = self._is_input(entry, path)
                except OSError:  # it vanished or cannot be examined: not an input
                    continue
                if found:
                    yield path
            if self.options.recursive:
                folders.extend(reversed(subfolders))

    def count(self) -> int:
        """How many inputs `inputs()` finds now (a walk of names only)."""
        return sum(1 for _ in self.inputs())

    def input_bytes(self, limit: int) -> int:
        """The inputs' total size, counted up to `limit` (a stat per file, stopping there)."""
        total = 0
        for relative in self.inputs():
            with contextlib.suppress(OSError):
                total += (self.source / relative).stat().st_size
            if total >= limit:
                break
        return total

    def _is_input(self, entry: os.DirEntry, relative: Path) -> bool:
        if self.options.patterns:
            text = relative.as_posix().lower()
            if not any(_right_match(text, pattern.lower()) for pattern in self.options.patterns):
                return False
        elif not entry.name.lower().endswith(INPUT_SUFFIXES):
            return False
        if not entry.is_symlink():
            return entry.is_file(follow_symlinks=False)
        real = _real(entry.path)  # a link counts only when it lands on a file inside SRC, not in OUT
        return real.is_file() and _inside(real, self._root) and not any(_inside(real, p) for p in self._excluded)

    def check_report(self, path: Path) -> None:
        """PoolError unless the report may be written to `path`: a .json or .csv name in an
        existing folder that batch does not read, not there already unless --overwrite."""
        check_report_path(path)
        folder = _real(path.parent)
        if _inside(folder, self._root) and not any(_inside(folder, p) for p in self._excluded):
            raise PoolError(f"{param('report')} {path} lies inside SRC {self.source};"
                            f" write it outside SRC or inside OUT")
        if os.path.lexists(path) and not self.options.overwrite:
            raise PoolError(f"{param('report')} {path} exists;"
                            f" pass {param('overwrite')} to replace it, or choose another name")

    def target_for(self, relative: Path) -> Path:
        suffix = self._suffix or relative.suffix
        return self.out_dir / relative.parent / (relative.stem + suffix)

    def _compare_for(self, relative: Path) -> Path | None:
        folder = self.options.compare_dir
        return None if folder is None else folder / relative.parent / f"{relative.stem}_compare.png"

    def _jobs(self) -> Iterator[_Job | FileResult]:
        """A job per input, or at once its record when it is skipped or cannot be written."""
        folders: dict[Path, str | None] = {}  # output folder -> why it cannot be written, or None
        claimed: dict[Path, Path] = {}  # outputs of the current folder (inputs() yields a folder's files together)
        for relative in self.inputs():
            source, target = self.source / relative, self.target_for(relative)
            if claimed and next(iter(claimed)).parent != target.parent:
                claimed.clear()
            if target in claimed:
                yield _failed(source, target, f"{source}: its output {target} is also the output of "
                              f"{claimed[target]}; use {param('output_format')} same or rename one of them")
                continue
            claimed[target] = source
            job = _Job(source, target, self._compare_for(relative))
            problem = None
            for output, given, real in ((target, self.out_dir, self._out_root),
                                        (job.compare, self.options.compare_dir, self._compare_root)):
                if output is not None and given is not None and real is not None and problem is None:
                    if output.parent not in folders:
                        folders[output.parent] = self._output_folder_problem(output.parent, given, real)
                    problem = folders[output.parent]
            if problem is not None:
                yield _failed(source, target, f"{source}: {problem}")
            elif self.options.skip_existing and os.path.lexists(target):
                if io.is_complete(target):
                    yield FileResult(str(source), str(target), status="skipped", error="output exists")
                else:  # empty or cut short (a crash of another tool): not done, so done again
                    yield dataclasses.replace(job, replace=True)
            else:
                yield job

    def _output_folder_problem(self, folder: Path, given: Path, real: Path) -> str | None:
        """Create `folder` below `given` one level at a time, refusing symlinks that lead out of it
        and, when SRC lies inside OUT, folders inside SRC (their outputs would become inputs)."""
        current = given
        try:
            for part in folder.relative_to(given).parts:
                current = current / part
                if not current.is_dir():
                    current.mkdir(exist_ok=True)
                if not _inside(_real(current), real):
                    return f"output folder {current} leads outside {given} through a symlink; remove the link"
        except OSError as error:
            return f"cannot create the output folder {current} ({error.strerror}); check the permissions"
        if _inside(_real(folder), self._root) and not _inside(real, self._root):
            return f"output folder {folder} lies inside SRC {self.source}; choose an output folder outside SRC"
        return None

    # ------------------------------------------------------------------ running

    def run(self, on_result: OnResult | None = None, on_start: OnStart | None = None) -> BatchSummary:
        """Pool every input; never raises for a file. Ctrl-C or SIGTERM: stop, clean, return.

        `on_start(total, workers)` is called once the inputs are counted and the workers
        started; `on_result(record, summary)` after each file.
        """
        summary = BatchSummary()
        started = time.perf_counter()

        def emit(record: FileResult) -> None:
            summary.add(record)
            if on_result is not None:
                on_result(record, summary)

        pool = None
        with signals_interrupt(_STOP_SIGNALS):
            try:
                summary.total = self.count()
                jobs = self._workers(summary.total)
                pool = _Pool(jobs, self.settings, self.options) if jobs > 1 else None
                if on_start is not None:
                    on_start(summary.total, jobs)
                if pool is None:
                    self._run_here(emit)
                else:
                    pool.run(self._jobs(), emit)
            except KeyboardInterrupt as stop:
                summary.interrupted = True
                summary.stop_signal = stop.signum if isinstance(stop, Interrupted) else signal.SIGINT
            finally:
                with _signals_ignored():
                    if pool is not None:
                        pool.close(stop=summary.interrupted)
                    if self._current is not None:
                        _sweep(self._current)
                    _sync()
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _workers(self, total: int) -> int:
        """Up to --jobs worker processes, one per file at most. Without --jobs, none (this
        process) for less than PARALLEL_BYTES of input, where starting them costs more than
        they save."""
        jobs = min(self.options.jobs, max(total, 1))
        if jobs > 1 and not self.options.jobs_given and self.input_bytes(PARALLEL_BYTES) < PARALLEL_BYTES:
            return 1
        return jobs

    def _run_here(self, emit: Callable[[FileResult], None]) -> None:
        for item in self._jobs():
            if isinstance(item, FileResult):
                emit(item)
                continue
            self._current = item
            record = process_file(item, self.settings, self.options)
            self._current = None
            emit(record)


# ------------------------------------------------------------------ one file (runs in a worker)


def process_file(job: _Job, settings: PoolSettings, options: BatchOptions) -> FileResult:
    """Load, pool and save one input as `poolcli pool` does; every failure becomes a failed record."""
    started = time.perf_counter()
    source, target = job.source, job.target
    try:
        result = pool_file(source, target, settings, overwrite=options.overwrite or job.replace, channel_order="bgr",
                           durable=False)  # synced all at once when the batch ends
        if job.compare is not None:
            from .figures import write_side_by_side

            write_side_by_side(source, target, job.compare, settings, overwrite=options.overwrite)
        size = target.stat().st_size
    except PoolError as error:  # the message keeps its parameters marked: the caller names them (errors.param)
        return _failed(source, target, error.template, started)
    except MemoryError:
        return _failed(source, target, f"{source}: not enough memory to pool it; use fewer {param('jobs')}", started)
    except Exception as error:  # a decoder's or a bug's surprise: still only this file fails
        reason = " ".join(str(error).split()) or "no detail"
        return _failed(source, target, f"{source}: unexpected {type(error).__name__}: {reason}", started)
    # the parameters are the report header's, once: the record stays small on its way back
    return dataclasses.replace(result, seconds=round(time.perf_counter() - started, 6), output_bytes=size,
                               parameters={})


def _failed(source: Path, target: Path | None, message: str, started: float | None = None) -> FileResult:
    seconds = 0.0 if started is None else round(time.perf_counter() - started, 6)
    return FileResult(str(source), None if target is None else str(target), status="failed", error=message,
                       seconds=seconds)


# ------------------------------------------------------------------ worker processes


class _Worker:
    """One process and its pipe; `jobs` are those sent and not yet answered, oldest first."""

    def __init__(self, context, settings: PoolSettings, options: BatchOptions):
        here, there = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(there, settings, options), daemon=True)
        with _signals_blocked():  # until the worker has its own handlers
            self.process.start()
        there.close()
        self.conn = here
        self.jobs: deque[_Job] = deque()

    def send(self, job: _Job) -> None:
        self.jobs.append(job)
        self.conn.send(job)


class _Pool:
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

    def run(self, jobs: Iterator[_Job | FileResult], emit: Callable[[FileResult], None]) -> None:
        retry: deque[_Job] = deque()
        exhausted = False

        def next_job() -> _Job | None:
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

    def _replace(self, worker: _Worker, retry: deque[_Job], emit: Callable[[FileResult], None]) -> None:
        """A worker died (a decoder crashed, or it was killed): its file fails, the others go on."""
        code = worker.process.exitcode
        worker.conn.close()
        if worker.jobs:
            victim = worker.jobs.popleft()
            _sweep(victim)
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            emit(_failed(victim.source, victim.target, f"{victim.source}: the worker process died ({how}) while "
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
                _sweep(job)
            worker.conn.close()


_busy = False


def _worker_main(conn, settings: PoolSettings, options: BatchOptions) -> None:
    """Pool jobs from `conn` until it closes. SIGTERM: an idle worker exits at once; a busy one
    raises KeyboardInterrupt, so io.atomic_output removes its temporary file, then exits."""
    global _busy
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # so does a hang-up
    signal.signal(signal.SIGTERM, _worker_stop)
    _stop_with_parent(parent)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    opencv.cv2().setNumThreads(1)  # one worker per core already
    os.environ["POOLCLI_THREADS"] = "1"  # so the engine pools each file on this worker's thread alone
    try:
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
    except KeyboardInterrupt:
        os._exit(130)


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


def _sync() -> None:
    """Flush every written output to disk at once (files are written without a per-file fsync;
    one sync costs less, and a resume redoes any output a crash left incomplete)."""
    with contextlib.suppress(OSError, AttributeError):
        os.sync()


def _sweep(job: _Job) -> None:
    """Remove what a killed write may have left: io.atomic_output's `.<name>.<random>.tmp`."""
    for output in job.outputs():
        prefix = io.temporary_prefix(output)
        with contextlib.suppress(OSError), os.scandir(output.parent) as scan:
            for entry in scan:
                if entry.name.startswith(prefix) and entry.name.endswith(io.TEMPORARY_SUFFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """While stopping (bounded by the grace time), a second Ctrl-C must not cut the clean-up short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in _STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


# ------------------------------------------------------------------ paths


def _right_match(relative: str, pattern: str) -> bool:
    """fnmatch `pattern` against the last as many parts of `relative` as it has.

    >>> _right_match("2024/raw/a.jpg", "*.jpg"), _right_match("2024/raw/a.jpg", "raw/*"), _right_match("a.jpg", "raw/*")
    (True, True, False)
    """
    parts, wanted = relative.split("/"), pattern.strip("/").split("/")
    return len(wanted) <= len(parts) and all(
        fnmatch.fnmatchcase(part, want) for part, want in zip(parts[-len(wanted):], wanted))


def _real(path: str | os.PathLike) -> Path:
    """The path with every symlink resolved; never raises, not even for a symlink loop."""
    return Path(os.path.realpath(path))


def _real_folder(folder: Path, option: str) -> Path:
    """`folder`, created if missing (io.make_folder), with every symlink resolved."""
    return _real(io.make_folder(folder, option))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# ------------------------------------------------------------------ report


class Report:
    """The per-file records of a run as JSON or CSV, written as they come, replaced atomically at the end.

    A failed write (a full disk) never stops the run: the report keeps the error in
    `error` and writes nothing more; `open_report` then refuses to put it in place.
    """

    COLUMNS = ("input", "output", "status", "error", "seconds", "input_shape", "output_shape", "dtype",
               "output_dtype", "output_bytes")

    def __init__(self, file, path: Path, header: dict, names: Mapping[str, str] | None = None):
        self._file, self._path, self._kind, self._first = file, path, path.suffix.lower(), True
        self._names = names  # how the report names parameters in messages (errors.param)
        self.error: OutputError | None = None
        if self._kind == ".csv":
            self._write_csv(self.COLUMNS)
        else:
            head = json.dumps(header, indent=1)[:-2]  # open: the files and the summary follow
            self._write(head + ',\n "files": [')

    def add(self, record: FileResult) -> None:
        row = record.to_json()
        row["error"] = None if record.error is None else render(record.error, self._names)
        if self._kind == ".csv":
            self._write_csv([_cell(row[column]) for column in self.COLUMNS])
        else:
            self._write(("\n  " if self._first else ",\n  ") + json.dumps(row))
        self._first = False

    def finish(self, summary: BatchSummary) -> None:
        if self._kind == ".json":
            tail = {"summary": summary.to_json()}
            self._write(f"\n ],\n \"summary\": {json.dumps(tail['summary'])}\n}}\n")

    def _write(self, text: str) -> None:
        if self.error is not None:
            return
        try:  # file names that were not UTF-8 keep their bytes (JSON escapes them instead)
            self._file.write(text.encode("utf-8", "surrogateescape"))
        except OSError as error:
            self.error = OutputError(
                f"{param('report')} {self._path}: cannot write it ({error.strerror or error});"
                f" the run went on without it"
            )

    def _write_csv(self, row) -> None:
        line = _text_io.StringIO()
        csv.writer(line, lineterminator="\n").writerow(row)
        self._write(line.getvalue())


def _cell(value) -> str:
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return "" if value is None else str(value)


def check_report_path(path: Path) -> None:
    """PoolError unless `path` is a .json or .csv file name in an existing folder."""
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise PoolError(f"{param('report')} {path}: use a .json or .csv file name")
    if path.is_dir():
        raise PoolError(f"{param('report')} {path} is a folder; give a file name such as {path / 'report.json'}")
    if not path.parent.is_dir():
        raise PoolError(f"{param('report')} {path}: folder {path.parent} does not exist; create it first")


@contextlib.contextmanager
def open_report(path: Path, batch: Batch, names: Mapping[str, str] | None = None) -> Iterator[Report]:
    """A `Report` that becomes `path` when the block ends, even after an interrupt; an
    OutputError (and no file) if it could not be written whole."""
    header = {
        "source": str(batch.source),
        "out_dir": str(batch.out_dir),
        "parameters": settings_summary(batch.settings),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(batch.options).items()},
    }
    with io.atomic_output(path, overwrite=batch.options.overwrite) as file:
        report = Report(file, path, header, names)
        yield report
        if report.error is not None:
            raise report.error
