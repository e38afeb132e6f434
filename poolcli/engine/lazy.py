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
from typing import Any, cast

import numpy as np

from ..core.dtypes import natural_dtype
from ..core.geometry import AxisGeometry, PoolPlan
from ..core.modes import MODES
from ..core.spec import PoolSpec, spec_of_plan
from ..errors import PoolError
from .bands import Band, band, fewest_rows
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


def known_shape(x) -> tuple[int, ...]:
    """The shape of Dask array `x`; a PoolError where a chunk's size is unknown (NaN, after
    boolean indexing): no window can be placed before they are computed."""
    if any(math.isnan(n) for n in x.shape):
        raise PoolError(f"a Dask array of unknown chunk sizes (shape {tuple(x.shape)}) cannot be pooled;"
                        " call x.compute_chunk_sizes() first")
    return tuple(int(n) for n in x.shape)


def lazy_pool(x, plan: PoolPlan, spec: PoolSpec, pool: Callable):
    """The lazy pooling of Dask array `x` by `plan` (sliding windows, of `spec`), `pool` (`pool_with`)
    pooling each block."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    if len(plan.sliding) != len(plan.axes):
        raise PoolError("adaptive pooling of Dask arrays is not offered; pool a NumPy array, or rechunk and"
                        " map adaptive_pool over blocks yourself")
    whole, dtype = spec_of_plan(plan, spec.ceil_mode), plan.dtype
    by_axis = {g.axis: pieces(g, x.chunks[g.axis], plan.pad_mode) for g in plan.sliding}
    out_dtype = np.dtype(dtype) if dtype is not None else natural_dtype(np.dtype(x.dtype), plan.mode)
    name = "poolcli-pool-" + tokenize(x, whole.keywords(), str(out_dtype))
    magnitudes, extra = _magnitudes(x, plan)
    reads, cuts = _per_axis(x, by_axis)
    layer = _layer(name, x.name, reads, cuts, (whole, dtype, pool, magnitudes))
    graph = HighLevelGraph.from_collections(name, cast(Any, layer), dependencies=[x, *extra])
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


@dataclass(frozen=True)
class Slab:
    """The gradient of one input chunk along one pooled axis: the band of outputs whose windows
    reach into it (None: no window does, the gradient is zero) and the chunks it reads."""

    band: Band | None
    chunk: tuple[int, int]  # the chunk's rows, in x
    x_chunks: range  # x chunks holding band.read
    x_offset: int
    grad_chunks: range  # gradient chunks holding band.out
    grad_offset: int


def slabs(geometry: AxisGeometry, x_chunks: Sequence[int], grad_chunks: Sequence[int], pad_mode: str) -> list[Slab]:
    """Per input chunk of one pooled axis, the outputs whose windows reach into it."""
    s, lo, span, out = geometry.stride, geometry.pad_lo, geometry.span, geometry.out
    x_bounds = list(itertools.accumulate(x_chunks, initial=0))
    g_bounds = list(itertools.accumulate(grad_chunks, initial=0))
    found = []
    for c0, c1 in itertools.pairwise(x_bounds):
        o0, o1 = max(0, (c0 + lo - span) // s + 1), min(out, (c1 - 1 + lo) // s + 1)
        if pad_mode != "zeros":  # edge and reflect pads copy rows 0..lo and n-1-hi..n-1: their windows too
            o0 = 0 if c0 <= lo else o0
            o1 = out if c1 >= geometry.size - geometry.pad_hi - 1 else o1
        if o0 >= o1:
            found.append(Slab(None, (c0, c1), range(0), 0, range(0), 0))
            continue
        item = band(geometry, o0, out if _overhangs(geometry, o1 - 1) else o1, pad_mode)
        item = Band(slice(o0, item.out.stop), item.read, item.pads, item.skip)
        xs = _covering(x_bounds, item.read.start, item.read.stop)
        gs = _covering(g_bounds, item.out.start, item.out.stop)
        found.append(Slab(item, (c0, c1), xs, x_bounds[xs.start], gs, g_bounds[gs.start]))
    return found


def _overhangs(geometry: AxisGeometry, o: int) -> bool:
    return o * geometry.stride - geometry.pad_lo + geometry.span > geometry.size


def _covering(bounds: list[int], start: int, stop: int) -> range:
    """The chunks (between `bounds`) that hold rows [start, stop)."""
    return range(bisect.bisect_right(bounds, start) - 1, bisect.bisect_left(bounds, stop))


def lazy_backward(grad, x, plan: PoolPlan, spec: PoolSpec, backward: Callable):
    """dL/dx of Dask array `x`, one task per input chunk: the windows that reach into the chunk
    (their x rows and their gradient) pooled backward as the whole array is, the chunk's rows kept."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    whole = spec_of_plan(plan, spec.ceil_mode)
    pooled = {g.axis for g in plan.sliding}
    grad = da.asarray(grad)
    grad = grad.rechunk({axis: x.chunks[axis] for axis in range(x.ndim) if axis not in pooled})
    by_axis = {g.axis: slabs(g, x.chunks[g.axis], grad.chunks[g.axis], plan.pad_mode) for g in plan.sliding}
    work = np.dtype(x.dtype) if np.dtype(x.dtype).kind == "f" else np.dtype(np.float64)
    name = "poolcli-backward-" + tokenize(grad, x, whole.keywords())
    layer = {}
    for index in itertools.product(*(range(len(c)) for c in x.chunks)):
        parts = [by_axis[axis][i] if axis in by_axis else i for axis, i in enumerate(index)]
        layer[(name, *index)] = (_backward_block, _chunk_keys(x.name, parts, "x"), _chunk_keys(grad.name, parts, "g"),
                                 _grids(parts, "x"), _grids(parts, "g"), _slab_cuts(parts),
                                 tuple(x.chunks[a][i] for a, i in enumerate(index)), whole, backward,
                                 str(work))
    graph = HighLevelGraph.from_collections(name, cast(Any, layer), dependencies=[x, grad])
    return da.Array(graph, name, x.chunks, meta=np.empty((0,) * x.ndim, work))


