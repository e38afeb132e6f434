"""One file through poolcli: load, pool every array, save. Shared by `pool` and `batch`.

`PoolSettings` holds the command-line choices in library terms; `pool_file` runs one
input to one output and returns a `FileResult`. Nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import io, stream
from .backends import to_device, to_numpy
from .core import formats
from .core.choices import ALPHA_CHOICES, DTYPE_CHOICES
from .core.geometry import check_windows, plan_pool
from .core.modes import MODES
from .core.options import check_options, resolve_axes
from .core.values import finite_range, special_counts
from .engine import output_shape, pool
from .engine.alpha import pool_premultiplied, weights_by_alpha
from .errors import PoolError, param

IMAGE_AXES = (0, 1)


@dataclass(frozen=True)
class PoolSettings:
    """What to do to each input, as the command line gave it (validated by `check`)."""

    mode: str = "max"
    window: tuple[int, ...] = (2,)
    stride: tuple[int, ...] | None = None
    padding: tuple[int, ...] | str = (0,)
    dilation: tuple[int, ...] = (1,)
    ceil_mode: bool = False
    count_include_pad: bool = True
    p: float = 2.0
    pad_mode: str = "zeros"
    nan_policy: str = "propagate"
    axes: tuple[int, ...] | None = None
    layout: str | None = None
    dtype: str = "auto"
    backend: str = "numpy"
    normalize: str | None = None
    max_pixels: int | None = io.DEFAULT_MAX_PIXELS
    max_bytes: int | None = None  # what compressed inputs may inflate to; None: io.decoded_limit
    quality: int = io.JPEG_QUALITY  # of JPEG outputs

    page: int = 0  # of a multi-page TIFF or an animation
    alpha: str = "premultiplied"  # how avg, sum, l2 and lp weigh colour in images with alpha

    def load_options(self) -> dict:
        """The keywords of `io.load`: the page, and the limits on what one input may cost to decode."""
        return dict(max_pixels=self.max_pixels, max_bytes=self.max_bytes, page=self.page)

    def check(self) -> None:
        """Raise PoolError for anything wrong regardless of the input (a usage error)."""
        if self.dtype not in DTYPE_CHOICES:
            raise PoolError(f"{param('dtype')} {self.dtype!r} is not known; use one of {', '.join(DTYPE_CHOICES)}")
        if not 1 <= self.quality <= 100:
            raise PoolError(f"{param('quality')} {self.quality} is out of range;"
                            f" use 1..100 (default {io.JPEG_QUALITY})")
        if self.axes is not None and self.layout is not None:
            raise PoolError(f"{param('axes')} and {param('layout')} both choose the pooled axes; give only one")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise PoolError(f"{param('max_pixels')} {self.max_pixels} must be >= 0; use 0 for no limit")
        if self.alpha not in ALPHA_CHOICES:
            raise PoolError(f"{param('alpha')} {self.alpha!r} is not known; use one of {', '.join(ALPHA_CHOICES)}")
        if self.page < 0:
            raise PoolError(f"{param('page')} {self.page} must be >= 0; pages count from 0")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise PoolError(f"{param('max_bytes')} {self.max_bytes} must be >= 1; use a size such as 2GB")
        count = self._implied_axis_count()
        ndim = max(count, max((abs(a) + 1 for a in self.axes or ()), default=0))
        keywords = self.pool_keywords(count, ndim, axes=self.axes)
        check_options(**{k: v for k, v in keywords.items() if k in OPTION_KEYWORDS})
        check_windows(keywords["window"], keywords["stride"], keywords["padding"], keywords["dilation"], count)
        if self.axes is not None:
            resolve_axes(ndim, keywords["window"], self.axes)

    def _implied_axis_count(self) -> int:
        """How many axes the options pool, as far as they tell without an input."""
        if self.axes is not None:
            return len(self.axes)
        if self.layout is not None:
            return len(io.pooled_axes_for_layout(self.layout, len(self.layout)))
        explicit = max(len(self.window), len(self.stride or ()), len(self.dilation))
        if explicit > 1:
            return explicit
        if not isinstance(self.padding, str) and len(self.padding) in (3, 6):
            return 3
        return 2

    def label(self) -> str:
        """'max 2' or 'l2 2x3': the mode and window, as figures and messages show them."""
        return f"{self.mode} {'x'.join(str(k) for k in self.window)}"

    def name_part(self) -> str:
        """'max_2' or 'l2_2x3': the mode and window, as output file names use them."""
        return self.label().replace(" ", "_")

    def pool_keywords(self, count: int, ndim: int, axes: tuple[int, ...] | None) -> dict:
        """The keywords of `poolcli.pool` for `count` pooled axes of an `ndim`-d array."""
        return dict(
            window=_fit(self.window, count, f"{param('window')}"),
            stride=None if self.stride is None else _fit(self.stride, count, f"{param('stride')}"),
            padding=_padding_for(self.padding, count),
            dilation=_fit(self.dilation, count, f"{param('dilation')}"),
            ceil_mode=self.ceil_mode,
            count_include_pad=self.count_include_pad,
            p=self.p,
            pad_mode=self.pad_mode,
            nan_policy=self.nan_policy,
            mode=self.mode,
            axes=axes,
        )


@dataclass
class FileResult:
    """What happened to one input: the JSON record of `--json`, and the record batch workers
    send back (small: shapes and names, never arrays) and its report writes."""

    input: str
    output: str | None
    status: str = "done"  # done | skipped | failed
    input_shape: list[int] | dict = field(default_factory=list)
    output_shape: list[int] | dict = field(default_factory=list)
    dtype: str = ""
    output_dtype: str = ""
    seconds: float = 0.0
    error: str | None = None
    parameters: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    output_bytes: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def pooled_axes(settings: PoolSettings, kind: str, ndim: int) -> tuple[int, ...] | None:
    """Which axes to pool: H and W for images, else --axes, --layout or the API default."""
    if kind == "image":
        if settings.axes is not None:
            return tuple(settings.axes)
        if settings.layout is not None:
            return io.pooled_axes_for_layout(settings.layout, ndim)
        return IMAGE_AXES
    if settings.layout is not None:
        return io.pooled_axes_for_layout(settings.layout, ndim)
    return settings.axes


def keywords_for(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray) -> dict:
    """`pool`'s keywords for one array of a loaded input."""
    return keywords_for_kind(settings, loaded.kind, array.ndim)


