"""What to do to each input, in library terms: `PoolSettings` (the command-line choices, checked
once without an input), `BigData` (how inputs too big for memory are pooled), `FileResult` (what
happened to one input), and what the settings make of one array (its pooled axes, `pool`'s
`PoolSpec`, its output dtype). Nothing here reads a file or prints.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import io, stream
from ..core import formats
from ..core.choices import ALPHA_CHOICES, DTYPE_CHOICES, NODATA_CHOICES
from ..core.geometry import target_size
from ..core.options import check_nodata_fits, nodata_fits, resolve_axes
from ..core.spec import PoolSpec
from ..errors import PoolError, param

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
    strip: bool = False  # image outputs drop the input's EXIF, XMP, ICC profile and resolution

    page: int = 0  # of a multi-page TIFF or an animation
    alpha: str = "premultiplied"  # how avg, sum, l2 and lp weigh colour in images with alpha
    nodata: int | float | str | None = None  # a number; NODATA_CHOICES; None: what each input declares
    size: tuple[int | None, ...] | None = None  # target sides of the pooled axes (None: keep the aspect ratio)
    max_side: int | None = None  # target longest side (never larger than the input's)

    def load_options(self) -> dict:
        """The keywords of `io.load`: the page, and the limits on what one input may cost to decode."""
        return dict(max_pixels=self.max_pixels, max_bytes=self.max_bytes, page=self.page)

    def check(self) -> PoolSettings:
        """Raise PoolError for anything wrong regardless of the input (a usage error); the settings,
        their pooling options checked once (every `pool_spec` then gives a checked `PoolSpec`)."""
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
        self._check_size()
        if isinstance(self.nodata, str) and self.nodata not in NODATA_CHOICES:
            raise PoolError(f"{param('nodata')} {self.nodata!r} is not known; use a number or one of"
                            f" {', '.join(NODATA_CHOICES)}")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise PoolError(f"{param('max_bytes')} {self.max_bytes} must be >= 1; use a size such as 2GB")
        count = self._implied_axis_count()
        ndim = max(count, max((abs(a) + 1 for a in self.axes or ()), default=0))
        spec = self.pool_spec(count, ndim, axes=self.axes).check(count)
        if self.axes is not None:
            resolve_axes(ndim, spec.window, self.axes)
        checked = replace(self)  # replace() makes unchecked copies: a changed option is checked again
        object.__setattr__(checked, "_checked_options", spec.options())
        return checked

    def _check_size(self) -> None:
        """The target size: sides >= 1, at least one given, not with --max-side."""
        if self.size is not None and self.max_side is not None:
            raise PoolError(f"{param('size')} and {param('max_side')} both set the output size; give only one")
        if self.max_side is not None and self.max_side < 1:
            raise PoolError(f"{param('max_side')} {self.max_side} must be >= 1; use e.g. 1024")
        if self.size is not None:
            if any(side is not None and side < 1 for side in self.size):
                raise PoolError(f"{param('size')} sides must be >= 1; use e.g. 512x- or 480x640")
            if all(side is None for side in self.size):
                raise PoolError(f"{param('size')} keeps every side; give at least one, e.g. 512x-")

    @property
    def resizes(self) -> bool:
        """Whether the settings ask for a target size (adaptive pooling) instead of windows."""
        return self.size is not None or self.max_side is not None

    def but(self, **changes: Any) -> PoolSettings:
        """The settings with `changes` (as `dataclasses.replace`), still checked where `check` made
        them and no option of the pooling changes (`quality`, say)."""
        changed = replace(self, **changes)
        checked = getattr(self, "_checked_options", None)
        if checked is not None and not SPEC_FIELDS & changes.keys():
            object.__setattr__(changed, "_checked_options", checked)
        return changed

    def variant(self, mode: str, window: tuple[int, ...]) -> PoolSettings:
        """The settings with `mode` and `window` (a panel of the inspector, a cell of a figure). Where
        these settings are checked, the variant is checked once, when it is first asked for, and
        kept: the command line asks first (a usage error there), the figure or page gets the same."""
        if (mode, tuple(window)) == (self.mode, tuple(self.window)):
            return self
        if getattr(self, "_checked_options", None) is None:
            return replace(self, mode=mode, window=tuple(window))
        made: dict = self.__dict__.setdefault("_variants", {})  # frozen: kept beside the fields, as the check is
        key = (mode, tuple(window))
        if key not in made:
            made[key] = replace(self, mode=mode, window=tuple(window)).check()
        return made[key]

    def _implied_axis_count(self) -> int:
        """How many axes the options pool, as far as they tell without an input."""
        if self.axes is not None:
            return len(self.axes)
        if self.size is not None and self.layout is None:
            return len(self.size)
        if self.layout is not None:
            return len(io.pooled_axes_for_layout(self.layout, len(self.layout)))
        explicit = max(len(self.window), len(self.stride or ()), len(self.dilation))
        if explicit > 1:
            return explicit
        if not isinstance(self.padding, str) and len(self.padding) in (3, 6):
            return 3
        return 2

    def label(self) -> str:
        """'max 2' or 'l2 2x3': the mode and window, as figures and messages show them ('avg to 512x-'
        or 'avg max 1024' for a target size)."""
        if self.max_side is not None:
            return f"{self.mode} max {self.max_side}"
        if self.size is not None:
            return f"{self.mode} to {'x'.join('-' if side is None else str(side) for side in self.size)}"
        return f"{self.mode} {'x'.join(str(k) for k in self.window)}"

    def name_part(self) -> str:
        """'max_2' or 'l2_2x3': the mode and window, as output file names use them."""
        return self.label().replace(" ", "_")

    def pool_spec(self, count: int, ndim: int, axes: tuple[int, ...] | None) -> PoolSpec:
        """The `PoolSpec` for `count` pooled axes of an `ndim`-d array (checked if `check` made
        these settings: only the shape's checks are left)."""
        checked = getattr(self, "_checked_options", None)
        options = checked or dict(ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad, p=self.p,
                                  pad_mode=self.pad_mode, nan_policy=self.nan_policy, mode=self.mode,
                                  nodata=None if isinstance(self.nodata, str) else self.nodata)
        return PoolSpec(
            window=_fit(self.window, count, f"{param('window')}"),
            stride=None if self.stride is None else _fit(self.stride, count, f"{param('stride')}"),
            padding=_padding_for(self.padding, count),
            dilation=_fit(self.dilation, count, f"{param('dilation')}"),
            axes=axes,
            checked=checked is not None,
            **options,
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
    card: dict | None = None  # batch --html-report: the gallery card's pictures, made where the file was pooled

    def to_json(self) -> dict:
        record = asdict(self)
        record.pop("card")
        return record


@dataclass(frozen=True)
class BigData:
    """How inputs too big for memory are pooled: the memory budget, the array of a Zarr
    group, how outputs are stored, and who hears of the progress (input bytes done)."""

    memory: int = stream.DEFAULT_MEMORY
    dataset: str | None = None
    store: stream.StoreOptions = stream.DEFAULT_STORE
    progress: Callable[[int], None] | None = None
    client: Any = None  # a Dask distributed client (--scheduler): inputs are pooled on its cluster
    pixel_size: tuple[float, ...] | None = None  # the input's pixel size the user gives (its metadata's otherwise)
    unit: str | None = None  # and its unit (NGFF's name)


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


def spec_for(settings: PoolSettings, loaded: io.Loaded, array: np.ndarray) -> PoolSpec:
    """The `PoolSpec` of one array of a loaded input (its nodata: `nodata_for`; a target size:
    `sized`)."""
    spec = spec_for_kind(settings, loaded.kind, array.ndim).but(
        nodata=nodata_for(settings.nodata, array.dtype, loaded.nodata))
    return sized(settings, spec, tuple(array.shape))


def sized(settings: PoolSettings, spec: PoolSpec, shape: tuple[int, ...]) -> PoolSpec:
    """`spec` pooling to the settings' target size (adaptive pooling: `core/geometry.target_size`
    of the pooled axes' sides), or `spec` itself without one."""
    if not settings.resizes:
        return spec
    count = len(settings.size) if settings.size is not None else None
    axes = resolve_axes(len(shape), None if count is None else (1,) * count, spec.axes, name="size")
    sides = tuple(shape[axis] for axis in axes)
    return spec.but(axes=axes, output_size=target_size(sides, settings.size, settings.max_side))


def nodata_for(choice: int | float | str | None, dtype: np.dtype, declared: int | float | None = None,
               fill_value: int | float | None = None) -> int | float | None:
    """The nodata of one input of `dtype` by `choice` (`PoolSettings.nodata`): a number, which
    `dtype` must hold (else a PoolError naming it); None: what the input `declared` (a TIFF's
    GDAL_NODATA, a Zarr array's "nodata" attribute), used only where `dtype` holds it (a value
    no cell can hold marks no cell); "fill": a Zarr array's `fill_value` (else what it
    declared); "none": none."""
    if choice == "none":
        return None
    if isinstance(choice, (int, float)):
        check_nodata_fits(choice, np.dtype(dtype))
        return choice
    found = fill_value if choice == "fill" and fill_value is not None else declared
    return found if found is not None and nodata_fits(found, np.dtype(dtype)) else None


def spec_for_kind(settings: PoolSettings, kind: str, ndim: int) -> PoolSpec:
    """The `PoolSpec` of an `ndim`-d array of `kind` ("image" or an array kind); its nodata is
    the settings' number, if any (`nodata_for` adds what an input declares)."""
    axes = pooled_axes(settings, kind, ndim)
    if axes is not None:
        count = len(axes)
    elif len(settings.window) > 1:
        count = len(settings.window)
    else:
        count = min(2, ndim)
    return settings.pool_spec(count, ndim, axes)


def assumed_layout(settings: PoolSettings, kind: str, ndim: int) -> tuple[str, str]:
    """The layout pooling takes an array to have, and why (what `info` reports).

    >>> assumed_layout(PoolSettings(), "npy", 3)
    ('chw', 'guessed from its 3 axes')
    """
    if settings.layout is not None:
        return settings.layout.lower(), "given"
    if settings.axes is not None:
        return "", f"axes {','.join(str(a) for a in settings.axes)} given"
    if kind == "image":
        return "hwc", "an image: height, width, channels"
    return io.guess_layout(ndim), f"guessed from its {ndim} axes"


MOST_CHANNELS = 4  # a last axis this short, pooled beside a longer one left alone, looks like colour


def layout_doubt(settings: PoolSettings, kind: str, shape: tuple[int, ...]) -> str | None:
    """A warning where the guessed layout pools what looks like colour: a last axis of 1-4 pooled
    while a longer axis is not, as in an (H, W, 3) photo saved as .npy, guessed C, H, W; None
    where the layout was given or nothing looks wrong."""
    layout, _ = assumed_layout(settings, kind, len(shape))
    if kind == "image" or settings.layout is not None or settings.axes is not None or "c" not in layout:
        return None
    spec = spec_for_kind(settings, kind, len(shape))
    pooled = resolve_axes(len(shape), spec.window, spec.axes)
    last = len(shape) - 1
    left = [shape[axis] for axis in range(len(shape)) if axis not in pooled]
    if last not in pooled or shape[last] > MOST_CHANNELS or not any(size > shape[last] for size in left):
        return None
    channels_last = layout.replace("c", "") + "c"
    return (f"shape {tuple(shape)} looks like {', '.join(io.LAYOUT_AXES[c] for c in channels_last)}, but its"
            f" layout is guessed as {layout}, so its last axis ({shape[last]}) is pooled as if spatial; pass"
            f" {param('layout')} {channels_last} to pool the spatial axes, or {param('layout')} {layout} to keep this")


def output_dtype(settings: PoolSettings, kind: str, dtype: np.dtype, target: Path) -> np.dtype | None:
    """'auto' keeps an image's dtype when the output is an image too (unless --normalize
    maps the natural values to 8 bits itself); else the natural dtype of docs/semantics.md."""
    if settings.dtype == "keep":
        return dtype
    if settings.dtype == "auto":
        keeps_image = kind == "image" and formats.is_image_suffix(target.suffix)
        return dtype if keeps_image and settings.normalize is None else None
    return np.dtype(settings.dtype)


def default_output(source: Path, settings: PoolSettings, folder: Path | None = None, suffix: str | None = None) -> Path:
    """`{stem}_{mode}_{window}{ext}` in `folder` (default: beside the input)."""
    folder = source.parent if folder is None else folder
    return folder / f"{source.stem}_{settings.name_part()}{suffix or source.suffix}"


def settings_summary(settings: PoolSettings) -> dict:
    """The settings as a record (without the budgets); the same settings' record is made once
    (a batch asks for it per file), each caller gets its own copy of the top level."""
    try:
        return dict(_summary(settings))
    except TypeError:  # settings holding an unhashable value: not cached
        return dict(_summary.__wrapped__(settings))


@functools.lru_cache(maxsize=8)
def _summary(settings: PoolSettings) -> dict:
    summary = asdict(settings)
    summary.pop("max_pixels", None)
    summary.pop("max_bytes", None)
    return summary


SPEC_FIELDS = {"mode", "window", "stride", "padding", "dilation", "ceil_mode", "count_include_pad", "p", "pad_mode",
               "nan_policy", "axes", "layout", "nodata", "size",
               "max_side"}  # what `pool_spec` and `check`'s count read


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
