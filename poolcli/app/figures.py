"""Pictures made from files: `compare` grids, `grad` maps and `pool --compare` pairs.

Each function loads an input, pools it with the engine, hands plain arrays and label
strings to viz/ (which only draws) and saves the PNG atomically through io/. Every
label states the geometry the engine's plan resolved (the real stride, padding and
dilation) and the output's shape; a figure that shows one channel of several says which.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import io, viz
from ..core.geometry import PoolPlan
from ..core.modes import MODES
from ..core.spec import PoolSpec
from ..engine import backward_with, pool_with
from ..errors import PoolError, param
from .settings import PoolSettings, spec_for
from .streamed import load_input

FIGURE_SUFFIXES = (".png",)
RAW_GRADIENT_SUFFIXES = (".npy",)
MONTAGE_SCALES = viz.SCALES  # compare --montage: "shared" (one colour scale) or "channel" (one each)


# ------------------------------------------------------------------ what to draw of an input


def plane_view(array: np.ndarray, pooled_axes: tuple[int, ...], channel: int) -> np.ndarray:
    """The pooled axes of `array` with every other axis fixed at flat index `channel`.

    A (C, H, W) map pooled over H, W gives its channel `channel` as (H, W); a 1-D
    pooling of (C, L) gives the series of channel `channel`.
    """
    if not pooled_axes:
        return array
    moved = np.moveaxis(array, pooled_axes, tuple(range(array.ndim - len(pooled_axes), array.ndim)))
    leading = _channel_count(array, pooled_axes)
    flat = moved.reshape((leading,) + moved.shape[array.ndim - len(pooled_axes):])
    if not 0 <= channel < leading:
        raise PoolError(f"{param('channel')} {channel} is out of range: the input has {leading} channels;"
                        f" use 0..{leading - 1}")
    return flat[channel]


def _channel_count(array: np.ndarray, pooled_axes: tuple[int, ...]) -> int:
    """How many planes (or series) the axes that are not pooled hold."""
    return math.prod(n for axis, n in enumerate(array.shape) if axis not in pooled_axes)


def _channel_note(array: np.ndarray, pooled_axes: tuple[int, ...], channel: int) -> str:
    """', channel 2 of 8' when `array` holds several planes; '' when it holds one."""
    count = _channel_count(array, pooled_axes)
    return f", channel {channel} of {count}" if count > 1 else ""


def _plan(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray) -> tuple[PoolSpec, PoolPlan]:
    """The `PoolSpec` of `array` and the plan it resolves to."""
    spec = spec_for(settings, loaded, array)
    return spec, spec.plan(array.shape)


def _resolved_axes(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray) -> tuple[int, ...]:
    """The pooled axes, sorted, as the engine's plan resolves them."""
    return _plan(settings, loaded, array)[1].pooled_axes


def _only_array(loaded: io.Loaded) -> np.ndarray:
    if len(loaded.arrays) != 1:
        raise PoolError(f"{loaded.path}: holds {len(loaded.arrays)} arrays; figures show one, save it as .npy")
    return np.asarray(next(iter(loaded.arrays.values())))


def _check_figure_target(target: Path, suffixes=FIGURE_SUFFIXES) -> None:
    if target.suffix.lower() not in suffixes:
        raise PoolError(f"{target}: figures are written as {'/'.join(suffixes)}; name the output e.g. grid.png")


def save_figure(figure: viz.Figure, target: Path, *, overwrite: bool, inputs: tuple[Path, ...]) -> Path:
    return io.save(target, np.asarray(figure.image), overwrite=overwrite, inputs=inputs)


# ------------------------------------------------------------------ labels


def _compact(values) -> str:
    """2 for (2, 2), 2x3 for (2, 3): one number when every axis has the same."""
    values = [int(v) for v in values]
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def _taps(plan: PoolPlan) -> int:
    """Taps of one window: the product of the window over the axes the plan pools."""
    return math.prod(g.window for g in plan.sliding)


