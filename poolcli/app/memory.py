"""One file through memory: load, pool every array, save (`pool_file`, shared by `pool` and
`batch`); an input `streamed.streams` names goes block by block instead. Nothing here prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import io
from ..backends import to_device, to_numpy
from ..core import formats
from ..core.calibration import Calibration
from ..core.dtypes import cast_value, sixteen_to_eight_bits
from ..core.modes import MODES
from ..core.spec import PoolSpec
from ..engine import pool_with
from ..engine.alpha import pool_premultiplied, weights_by_alpha
from ..errors import PoolError, param
from ..io import remote
from ..io.remote import is_url
from .settings import (
    IMAGE_AXES,
    BigData,
    FileResult,
    PoolSettings,
    layout_doubt,
    nodata_for,
    output_dtype,
    settings_summary,
    spec_for,
)
from .streamed import pool_streamed, streams

OnArrays = Callable[[io.Loaded, dict[str, np.ndarray], dict[str, np.ndarray]], None]


def pool_file(source: Path, target: Path, settings: PoolSettings, *, overwrite: bool = False,
              inputs: tuple[Path, ...] = (), channel_order: str = "rgb", durable: bool = True,
              big: BigData | None = None, on_arrays: OnArrays | None = None, winners: bool = False) -> FileResult:
    """Load `source`, pool it, save to `target` atomically. Raises PoolError subclasses.

    `channel_order="bgr"` lets plain colour JPEG and PNG images stay in OpenCV's order
    from decoder to encoder (see `io.load`), saving two copies; the pixels written are
    the same. It applies only when H and W alone are pooled, so no channel meets another.
    With `big`, inputs that `streams` names are pooled block by block in its memory budget.
    `on_arrays(loaded, results, found)` is given what was pooled in memory once it is saved (never
    for an input pooled block by block), while the arrays are still held; with `winners`, `found`
    holds each max or min result's winners (flat indices in each plane, `return_indices`) from
    the same pooling, else it is empty.
    """
    if big is not None and (big.client is not None or streams(source, target, big)):
        return pool_streamed(source, target, settings, big, overwrite=overwrite)
    if is_url(source) or is_url(target):
        return _through_copies(source, target, settings, overwrite=overwrite, inputs=inputs,
                               channel_order=channel_order, on_arrays=on_arrays)
    started = time.perf_counter()
    if settings.axes is not None or settings.layout is not None:
        channel_order = "rgb"
    loaded = None
    try:
        loaded = io.load(source, **settings.load_options(), channel_order=channel_order)
        found: dict[str, np.ndarray] | None = {} if winners else None
        results, warnings = pool_arrays(settings, loaded, target, found)
        inputs = (source, *inputs)
        if loaded.kind == "npz" or formats.holds_keys(target.suffix):
            io.save(target, None, key_arrays=results, overwrite=overwrite, inputs=inputs,
                    channel_order=loaded.channel_order, durable=durable)
        else:
            io.save(target, next(iter(results.values())), like=None if settings.strip else loaded,
                    metadata=None if settings.strip else pooled_metadata(settings, loaded),
                    overwrite=overwrite, inputs=inputs, normalize=settings.normalize, quality=settings.quality,
                    channel_order=loaded.channel_order, durable=durable,
                    nodata=_output_nodata(settings, loaded, results),
                    compression=None if big is None else big.store.compression,
                    calibration=pooled_calibration(settings, loaded), ome=big is not None and big.store.ome)
        if on_arrays is not None:
            on_arrays(loaded, results, found or {})
    except MemoryError:
        raise PoolError(f"{source}: not enough memory to pool {_size_text(loaded)}; free memory, use fewer"
                        f" {param('jobs')}, or pool a smaller file") from None
    return FileResult(
        input=str(source),
        output=str(target),
        input_shape=_shapes(loaded.arrays),
        output_shape=_shapes(results),
        dtype=_dtypes(loaded.arrays),
        output_dtype=_dtypes(results),
        seconds=round(time.perf_counter() - started, 6),
        parameters=settings_summary(settings),
        warnings=warnings,
    )


def pooled_calibration(settings: PoolSettings, loaded: io.Loaded) -> Calibration | None:
    """The pixel size of an image's pooled result: the input's times each pooled axis's stride."""
    if loaded.calibration is None or len(loaded.arrays) != 1:
        return None
    array = loaded.array
    if len(loaded.calibration.axes) != array.ndim:
        return None
    strides = {g.axis: g.stride for g in spec_for(settings, loaded, array).plan(array.shape).sliding}
    return loaded.calibration.pooled(tuple(strides.get(axis, 1) for axis in range(array.ndim)))


