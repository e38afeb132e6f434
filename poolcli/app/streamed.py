"""One file of any size, block by block (`stream.pool_to`, or a Dask cluster): which inputs take
this path (`streams`), and `pool_streamed`, whose outputs hold the bits of pooling in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np

from .. import io, stream
from ..core.calibration import Calibration, input_calibration, layout_names
from ..core.modes import MODES
from ..core.spec import PoolSpec
from ..errors import PoolError, param
from .settings import IMAGE_AXES, BigData, FileResult, PoolSettings, output_dtype, settings_summary, spec_for_kind


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
            options = dataclasses.replace(big.store, calibration=output_calibration(data, spec, settings, big))
            shape, dtype_out = stream.pool_to(data, target, spec, dtype, memory=big.memory, options=options,
                                              overwrite=overwrite, progress=big.progress)
        return FileResult(input=str(source), output=str(target), input_shape=list(data.shape),
                          output_shape=list(shape), dtype=str(data.dtype), output_dtype=str(dtype_out),
                          seconds=round(time.perf_counter() - started, 6), parameters=settings_summary(settings))


def output_calibration(data: stream.Source, spec: PoolSpec, settings: PoolSettings,
                       big: BigData) -> Calibration | None:
    """The output's axes and physical sizes: the input's (its metadata, the names of its layout,
    the pixel size and unit given), each pooled axis's scale times its stride and its origin at
    the centre of the first window (`Calibration.pooled`); None where nothing names the axes."""
    names = None
    if settings.layout is not None:
        with contextlib.suppress(PoolError):  # a batch axis (n): no NGFF name
            names = layout_names(settings.layout)
    plan = spec.plan(data.shape)
    calibration = input_calibration(data.shape, plan.pooled_axes, data.calibration, names=names,
                                    image=data.kind == "image", pixel_size=big.pixel_size, unit=big.unit)
    if calibration is None:
        return None
    factors, centres = [1] * len(data.shape), [0.0] * len(data.shape)
    for g in plan.sliding:
        factors[g.axis], centres[g.axis] = g.stride, (g.span - 1) / 2 - g.pad_lo
    return calibration.pooled(tuple(factors), tuple(centres))


def _on_cluster(source: Path, target: Path, spec: PoolSpec, dtype: np.dtype | None, big: BigData,
                overwrite: bool) -> tuple:
    """Pool on the cluster of `big.client`: the workers read the input and write the Zarr output."""
    from ..stream import cluster

    cluster.check_cluster_paths(source, target)
    cluster.check_shared(big.client, source, target.parent)
    return cluster.pool_on_cluster(big.client, source, target, spec, dtype, options=big.store,
                                   overwrite=overwrite, dataset=big.dataset)
