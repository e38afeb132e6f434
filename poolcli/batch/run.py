"""`Batch`: the inputs found lazily, targets checked, files pooled in order or on workers, results in order."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path

from .. import io
from ..app.settings import FileResult, PoolSettings, settings_summary
from ..errors import Interrupted, PoolError, param, signals_interrupt
from ..stream.cluster import check_shared, connect
from .cluster import ClusterPool
from .files import failed_result, process_file
from .options import (
    PARALLEL_BYTES,
    STOP_SIGNALS,
    BatchOptions,
    BatchSummary,
    Job,
    OnResult,
    OnStart,
    input_suffixes,
    output_formats,
)
from .paths import is_inside, real_folder, resolved, right_match, sweep
from .report import Report, check_report_path
from .workers import WorkerPool, signals_ignored


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
        self._client = None  # a Dask distributed client (connect_cluster)
        if not self.source.is_dir():
            what = "does not exist" if not self.source.exists() else "is not a folder"
            raise PoolError(f"SRC {source} {what}; give the folder of inputs")
        self._root = resolved(self.source)
        self._out_root = real_folder(self.out_dir, param("out_dir"))
        if self._out_root == self._root:
            raise PoolError(f"{param('out_dir')} {out_dir} is SRC itself; write the outputs to another folder")
        compare = options.compare_dir
        self._compare_root = None if compare is None else real_folder(compare, param("compare_dir"))
        if self._compare_root == self._root:
            raise PoolError(f"{param('compare_dir')} {options.compare_dir} is SRC itself;"
                            f" write the figures to another folder")
        self._excluded = {p for p in (self._out_root, self._compare_root) if p is not None}
        self._suffix = output_formats()[options.output_format]
        self._input_suffixes = input_suffixes()  # every format's, as the table holds them when the run starts
        self._current: Job | None = None  # the file being pooled in this process (--jobs 1)

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
                        if resolved(entry.path) not in self._excluded:
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
            if not any(right_match(text, pattern.lower()) for pattern in self.options.patterns):
                return False
        elif not entry.name.lower().endswith(self._input_suffixes):
            return False
        if not entry.is_symlink():
            return entry.is_file(follow_symlinks=False)
        real = resolved(entry.path)  # a link counts only when it lands on a file inside SRC, not in OUT
        return real.is_file() and is_inside(real, self._root) and not any(is_inside(real, p) for p in self._excluded)

    def connect_cluster(self):
        """Connect to --scheduler's cluster and check that every worker sees SRC and OUT (a
        PoolError naming the address or the worker otherwise); `run` uses this connection."""
        client = connect(self.options.scheduler or "")
        try:
            check_shared(client, self.source, self.out_dir)
        except BaseException:
            client.close()
            raise
        self._client = client
        return client

    def check_report(self, path: Path) -> None:
        """PoolError unless the report may be written to `path`: a .json or .csv name in an
        existing folder that batch does not read, not there already unless --overwrite."""
        check_report_path(path)
        folder = resolved(path.parent)
        if is_inside(folder, self._root) and not any(is_inside(folder, p) for p in self._excluded):
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

    def _jobs(self) -> Iterator[Job | FileResult]:
        """A job per input, or at once its record when it is skipped or cannot be written."""
        folders: dict[Path, str | None] = {}  # output folder -> why it cannot be written, or None
        claimed: dict[Path, Path] = {}  # outputs of the current folder (inputs() yields a folder's files together)
        for relative in self.inputs():
            source, target = self.source / relative, self.target_for(relative)
            if claimed and next(iter(claimed)).parent != target.parent:
                claimed.clear()
            if target in claimed:
                yield failed_result(source, target, f"{source}: its output {target} is also the output of "
                              f"{claimed[target]}; use {param('output_format')} same or rename one of them")
                continue
            claimed[target] = source
            job = Job(source, target, self._compare_for(relative))
            problem = None
            for output, given, real in ((target, self.out_dir, self._out_root),
                                        (job.compare, self.options.compare_dir, self._compare_root)):
                if output is not None and given is not None and real is not None and problem is None:
                    if output.parent not in folders:
                        folders[output.parent] = self._output_folder_problem(output.parent, given, real)
                    problem = folders[output.parent]
            if problem is not None:
                yield failed_result(source, target, f"{source}: {problem}")
            elif self.options.skip_existing and any(os.path.lexists(path) for path in job.outputs()):
                if all(io.is_complete(path) for path in job.outputs()):
                    yield FileResult(str(source), str(target), status="skipped", error="output exists")
                else:  # one missing (a run killed between them), empty or cut short: not done, so done again
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
                if not is_inside(resolved(current), real):
                    return f"output folder {current} leads outside {given} through a symlink; remove the link"
        except OSError as error:
            return f"cannot create the output folder {current} ({error.strerror}); check the permissions"
        if is_inside(resolved(folder), self._root) and not is_inside(real, self._root):
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
        with signals_interrupt(STOP_SIGNALS):
            try:
                summary.total = self.count()
                pool, jobs = self._pool(summary.total)
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
                with signals_ignored():
                    if pool is not None:
                        pool.close(stop=summary.interrupted)
                    if self._current is not None:
                        sweep(self._current)
                    _sync()
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _pool(self, total: int) -> tuple[WorkerPool | ClusterPool | None, int]:
        """Where the files are pooled: a Dask cluster (--scheduler), worker processes, or here."""
        if self.options.scheduler is not None:
            cluster = ClusterPool(self._client or self.connect_cluster(), self.settings, self.options)
            self._client = None  # the pool closes it
            return cluster, cluster.workers
        jobs = self._workers(total)
        return (WorkerPool(jobs, self.settings, self.options) if jobs > 1 else None), jobs

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


def _sync() -> None:
    """Flush every written output to disk at once (files are written without a per-file fsync;
    one sync costs less, and a resume redoes any output a crash left incomplete)."""
    with contextlib.suppress(OSError, AttributeError):
        os.sync()


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

