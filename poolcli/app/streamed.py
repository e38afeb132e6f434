"""One file of any size, block by block (`stream.pool_to`, or a Dask cluster): which inputs take
this path (`streams`), and `pool_streamed`, whose outputs hold the bits of pooling in memory.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import io, stream
from ..core.dtypes import cast_value, natural_dtype
from ..core.modes import MODES
from ..core.spec import PoolSpec
from ..errors import PoolError, param
from .settings import (
    IMAGE_AXES,
    BigData,
    FileResult,
    PoolSettings,
    nodata_for,
    output_dtype,
    settings_summary,
    spec_for_kind,
)


def streams(source: Path, target: Path, big: BigData) -> bool:
    """Whether a file is pooled block by block: Zarr in or out, or an .npy or TIFF input whose
    data would take more than the memory budget, written to .npy or TIFF (the same bits
    either way; formats the streaming engine does not write are pooled in memory)."""
    if stream.is_big_input(source) or stream.streamed_only(target):
        return True
    if not stream.writes(target):
        return False
    return _data_bytes(source) * stream.pooling.working_factor(np.dtype(np.uint8)) > big.memory


def _data_bytes(source: Path) -> int:
    """The decoded size of an .npy or TIFF input, from its header (0 for other files)."""
    suffix = source.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(source, mmap_mode="r", allow_pickle=False).nbytes
        if suffix in stream.TIFF_SUFFIXES:
            import tifffile

            with io.quiet_logs(), tifffile.TiffFile(source) as tiff:  # the first page only: listing pages costs time
                return int(tiff.pages.first.nbytes)
    except Exception:  # not readable as such: the in-memory reader says why, in its words
        return 0
    return 0


def pool_streamed(source: Path, target: Path, settings: PoolSettings, big: BigData, *,
                  overwrite: bool = False) -> FileResult:
    """Pool an input of any size block by block (`stream.pool_to`) into .npy, .zarr or TIFF."""
    started = time.perf_counter()
    if settings.resizes:
        raise PoolError(f"{source}: a target size ({param('size')}, {param('max_side')}) is pooled in memory only;"
                        f" pool it with windows ({param('window')}), or raise {param('memory')}")
    if settings.normalize is not None:
        raise PoolError(f"{source}: {param('normalize')} needs the whole result in memory; leave it out for"
                        " inputs this big, or write a float .tif/.zarr")
    with stream.open_source(source, big.dataset) as data:
        nodata = nodata_for(settings.nodata, data.dtype, data.nodata, data.fill_value)
        spec = spec_for_kind(settings, data.kind, len(data.shape)).but(nodata=nodata)
        if data.kind == "image" and MODES[settings.mode].mixes and data.shape[-1] == 4 \
                and settings.alpha == "premultiplied" and tuple(spec.axes or ()) == IMAGE_AXES:
            raise PoolError(f"{source}: colour weighted by alpha is pooled in memory only; pass {param('alpha')}"
                            " straight, or pool a smaller image")
        dtype = output_dtype(settings, data.kind, data.dtype, target)
        written = dtype if dtype is not None else natural_dtype(data.dtype, settings.mode)
        big = replace(big, store=replace(big.store, nodata=None if nodata is None else
                                         cast_value(nodata, data.dtype, written)))
        if big.client is not None:
            shape, dtype_out = _on_cluster(source, target, spec, dtype, big, overwrite)
        else:
            shape, dtype_out = stream.pool_to(data, target, spec, dtype, memory=big.memory, options=big.store,
                                              overwrite=overwrite, progress=big.progress)
        return FileResult(input=str(source), output=str(target), input_shape=list(data.shape),
                          output_shape=list(shape), dtype=str(data.dtype), output_dtype=str(dtype_out),
                          seconds=round(time.perf_counter() - started, 6), parameters=settings_summary(settings))


def _on_cluster(source: Path, target: Path, spec: PoolSpec, dtype: np.dtype | None, big: BigData,
                overwrite: bool) -> tuple:
    """Pool on the cluster of `big.client`: the workers read the input and write the Zarr output."""
    from ..stream import cluster

    cluster.check_cluster_paths(source, target)
    cluster.check_shared(big.client, source, target.parent)
    return cluster.pool_on_cluster(big.client, source, target, spec, dtype, options=big.store,
                                   overwrite=overwrite, dataset=big.dataset)
