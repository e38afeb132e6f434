"""Pooling an input of any size in bounded memory: block by block along the first pooled axis
(`bands`), each block pooled by the engine with the geometry of the whole, its result written
to the sink while the next block is read.

The blocks are sized from the memory budget: a block of input, what the engine makes of it,
the next block being read and the last result being written stay within `memory`. The
results are the bits of pooling the whole array at once (tests/test_stream.py checks every
mode on random geometries, chunkings and tiny budgets).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..core.dtypes import natural_dtype
from ..core.geometry import AxisGeometry, PoolPlan
from ..core.modes import MODES
from ..core.spec import PoolSpec, spec_of_plan
from ..engine import pool_with
from ..engine.bands import Band, bands
from ..engine.sums import finite_magnitudes, magnitudes_of_whole
from ..errors import PoolError, param
from .budget import DEFAULT_MEMORY, Budget
from .sources import Source

Progress = Callable[[int], None]  # told how many more input bytes are done



@dataclass(frozen=True)
class Block:
    """One block of work: the outer (unpooled leading) index range and the band."""

    outer: tuple  # indices/slices of the axes before the band axis
    band: Band


def working_factor(dtype: np.dtype) -> int:
    """How many times its input bytes pooling one block may hold at once (the block, the next
    one being read, the engine's accumulators and float64 results, the result being written)."""
    return 4 + 16 // max(dtype.itemsize, 1)


def streamed_plan(shape: tuple[int, ...], spec: PoolSpec) -> PoolPlan:
    """The whole input's plan (every option checked once); sliding windows only."""
    if spec.return_indices:
        raise PoolError(f"{param('return_indices')} is not offered for streamed pooling; pool in memory")
    plan = spec.plan(shape)
    if len(plan.sliding) != len(plan.axes):
        raise PoolError("adaptive pooling is not streamed; pool the input in memory")
    return plan


def output_dtype(source_dtype: np.dtype, mode: str, dtype: np.dtype | None) -> np.dtype:
    return np.dtype(dtype) if dtype is not None else natural_dtype(source_dtype, mode)


def blocks(shape: tuple[int, ...], plan: PoolPlan, dtype: np.dtype, memory: int) -> list[Block]:
    """The blocks of the whole input, in order, each within `memory` (see `working_factor`)."""
    geometry = plan.sliding[0]
    axis = geometry.axis
    inner = math.prod(shape[axis + 1:]) * dtype.itemsize  # bytes of one row of the band axis
    budget = memory // working_factor(dtype)
    rows = (budget // max(inner, 1) - geometry.span) // max(geometry.stride, 1)
    _check_room(geometry, inner, rows, memory)
    group = max(1, rows // max(geometry.out, 1)) if axis else 1  # outer indices per block along axis - 1
    return [Block(outer, band) for outer in _outer_ranges(shape[:axis], group)
            for band in bands(geometry, max(rows, 1), plan.pad_mode)]


def block_bytes(block: Block, shape: tuple[int, ...], itemsize: int) -> int:
    """The input bytes a block reads (its halo included): the progress bar's unit."""
    sizes = [len(range(*index.indices(n))) for index, n in zip((*block.outer, block.band.read), shape, strict=False)]
    return math.prod(sizes) * math.prod(shape[len(sizes):]) * itemsize


def _check_room(geometry: AxisGeometry, inner: int, rows: int, memory: int) -> None:
    if rows >= 1:
        return
    need = (geometry.span + geometry.stride) * inner
    raise PoolError(f"one band of {geometry.span + geometry.stride} rows ({size_text(need)}) does not fit"
                    f" {param('memory')} {size_text(memory)} with the engine's work; raise {param('memory')}")


def check_chunk_room(source: Source, memory: int) -> None:
    """A Zarr input is read chunk by chunk, each decoded whole (its file and its values held at
    once): one whose single chunk needs more than half of `memory` is refused from its metadata,
    before anything is read or decoded."""
    if source.format != "ZARR":
        return
    chunk = math.prod(source.chunks) * source.dtype.itemsize
    if 2 * chunk > Budget(memory).chunk_reads:
        raise PoolError(f"{source.path}: one chunk {'x'.join(map(str, source.chunks))} holds {size_text(chunk)}, and"
                        f" reading it needs about {size_text(2 * chunk)}, more than half of {param('memory')}"
                        f" {size_text(memory)}; raise {param('memory')} to {size_text(4 * chunk)} or more, or"
                        " rechunk the store into smaller chunks")


def size_text(count: float) -> str:
    """12 bytes, 3.4 KB, 56.7 MB, 1.2 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{int(count)} bytes"


def _outer_ranges(leading: tuple[int, ...], group: int) -> Iterator[tuple]:
    """Index tuples over the leading axes (slices, so no axis drops): one index at a time, and
    runs of `group` on the last one."""
    if not leading:
        yield ()
        return
    for prefix in np.ndindex(*leading[:-1]):
        for start in range(0, leading[-1], group):
            yield (*(slice(i, i + 1) for i in prefix), slice(start, min(start + group, leading[-1])))


def pool_block(block: np.ndarray, spec: PoolSpec, band_axis_slot: int, band: Band, dtype: np.dtype | None):
    """Pool one block read for `band` (`spec`: the whole input's, `core/spec.spec_of_plan`) and
    cut the band's own rows out of the result."""
    padding = list(spec.padding)
    padding[band_axis_slot] = band.pads
    pooled = pool_with(spec.but(padding=padding, dtype=dtype), block)
    axis = spec.axes[band_axis_slot]
    cut = (slice(None),) * axis + (slice(band.skip, band.skip + band.rows),)
    return pooled[cut]


def whole_magnitudes(source: Source, plan: PoolPlan, memory: int) -> tuple[float, float] | None:
    """lp with p > 2 scales its p-norm where |x|^p would leave the float range, judged on the
    whole input: its smallest and largest finite non-zero |x|, in one extra read."""
    from ..engine.divisors import work_dtype

    work = work_dtype(source.dtype, plan.mode)
    found: list[tuple[float, float]] = []
    rows = max(1, memory // max(1, 4 * math.prod(source.shape[1:]) * max(work.itemsize, source.dtype.itemsize)))
    for start in range(0, source.shape[0], rows):
        part = finite_magnitudes(np, source.read((slice(start, start + rows),)), work)
        if part is not None:
            found.append(part)
    return (min(f[0] for f in found), max(f[1] for f in found)) if found else None


def stream_pool(source: Source, write: Callable[[tuple, np.ndarray], None], spec: PoolSpec,
                dtype: np.dtype | None, memory: int = DEFAULT_MEMORY, progress: Progress | None = None) -> None:
    """Pool `source` block by block into `write(index, values)`; reads overlap pooling and writing."""
    plan = streamed_plan(source.shape, spec)
    check_chunk_room(source, memory)
    explicit = spec_of_plan(plan, spec.ceil_mode)
    scaled: contextlib.AbstractContextManager = contextlib.nullcontext()
    if MODES[plan.mode].power == "p" and plan.p > 2:
        scaled = magnitudes_of_whole(whole_magnitudes(source, plan, memory))
    work = blocks(source.shape, plan, source.dtype, memory)
    if not work:
        return  # an empty input: an empty output
    with scaled, ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
        pending_read = reader.submit(source.read, _read_index(work[0]))
        pending_write = None
        for i, item in enumerate(work):
            values = pending_read.result()
            if i + 1 < len(work):
                pending_read = reader.submit(source.read, _read_index(work[i + 1]))
            result = pool_block(values, explicit, 0, item.band, dtype)
            if pending_write is not None:
                pending_write.result()
            pending_write = writer.submit(write, _write_index(item), result)
            if progress is not None:
                progress(values.nbytes)  # = block_bytes(item, ...)
            del values
        if pending_write is not None:
            pending_write.result()


def _read_index(block: Block) -> tuple:
    return (*block.outer, block.band.read)


def _write_index(block: Block) -> tuple:
    return (*block.outer, block.band.out)
