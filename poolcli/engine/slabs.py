"""Slabs on threads: large inputs are cut along their batch axes and pooled in parallel."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace

import numpy as np

from ..core.geometry import (
    AxisGeometry,
    PoolPlan,
)
from . import progress
from .layout import index_along
from .shortcuts import BUDGETS, FAST_PATHS

_executor_state: dict = {}


def worker_threads() -> int:
    """Threads for one pooling call: POOLCLI_THREADS, else the cores this process may use."""
    configured = os.environ.get("POOLCLI_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def executor(threads: int) -> ThreadPoolExecutor:
    """One pool of threads per process (a forked child makes its own)."""
    key = (os.getpid(), threads)
    if _executor_state.get("key") != key:
        _executor_state.update(key=key, pool=ThreadPoolExecutor(threads, thread_name_prefix="poolcli"))
    return _executor_state["pool"]


def run_chunked(xp, a, plan: PoolPlan, compute, dtype: np.dtype):
    """compute(a, plan), split into slabs of output rows that run on several threads.

    Each slab reads only the input rows its windows need; the results are written
    into one output, so no slab's intermediate arrays outlive it.
    """
    pieces = _chunks(xp, a, plan)
    if len(pieces) == 1:
        return compute(a, plan)
    out = xp.empty(plan.out_shape, dtype=dtype)

    def run(piece):
        source_key, out_key, sub_plan = piece
        out[out_key] = compute(a[source_key], sub_plan)

    finish(executor(worker_threads()).submit(run, piece) for piece in pieces)
    return out


def finish(futures) -> None:
    """Wait for every future (re-raising the first failure); interrupted (Ctrl-C), stop the
    others at their next report of progress and wait for them, so no thread outlives the call."""
    futures = list(futures)
    try:
        for future in futures:
            future.result()
    except BaseException:
        with progress.stopping():
            for future in futures:
                future.cancel()
            wait(futures)
        raise


def _chunks(xp, a, plan: PoolPlan) -> list:
    """(input slice, output slice, plan) per slab: along the outermost batch axis when there is
    one (contiguous slabs), else along the outermost pooled axis's outputs."""
    first = plan.axes[0]
    threads = worker_threads()
    if not FAST_PATHS.slabs or xp is not np or threads < 2 or a.nbytes < BUDGETS.min_parallel_bytes:
        return [((Ellipsis,), (Ellipsis,), plan)]
    wanted = max(threads, -(-a.nbytes // BUDGETS.chunk_bytes))
    batch_axis = next((axis for axis in range(first.axis) if a.shape[axis] >= 2), None)
    if batch_axis is not None:
        return [_batch_slab(plan, batch_axis, lo, hi) for lo, hi in even_ranges(a.shape[batch_axis], wanted)]
    if not isinstance(first, AxisGeometry):
        return [((Ellipsis,), (Ellipsis,), plan)]
    return [_slab(a, plan, first, lo, hi) for lo, hi in even_ranges(first.out, wanted)]


def even_ranges(length: int, count: int) -> list[tuple[int, int]]:
    """`length` items in at most `count` nearly equal, non-empty ranges."""
    count = min(count, length)
    bounds = [length * i // count for i in range(count + 1)]
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def _batch_slab(plan: PoolPlan, axis: int, lo: int, hi: int):
    """Items [lo, hi) of a batch axis: the same windows on fewer items."""
    shape = list(plan.shape)
    shape[axis] = hi - lo
    key = index_along(axis, slice(lo, hi))
    return key, key, replace(plan, shape=tuple(shape))


def _slab(a, plan: PoolPlan, g: AxisGeometry, first_out: int, stop_out: int):
    """The input rows and the sub-plan for outputs [first_out, stop_out) of axis g."""
    start = first_out * g.stride - g.pad_lo
    stop = (stop_out - 1) * g.stride - g.pad_lo + g.span
    read_start, read_stop = max(start, 0), min(stop, g.size)
    sub_axis = replace(g, size=read_stop - read_start, pad_lo=read_start - start,
                       pad_hi=g.size + g.pad_hi - read_stop, out=stop_out - first_out, source_map=None)
    shape = list(plan.shape)
    shape[g.axis] = sub_axis.size
    sub_plan = replace(plan, shape=tuple(shape), axes=(sub_axis,) + plan.axes[1:])
    return index_along(g.axis, slice(read_start, read_stop)), index_along(g.axis, slice(first_out, stop_out)), sub_plan