def _ranges(parts: list, which: str) -> list[range]:
    return [(p.x_chunks if which == "x" else p.grad_chunks) if isinstance(p, Slab) else range(p, p + 1)
            for p in parts]


def _chunk_keys(name: str, parts: list, which: str) -> list:
    return [(name, *chunk) for chunk in itertools.product(*_ranges(parts, which))]


def _grids(parts: list, which: str) -> tuple[int, ...]:
    return tuple(len(r) for r in _ranges(parts, which))


def _slab_cuts(parts: list) -> tuple:
    """Per axis: None (a whole chunk of an unpooled axis) or the slab's numbers."""
    cuts: list[tuple | None] = []
    for p in parts:
        if not isinstance(p, Slab):
            cuts.append(None)
        elif p.band is None:
            cuts.append(("zero", p.chunk[1] - p.chunk[0]))
        else:
            b = p.band
            cuts.append(("band", b.read.start - p.x_offset, b.read.stop - p.x_offset, b.pads, b.skip, b.rows,
                         b.out.start - p.grad_offset, p.chunk[0] - b.read.start, p.chunk[1] - p.chunk[0]))
    return tuple(cuts)


def _backward_block(x_chunks, grad_chunks, x_grid, grad_grid, cuts, shape, whole: PoolSpec, backward, work):
    """dL/dx of one chunk (of `shape`): pool backward (`backward_with`) the x rows and gradient of the
    windows that reach into it, keep its rows."""
    if any(c is not None and c[0] == "zero" for c in cuts):  # no window reaches these cells
        return np.zeros(shape, dtype=work)
    x_block, grad_block = _joined(x_chunks, x_grid), _joined(grad_chunks, grad_grid)
    x_rows = x_block[tuple(slice(None) if c is None else slice(c[1], c[2]) for c in cuts)]
    padding = list(whole.padding)
    for slot, axis in enumerate(whole.axes):
        padding[slot] = cuts[axis][3]
    band_spec = whole.but(padding=padding)
    full = np.zeros(band_spec.plan(x_rows.shape).out_shape, dtype=grad_block.dtype)
    ours = tuple(slice(None) if c is None else slice(c[4], c[4] + c[5]) for c in cuts)
    full[ours] = grad_block[tuple(slice(None) if c is None else slice(c[6], c[6] + c[5]) for c in cuts)]
    gx = backward(band_spec, full, x_rows)
    out = np.zeros(shape, dtype=gx.dtype)
    source, target = [], []
    for a, c in enumerate(cuts):
        if c is None:
            source.append(slice(None))
            target.append(slice(None))
            continue
        start, stop = max(c[7], 0), min(c[7] + c[8], x_rows.shape[a])
        source.append(slice(start, stop))
        target.append(slice(start - c[7], stop - c[7]))
    out[tuple(target)] = gx[tuple(source)]
    return out


