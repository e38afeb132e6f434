"""Multi-resolution pyramids in one pass over the input: level k is the pooling of level 0 with
a 2^k window and stride along each pooled (spatial) axis, rounded once.

The input is read band by band along its first spatial axis (bands of a multiple of 2^L rows,
L the number of levels); every level's rows of a band are made from that band alone:

- max and min: the extreme of the level below's 2 x 2 (x 2) cells: extremes nest, exactly.
- avg and sum of integers (and bools): exact integer sums carried from level to level
  (the sum of a 2^k window is the sum of its four 2^(k-1) sub-windows' sums), each level
  rounded once from its own sum (avg to an integer: half up) as the engine rounds
  `pool(level0, 2**k, mode=...)`: never a rounding of a rounding, so levels do not drift.
- every other case (median, l2, lp, float sums and means): `pool(band, 2**k)` from level 0
  itself, the engine's own result.

Bands end on whole windows of the last level, and a short last band joins the one before, so
every level is, bit for bit, the engine's pooling of the whole level 0 (tests/test_stream.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..core.dtypes import finalize, natural_dtype
from ..core.modes import MODES
from ..core.spec import PoolSpec
from ..engine import FAST_PATHS, pool, pool_with
from ..engine.bands import fewest_rows
from ..errors import PoolError, param
from .pooling import check_chunk_room, size_text
from .sources import Source

DEFAULT_MIN_SIZE = 512


@dataclass(frozen=True)
class Pyramid:
    """What a pyramid is: level 0's shape, the spatial (pooled) axes, the levels below it."""

    shape: tuple[int, ...]
    spatial: tuple[int, ...]
    levels: int  # reduced levels (level 0 not counted)
    mode: str = "avg"
    nan_policy: str = "propagate"
    dtype: np.dtype | None = None  # of levels 1..L; None: the natural dtype of `mode`
    nodata: int | float | None = None  # cells without data (engine/missing.py): every level pooled from level 0

    def level_shape(self, k: int) -> tuple[int, ...]:
        return tuple(n >> k if axis in self.spatial else n for axis, n in enumerate(self.shape))

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [self.level_shape(k) for k in range(self.levels + 1)]

    def level_dtype(self, source: np.dtype, k: int) -> np.dtype:
        if k == 0:
            return source
        return self.dtype if self.dtype is not None else natural_dtype(source, self.mode)

    def spec(self, k: int) -> PoolSpec:
        """The `PoolSpec` of level k straight from level 0."""
        return PoolSpec(window=2 ** k, stride=2 ** k, axes=self.spatial, mode=self.mode, nan_policy=self.nan_policy,
                        dtype=self.dtype, nodata=self.nodata)


def level_count(shape: tuple[int, ...], spatial: tuple[int, ...], levels: int | None,
                min_size: int | None) -> int:
    """`levels` reduced levels (each must keep every spatial side >= 1), or as many as halve the
    longest spatial side down to `min_size` or less (default 512)."""
    sides = [shape[axis] for axis in spatial]
    most = min(sides).bit_length() - 1  # halvings that leave every side >= 1
    if levels is not None:
        if not 1 <= levels <= most:
            raise PoolError(f"{param('levels')} {levels} does not fit sides {sides}; use 1..{max(most, 1)}")
        return levels
    target = DEFAULT_MIN_SIZE if min_size is None else min_size
    if target < 1:
        raise PoolError(f"{param('min_size')} {target} must be >= 1; use a side in pixels such as 512")
    count = 0
    while count < most and max(sides) >> count > target:
        count += 1
    if count == 0:
        raise PoolError(f"sides {sides} are already at most {target}; nothing to reduce (lower"
                        f" {param('min_size')} or give {param('levels')})")
    return count


def nests(pyramid: Pyramid, dtype: np.dtype) -> str:
    """How levels follow each other: 'extreme', 'sums' (exact integer sums) or 'direct' (also with
    a nodata: a window's count of real cells does not follow from the level above's values)."""
    record = MODES[pyramid.mode]
    if pyramid.nodata is not None:
        return "direct"
    if record.reducer == "extreme":
        return "extreme"
    small = dtype.itemsize <= 4 and pyramid.levels * len(pyramid.spatial) <= 30  # sums stay far inside int64
    if record.reducer == "sum" and record.power is None and dtype.kind in "biu" and small:
        return "sums"
    return "direct"