def _display_scale(plan: PoolPlan) -> tuple[float, str]:
    """sum and lp leave the input's range; show them per tap so the picture stays readable.

    The note states the real divisor: the taps of one window over the pooled axes (4 for
    2x2, 8 for a 1-D window of 8), or for lp their p-th root.
    """
    taps = _taps(plan)
    record = MODES[plan.mode]
    if not record.grows:
        return 1.0, ""
    if record.power == "p":
        factor = taps ** (1.0 / plan.p)
        return 1.0 / factor, f" (shown / {taps} taps ^ (1/{plan.p:g}) = {factor:.3g})"
    return 1.0 / taps, f" (shown / {taps} taps)"


def _geometry(plan: PoolPlan, spec: PoolSpec) -> dict:
    """The label's extras beyond mode, window and stride, as the plan resolved them."""
    extras: dict[str, object] = {}
    pads = [(g.pad_lo, g.pad_hi) for g in plan.sliding]
    if any(lo or hi for lo, hi in pads):
        if spec.padding == "same":
            extras["p"] = "same"
        elif all(lo == hi for lo, hi in pads):
            extras["p"] = _compact(lo for lo, _ in pads)
        else:
            extras["p"] = "x".join(f"{lo},{hi}" for lo, hi in pads)
        if plan.pad_mode != "zeros":
            extras["pad"] = plan.pad_mode
        elif not plan.count_include_pad and MODES[plan.mode].divisor:
            extras["exclude_pad"] = True
    if any(g.dilation != 1 for g in plan.sliding):
        extras["d"] = _compact(g.dilation for g in plan.sliding)
    if spec.ceil_mode:
        extras["ceil"] = True
    if MODES[plan.mode].power == "p":
        extras["power"] = f"{plan.p:g}"
    if plan.nan_policy != "propagate":
        extras["nan"] = plan.nan_policy
    return extras


def _label(plan: PoolPlan, spec: PoolSpec) -> str:
    """'l2 k=2x3 s=2x3 -> 8x64x42': mode and window apart, the real stride, the output shape."""
    return viz.cell_label(plan.mode, _compact(g.window for g in plan.sliding), _compact(g.stride for g in plan.sliding),
                          plan.out_shape, **_geometry(plan, spec))


def _pooled(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray):
    """(pooled array on the display scale, its label, its plan) of one setting."""
    spec, plan = _plan(settings, loaded, array)
    with np.errstate(all="ignore"):
        pooled = pool_with(spec, array)
        scale, note = _display_scale(plan)
        if scale != 1.0:
            pooled = pooled * scale
    return pooled, _label(plan, spec) + note, plan


def _samples(array: np.ndarray) -> str:
    return f"{array.shape[0]} samples" if array.ndim == 1 else "x".join(map(str, array.shape))


# ------------------------------------------------------------------ compare


def compare_figure(source: Path, settings: PoolSettings, modes: list[str], windows: list[tuple[int, ...]], *,
                   diff: bool = False, channel: int = 0, montage: int | None = None,
                   scale: str = "shared") -> viz.Figure:
    """The original and one pooled cell per (mode, window): rows are modes, columns windows.

    Feature maps with `montage` = N tile their first N channels; `scale` is "shared" (one
    colour scale for every channel) or "channel" (each channel its own, with its bar).
    """
    if scale not in MONTAGE_SCALES:
        raise PoolError(f"{param('scale')} {scale!r} is not known; use one of {', '.join(MONTAGE_SCALES)}")
    loaded = load_input(source, settings)
    array = _only_array(loaded)
    variants = [[replace(settings, mode=mode, window=window) for window in windows] for mode in modes]
    axes = _resolved_axes(settings, loaded, array)
    if montage is not None and (loaded.kind == "image" or len(axes) != 2):
        what = "an image" if loaded.kind == "image" else f"{len(axes)}-D pooling"
        raise PoolError(f"{source}: montage tiles the channels of a 2-D feature map, not {what};"
                        f" drop {param('montage')}")
    if loaded.kind == "image":
        return viz.comparison_grid(array, _cells(loaded, array, variants, None, 0), diff=diff)
    if len(axes) == 1:
        return _series_figure(loaded, array, variants, axes, channel)
    if len(axes) != 2:
        raise PoolError(f"{source}: compare draws 1-D or 2-D pooling, not {len(axes)}-D;"
                        f" pool fewer axes ({param('axes')})")
    if montage is not None:
        return _montage_figure(loaded, array, variants, axes, montage, scale)
    plane = plane_view(array, axes, channel)
    original_label = f"original {'x'.join(map(str, array.shape))}{_channel_note(array, axes, channel)}"
    return viz.comparison_grid(plane, _cells(loaded, array, variants, axes, channel), kind="map", diff=diff,
                               original_label=original_label)


