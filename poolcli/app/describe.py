"""What `info` prints: an input, and what pooling would make of each of its arrays (a store is
described from its metadata alone).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from .. import io, stream
from ..core.calibration import GUESS_RULE, Calibration, guess_axes, layout_names
from ..core.geometry import AxisGeometry
from ..core.values import finite_range, special_counts
from ..errors import PoolError
from ..io import remote
from ..io.remote import is_url
from .settings import (
    PoolSettings,
    assumed_layout,
    layout_doubt,
    nodata_for,
    settings_summary,
    spec_for,
    spec_for_kind,
)


def describe_file(source: Path, settings: PoolSettings, dataset: str | None = None) -> dict:
    """What `info` prints: the input, and what pooling would make of each array. A Zarr store is
    described from its metadata (its values are not read: they may not fit in memory)."""
    if stream.is_big_input(source):
        return _describe_store(source, settings, dataset)
    if is_url(source):  # an image in object storage: described from a local copy
        with remote.fetched(source) as local:
            return {**describe_file(local, settings, dataset), "input": str(source)}
    loaded = io.load(source, **settings.load_options())
    arrays = {}
    for key, array in loaded.arrays.items():
        arrays[key] = describe_array(settings, loaded, array)
    description: dict = dict(
        input=str(source),
        format=loaded.format,
        kind=loaded.kind,
        source_mode=loaded.source_mode,
        frames=loaded.frames,
        page=settings.page,
        arrays=arrays,
        parameters=settings_summary(settings),
    )
    if loaded.format == "TIFF":
        description["levels"] = io.tiff_levels(source)  # a pyramidal TIFF's levels ([] for one level)
    return description


def _describe_store(source: Path, settings: PoolSettings, dataset: str | None) -> dict:
    with stream.open_source(source, dataset) as data:
        nodata = nodata_for(settings.nodata, data.dtype, data.nodata, data.fill_value)
        plan = spec_for_kind(settings, data.kind, len(data.shape)).but(nodata=nodata).plan(data.shape)
        layout, reason = assumed_layout(settings, data.kind, len(data.shape))
        array = dict(shape=list(data.shape), dtype=str(data.dtype), layout=layout, layout_reason=reason,
                     layout_warning=layout_doubt(settings, data.kind, tuple(data.shape)),
                     chunks=list(data.chunks), min=None, max=None, nan=None, posinf=None, neginf=None,
                     nodata=_json_nodata(nodata), output_shape=list(plan.out_shape), axes=_axes_rows(plan),
                     **_named_axes(data.shape, data.kind, data.calibration, settings))
        return dict(input=str(source), format=data.format, kind=data.kind, source_mode=None, frames=1, page=0,
                    dataset=data.dataset, arrays={"array": array}, parameters=settings_summary(settings),
                    levels=[_level_row(level) for level in data.levels])


def _named_axes(shape: tuple[int, ...], kind: str, calibration: Calibration | None, settings: PoolSettings) -> dict:
    """The OME axis names of an array (what an OME-Zarr or OME-TIFF output calls them) and where
    they come from: the layout given, the input's metadata, or poolcli's guess (`guess_axes`,
    for the axes a pyramid pools by default)."""
    if settings.layout is not None:
        names: tuple[str, ...] | None = None
        with contextlib.suppress(PoolError):
            names = layout_names(settings.layout)
        return dict(axis_names=None if names is None else list(names), axis_names_from="layout")
    if calibration is not None:
        return dict(axis_names=list(calibration.axes), axis_names_from="metadata")
    ndim = len(shape)
    pooled = (0, 1) if kind == "image" else tuple(range(max(0, ndim - 2), ndim))
    guessed = guess_axes(shape, pooled, kind == "image")
    return dict(axis_names=None if guessed is None else list(guessed), axis_names_from="guessed",
                axis_names_rule=GUESS_RULE)


def _level_row(level: stream.Level) -> dict:
    """One level of a multi-resolution store: its path, shape and, where known, axes, scale,
    translation and units."""
    calibration = level.calibration
    known = {} if calibration is None else dict(axes=list(calibration.axes), scale=list(calibration.scale),
                                                 translation=list(calibration.translation),
                                                 units=list(calibration.units))
    return dict(path=level.path, shape=list(level.shape), **known)


def describe_array(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray) -> dict:
    plan = spec_for(settings, loaded, array).plan(array.shape)
    finite = finite_range(array) or (None, None)
    layout, reason = assumed_layout(settings, loaded.kind, array.ndim)
    return dict(
        shape=list(array.shape),
        dtype=str(array.dtype),
        layout=layout,
        layout_reason=reason,
        layout_warning=layout_doubt(settings, loaded.kind, array.shape),
        min=finite[0],
        max=finite[1],
        **special_counts(array),
        nodata=_json_nodata(plan.nodata),
        output_shape=list(plan.out_shape),
        axes=_axes_rows(plan),
        **_named_axes(array.shape, loaded.kind, None, settings),
    )


def _json_nodata(nodata: int | float | None) -> int | float | str | None:
    """The nodata pooling would skip, as JSON holds it (NaN as "nan")."""
    return nodata if nodata is None or np.isfinite(nodata) else str(nodata)


def _axes_rows(plan) -> list[dict]:
    """Per pooled axis: size, window, stride, dilation, pads, outputs and the cells no window reads
    (adaptive windows: their sizes as "7-8", their mean stride)."""
    axes = []
    for g in plan.axes:
        if not isinstance(g, AxisGeometry):
            counts = g.count_real()
            low, high = int(counts.min()), int(counts.max())
            axes.append(dict(axis=g.axis, size=g.size, window=low if low == high else f"{low}-{high}",
                             stride=round(g.size / g.out, 3), dilation=1, padding=[0, 0], output=g.out, dropped=0,
                             adaptive=True))
            continue
        covered = (g.out - 1) * g.stride + g.span
        axes.append(dict(
            axis=g.axis,
            size=g.size,
            window=g.window,
            stride=g.stride,
            dilation=g.dilation,
            padding=[g.pad_lo, g.pad_hi],
            output=g.out,
            dropped=max(g.size + g.pad_lo - covered, 0),
        ))
    return axes
