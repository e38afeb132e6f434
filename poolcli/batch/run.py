"""`Batch`: a run of SRC into OUT. What is pooled is `discovery`'s, where it goes `placement`'s; here the
files are pooled in order, on workers or on a cluster, and the run is stopped cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from .. import io
from ..app.settings import FileResult, PoolSettings, settings_summary
from ..errors import Interrupted, signals_interrupt
from ..io.remote import as_location
from ..stream.cluster import check_shared, connect
from .cluster import ClusterPool
from .discovery import Discovery, input_bytes, source_root
from .files import process_file
from .options import PARALLEL_BYTES, STOP_SIGNALS, BatchOptions, BatchSummary, Job, OnResult, OnStart
from .paths import sweep
from .placement import Placement
from .report import Report
from .workers import WorkerPool, signals_ignored

if TYPE_CHECKING:
    from ..inspect.gallery import CardPictures


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
        self.source, self.out_dir = as_location(source), as_location(out_dir)
        self.settings, self.options = settings, options
        self._client = None  # a Dask distributed client (connect_cluster)
        root = source_root(self.source)
        self.placement = Placement(self.source, root, self.out_dir, options)
        self.discovery = Discovery(self.source, root, self.placement.trees(), options)
        self._current: Job | None = None  # the file being pooled in this process (--jobs 1)
        self.pictures: CardPictures | None = None  # a gallery's: each file's pictures made where it is pooled

    def inputs(self) -> Iterator[Path]:
        """The inputs' paths relative to SRC, lazily (`Discovery.inputs`)."""
        return self.discovery.inputs()

    def count(self) -> int:
        """How many inputs `inputs()` finds now (a walk of names only)."""
        return sum(1 for _ in self.inputs())

    def input_bytes(self, limit: int) -> int:
        """The inputs' total size, counted up to `limit` (a stat per file, stopping there)."""
        return input_bytes(self.inputs(), self.source, limit)

    def target_for(self, relative: Path) -> Path:
        return self.placement.target_for(relative)

    def check_report(self, path: Path) -> None:
        """PoolError unless the report may be written to `path` (`Placement.check_report`)."""
        self.placement.check_report(path, self.discovery)

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

    def _jobs(self) -> Iterator[Job | FileResult]:
        # on a cluster the gallery's folder may be out of the workers' sight: the pictures are made here
        return self.placement.jobs(self.inputs(), self.pictures if self.options.scheduler is None else None)

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