def _cells(loaded, array, variants, axes, channel) -> list[list[viz.Cell]]:
    """One cell per setting: the pooled plane on the display scale and its label."""
    rows = []
    for row in variants:
        cells = []
        for settings in row:
            pooled, label, _ = _pooled(settings, loaded, array)
            cells.append(viz.Cell(label, pooled if axes is None else plane_view(pooled, axes, channel)))
        rows.append(cells)
    return rows


def _series_figure(loaded, array, variants, axes, channel) -> viz.Figure:
    original = plane_view(array, axes, channel)
    series = []
    for row in variants:
        for settings in row:
            pooled, label, plan = _pooled(settings, loaded, array)
            series.append(viz.Series(label, plane_view(pooled, axes, channel), _window_centres(plan)))
    title = f"{loaded.path.name} ({_samples(array)}{_channel_note(array, axes, channel)})"
    return viz.series_plot(original, series, title=title)


def _montage_figure(loaded, array, variants, axes, count: int, scale: str) -> viz.Figure:
    """The first `count` channels of the original, then of each pooled result, stacked.

    Every tile is on the original's size; the colour scale of a channel (or of all, when
    shared) spans its finite values in the original and in every pooled result.
    """
    if count < 1:
        raise PoolError(f"{param('montage')} {count} must be >= 1; give how many channels to tile")
    maps = _channels_first(array, axes)
    shown = min(count, maps.shape[0])
    results = []
    for row in variants:
        for settings in row:
            pooled, label, _ = _pooled(settings, loaded, array)
            results.append((label, _channels_first(pooled, axes)))
    per_channel = [viz.value_range(maps[c], *(p[c] for _, p in results)) for c in range(shown)]
    shared = (min(lo for lo, _ in per_channel), max(hi for _, hi in per_channel))
    options = dict(channels=shown, scale=scale, value_range=shared, channel_ranges=per_channel)
    parts = [(f"original {'x'.join(map(str, array.shape))}", viz.montage(maps, **options))]
    for label, pooled in results:
        parts.append((label, viz.montage(pooled, shape=maps.shape[1:], **options)))
    return viz.stack(parts)


def _channels_first(array: np.ndarray, axes) -> np.ndarray:
    moved = np.moveaxis(array, axes, (array.ndim - 2, array.ndim - 1))
    return moved.reshape((-1,) + moved.shape[-2:])


def _window_centres(plan: PoolPlan) -> np.ndarray:
    """Where each pooled value of a 1-D pooling sits on the input's axis."""
    g = plan.sliding[0]
    return viz.window_centres(g.out, g.window, g.stride, pad_lo=g.pad_lo, dilation=g.dilation)


def write_compare(source: Path, target: Path, settings: PoolSettings, modes, windows, *, diff=False, channel=0,
                  montage=None, scale="shared", overwrite=False) -> Path:
    _check_figure_target(target)
    figure = compare_figure(source, settings, modes, windows, diff=diff, channel=channel, montage=montage,
                            scale=scale)
    return save_figure(figure, target, overwrite=overwrite, inputs=(source,))


# ------------------------------------------------------------------ grad


def input_gradient(source: Path, settings: PoolSettings) -> tuple[io.Loaded, np.ndarray, np.ndarray]:
    """(loaded input, array, dL/dx for dL/dy = 1): which inputs each output draws on."""
    loaded = load_input(source, settings)
    array = _only_array(loaded)
    spec, plan = _plan(settings, loaded, array)
    with np.errstate(all="ignore"):
        grad = backward_with(spec, np.ones(plan.out_shape), array)
    return loaded, array, grad