def band_rows(pyramid: Pyramid, dtype: np.dtype, row_bytes: int, memory: int, align: int = 1, chunk: int = 1) -> int:
    """Level-0 rows per band: a multiple of 2^L (and of `align`, the TIFF tile), enough that the
    engine reduces every level of a band as it reduces the whole level, and as many as `memory`
    holds (`working_factor` times the band's bytes). A multiple of the input's `chunk` rows too
    where `memory` holds that: no chunk is read twice."""
    factor = working_factor(pyramid, dtype)
    unit = math.lcm(2 ** pyramid.levels, align)
    if math.lcm(unit, chunk) * factor * row_bytes <= memory:
        unit = math.lcm(unit, chunk)
    fewest = unit * math.ceil(2 ** pyramid.levels * fewest_rows(2 ** pyramid.levels) / unit)
    return max(fewest, memory // max(1, factor * row_bytes) // unit * unit)


def check_memory(source: Source, pyramid: Pyramid, memory: int, align: int = 1) -> None:
    """Refuse, from sizes alone and before anything is read or written, a pyramid whose reads do
    not fit `memory` (the bands' share of the budget): a Zarr chunk too large to decode
    (`check_chunk_room`), or a band of the fewest rows `band_rows` allows larger than `memory`."""
    check_chunk_room(source, 2 * memory)
    axis = pyramid.spatial[0]
    row_bytes = math.prod(source.shape[axis + 1:]) * source.dtype.itemsize
    rows = band_rows(pyramid, source.dtype, row_bytes, 0, align)
    if rows * row_bytes > memory:
        raise PoolError(f"{source.path}: one band of {rows} rows of {pyramid.levels} levels holds"
                        f" {size_text(rows * row_bytes)}, more than {param('memory')} allows for it"
                        f" ({size_text(memory)}); raise {param('memory')}, or pool fewer levels at once")


def working_factor(pyramid: Pyramid, dtype: np.dtype) -> int:
    """A band's working memory over its own bytes: for levels made by pairs, the band, the next
    one (read meanwhile), its first halving (at most as large again), the sums, their rounding
    and the levels (about 6 times the band); for levels pooled from level 0, the engine's 64-bit
    intermediates (about 12 times an 8-bit band)."""
    return 6 if nests(pyramid, dtype) != "direct" else 12


def bands(pyramid: Pyramid, rows: int) -> Iterator[slice]:
    """Level-0 row ranges along the first spatial axis: `rows` each, a short rest joined to the last."""
    n = pyramid.shape[pyramid.spatial[0]]
    start = 0
    while start < n:
        stop = start + rows
        if n - stop < rows:
            stop = n
        yield slice(start, stop)
        start = stop


def outer_indices(pyramid: Pyramid) -> Iterator[tuple]:
    """Slices over the axes before the first spatial axis, one index at a time."""
    leading = pyramid.shape[:pyramid.spatial[0]]
    for index in np.ndindex(*leading):
        yield tuple(slice(i, i + 1) for i in index)


def band_levels(pyramid: Pyramid, band: np.ndarray, scratch: Scratch | None = None) -> list[np.ndarray]:
    """Levels 1..L of one band (levels' rows of that band), exactly as the engine pools level 0
    (`scratch`: buffers to reuse for the steps between levels)."""
    route = nests(pyramid, band.dtype)
    reaches = [k for k in range(1, pyramid.levels + 1) if min(band.shape[a] for a in pyramid.spatial) >> k]
    if route == "direct":
        return [_direct(pyramid, band, k) if k in reaches else _empty(pyramid, band, k)
                for k in range(1, pyramid.levels + 1)]
    levels = []
    carried = band
    for k in range(1, pyramid.levels + 1):
        if k not in reaches:  # a tile at the edge narrower than a 2^k window: no cell of level k
            levels.append(_empty(pyramid, band, k))
        elif route == "extreme":
            carried = next_extremes(pyramid, carried, scratch)
            levels.append(finalize(np, carried, carried.dtype, pyramid.level_dtype(band.dtype, k)))
        else:
            carried = halve(carried, pyramid.spatial, np.add, sum_dtype(pyramid, band.dtype, k), scratch, k,
                            reuse_result=True)  # the sums stay inside: from_sums makes the level
            levels.append(from_sums(pyramid, carried, band.dtype, k, scratch))
    return levels


def next_extremes(pyramid: Pyramid, carried: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
    """The next level's maxima (or minima) from this level's: of integers by pairs (exact, and
    quicker than the engine), of floats by the engine (its NaN policy and its choice among ties)."""
    if carried.dtype.kind in "biu" and FAST_PATHS.pairwise_levels:
        pair = np.maximum if MODES[pyramid.mode].keeps == "largest" else np.minimum
        return halve(carried, pyramid.spatial, pair, scratch=scratch, tag=("extremes", carried.shape))
    return pool(carried, 2, axes=pyramid.spatial, mode=pyramid.mode, nan_policy=pyramid.nan_policy)


PAIR_MODES: dict[Any, str] = {np.add: "sum", np.maximum: "max", np.minimum: "min"}


def halve(values: np.ndarray, axes: tuple[int, ...], pair: np.ufunc, dtype: np.dtype | None = None,
          scratch: Scratch | None = None, tag: object = None, reuse_result: bool = False) -> np.ndarray:
    """`values` with each of `axes` halved by `pair` (np.add, np.maximum, ...) of neighbours, in
    `dtype`: the window-2, stride-2 pooling over `axes` (an odd last element left out) as a few
    whole-array operations, the first axis first (contiguous halves, then half the data). The
    steps before the last go to `scratch` buffers (named by `tag` and the step), and the result
    too with `reuse_result` (the caller then copies what it keeps); else it is a new array."""
    if not FAST_PATHS.pairwise_levels:
        return pool(values, 2, axes=axes, mode=PAIR_MODES[pair], dtype=dtype)
    for step, axis in enumerate(axes):
        pairs = values.shape[axis] // 2 * 2
        head = (slice(None),) * axis
        even, odd = values[(*head, slice(0, pairs, 2))], values[(*head, slice(1, pairs, 2))]
        fresh = step == len(axes) - 1 and not reuse_result
        out = None if fresh or scratch is None else \
            scratch.buffer((tag, step), even.shape, np.result_type(even, dtype or even.dtype))
        values = pair(even, odd, dtype=dtype, out=out)
    return values


class Scratch:
    """Buffers reused from band to band, by name: fresh pages cost the kernel about as much time
    as the sums that fill them."""

    def __init__(self) -> None:
        self.buffers: dict = {}

    def buffer(self, name: object, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        held = self.buffers.get(name)
        if held is None or held.shape != shape or held.dtype != dtype:
            held = self.buffers[name] = np.empty(shape, dtype)
        return held


def sum_dtype(pyramid: Pyramid, source: np.dtype, k: int) -> np.dtype:
    """The narrowest integer dtype that holds every sum of a 2^k window of `source` values
    exactly (uint16 up to 16 x 16 windows of uint8): less memory to carry, the same sums."""
    info = np.iinfo(source) if source.kind in "iu" else np.iinfo(np.uint8)  # bool: 0 or 1
    low, high = (0, 1) if source.kind == "b" else (int(info.min), int(info.max))
    cells = 2 ** (k * len(pyramid.spatial))
    for candidate in (np.uint16, np.uint32, np.int16, np.int32, np.int64):  # room for the sum and half a window
        limits = np.iinfo(candidate)
        if limits.min <= low * cells and high * cells + cells // 2 <= limits.max and (low >= 0 or limits.min < 0):
            return np.dtype(candidate)
    return np.dtype(np.int64)


def _empty(pyramid: Pyramid, band: np.ndarray, k: int) -> np.ndarray:
    shape = tuple(n >> k if axis in pyramid.spatial else n for axis, n in enumerate(band.shape))
    return np.empty(shape, dtype=pyramid.level_dtype(band.dtype, k))


def _direct(pyramid: Pyramid, band: np.ndarray, k: int) -> np.ndarray:
    return pool_with(pyramid.spec(k), band)


def from_sums(pyramid: Pyramid, sums: np.ndarray, source: np.dtype, k: int,
              scratch: Scratch | None = None) -> np.ndarray:
    """Level k (a new array) from the exact sums of its windows: the sum itself, or the mean
    rounded once (`scratch`: a buffer to reuse for the rounding)."""
    natural = natural_dtype(source, pyramid.mode)
    target = pyramid.level_dtype(source, k)
    if not MODES[pyramid.mode].divisor:  # sum
        return _fresh(finalize(np, sums.astype(natural), natural, target), sums)
    shift = k * len(pyramid.spatial)
    count = 2 ** shift
    if target.kind in "iu":  # floor(sum / count + 1/2) = (sum + count/2) >> shift, exactly (a floor for
        rounding = None if scratch is None else scratch.buffer(("rounded", k), sums.shape, sums.dtype)
        rounded = np.add(sums, sums.dtype.type(count // 2), out=rounding)  # negative sums too); sum_dtype
        rounded >>= sums.dtype.type(shift)  # leaves room for the half
        if np.can_cast(source, target):  # a mean lies within its values' range: nothing to clip
            return rounded.astype(target)
        return _fresh(finalize(np, rounded, rounded.dtype, target), rounded)
    mean = sums.astype(np.float64) / np.float64(count)
    return finalize(np, mean, natural, target)


def _fresh(result: np.ndarray, buffer: np.ndarray) -> np.ndarray:
    """`result`, copied where it is `buffer` (which the next band overwrites)."""
    return result.copy() if np.shares_memory(result, buffer) else result


Written = Callable[[int, tuple, np.ndarray], None]  # (level, index in that level, values)


def build(source: Source, pyramid: Pyramid, write: Written, memory: int, align: int = 1) -> Iterator[int]:
    """Read `source` once, band by band (the next band read on a thread while this one is
    reduced); `write(level, index, values)` every level's rows of a band (level 0 too), then
    yield the band's input bytes (for progress)."""
    axis = pyramid.spatial[0]
    row_bytes = math.prod(source.shape[axis + 1:]) * source.dtype.itemsize
    rows = band_rows(pyramid, source.dtype, row_bytes, memory, align, source.chunks[axis])
    scratch = Scratch()
    indices = [(*outer, band) for outer in outer_indices(pyramid) for band in bands(pyramid, rows)]
    with ThreadPoolExecutor(1) as reader:
        pending = reader.submit(source.read, indices[0]) if indices else None
        for i, index in enumerate(indices):
            values = cast(Future, pending).result()
            if i + 1 < len(indices):
                pending = reader.submit(source.read, indices[i + 1])
            write(0, index, values)
            band = index[-1]
            for k, level in enumerate(band_levels(pyramid, values, scratch), start=1):
                write(k, (*index[:-1], slice(band.start >> k, (band.start >> k) + level.shape[axis])), level)
            yield values.nbytes
