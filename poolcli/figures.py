"""Pictures made from files: `compare` grids, `grad` maps and `pool --compare` pairs.

Each function loads an input, pools it with the engine, hands plain arrays to viz.py
(which only draws) and saves the PNG atomically through io.py.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from . import io, viz
from .engine import output_shape, pool, pool_backward
from .errors import PoolError
from .geometry import plan_pool
from .pipeline import PoolSettings, keywords_for

FIGURE_SUFFIXES = (".png",)
RAW_GRADIENT_SUFFIXES = (".npy",)


# ------------------------------------------------------------------ what to draw of an input


def plane_view(array: np.ndarray, pooled_axes: tuple[int, ...], channel: int) -> np.ndarray:
    """The pooled axes of `array` with every other axis fixed at flat index `channel`.

    A (C, H, W) map pooled over H, W gives its channel `channel` as (H, W); a 1-D
    pooling of (C, L) gives the series of channel `channel`.
    """
    if not pooled_axes:
        return array
    moved = np.moveaxis(array, pooled_axes, tuple(range(array.ndim - len(pooled_axes), array.ndim)))
    leading = math.prod(moved.shape[: array.ndim - len(pooled_axes)])
    flat = moved.reshape((leading,) + moved.shape[array.ndim - len(pooled_axes):])
    if not 0 <= channel < leading:
        raise PoolError(f"--channel {channel} is out of range: the input has {leading} channels; use 0..{leading - 1}")
    return flat[channel]


def _resolved_axes(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray) -> tuple[int, ...]:
    """The pooled axes, sorted, as the engine's plan resolves them."""
    return plan_pool(array.shape, **keywords_for(settings, loaded, array))[0].pooled_axes


def _only_array(loaded: io.Loaded) -> np.ndarray:
    if len(loaded.arrays) != 1:
        raise PoolError(f"{loaded.path}: holds {len(loaded.arrays)} arrays; figures show one, save it as .npy")
    return np.asarray(next(iter(loaded.arrays.values())))


def _check_figure_target(target: Path, suffixes=FIGURE_SUFFIXES) -> None:
    if target.suffix.lower() not in suffixes:
        raise PoolError(f"{target}: figures are written as {'/'.join(suffixes)}; name the output e.g. grid.png")


def save_figure(figure: viz.Figure, target: Path, *, overwrite: bool, inputs: tuple[Path, ...]) -> Path:
    return io.save(target, np.asarray(figure.image), overwrite=overwrite, inputs=inputs)


def _display_scale(settings: PoolSettings) -> tuple[float, str]:
    """sum and lp leave the input's range; show them per tap so the picture stays readable."""
    taps = math.prod(settings.window) if len(settings.window) > 1 else settings.window[0] ** 2
    if settings.mode == "sum":
        return 1.0 / taps, f" (shown /{taps})"
    if settings.mode == "lp":
        factor = taps ** (1.0 / settings.p)
        return 1.0 / factor, f" (shown /{factor:.3g})"
    return 1.0, ""


def _label(settings: PoolSettings, keywords: dict, shape) -> str:
    extras = {}
    if keywords["padding"] not in (0, "valid"):
        extras["p"] = keywords["padding"]
    if settings.dilation != (1,):
        extras["d"] = keywords["dilation"]
    if settings.ceil_mode:
        extras["ceil"] = True
    stride = keywords["stride"] if keywords["stride"] is not None else keywords["window"]
    return viz.cell_label(settings.mode, keywords["window"], stride, shape, **extras)


# ------------------------------------------------------------------ compare


