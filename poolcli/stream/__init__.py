"""Inputs of any size in bounded memory: streamed pooling and exact pyramids.

`open_source` opens `.npy` (read with pread), Zarr arrays and groups (chunk files read and
decoded one by one), and TIFF/BigTIFF (tiles or strips decoded on demand); `pool_to` pools
one block at a time into `.npy`, `.zarr` or a tiled BigTIFF with the bits of pooling the
whole array in memory; `build_pyramid` writes
every level of a 2x pyramid in one pass over the input, each level the once-rounded pooling
of level 0, as OME-Zarr or as a pyramidal TIFF. Peak memory follows `memory`, not the input,
shared as `Budget` says. Each store is a record of `stores.STORES` (one module each in `stores/`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core import formats
from ..core.choices import COMPRESSIONS
from ..core.spec import PoolSpec
from ..errors import OutputError
from .budget import DEFAULT_MEMORY, Budget
from .heap import tune_malloc
from .pooling import Progress, output_dtype, stream_pool, streamed_plan
from .pyramid import DEFAULT_MIN_SIZE, Pyramid, check_memory, level_count
from .sinks import StoreOptions
from .sources import Level, Source
from .stores import (
    STORES,
    Store,
    as_path,
    by_suffix,
    check_label_dtype,
    check_label_name,
    checked_options,
    compression_for,
    decoded_bytes,
    file_suffixes,
    is_big_input,
    named_pyramid_stores,
    open_sink,
    open_source,
    output_store,
    register,
)

DEFAULT_STORE = StoreOptions()

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_MEMORY",
    "STORES",
    "DEFAULT_MIN_SIZE",
    "Budget",
    "Level",
    "Pyramid",
    "Source",
    "Store",
    "StoreOptions",
    "build_label_pyramid",
    "build_pyramid",
    "checked_options",
    "compression_for",
    "decoded_bytes",
    "file_suffixes",
    "check_label_dtype",
    "check_label_name",
    "is_big_input",
    "tune_malloc",
    "level_count",
    "open_source",
    "pyramid_format",
    "pool_to",
    "register",
    "store_only",
    "streamed_only",
    "writes",
]


def pool_to(source: Source, target: Path | str, spec: PoolSpec, dtype: np.dtype | None, *, memory: int = DEFAULT_MEMORY,
            options: StoreOptions = DEFAULT_STORE, overwrite: bool = False,
            progress: Progress | None = None) -> tuple[tuple[int, ...], np.dtype]:
    """Pool `source` into `target` (.npy, .zarr, .tif), block by block; the output's shape and dtype."""
    options.check()
    source.check_memory(memory)
    target = as_path(target)
    plan = streamed_plan(source.shape, spec)
    dtype_out = output_dtype(source.dtype, plan.mode, dtype)
    if options.calibration is None and source.calibration is not None:  # the input's, each axis times its stride
        strides = {g.axis: g.stride for g in plan.sliding}
        options = replace(options, calibration=source.calibration.pooled(
            tuple(strides.get(axis, 1) for axis in range(len(source.shape)))))
    with open_sink(target, plan.out_shape, dtype_out, spatial=plan.pooled_axes, options=options,
                   overwrite=overwrite, inputs=(source.path,)) as sink:
        budget = Budget(memory)
        writer = sink.writer(plan.sliding[0].axis, budget.output_rows)
        stream_pool(source, writer, spec, dtype, budget.pooling(writer.direct), progress)
        writer.flush()
    return plan.out_shape, dtype_out


def pyramid_format(target: Path) -> str:
    """The store a pyramid is written in, "ZARR" or "TIFF" (an OutputError for a store without a
    pyramid writer)."""
    store = output_store(target)
    if store.write_pyramid is None:
        raise OutputError(f"{target}: a pyramid has several levels; write {named_pyramid_stores()}")
    return store.name


def streamed_only(path: Path) -> bool:
    """Whether `path` names a folder store (Zarr), read and written only by streaming."""
    store = by_suffix(path)
    return store is not None and store.folder


def store_only(path: Path) -> bool:
    """Whether `path` is a file only a store reads (no image or array format has its suffix)."""
    return by_suffix(path) is not None and formats.by_suffix(path.suffix.lower()) is None


def writes(path: Path) -> bool:
    """Whether a store writes `path` (by its suffix)."""
    return by_suffix(path) is not None


def build_pyramid(source: Source, target: Path | str, pyramid: Pyramid, *, memory: int = DEFAULT_MEMORY,
                  options: StoreOptions = DEFAULT_STORE, overwrite: bool = False,
                  progress: Progress | None = None) -> list[tuple[int, ...]]:
    """Every level of `pyramid` in one pass: OME-Zarr for .zarr, a pyramidal BigTIFF for .tif."""
    options.check()
    source.check_memory(memory)
    target = as_path(target)
    options = checked_options(target, options)
    writer = STORES[pyramid_format(target)].write_pyramid
    assert writer is not None  # pyramid_format refuses a store without one
    budget = Budget(memory)
    check_memory(source, pyramid, budget.bands)  # refused from sizes, before anything is written
    return writer(source, pyramid, target, options, budget, overwrite=overwrite, progress=progress)


def build_label_pyramid(source: Source, target: Path | str, pyramid: Pyramid, *, name: str | None,
                        memory: int = DEFAULT_MEMORY, options: StoreOptions = DEFAULT_STORE, overwrite: bool = False,
                        progress: Progress | None = None) -> list[tuple[int, ...]]:
    """A label pyramid (NGFF image-label, `stores/labels.py`) in one pass: labels/`name` beside the
    OME-Zarr image at `target`, or (no image there, or no `name`) the label image `target` itself."""
    options.check()
    source.check_memory(memory)
    target = Path(target)
    options = checked_options(target, options)
    writer = STORES[pyramid_format(target)].write_labels
    if writer is None:
        raise OutputError(f"{target}: a label pyramid is an OME-Zarr image-label; write .zarr")
    budget = Budget(memory)
    check_memory(source, pyramid, budget.bands)
    return writer(source, pyramid, target, options, budget, name=name, overwrite=overwrite, progress=progress)
