"""A batch on a Dask distributed cluster: one task per file, submitted as the lazy walk finds
them (a few per worker in flight), results streamed back as they complete.

Each task is `files.process_file`, the very function local workers run, so the outputs are
the same bytes. A worker that dies mid-file has its tasks retried by the scheduler on another
worker (the write is atomic: a retried file is written once, and the temporary files a killed
write left are swept when the run ends); a file whose task fails for good is one failed record.
Ctrl-C cancels every task still queued. Inputs and outputs must be on storage every worker
sees: `check_shared` asks each worker before anything is submitted.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator

from ..app.settings import FileResult, PoolSettings
from ..stream.cluster import worker_count
from .files import failed_result, process_file
from .options import IN_FLIGHT_PER_WORKER, BatchOptions, Job
from .paths import sweep

RETRIES = 2  # a file's task runs again this often after its worker died


CLOCK_SKEW_SECONDS = 5  # between this machine and the file system's


def again_safe(job: Job, settings: PoolSettings, options: BatchOptions, submitted: float) -> FileResult:
    """On a worker: `process_file`, run again safely. A worker that dies after writing a file but
    before its result reaches the scheduler has its task run again: the output is then there, made
    by this run (a job is only submitted for a target that was free or to be replaced), and is
    written again (the same bytes), not refused as someone else's file."""
    outputs = [path for path in job.outputs() if path.exists()]
    if not job.replace and outputs and min(path.stat().st_mtime for path in outputs) >= submitted - CLOCK_SKEW_SECONDS:
        job = dataclasses.replace(job, replace=True)
    return process_file(job, settings, options)


class ClusterPool:
    """`WorkerPool`'s part for a Dask cluster: run the jobs there, emit each record once."""

    task = staticmethod(again_safe)  # what a worker runs for a job

    def __init__(self, client, settings: PoolSettings, options: BatchOptions):
        self.client, self.settings, self.options = client, settings, options
        self.workers = worker_count(client)
        self.pending: dict = {}  # future -> job
        self.submitted: list[Job] = []

    def run(self, jobs: Iterator[Job | FileResult], emit: Callable[[FileResult], None]) -> None:
        from distributed import as_completed

        done = as_completed(loop=self.client.loop, with_results=True, raise_errors=False)  # results come in
        # batches with their futures, no round trip each
        limit = max(2, IN_FLIGHT_PER_WORKER * max(self.workers, 1))
        for item in jobs:
            if isinstance(item, FileResult):
                emit(item)
                continue
            while len(self.pending) >= limit:
                emit(self._result(*next(done)))
            future = self.client.submit(self.task, item, self.settings, self.options, time.time(), pure=False,
                                        retries=RETRIES, key=f"poolcli-file-{len(self.submitted)}-{os.getpid()}")
            self.pending[future] = item
            self.submitted.append(item)
            done.add(future)
        for future, result in done:
            emit(self._result(future, result))

    def _result(self, future, result) -> FileResult:
        job = self.pending.pop(future)
        if future.status == "error":  # the task failed for good (its workers kept dying): this file fails
            error = future.exception()
            reason = " ".join(str(error).split()) or type(error).__name__
            return failed_result(job.source, job.target, f"{job.source}: the cluster could not pool it ({reason})")
        return result

    def close(self, *, stop: bool) -> None:
        """Cancel what is still queued (on a stop), sweep what killed writes left, disconnect."""
        if stop and self.pending:
            self.client.cancel(list(self.pending), force=True)
        for job in self.submitted:
            sweep(job)
        self.client.close()