def compare_figure(source: Path, settings: PoolSettings, modes: list[str], windows: list[tuple[int, ...]], *,
                   diff: bool = False, channel: int = 0, montage: int | None = None) -> viz.Figure:
    """The original and one pooled cell per (mode, window): rows are modes, columns windows."""
    loaded = io.load(source, **settings.load_options())
    array = _only_array(loaded)
    variants = [[replace(settings, mode=mode, window=window) for window in windows] for mode in modes]
    axes = _resolved_axes(settings, loaded, array)
    if loaded.kind == "image":
        return viz.comparison_grid(array, _cells(loaded, array, variants, axes, 0), diff=diff)
    if len(axes) == 1:
        return _series_figure(loaded, array, variants, axes, channel)
    if len(axes) != 2:
        raise PoolError(f"{source}: compare draws 1-D or 2-D pooling, not {len(axes)}-D; pool fewer axes (--axes)")
    if montage is not None:
        return _montage_figure(loaded, array, variants, axes, montage)
    plane = plane_view(array, axes, channel)
    return viz.comparison_grid(plane, _cells(loaded, array, variants, axes, channel), kind="map", diff=diff,
                               original_label=f"original channel {channel} {'x'.join(map(str, plane.shape))}")


def _pooled_view(loaded: io.Loaded, array: np.ndarray, settings: PoolSettings, axes, channel: int):
    keywords = keywords_for(settings, loaded, array)
    pooled = pool(array, **keywords)
    scale, note = _display_scale(settings)
    plane = pooled if loaded.kind == "image" else plane_view(pooled, axes, channel)
    if scale != 1.0:
        plane = plane * scale
    return plane, _label(settings, keywords, pooled.shape) + note


def _cells(loaded, array, variants, axes, channel) -> list[list[viz.Cell]]:
    rows = []
    for row in variants:
        cells = []
        for settings in row:
            plane, label = _pooled_view(loaded, array, settings, axes, channel)
            cells.append(viz.Cell(label, plane))
        rows.append(cells)
    return rows


def _series_figure(loaded, array, variants, axes, channel) -> viz.Figure:
    original = plane_view(array, axes, channel)
    series = []
    for row in variants:
        for settings in row:
            keywords = keywords_for(settings, loaded, array)
            pooled = plane_view(pool(array, **keywords), axes, channel)
            positions = _window_centres(keywords, original.size, pooled.size)
            scale, note = _display_scale(settings)
            series.append(viz.Series(_label(settings, keywords, pooled.shape) + note, pooled * scale, positions))
    return viz.series_plot(original, series, title=f"{loaded.path.name} (channel {channel})")


def _montage_figure(loaded, array, variants, axes, count: int) -> viz.Figure:
    """The first `count` channels of the original, then of each pooled result, stacked."""
    maps = _channels_first(array, axes)[:count]
    value_range = viz.value_range(maps)
    parts = [("original", viz.montage(maps, channels=len(maps), value_range=value_range))]
    for row in variants:
        for settings in row:
            keywords = keywords_for(settings, loaded, array)
            pooled = _channels_first(pool(array, **keywords), axes)[:count]
            scale, note = _display_scale(settings)
            stretched = np.stack([viz.upsample_nearest(p * scale, maps.shape[1:]) for p in pooled])
            label = _label(settings, keywords, pooled.shape[1:]) + note
            parts.append((label, viz.montage(stretched, channels=len(maps), value_range=value_range)))
    return _stack(parts)


def _channels_first(array: np.ndarray, axes) -> np.ndarray:
    moved = np.moveaxis(array, axes, (array.ndim - 2, array.ndim - 1))
    return moved.reshape((-1,) + moved.shape[-2:])


def _stack(parts: list[tuple[str, viz.Figure]]) -> viz.Figure:
    """Figures one under another, each under a title band."""
    images = [_titled(title, figure.image) for title, figure in parts]
    width = max(image.width for image in images)
    height = sum(image.height for image in images)
    canvas = Image.new("RGB", (width, height), viz.BACKGROUND)
    top = 0
    for image in images:
        canvas.paste(image, (0, top))
        top += image.height
    return viz.Figure(canvas, (), 1.0)


def _titled(title: str, image: Image.Image) -> Image.Image:
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=viz.MAX_FONT)
    band = viz.MAX_FONT + 2 * viz.LABEL_PAD
    canvas = Image.new("RGB", (image.width, image.height + band), viz.BACKGROUND)
    ImageDraw.Draw(canvas).text((viz.MARGIN, viz.LABEL_PAD), title, fill=viz.TEXT, font=font)
    canvas.paste(image, (0, band))
    return canvas


