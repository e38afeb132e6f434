"""One file of any size, block by block (`stream.pool_to`, or a Dask cluster): which inputs take
this path (`streams`), and `pool_streamed`, whose outputs hold the bits of pooling in memory.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import io, stream
from ..core.modes import MODES
from ..core.spec import PoolSpec
from ..errors import InputError, PoolError, param
from .settings import IMAGE_AXES, BigData, FileResult, PoolSettings, output_dtype, settings_summary, spec_for_kind


def streams(source: Path, target: Path, big: BigData) -> bool:
    """Whether a file is pooled block by block: a folder store (Zarr) in or out, a store no image
    or array format reads, or an input whose data would take more than the memory budget,
    written to a store (the same bits either way; formats no store writes are pooled in memory)."""
    if stream.is_big_input(source) or stream.streamed_only(target) or stream.store_only(source):
        return True
    if not stream.writes(target):
        return False
    return stream.decoded_bytes(source) * stream.pooling.working_factor(np.dtype(np.uint8)) > big.memory


def load_input(source: Path, settings: PoolSettings, dataset: str | None = None) -> io.Loaded:
    """The input as the figures and the inspector show it, whole: a file through `io.load`, a
    store (a Zarr store, a file only a store reads) read whole through its source, refused from
    its header when it would decode to more than the settings' decoding limit."""
    if not (stream.is_big_input(source) or stream.store_only(source)):
        return io.load(source, **settings.load_options())
    limit = io.decoded_limit(settings.max_pixels, settings.max_bytes)
    with stream.open_source(source, dataset) as data:
        if limit is not None and data.nbytes > limit:
            raise InputError(f"{source}: its {data.nbytes:,} bytes exceed the {limit:,} read whole; pass"
                             f" {_raised_limit(settings, data.nbytes)} if this machine holds it, or pool it first")
        array = data.read(tuple(slice(None) for _ in data.shape))
    layout = "hwc" if data.kind == "image" else io.guess_layout(array.ndim)
    return io.Loaded({"array": array}, data.kind, layout, data.format, None, 1, source)


def _raised_limit(settings: PoolSettings, nbytes: int) -> str:
    """The option and value that let `nbytes` be decoded: max_bytes where it is set, else max_pixels
    (4 bytes a pixel)."""
    if settings.max_bytes is not None:
        return f"{param('max_bytes')} {nbytes}"
    return f"{param('max_pixels')} {-(-nbytes // 4)}"


def pool_streamed(source: Path, target: Path, settings: PoolSettings, big: BigData, *,
                  overwrite: bool = False) -> FileResult:
    """Pool an input of any size block by block (`stream.pool_to`) into .npy, .zarr or TIFF."""
    started = time.perf_counter()
    if settings.normalize is not None:
        raise PoolError(f"{source}: {param('normalize')} needs the whole result in memory; leave it out for"
                        " inputs this big, or write a float .tif/.zarr")
    with stream.open_source(source, big.dataset) as data:
        spec = spec_for_kind(settings, data.kind, len(data.shape))
        if data.kind == "image" and MODES[settings.mode].mixes and data.shape[-1] == 4 \
                and settings.alpha == "premultiplied" and tuple(spec.axes or ()) == IMAGE_AXES:
            raise PoolError(f"{source}: colour weighted by alpha is pooled in memory only; pass {param('alpha')}"
                            " straight, or pool a smaller image")
        dtype = output_dtype(settings, data.kind, data.dtype, target)
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