def region_backward(x: np.ndarray, plan: PoolPlan, spec: PoolSpec, ranges: dict[int, tuple[int, int]],
                    backward: Callable) -> np.ndarray:
    """dL/dx for dL/dy = 1 over a region of `x` only ((start, stop) per pooled axis in `ranges`,
    whole elsewhere), from the windows that reach into it: the rows of the whole backward pass,
    in memory bounded by the region and its halo, not by `x`."""
    whole = spec_of_plan(plan, spec.ceil_mode)
    parts: list = []
    for axis, n in enumerate(x.shape):
        geometry = next((g for g in plan.sliding if g.axis == axis), None)
        if geometry is None:
            parts.append(0)
            continue
        start, stop = ranges.get(axis, (0, n))
        sizes = [size for size in (start, stop - start, n - stop) if size]
        slab = slabs(geometry, sizes, (geometry.out,), plan.pad_mode)[1 if start else 0]
        parts.append(Slab(slab.band, slab.chunk, range(0, 1), 0, range(0, 1), 0))  # x and grad as one block each
    shape = tuple(ranges.get(a, (0, n))[1] - ranges.get(a, (0, n))[0] for a, n in enumerate(x.shape))
    work = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    ones = np.broadcast_to(np.ones((), dtype=work), plan.out_shape)
    return _backward_block([x], [ones], (1,) * x.ndim, (1,) * x.ndim, _slab_cuts(parts), shape, whole, backward,
                           str(work))


def lazy_adaptive(x, plan: PoolPlan, adaptive: Callable):
    """Adaptive pooling of Dask array `x`: every bin depends on its axis's whole length, so the
    pooled axes are joined into one chunk and each block (a run of the other axes) is pooled by
    `adaptive` in one task: the NumPy bits, with a graph of one task per block."""
    if plan.return_indices:
        raise PoolError("return_indices is not offered for Dask arrays; pool a NumPy or CuPy array")
    pooled = plan.pooled_axes
    whole = x.rechunk({axis: -1 for axis in pooled})
    out_dtype = np.dtype(plan.dtype) if plan.dtype is not None else natural_dtype(np.dtype(x.dtype), plan.mode)
    chunks = tuple((plan.out_shape[axis],) if axis in pooled else whole.chunks[axis] for axis in range(x.ndim))
    return whole.map_blocks(adaptive, chunks=chunks, dtype=out_dtype, meta=np.empty((0,) * x.ndim, out_dtype))


def _per_axis(x, by_axis: dict) -> tuple[list, list]:
    """Per axis and block: the input chunk indices it reads, and its cut (None: the chunk as it is;
    else read start, read stop, pads, skip, rows in the joined chunks), computed once per axis."""
    reads: list[list[range]] = []
    cuts: list[list] = []
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


def _pool_block(chunks: list, grid: tuple, cuts: tuple, whole: PoolSpec, dtype, pool: Callable, magnitudes):
    """Join the input chunks (a flat list, row-major over `grid`), take the rows the band reads,
    pool with its pads, cut its outputs."""
    block = _joined(chunks, grid)
    read = tuple(slice(c[0], c[1]) if c is not None else slice(None) for c in cuts)
    block = block[read]
    padding = list(whole.padding)
    for slot, axis in enumerate(whole.axes):
        if cuts[axis] is not None:
            padding[slot] = cuts[axis][2]
    scaling: contextlib.AbstractContextManager = contextlib.nullcontext()
    if magnitudes is not None:
        smallest, largest = (float(np.ravel(np.asarray(m, dtype=float))[0]) for m in magnitudes)
        scaling = magnitudes_of_whole((smallest, largest) if largest > 0 else None)
    with scaling:
        pooled = pool(whole.but(padding=padding, dtype=dtype), block)
    keep = tuple(slice(c[3], c[3] + c[4]) if c is not None else slice(None) for c in cuts)
    return pooled[keep]


def _joined(chunks: list, grid: tuple):
    """The chunks joined into one block along every axis (CuPy chunks by CuPy)."""
    if len(chunks) == 1:
        return chunks[0]
    xp: Any = np
    if type(chunks[0]).__module__.split(".")[0] == "cupy":
        xp = __import__("cupy")
    parts = list(chunks)
    for axis in reversed(range(len(grid))):  # join the last axis's runs first, then the next
        step = grid[axis]
        if step > 1:
            parts = [xp.concatenate(parts[i:i + step], axis=axis) for i in range(0, len(parts), step)]
    return parts[0]


def graph_size(array) -> int:
    """How many tasks a lazy result's own layer holds (one per output chunk)."""
    return math.prod(len(c) for c in array.chunks)
