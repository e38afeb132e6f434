"""One file through memory: load, pool every array, save (`pool_file`, shared by `pool` and
`batch`); an input `streamed.streams` names goes block by block instead. Nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import io
from ..backends import to_device, to_numpy
from ..core import formats
from ..core.calibration import Calibration
from ..core.modes import MODES
from ..core.spec import PoolSpec
from ..engine import pool_with
from ..engine.alpha import pool_premultiplied, weights_by_alpha
from ..errors import PoolError, param
from .settings import IMAGE_AXES, BigData, FileResult, PoolSettings, output_dtype, settings_summary, spec_for
from .streamed import pool_streamed, streams

OnArrays = Callable[[io.Loaded, dict[str, np.ndarray]], None]


def pool_file(source: Path, target: Path, settings: PoolSettings, *, overwrite: bool = False,
              inputs: tuple[Path, ...] = (), channel_order: str = "rgb", durable: bool = True,
              big: BigData | None = None, on_arrays: OnArrays | None = None) -> FileResult:
    """Load `source`, pool it, save to `target` atomically. Raises PoolError subclasses.

    `channel_order="bgr"` lets plain colour JPEG and PNG images stay in OpenCV's order
    from decoder to encoder (see `io.load`), saving two copies; the pixels written are
    the same. It applies only when H and W alone are pooled, so no channel meets another.
    With `big`, inputs that `streams` names are pooled block by block in its memory budget.
    `on_arrays(loaded, results)` is given what was pooled in memory once it is saved (never
    for an input pooled block by block), while the arrays are still held.
    """
    if big is not None and (big.client is not None or streams(source, target, big)):
        return pool_streamed(source, target, settings, big, overwrite=overwrite)
    started = time.perf_counter()
    if settings.axes is not None or settings.layout is not None:
        channel_order = "rgb"
    loaded = None
    try:
        loaded = io.load(source, **settings.load_options(), channel_order=channel_order)
        results, warnings = pool_arrays(settings, loaded, target)
        inputs = (source, *inputs)
        if loaded.kind == "npz" or formats.holds_keys(target.suffix):
            io.save(target, None, key_arrays=results, overwrite=overwrite, inputs=inputs,
                    channel_order=loaded.channel_order, durable=durable)
        else:
            io.save(target, next(iter(results.values())), like=loaded, overwrite=overwrite, inputs=inputs,
                    normalize=settings.normalize, quality=settings.quality, channel_order=loaded.channel_order,
                    durable=durable, compression=None if big is None else big.store.compression,
                    calibration=pooled_calibration(settings, loaded), ome=big is not None and big.store.ome)
        if on_arrays is not None:
            on_arrays(loaded, results)
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


def pool_arrays(settings: PoolSettings, loaded: io.Loaded, target: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Pool every array of the input (one for images and .npy, each key of an .npz); return
    the results and a warning for each result that was clipped to its integer dtype."""
    results, warnings = {}, []
    for key, array in loaded.arrays.items():
        where = f"{loaded.path}" + (f" [{key}]" if loaded.kind == "npz" else "")
        try:
            spec = spec_for(settings, loaded, array)
            dtype = output_dtype(settings, loaded.kind, array.dtype, target)
            if _premultiplied(settings, loaded, array, spec):
                pooled, natural = pool_premultiplied(np.asarray(array), dtype, spec)
                clipped = _outside(natural, dtype)
            else:
                device_array = to_device(np.asarray(array), settings.backend)
                pooled = pool_with(spec.but(dtype=dtype), device_array)
                clipped = _clipped_count(device_array, dtype, spec)
        except PoolError as error:
            raise PoolError(f"{where}: {error}") from error
        results[key] = to_numpy(pooled)
        if clipped:
            warnings.append(_saturation_warning(where, clipped, results[key]))
    return results, warnings


def _premultiplied(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray, spec: PoolSpec) -> bool:
    """Colour weighted by alpha: images with alpha, pooled over H and W by a mixing mode."""
    return (loaded.kind == "image" and tuple(spec.axes or ()) == IMAGE_AXES
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