def _window_centres(keywords: dict, size: int, count: int) -> np.ndarray:
    """Where each pooled value of a 1-D pooling sits on the input's axis."""
    plan, _ = plan_pool((size,), keywords["window"], keywords["stride"], padding=keywords["padding"],
                        dilation=keywords["dilation"], ceil_mode=keywords["ceil_mode"])
    g = plan.axes[0]
    return viz.window_centres(count, g.window, g.stride, pad_lo=g.pad_lo, dilation=g.dilation)


def write_compare(source: Path, target: Path, settings: PoolSettings, modes, windows, *, diff=False, channel=0,
                  montage=None, overwrite=False) -> Path:
    _check_figure_target(target)
    figure = compare_figure(source, settings, modes, windows, diff=diff, channel=channel, montage=montage)
    return save_figure(figure, target, overwrite=overwrite, inputs=(source,))


# ------------------------------------------------------------------ grad


def input_gradient(source: Path, settings: PoolSettings) -> tuple[io.Loaded, np.ndarray, np.ndarray]:
    """(loaded input, array, dL/dx for dL/dy = 1): which inputs each output draws on."""
    loaded = io.load(source, **settings.load_options())
    array = _only_array(loaded)
    keywords = keywords_for(settings, loaded, array)
    grad = pool_backward(np.ones(output_shape(array.shape, **keywords)), array, **keywords)
    return loaded, array, grad


def write_gradient(source: Path, target: Path, settings: PoolSettings, *, channel: int = 0,
                   overwrite: bool = False) -> Path:
    """A gradient map PNG, or the raw gradient when `target` ends in .npy."""
    _check_figure_target(target, FIGURE_SUFFIXES + RAW_GRADIENT_SUFFIXES)
    loaded, array, grad = input_gradient(source, settings)
    if target.suffix.lower() in RAW_GRADIENT_SUFFIXES:
        return io.save(target, grad, overwrite=overwrite, inputs=(source,))
    stride = settings.stride or settings.window
    label = f"{settings.mode} k={'x'.join(map(str, settings.window))} s={'x'.join(map(str, stride))}: dL/dx, dL/dy = 1"
    if loaded.kind == "image":
        figure = viz.gradient_map(array, grad, mode=settings.mode, label=label)
    else:
        axes = _resolved_axes(settings, loaded, array)
        if len(axes) == 1:
            original = plane_view(array, axes, channel)
            figure = viz.series_plot(original, [viz.Series("dL/dx", plane_view(grad, axes, channel))], title=label)
        elif len(axes) == 2:
            figure = viz.gradient_map(plane_view(array, axes, channel), plane_view(grad, axes, channel),
                                      mode=settings.mode, kind="map", label=label)
        else:
            raise PoolError(f"{source}: grad draws 1-D or 2-D pooling; write the raw gradient with -o MAP.npy")
    return save_figure(figure, target, overwrite=overwrite, inputs=(source,))


# ------------------------------------------------------------------ pool --compare


def write_side_by_side(source: Path, output: Path, target: Path, settings: PoolSettings, *,
                       overwrite: bool = False, inputs: tuple[Path, ...] = ()) -> Path:
    """The input and the written output side by side, labelled with their shapes; never
    written over `source`, `output` or any of `inputs`."""
    _check_figure_target(target)
    before = io.load(source, **settings.load_options())
    after = io.load(output, max_pixels=None)
    original, result = _only_array(before), _only_array(after)
    labels = (f"input {'x'.join(map(str, original.shape))}",
              f"{settings.label()} -> {'x'.join(map(str, result.shape))}")
    if before.kind == "image":
        figure = viz.side_by_side(original, result, labels=labels)
    else:
        axes = _resolved_axes(settings, before, original)
        if len(axes) == 1:
            keywords = keywords_for(settings, before, original)
            positions = _window_centres(keywords, original.shape[axes[0]], result.shape[axes[0]])
            series = viz.Series(labels[1], plane_view(result, axes, 0), positions)
            figure = viz.series_plot(plane_view(original, axes, 0), [series])
        else:
            figure = viz.side_by_side(plane_view(original, axes, 0), plane_view(result, axes, 0), labels=labels,
                                      kind="map")
    return save_figure(figure, target, overwrite=overwrite, inputs=(source, output, *inputs))
