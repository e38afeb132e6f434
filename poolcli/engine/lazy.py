"""Dask arrays: `pool` of a `dask.array.Array` is a lazy array of one task per output chunk.

Along each pooled axis the outputs are cut where the input's chunks are cut (an output belongs
to the chunk its window starts in, so the chunks follow the stride and no window is computed
twice); each output block is one task that takes the input chunks its windows read (the halo
included), joins them, and pools them with `engine.bands`' geometry: padding where the whole
array has it, the cut of partial windows. The blocks are the bits of pooling the whole array
(docs/semantics.md, section 10). Chunks may be NumPy or CuPy arrays: each task pools with the
engine of its chunk's library. Dask is imported only here, and only for Dask inputs.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.dtypes import natural_dtype
from ..core.geometry import AxisGeometry, PoolPlan
from ..core.modes import MODES
from ..errors import PoolError
from .bands import Band, band, explicit_keywords, fewest_rows
from .sums import magnitudes_of_whole


@dataclass(frozen=True)
class Piece:
    """One output band of one pooled axis: its geometry band and the input chunks it reads."""

    band: Band
    first: int  # index of the first input chunk read
    last: int  # index past the last
    offset: int  # where the first chunk starts in the input


def cut_points(geometry: AxisGeometry, boundaries: Sequence[int]) -> list[int]:
    """Output indices where bands start: one per input chunk (the first output whose window
    starts in it), then merged so that every band has enough windows for the engine to reduce it
    as the whole, and no band but the last reads past the input's end."""
    s, lo, out = geometry.stride, geometry.pad_lo, geometry.out
    starts = sorted({0, *(min(out, max(0, -(-(b + lo) // s))) for b in boundaries[1:-1])} - {out})
    least = fewest_rows(geometry.window)
    kept = [0]
    for start in starts[1:]:
        window_end = (start - 1) * s - lo + geometry.span
        if start - kept[-1] >= least and out - start >= least and window_end <= geometry.size:
            kept.append(start)
    return kept


def pieces(geometry: AxisGeometry, chunks: Sequence[int], pad_mode: str) -> list[Piece]:
    """The bands of one pooled axis, each with the input chunks it reads."""
    boundaries = list(itertools.accumulate(chunks, initial=0))
    cuts = cut_points(geometry, boundaries) + [geometry.out]
    found = []
    for o0, o1 in itertools.pairwise(cuts):
        item = band(geometry, o0, o1, pad_mode)
        first = bisect.bisect_right(boundaries, item.read.start) - 1
        last = bisect.bisect_left(boundaries, item.read.stop)
        found.append(Piece(item, first, last, boundaries[first]))
    return found


def is_dask_array(x: object) -> bool:
    """True for a dask.array.Array, decided without importing Dask."""
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "chunks") and hasattr(x, "dask")


def lazy_pool(x, plan: PoolPlan, ceil_mode: bool, dtype: np.dtype | None, pool: Callable):
    """The lazy pooling of Dask array `x` by `plan` (sliding windows), `pool` pooling each block."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    if len(plan.sliding) != len(plan.axes):
        raise PoolError("adaptive pooling of Dask arrays is not offered; pool a NumPy array, or rechunk and"
                        " map adaptive_pool over blocks yourself")
    keywords = explicit_keywords(plan, ceil_mode)
    by_axis = {g.axis: pieces(g, x.chunks[g.axis], plan.pad_mode) for g in plan.sliding}
    out_dtype = np.dtype(dtype) if dtype is not None else natural_dtype(np.dtype(x.dtype), plan.mode)
    name = "poolcli-pool-" + tokenize(x, keywords, str(out_dtype))
    magnitudes, extra = _magnitudes(x, plan)
    reads, cuts = _per_axis(x, by_axis)
    layer = _layer(name, x.name, reads, cuts, (keywords, dtype, pool, magnitudes))
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x, *extra])
    chunks = tuple(tuple(p.band.rows for p in by_axis[axis]) if axis in by_axis else x.chunks[axis]
                   for axis in range(x.ndim))
    meta = np.empty((0,) * x.ndim, dtype=out_dtype)
    return da.Array(graph, name, chunks, meta=meta)


def _layer(name: str, source: str, reads: list, cuts: list, shared: tuple) -> dict:
    """One task per output block: `_pool_block` of the input chunks it reads. Built from per-axis
    lists by itertools.product (no per-block arithmetic), with the garbage collector paused: a
    graph of a million blocks takes about a second."""
    indices = itertools.product(*(range(len(r)) for r in reads))
    grids = itertools.product(*reads)
    shapes = itertools.product(*([len(g) for g in r] for r in reads))
    layer = {}
    collecting = gc.isenabled()
    gc.disable()
    try:
        for index, grid, shape, cut in zip(indices, grids, shapes, itertools.product(*cuts)):
            chunks = [(source, *chunk) for chunk in itertools.product(*grid)]
            layer[(name, *index)] = (_pool_block, chunks, shape, cut, *shared)
    finally:
        if collecting:
            gc.enable()
    return layer


def _per_axis(x, by_axis: dict) -> tuple[list, list]:
    """Per axis and block: the input chunk indices it reads, and its cut (None: the chunk as it is;
    else read start, read stop, pads, skip, rows in the joined chunks), computed once per axis."""
    reads, cuts = [], []
    for axis in range(x.ndim):
        if axis in by_axis:
            found = by_axis[axis]
            reads.append([range(p.first, p.last) for p in found])
            cuts.append([(p.band.read.start - p.offset, p.band.read.stop - p.offset, p.band.pads, p.band.skip,
                          p.band.rows) for p in found])
        else:
            reads.append([range(i, i + 1) for i in range(len(x.chunks[axis]))])
            cuts.append([None] * len(x.chunks[axis]))
    return reads, cuts


def _magnitudes(x, plan: PoolPlan):
    """lp with p > 2 decides its scaling on the whole array: the keys of the lazy smallest and
    largest finite non-zero |x| (and the arrays that hold them), else nothing."""
    if MODES[plan.mode].power != "p" or plan.p <= 2:
        return None, []
    import dask.array as da

    from .divisors import work_dtype

    magnitude = abs(x).astype(work_dtype(np.dtype(x.dtype), plan.mode))
    real = da.isfinite(magnitude) & (magnitude > 0)
    smallest = da.where(real, magnitude, np.inf).min()
    largest = da.where(real, magnitude, 0).max()
    return [smallest.__dask_keys__(), largest.__dask_keys__()], [smallest, largest]  # a list: dask fills in keys


def _pool_block(chunks: list, grid: tuple, cuts: tuple, keywords: dict, dtype, pool: Callable, magnitudes):
    """Join the input chunks (a flat list, row-major over `grid`), take the rows the band reads,
    pool with its pads, cut its outputs."""
    block = _joined(chunks, grid)
    read = tuple(slice(c[0], c[1]) if c is not None else slice(None) for c in cuts)
    block = block[read]
    padding = list(keywords["padding"])
    for slot, axis in enumerate(keywords["axes"]):
        if cuts[axis] is not None:
            padding[slot] = cuts[axis][2]
    whole = None if magnitudes is None else tuple(float(np.ravel(np.asarray(m, dtype=float))[0]) for m in magnitudes)
    scaling = contextlib.nullcontext() if whole is None else magnitudes_of_whole(whole if whole[1] > 0 else None)
    with scaling:
        pooled = pool(block, **{**keywords, "padding": padding}, dtype=dtype)
    keep = tuple(slice(c[3], c[3] + c[4]) if c is not None else slice(None) for c in cuts)
    return pooled[keep]


def _joined(chunks: list, grid: tuple):
    """The chunks joined into one block along every axis (CuPy chunks by CuPy)."""
    if len(chunks) == 1:
        return chunks[0]
    xp = np
    if type(chunks[0]).__module__.split(".")[0] == "cupy":
        import cupy as xp
    parts = list(chunks)
    for axis in reversed(range(len(grid))):  # join the last axis's runs first, then the next
        step = grid[axis]
        if step > 1:
            parts = [xp.concatenate(parts[i:i + step], axis=axis) for i in range(0, len(parts), step)]
    return parts[0]


def graph_size(array) -> int:
    """How many tasks a lazy result's own layer holds (one per output chunk)."""
    return math.prod(len(c) for c in array.chunks)