def _through_copies(source, target, settings: PoolSettings, *, overwrite: bool, inputs: tuple,
                    channel_order: str, on_arrays: OnArrays | None) -> FileResult:
    """A file in object storage pooled in memory: fetched whole (`io.remote.fetched`), pooled, and
    its result uploaded in one request (`io.remote.sent`)."""
    with contextlib.ExitStack() as stack:
        local_source = stack.enter_context(remote.fetched(source)) if is_url(source) else source
        local_target = stack.enter_context(remote.sent(target, overwrite=overwrite, inputs=(source, *inputs))) \
            if is_url(target) else target
        result = pool_file(local_source, local_target, settings, overwrite=overwrite, channel_order=channel_order,
                           on_arrays=on_arrays)
    return dataclasses.replace(result, input=str(source), output=str(target))


def pool_arrays(settings: PoolSettings, loaded: io.Loaded, target: Path,
                winners: dict[str, np.ndarray] | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Pool every array of the input (one for images and .npy, each key of an .npz); return
    the results and a warning for each result that was clipped to its integer dtype. Given a dict
    `winners`, a mode that picks (max, min) also puts each result's winners there, from the one pooling."""
    results, warnings = {}, []
    for key, array in loaded.arrays.items():
        where = f"{loaded.path}" + (f" [{key}]" if loaded.kind == "npz" else "")
        doubt = layout_doubt(settings, loaded.kind, array.shape)
        if doubt is not None:
            warnings.append(f"{where}: {doubt}")
        try:
            spec = spec_for(settings, loaded, array)
            dtype = output_dtype(settings, loaded.kind, array.dtype, target)
            narrowed = narrows_to_8_bits(array.dtype, dtype, target)
            if narrowed:  # pooled exactly, then scaled once
                dtype = np.dtype(np.float64)
            if weighs_colour_by_alpha(settings, loaded, array, spec):
                pooled, natural = pool_premultiplied(np.asarray(array), dtype, spec)
                clipped = _outside(natural, dtype)
            else:
                device_array = to_device(np.asarray(array), settings.backend)
                pooled = _pool_keeping(spec.but(dtype=dtype), device_array, key, winners)
                clipped = _clipped_count(device_array, dtype, spec)
        except PoolError as error:
            raise PoolError(f"{where}: {error.template}") from error
        results[key] = to_numpy(pooled)
        if narrowed:
            clipped = _outside(results[key] / 257.0, np.dtype(np.uint8))  # a sum can pass 65535
            results[key] = sixteen_to_eight_bits(np, results[key])
        if clipped:
            warnings.append(_saturation_warning(where, clipped, results[key]))
    return results, warnings


def _pool_keeping(spec: PoolSpec, array, key: str, winners: dict[str, np.ndarray] | None):
    """`pool_with(spec, array)`; where `winners` is a dict and the mode picks its values, pooled with
    `return_indices` (the same values) and the indices kept in `winners[key]`."""
    record = MODES.get(spec.mode)
    if winners is None or record is None or not record.indices:
        return pool_with(spec, array)
    pooled, winners[key] = pool_with(spec.but(return_indices=True), array)
    winners[key] = to_numpy(winners[key])
    return pooled


def pooled_metadata(settings: PoolSettings, loaded: io.Loaded) -> io.ImageMetadata | None:
    """The input's EXIF, XMP and resolution as the output keeps them: the resolution divided by the
    strides of H and W, so the physical size stays (io/metadata.py); None without metadata, none
    kept when H and W are not the axes pooled."""
    if loaded.metadata is None:
        return None
    array = loaded.array
    plan = spec_for(settings, loaded, array).plan(array.shape)
    strides = {axis.axis: axis.stride for axis in plan.sliding}
    if loaded.kind != "image" or set(strides) != set(IMAGE_AXES):
        return io.ImageMetadata()
    return loaded.metadata.pooled(stride_x=strides[1], stride_y=strides[0])


def narrows_to_8_bits(source: np.dtype, requested: np.dtype | None, target: Path) -> bool:
    """Whether 16-bit values go to an 8-bit image (`--dtype uint8`): scaled, v * 255 / 65535
    rounded half up (docs/semantics.md), not clipped as a plain cast would."""
    return source == np.uint16 and requested == np.uint8 and formats.is_image_suffix(target.suffix)


def _output_nodata(settings: PoolSettings, loaded: io.Loaded, results: dict[str, np.ndarray]) -> int | float | None:
    """The nodata of the one output written, as its dtype holds it (None without one, or when
    `normalize` maps the values to 8 bits)."""
    array = loaded.array
    nodata = nodata_for(settings.nodata, array.dtype, loaded.nodata)
    if nodata is None or settings.normalize is not None:
        return None
    return cast_value(nodata, array.dtype, next(iter(results.values())).dtype)


def weighs_colour_by_alpha(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray, spec: PoolSpec) -> bool:
    """Colour weighted by alpha: images with alpha, pooled over H and W by a mixing mode (not with
    a nodata: then every channel is pooled on its own, its nodata cells skipped)."""
    return (loaded.kind == "image" and tuple(spec.axes or ()) == IMAGE_AXES and spec.nodata is None
            and weights_by_alpha(settings.mode, array.shape[-1], loaded.source_mode, settings.alpha))


def _clipped_count(array, dtype: np.dtype | None, spec: PoolSpec) -> int:
    """How many values of the natural result lie outside integer `dtype` (and were clipped)."""
    if dtype is None or dtype.kind not in "iu" or not _may_saturate(spec.mode, array.dtype, dtype):
        return 0
    return _outside(to_numpy(pool_with(spec, array)), dtype)


def _outside(natural: np.ndarray, dtype: np.dtype | None) -> int:
    """How many values round (half up) to outside integer `dtype` (0 for float or natural outputs)."""
    if dtype is None or dtype.kind not in "iu":
        return 0
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore"):
        return int(np.count_nonzero((natural >= info.max + 0.5) | (natural < info.min - 0.5)))


def _may_saturate(mode: str, source: np.dtype, target: np.dtype) -> bool:
    """sum and lp grow past their inputs; other modes stay within the input's range."""
    if MODES[mode].grows:
        return True
    if source.kind == "b":
        return False
    if source.kind == "f":
        return True
    low, high = np.iinfo(source).min, np.iinfo(source).max
    return low < np.iinfo(target).min or high > np.iinfo(target).max


def _saturation_warning(where: str, clipped: int, result: np.ndarray) -> str:
    info = np.iinfo(result.dtype)
    return (f"{where}: {clipped:,} of {result.size:,} values do not fit {result.dtype} and were clipped to"
            f" {info.min}..{info.max}; pass {param('normalize')} minmax, or write a float output (.tiff, .npy)")


def _size_text(loaded: io.Loaded | None) -> str:
    if loaded is None:
        return "it (decoding ran out of memory)"
    shapes = ", ".join(f"{tuple(a.shape)} {a.dtype}" for a in loaded.arrays.values())
    size = sum(a.nbytes for a in loaded.arrays.values())
    return f"its {shapes} ({size / 1e6:,.0f} MB)"


def _shapes(arrays: dict[str, np.ndarray]):
    if list(arrays) == ["array"]:
        return list(arrays["array"].shape)
    return {k: list(v.shape) for k, v in arrays.items()}


def _dtypes(arrays: dict[str, np.ndarray]) -> str:
    return ",".join(sorted({str(v.dtype) for v in arrays.values()}))