def keywords_for_kind(settings: PoolSettings, kind: str, ndim: int) -> dict:
    """`pool`'s keywords for an `ndim`-d array of `kind` ("image" or an array kind)."""
    axes = pooled_axes(settings, kind, ndim)
    if axes is not None:
        count = len(axes)
    elif len(settings.window) > 1:
        count = len(settings.window)
    else:
        count = min(2, ndim)
    return settings.pool_keywords(count, ndim, axes)


def output_dtype(settings: PoolSettings, kind: str, dtype: np.dtype, target: Path) -> np.dtype | None:
    """'auto' keeps an image's dtype when the output is an image too (unless --normalize
    maps the natural values to 8 bits itself); else the natural dtype of docs/semantics.md."""
    if settings.dtype == "keep":
        return dtype
    if settings.dtype == "auto":
        keeps_image = kind == "image" and formats.is_image_suffix(target.suffix)
        return dtype if keeps_image and settings.normalize is None else None
    return np.dtype(settings.dtype)


def pool_arrays(settings: PoolSettings, loaded: io.Loaded, target: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Pool every array of the input (one for images and .npy, each key of an .npz); return
    the results and a warning for each result that was clipped to its integer dtype."""
    results, warnings = {}, []
    for key, array in loaded.arrays.items():
        where = f"{loaded.path}" + (f" [{key}]" if loaded.kind == "npz" else "")
        try:
            keywords = keywords_for(settings, loaded, array)
            dtype = output_dtype(settings, loaded.kind, array.dtype, target)
            if _premultiplied(settings, loaded, array, keywords):
                pooled, natural = pool_premultiplied(np.asarray(array), dtype, **keywords)
                clipped = _outside(natural, dtype)
            else:
                device_array = to_device(np.asarray(array), settings.backend)
                pooled = pool(device_array, dtype=dtype, **keywords)
                clipped = _clipped_count(device_array, dtype, keywords)
        except PoolError as error:
            raise PoolError(f"{where}: {error}") from error
        results[key] = to_numpy(pooled)
        if clipped:
            warnings.append(_saturation_warning(where, clipped, results[key]))
    return results, warnings


def _premultiplied(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray, keywords: dict) -> bool:
    """Colour weighted by alpha: images with alpha, pooled over H and W by a mixing mode."""
    return (loaded.kind == "image" and tuple(keywords["axes"] or ()) == IMAGE_AXES
            and weights_by_alpha(settings.mode, array.shape[-1], loaded.source_mode, settings.alpha))


def _clipped_count(array, dtype: np.dtype | None, keywords: dict) -> int:
    """How many values of the natural result lie outside integer `dtype` (and were clipped)."""
    if dtype is None or dtype.kind not in "iu" or not _may_saturate(keywords["mode"], array.dtype, dtype):
        return 0
    return _outside(to_numpy(pool(array, **keywords)), dtype)


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


def default_output(source: Path, settings: PoolSettings, folder: Path | None = None, suffix: str | None = None) -> Path:
    """`{stem}_{mode}_{window}{ext}` in `folder` (default: beside the input)."""
    folder = source.parent if folder is None else folder
    return folder / f"{source.stem}_{settings.name_part()}{suffix or source.suffix}"


@dataclass(frozen=True)
class BigData:
    """How inputs too big for memory are pooled: the memory budget, the array of a Zarr
    group, how outputs are stored, and who hears of the progress (input bytes done)."""

    memory: int = stream.DEFAULT_MEMORY
    dataset: str | None = None
    store: stream.StoreOptions = stream.DEFAULT_STORE
    progress: Callable[[int], None] | None = None
    client: Any = None  # a Dask distributed client (--scheduler): inputs are pooled on its cluster


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
        keywords = keywords_for_kind(settings, data.kind, len(data.shape))
        if data.kind == "image" and MODES[settings.mode].mixes and data.shape[-1] == 4 \
                and settings.alpha == "premultiplied" and tuple(keywords["axes"] or ()) == IMAGE_AXES:
            raise PoolError(f"{source}: colour weighted by alpha is pooled in memory only; pass {param('alpha')}"
                            " straight, or pool a smaller image")
        dtype = output_dtype(settings, data.kind, data.dtype, target)
        if big.client is not None:
            shape, dtype_out = _on_cluster(source, target, keywords, dtype, big, overwrite)
        else:
            shape, dtype_out = stream.pool_to(data, target, keywords, dtype, memory=big.memory, options=big.store,
                                              overwrite=overwrite, progress=big.progress)
        return FileResult(input=str(source), output=str(target), input_shape=list(data.shape),
                          output_shape=list(shape), dtype=str(data.dtype), output_dtype=str(dtype_out),
                          seconds=round(time.perf_counter() - started, 6), parameters=settings_summary(settings))


def _on_cluster(source: Path, target: Path, keywords: dict, dtype: np.dtype | None, big: BigData,
                overwrite: bool) -> tuple:
    """Pool on the cluster of `big.client`: the workers read the input and write the Zarr output."""
    from .stream import cluster

    cluster.check_cluster_paths(source, target)
    cluster.check_shared(big.client, source, target.parent)
    return cluster.pool_on_cluster(big.client, source, target, keywords, dtype, options=big.store,
                                   overwrite=overwrite, dataset=big.dataset)


def pool_file(source: Path, target: Path, settings: PoolSettings, *, overwrite: bool = False,
              inputs: tuple[Path, ...] = (), channel_order: str = "rgb", durable: bool = True,
              big: BigData | None = None) -> FileResult:
    """Load `source`, pool it, save to `target` atomically. Raises PoolError subclasses.

    `channel_order="bgr"` lets plain colour JPEG and PNG images stay in OpenCV's order
    from decoder to encoder (see `io.load`), saving two copies; the pixels written are
    the same. It applies only when H and W alone are pooled, so no channel meets another.
    With `big`, inputs that `streams` names are pooled block by block in its memory budget.
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
                    durable=durable)
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


