"""What `info` prints: an input, and what pooling would make of each of its arrays (a store is
described from its metadata alone).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import io, stream
from ..core.values import finite_range, special_counts
from .settings import PoolSettings, settings_summary, spec_for, spec_for_kind


def describe_file(source: Path, settings: PoolSettings, dataset: str | None = None) -> dict:
    """What `info` prints: the input, and what pooling would make of each array. A Zarr store is
    described from its metadata (its values are not read: they may not fit in memory)."""
    if stream.is_big_input(source):
        return _describe_store(source, settings, dataset)
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
        plan = spec_for_kind(settings, data.kind, len(data.shape)).plan(data.shape)
        array = dict(shape=list(data.shape), dtype=str(data.dtype), layout=io.guess_layout(len(data.shape)),
                     chunks=list(data.chunks), min=None, max=None, nan=None, posinf=None, neginf=None,
                     output_shape=list(plan.out_shape), axes=_axes_rows(plan))
        return dict(input=str(source), format=data.format, kind=data.kind, source_mode=None, frames=1, page=0,
                    dataset=data.dataset, arrays={"array": array}, parameters=settings_summary(settings))


def describe_array(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray) -> dict:
    plan = spec_for(settings, loaded, array).plan(array.shape)
    finite = finite_range(array) or (None, None)
    return dict(
        shape=list(array.shape),
        dtype=str(array.dtype),
        layout=loaded.layout if loaded.kind != "npz" else io.guess_layout(array.ndim),
        min=finite[0],
        max=finite[1],
        **special_counts(array),
        output_shape=list(plan.out_shape),
        axes=_axes_rows(plan),
    )


def _axes_rows(plan) -> list[dict]:
    """Per pooled axis: size, window, stride, dilation, pads, outputs and the cells no window reads."""
    axes = []
    for g in plan.sliding:
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
