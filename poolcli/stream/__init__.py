"""Inputs of any size in bounded memory: streamed pooling and exact pyramids.

`open_source` opens `.npy` (read with pread), Zarr arrays and groups (chunk files read and
decoded one by one), and TIFF/BigTIFF (tiles or strips decoded on demand); `pool_to` pools
one block at a time into `.npy`, `.zarr` or a tiled BigTIFF with the bits of pooling the
whole array in memory; `build_pyramid` writes
every level of a 2x pyramid in one pass over the input, each level the once-rounded pooling
of level 0, as OME-Zarr or as a pyramidal TIFF. Peak memory follows `memory`, not the input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import OutputError
from .heap import tune_malloc
from .pooling import DEFAULT_MEMORY, Progress, output_dtype, stream_pool, streamed_plan
from .pyramid import DEFAULT_MIN_SIZE, Pyramid, check_memory, level_count
from .sinks import COMPRESSIONS, SINK_SUFFIXES, StoreOptions, open_sink, sink_format
from .sources import TIFF_SUFFIXES, ZARR_SUFFIXES, Source, is_big_input, open_source
from .stores import write_ome_zarr, write_pyramid_tiff

DEFAULT_STORE = StoreOptions()

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_MEMORY",
    "DEFAULT_MIN_SIZE",
    "SINK_SUFFIXES",
    "TIFF_SUFFIXES",
    "ZARR_SUFFIXES",
    "Pyramid",
    "Source",
    "StoreOptions",
    "build_pyramid",
    "is_big_input",
    "tune_malloc",
    "level_count",
    "open_source",
    "pyramid_format",
    "pool_to",
]


def pool_to(source: Source, target: Path | str, keywords: dict, dtype: np.dtype | None, *, memory: int = DEFAULT_MEMORY,
            options: StoreOptions = DEFAULT_STORE, overwrite: bool = False,
            progress: Progress | None = None) -> tuple[tuple[int, ...], np.dtype]:
    """Pool `source` into `target` (.npy, .zarr, .tif), block by block; the output's shape and dtype."""
    options.check()
    source.check_memory(memory)
    target = Path(target)
    plan = streamed_plan(source.shape, keywords)
    dtype_out = output_dtype(source.dtype, plan.mode, dtype)
    with open_sink(target, plan.out_shape, dtype_out, spatial=plan.pooled_axes, options=options,
                   overwrite=overwrite, inputs=(source.path,)) as sink:
        room = memory // 6  # for gathering whole chunk rows of the output, and as much for Zarr's
        writer = sink.writer(plan.sliding[0].axis, room)  # copies of them and their encoded chunks
        stream_pool(source, writer, keywords, dtype, memory - (0 if writer.direct else 2 * room), progress)
        writer.flush()
    return plan.out_shape, dtype_out


def pyramid_format(target: Path) -> str:
    """"ZARR" or "TIFF": the formats a pyramid is written in (an OutputError for others)."""
    kind = sink_format(target)
    if kind == "NPY":
        raise OutputError(f"{target}: a pyramid has several levels; write .zarr (OME-Zarr) or .tif")
    return kind


def build_pyramid(source: Source, target: Path | str, pyramid: Pyramid, *, memory: int = DEFAULT_MEMORY,
                  options: StoreOptions = DEFAULT_STORE, overwrite: bool = False,
                  progress: Progress | None = None) -> list[tuple[int, ...]]:
    """Every level of `pyramid` in one pass: OME-Zarr for .zarr, a pyramidal BigTIFF for .tif."""
    options.check()
    source.check_memory(memory)
    target = Path(target)
    writer = write_pyramid_tiff if pyramid_format(target) == "TIFF" else write_ome_zarr
    check_memory(source, pyramid, memory // 2)  # refused from sizes, before anything is written
    return writer(source, pyramid, target, options, memory, overwrite=overwrite, progress=progress)