def describe_file(source: Path, settings: PoolSettings, dataset: str | None = None) -> dict:
    """What `info` prints: the input, and what pooling would make of each array. A Zarr store is
    described from its metadata (its values are not read: they may not fit in memory)."""
    if stream.is_big_input(source):
        return _describe_store(source, settings, dataset)
    loaded = io.load(source, **settings.load_options())
    arrays = {}
    for key, array in loaded.arrays.items():
        arrays[key] = describe_array(settings, loaded, array)
    return dict(
        input=str(source),
        format=loaded.format,
        kind=loaded.kind,
        source_mode=loaded.source_mode,
        frames=loaded.frames,
        page=settings.page,
        arrays=arrays,
        parameters=settings_summary(settings),
    )


def _describe_store(source: Path, settings: PoolSettings, dataset: str | None) -> dict:
    with stream.open_source(source, dataset) as data:
        keywords = keywords_for_kind(settings, data.kind, len(data.shape))
        array = dict(shape=list(data.shape), dtype=str(data.dtype), layout=io.guess_layout(len(data.shape)),
                     chunks=list(data.chunks), min=None, max=None, nan=None, posinf=None, neginf=None,
                     output_shape=list(output_shape(data.shape, **keywords)),
                     axes=_axes_rows(plan_pool(data.shape, **keywords)))
        return dict(input=str(source), format=data.format, kind=data.kind, source_mode=None, frames=1, page=0,
                    dataset=data.dataset, arrays={"array": array}, parameters=settings_summary(settings))