def gradient_figure(source: Path, settings: PoolSettings, *, channel: int = 0) -> viz.Figure:
    """The gradient picture of `grad`: a routing or weight map, or a series over its gradient."""
    loaded, array, grad = input_gradient(source, settings)
    spec, plan = _plan(settings, loaded, array)
    geometry = "".join(f" {name}={value}" for name, value in _geometry(plan, spec).items())
    label = (f"{plan.mode} k={_compact(g.window for g in plan.sliding)} s={_compact(g.stride for g in plan.sliding)}"
             f"{geometry}: dL/dx for dL/dy = 1")
    if loaded.kind == "image":
        return viz.gradient_map(array, grad, mode=plan.mode, label=label)
    axes = plan.pooled_axes
    note = _channel_note(array, axes, channel)
    if len(axes) == 1:
        original = plane_view(array, axes, channel)
        title = f"{loaded.path.name} ({_samples(array)}{note})"
        return viz.gradient_series(original, plane_view(grad, axes, channel), label=label, title=title)
    if len(axes) == 2:
        return viz.gradient_map(plane_view(array, axes, channel), plane_view(grad, axes, channel), mode=plan.mode,
                                kind="map", label=label,
                                original_label=f"original {'x'.join(map(str, array.shape))}{note}")
    raise PoolError(f"{source}: grad draws 1-D or 2-D pooling; write the raw gradient with -o MAP.npy")


def write_gradient(source: Path, target: Path, settings: PoolSettings, *, channel: int = 0,
                   overwrite: bool = False) -> Path:
    """A gradient map PNG, or the raw gradient when `target` ends in .npy."""
    _check_figure_target(target, FIGURE_SUFFIXES + RAW_GRADIENT_SUFFIXES)
    if target.suffix.lower() in RAW_GRADIENT_SUFFIXES:
        grad = input_gradient(source, settings)[2]
        return io.save(target, grad, overwrite=overwrite, inputs=(source,))
    figure = gradient_figure(source, settings, channel=channel)
    return save_figure(figure, target, overwrite=overwrite, inputs=(source,))


# ------------------------------------------------------------------ pool --compare


def side_by_side_figure(source: Path, output: Path, settings: PoolSettings) -> viz.Figure:
    """The input and the written output side by side (channel 0 of a multi-channel map)."""
    before = load_input(source, settings)
    after = load_input(output, replace(settings, max_pixels=None, max_bytes=None))
    original, result = _only_array(before), _only_array(after)
    spec, plan = _plan(settings, before, original)
    windows, strides = _compact(g.window for g in plan.sliding), _compact(g.stride for g in plan.sliding)
    label = viz.cell_label(plan.mode, windows, strides, result.shape, **_geometry(plan, spec))
    if before.kind == "image":
        return viz.side_by_side(original, result, labels=(f"input {'x'.join(map(str, original.shape))}", label))
    axes = plan.pooled_axes
    note = _channel_note(original, axes, 0)
    if len(axes) == 1:
        series = viz.Series(label, plane_view(result, axes, 0), _window_centres(plan))
        title = f"input {source.name} ({_samples(original)}{note})"
        return viz.series_plot(plane_view(original, axes, 0), [series], title=title)
    return viz.side_by_side(plane_view(original, axes, 0), plane_view(result, axes, 0), kind="map",
                            labels=(f"input {'x'.join(map(str, original.shape))}{note}", label + note))


def write_side_by_side(source: Path, output: Path, target: Path, settings: PoolSettings, *,
                       overwrite: bool = False, inputs: tuple[Path, ...] = ()) -> Path:
    """The input and the written output side by side, labelled with their shapes; never
    written over `source`, `output` or any of `inputs`."""
    _check_figure_target(target)
    figure = side_by_side_figure(source, output, settings)
    return save_figure(figure, target, overwrite=overwrite, inputs=(source, output, *inputs))
