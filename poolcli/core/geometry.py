"""Validated pooling geometry: every user parameter is checked and resolved here, once.

`plan_pool` turns the keywords of `poolcli.pool` and an input shape into a frozen
`PoolPlan`; the engine trusts it. Each pooled axis becomes an `AxisGeometry` (or an
`AdaptiveAxis`) that lists its window taps: tap j of every window, as one strided slice
of the output and one of the input, so the engine loops over taps, never over outputs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import PoolError, param
from .options import (
    INT64_MAX,
    ceil_div,
    check_dtype,
    check_int,
    check_options,
    is_sequence,
    per_axis,
    resolve_axes,
    resolve_padding,
    same_padding,
)

MAX_OUTPUT_BYTES = INT64_MAX  # NumPy's limit on one array's bytes


@dataclass(frozen=True)
class Tap:
    """Tap j of every window along one axis: output[out] takes input[src].

    `out` and `src` are both slices (regular pooling) or both int64 index arrays
    (adaptive bins of uneven size).
    """

    out: slice | np.ndarray
    src: slice | np.ndarray

    @property
    def is_slice(self) -> bool:
        return isinstance(self.out, slice)

    def src_positions(self) -> np.ndarray:
        """Input positions read by this tap, one per selected output."""
        if isinstance(self.src, slice):
            return np.arange(self.src.start, self.src.stop, self.src.step)
        return self.src


@dataclass(frozen=True)
class AxisGeometry:
    """One pooled axis: size n, window k, stride s, dilation d, pads (lo, hi), output length.

    `source_map`, when set, maps positions of a materialised edge/reflect padding back
    to input positions (the engine pools the padded array with zero pads).
    """

    axis: int
    size: int
    window: int
    stride: int
    dilation: int
    pad_lo: int
    pad_hi: int
    out: int
    source_map: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def span(self) -> int:
        """k_eff = d(k-1)+1, the extent of one window."""
        return self.dilation * (self.window - 1) + 1

    @functools.cached_property
    def taps(self) -> tuple[Tap, ...]:
        """Per tap j, the outputs whose tap lands inside the input, in tap order.

        Only the j that can reach the input for some output are visited, so a huge window
        (or padding) over a short input costs its few real taps, not a loop over `window`.
        """
        taps = []
        first_j = max(0, ceil_div(self.pad_lo - (self.out - 1) * self.stride, self.dilation))
        last_j = min(self.window - 1, (self.size - 1 + self.pad_lo) // self.dilation)
        for j in range(first_j, last_j + 1):
            offset = j * self.dilation - self.pad_lo  # input position of tap j in window 0
            first = max(0, ceil_div(-offset, self.stride))
            last = min(self.out - 1, (self.size - 1 - offset) // self.stride)
            if last < first:
                continue
            start = first * self.stride + offset
            stop = last * self.stride + offset + 1
            taps.append(Tap(slice(first, last + 1), slice(start, stop, self.stride)))
        return tuple(taps)

    @property
    def most_taps(self) -> int:
        """The most input cells one window reads: k, or fewer on a short (dilated) axis."""
        return min(self.window, ceil_div(self.size, self.dilation))

    def window_cells(self, o: int) -> slice:
        """The input cells of window `o` (its taps inside the input), as one strided slice."""
        start = o * self.stride - self.pad_lo
        first = max(0, ceil_div(-start, self.dilation))
        last = min(self.window - 1, (self.size - 1 - start) // self.dilation)
        return slice(start + first * self.dilation, start + last * self.dilation + 1, self.dilation)

    def tap_counts(self, lo: int, hi: int) -> np.ndarray:
        """Per output window, how many taps fall inside [lo, hi) of input coordinates
        (counted in closed form: O(out), whatever the window)."""
        starts = np.arange(self.out, dtype=np.int64) * self.stride - self.pad_lo
        first = np.maximum(-((starts - lo) // self.dilation), 0)  # ceil((lo - start) / d)
        last = np.minimum((hi - 1 - starts) // self.dilation, self.window - 1)
        return np.maximum(last - first + 1, 0)

    def window_table(self, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, present) of windows [first, stop) x their cells: the input positions of
        each window's taps inside the input, in tap order, then absent ones (position 0,
        present False) up to the widest window's count. Padding taps are left out, so a
        window over a short input costs its real cells, however wide it is."""
        starts = np.arange(first, stop, dtype=np.int64) * self.stride - self.pad_lo
        firsts = np.maximum(-(starts // self.dilation), 0)  # the first tap inside the input
        counts = np.maximum(np.minimum((self.size - 1 - starts) // self.dilation, self.window - 1) - firsts + 1, 0)
        cells = np.arange(int(counts.max(initial=1)), dtype=np.int64)
        present = cells < counts[:, None]
        positions = starts[:, None] + (firsts[:, None] + cells) * self.dilation
        return np.where(present, positions, 0), present

    def count_real(self) -> np.ndarray:
        """Taps inside the input: the divisor with count_include_pad=False."""
        return self.tap_counts(0, self.size)

    def count_padded(self) -> np.ndarray:
        """Taps inside the padded input, not the ceil-mode overhang (PyTorch's divisor)."""
        return self.tap_counts(-self.pad_lo, self.size + self.pad_hi)

    def original_positions(self, positions: np.ndarray) -> np.ndarray:
        """Input positions of the original array (through a materialised padding)."""
        return positions if self.source_map is None else self.source_map[positions]


@dataclass(frozen=True)
class AdaptiveAxis:
    """One adaptively pooled axis: bin i covers [floor(i*n/out), ceil((i+1)*n/out))."""

    axis: int
    size: int
    out: int
    source_map: None = None

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        i = np.arange(self.out, dtype=np.int64)
        return (i * self.size) // self.out, -((-(i + 1) * self.size) // self.out)

    @functools.cached_property
    def taps(self) -> tuple[Tap, ...]:
        starts, stops = self.bounds
        taps = []
        for j in range(int((stops - starts).max())):
            selected = np.nonzero(starts + j < stops)[0]
            taps.append(Tap(selected, starts[selected] + j))
        return tuple(taps)

    def count_real(self) -> np.ndarray:
        starts, stops = self.bounds
        return stops - starts

    count_padded = count_real

    @property
    def most_taps(self) -> int:
        """The most input cells one bin reads."""
        return len(self.taps)

    def window_table(self, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, present) of bins [first, stop) x cells, as AxisGeometry.window_table."""
        starts, stops = (bound[first:stop, None] for bound in self.bounds)
        positions = starts + np.arange(int((stops - starts).max(initial=1)), dtype=np.int64)
        present = positions < stops
        return np.where(present, positions, 0), present

    def original_positions(self, positions: np.ndarray) -> np.ndarray:
        return positions


@dataclass(frozen=True)
class PoolPlan:
    """Everything the engine needs, validated once: the input shape, one geometry per pooled
    axis, and every option of the call (the one options object of pool and adaptive_pool)."""

    shape: tuple[int, ...]
    axes: tuple[AxisGeometry | AdaptiveAxis, ...]  # sorted by array axis
    mode: str
    count_include_pad: bool = True
    divisor_override: int | None = None
    p: float = 2.0
    pad_mode: str = "zeros"
    nan_policy: str = "propagate"
    dtype: np.dtype | None = None  # the requested output dtype
    return_indices: bool = False
    nodata: int | float | None = None  # the value of missing cells (engine/missing.py)

    @property
    def out_shape(self) -> tuple[int, ...]:
        shape = list(self.shape)
        for geometry in self.axes:
            shape[geometry.axis] = geometry.out
        return tuple(shape)

    @property
    def pooled_axes(self) -> tuple[int, ...]:
        return tuple(g.axis for g in self.axes)

    @property
    def sliding(self) -> tuple[AxisGeometry, ...]:
        """The axes of a sliding-window plan (every plan but an adaptive one's)."""
        axes = tuple(g for g in self.axes if isinstance(g, AxisGeometry))
        if len(axes) != len(self.axes):
            raise PoolError("an adaptive plan has bins, not windows; use the sliding-window options")
        return axes

    @property
    def pooled_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[a] for a in self.pooled_axes)


def output_length(size: int, span: int, stride: int, lo: int, hi: int, ceil_mode: bool) -> int:
    """Windows along one axis (PyTorch's rule: the last window starts inside input or left pad)."""
    room = size + lo + hi - span
    if not ceil_mode:
        return room // stride + 1
    out = ceil_div(room, stride) + 1
    if (out - 1) * stride >= size + lo:
        out -= 1
    return out


@dataclass(frozen=True)
class Windows:
    """The window options of a call, checked without an input: one value per pooled axis."""

    windows: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[tuple[int, int] | str, ...]


def check_windows(window: object, stride: object, padding: object, dilation: object, count: int,
                  axes: tuple[int, ...] | None = None) -> Windows:
    """Everything about windows, strides, dilations and padding that holds whatever the input
    (the rest, windows larger than the input, needs its shape: `make_axis`). `axes` names the
    pooled axes in messages (else their order)."""
    windows = per_axis("window", window, count, 1)
    strides = windows if stride is None else per_axis("stride", stride, count, 1)
    dilations = per_axis("dilation", dilation, count, 1)
    pads = resolve_padding(padding, count)
    for axis, k, d, pad in zip(axes or range(count), windows, dilations, pads):
        span = _checked_span(axis, k, d)
        if pad != "same":
            _check_pads(axis, span, *pad)
    return Windows(windows, strides, dilations, pads)


def _checked_span(axis: int, window: int, dilation: int) -> int:
    span = dilation * (window - 1) + 1
    if span > INT64_MAX:
        raise PoolError(f"{param('window')} {window} with dilation {dilation} spans {span} cells on axis {axis}, "
                        f"more than the engine can represent ({INT64_MAX}); use a smaller window or dilation")
    return span


def _check_pads(axis: int, span: int, lo: int, hi: int) -> None:
    """Each pad at most span - 1, so that no window is padding alone."""
    for side, pad in (("lo", lo), ("hi", hi)):
        if pad > span - 1:
            raise PoolError(
                f"{param('padding')} {pad} ({side} side) exceeds window-1 = {span - 1} on axis {axis}; "
                f"use {param('padding')} <= {span - 1} or a larger window"
            )


def make_axis(axis, size, window, stride, dilation, pads, ceil_mode, shape) -> AxisGeometry:
    span = _checked_span(axis, window, dilation)
    lo, hi = same_padding(size, span, stride) if pads == "same" else pads
    _check_pads(axis, span, lo, hi)
    if size + lo + hi > INT64_MAX:
        raise PoolError(f"{param('padding')} {lo}+{hi} around size {size} on axis {axis} exceeds {INT64_MAX}, "
                        "the largest the engine can represent; use less padding")
    out = output_length(size, span, stride, lo, hi, ceil_mode)
    if out < 1:
        raise PoolError(
            f"{param('window')} {window} (span {span}) is larger than the padded input on axis {axis} "
            f"(size {size} + padding {lo}+{hi}) of shape {tuple(shape)}; "
            "use a smaller window or more padding"
        )
    if out * 8 > MAX_OUTPUT_BYTES:
        raise PoolError(f"{param('window')} {window} with padding {lo}+{hi} gives {out} outputs on axis {axis},"
                        " more than "
                        "one array can hold; use a larger stride, less padding or a smaller window")
    geometry = AxisGeometry(axis, size, window, stride, dilation, lo, hi, out)
    # Every window reaches the input (pads <= span - 1, and the last one starts inside it),
    # so only a dilation longer than the input can step over it and leave padding alone.
    empty = np.flatnonzero(geometry.count_real() == 0) if dilation > size else np.zeros(0, np.int64)
    if len(empty):
        raise PoolError(
            f"{param('window')} {int(empty[0])} on axis {axis} (size {size}, dilation {dilation}, "
            f"padding {lo}+{hi}) holds padding alone; use less padding or a smaller dilation"
        )
    return geometry


def plan_pool(
    shape: tuple[int, ...],
    window: object,
    stride: object = None,
    *,
    padding: object = 0,
    dilation: object = 1,
    axes: object = None,
    checked: bool = False,
    **options,
) -> PoolPlan:
    """Validate everything, once, into the plan (geometry and options alike). `checked`: the
    options already passed `check_options` (a checked `core/spec.PoolSpec`'s), so only the
    shape's checks and the dtype's resolution run."""
    options = {**options, "dtype": check_dtype(options.get("dtype"))} if checked else check_options(**options)
    pooled = resolve_axes(len(shape), window, axes)
    windows = check_windows(window, stride, padding, dilation, len(pooled), pooled)
    geometries = [
        make_axis(a, shape[a], k, s, d, pad, options["ceil_mode"], shape)
        for a, k, s, d, pad in zip(pooled, windows.windows, windows.strides, windows.dilations, windows.pads)
    ]
    plan = PoolPlan(
        shape=tuple(shape),
        axes=tuple(sorted(geometries, key=lambda g: g.axis)),
        **{k: options[k] for k in ("mode", "count_include_pad", "divisor_override", "p", "pad_mode", "nan_policy",
                                   "dtype", "return_indices", "nodata")},
    )
    return _addressable(plan)


def plan_adaptive(shape: tuple[int, ...], output_size: object, axes: object = None, **options) -> PoolPlan:
    """Adaptive pooling: output_size int or one per axis (None keeps that axis's size); the
    options go through the same checks as `plan_pool`'s."""
    checked = check_options(**options)
    pooled = resolve_axes(len(shape), output_size, axes, name="output_size")
    sizes = tuple(output_size) if is_sequence(output_size) else (output_size,) * len(pooled)
    geometries = []
    for axis, size in zip(pooled, sizes):
        out = shape[axis] if size is None else check_int("output_size", size, 1)
        if shape[axis] < 1:
            raise PoolError(f"axis {axis} of shape {tuple(shape)} is empty; pool an array with data on it")
        if out * shape[axis] > INT64_MAX:  # the bin bounds i * n // out are int64
            raise PoolError(f"{param('output_size')} {out} on axis {axis} of size {shape[axis]} is more than"
                            " the engine "
                            f"can represent; use output_size <= {INT64_MAX // shape[axis]}")
        geometries.append(_adaptive_axis(axis, shape[axis], out))
    return _addressable(PoolPlan(tuple(shape), tuple(sorted(geometries, key=lambda g: g.axis)),
                                 **{k: checked[k] for k in ("mode", "p", "nan_policy", "dtype", "return_indices",
                                                              "nodata")}))


def target_size(sides: tuple[int, ...], size: tuple[int | None, ...] | None = None,
                max_side: int | None = None) -> tuple[int, ...]:
    """The output sides for input `sides`: `size` (None keeps the aspect ratio: that side scaled as the
    given ones are, rounded half up, at least 1), or the sides scaled so the longest is `max_side`
    (never up: sides already within it stay). Exact integer arithmetic.

    >>> target_size((480, 640), (240, None)), target_size((480, 640), (None, 100))
    ((240, 320), (75, 100))
    >>> target_size((480, 640), max_side=100)
    (75, 100)
    >>> target_size((3, 1000), max_side=100), target_size((50, 60), max_side=100), target_size((5, 7), (None, 2))
    ((1, 100), (50, 60), (1, 2))
    """
    if max_side is not None:
        longest = max(sides)
        if longest <= max_side:
            return tuple(sides)
        return tuple(max(1, (2 * n * max_side + longest) // (2 * longest)) for n in sides)
    assert size is not None and len(size) == len(sides)
    given = [(n, s) for n, s in zip(sides, size) if s is not None]
    if not given:
        raise PoolError(f"{param('size')} keeps every side; give at least one side")
    n0, s0 = given[0]  # the scale: the first side given
    return tuple(s if s is not None else max(1, (2 * n * s0 + n0) // (2 * n0)) for n, s in zip(sides, size))


def _addressable(plan: PoolPlan) -> PoolPlan:
    """The plan, if its output (at 8 bytes an element, the widest output dtype) fits in one array."""
    elements = math.prod(plan.out_shape)
    if elements * 8 > MAX_OUTPUT_BYTES:
        raise PoolError(f"the output would have shape {plan.out_shape} ({elements} elements), more than one "
                        "array can hold; use a larger stride, less padding or a smaller output_size")
    return plan


def _adaptive_axis(axis: int, size: int, out: int) -> AxisGeometry | AdaptiveAxis:
    """Even bins are ordinary windows (fast strided taps); uneven ones get index taps."""
    if size % out == 0:
        k = size // out
        return AxisGeometry(axis, size, k, k, 1, 0, 0, out)
    return AdaptiveAxis(axis, size, out)


def with_materialised_padding(plan: PoolPlan, itemsize: int = 8) -> PoolPlan:
    """For edge/reflect padding: the plan over the padded array, pads zero, and source maps.

    A PoolError where that array (of `itemsize`-byte elements) is more than one array can
    hold: such padding (up to window - 1 per side) is fine as zeros, not as real cells.
    """
    padded = list(plan.shape)
    for g in plan.sliding:
        padded[g.axis] = g.size + g.pad_lo + g.pad_hi
    if math.prod(padded) * itemsize > MAX_OUTPUT_BYTES:
        raise PoolError(f"{param('pad_mode')} {plan.pad_mode!r} copies its padding into an array of shape"
                        f" {tuple(padded)}, "
                        "more than one array can hold; use less padding or pad_mode='zeros'")
    geometries = []
    for g in plan.sliding:
        source = np.pad(np.arange(g.size), (g.pad_lo, g.pad_hi), mode=plan.pad_mode)  # type: ignore[call-overload]
        geometries.append(
            AxisGeometry(g.axis, g.size + g.pad_lo + g.pad_hi, g.window, g.stride, g.dilation,
                         0, 0, g.out, source_map=source)
        )
    padded_shape = list(plan.shape)
    for g in geometries:
        padded_shape[g.axis] = g.size
    return replace(plan, shape=tuple(padded_shape), axes=tuple(geometries))


def materialise_padding(xp, x, plan: PoolPlan):
    """Edge/reflect padding is real data: pad `x` once (with `xp`, NumPy or CuPy), and pool the
    padded array with zero pads (the plan `with_materialised_padding` gives)."""
    sliding = [g for g in plan.axes if isinstance(g, AxisGeometry)]
    if plan.pad_mode == "zeros" or all(g.pad_lo == g.pad_hi == 0 for g in sliding):
        return x, plan
    padded_plan = with_materialised_padding(plan, x.dtype.itemsize)  # checks the padded size first
    widths = [(0, 0)] * x.ndim
    for g in sliding:
        widths[g.axis] = (g.pad_lo, g.pad_hi)
    return xp.pad(x, widths, mode=plan.pad_mode), padded_plan