def describe_array(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray) -> dict:
    keywords = keywords_for(settings, loaded, array)
    plan = plan_pool(array.shape, **keywords)
    finite = finite_range(array) or (None, None)
    return dict(
        shape=list(array.shape),
        dtype=str(array.dtype),
        layout=loaded.layout if loaded.kind != "npz" else io.guess_layout(array.ndim),
        min=finite[0],
        max=finite[1],
        **special_counts(array),
        output_shape=list(output_shape(array.shape, **keywords)),
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


def settings_summary(settings: PoolSettings) -> dict:
    summary = asdict(settings)
    summary.pop("max_pixels", None)
    summary.pop("max_bytes", None)
    return summary


OPTION_KEYWORDS = ("mode", "count_include_pad", "p", "pad_mode", "nan_policy", "ceil_mode")


def _fit(values: tuple[int, ...], count: int, option: str) -> int | tuple[int, ...]:
    """One value for every axis, or exactly one per pooled axis."""
    if len(values) == 1:
        return values[0]
    if len(values) != count:
        raise PoolError(f"{option} has {len(values)} values for {count} pooled axes; give 1 or {count}")
    return tuple(values)


def _padding_for(padding: tuple[int, ...] | str, count: int):
    """'1' (all), one per axis, or lo,hi per axis ('top,bottom,left,right' for images)."""
    if isinstance(padding, str):
        return padding
    if len(padding) == 1:
        return padding[0]
    if len(padding) == count:
        return tuple(padding)
    if len(padding) == 2 * count:
        return tuple(zip(padding[::2], padding[1::2]))
    raise PoolError(
        f"{param('padding')} has {len(padding)} values for {count} pooled axes; give 1, {count} "
        f"or {2 * count} (lo,hi per axis, e.g. top,bottom,left,right)"
    )


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
