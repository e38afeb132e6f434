"""Formats, layouts and budgets: which suffix is which format (the table is core/formats.py), the requests its
reader and writer get, how arrays are laid out, `Loaded`."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..core import formats
from ..core.calibration import Calibration
from ..errors import InputError, OutputError, PoolError, param
from .metadata import ImageMetadata


def sniff_suffix(data: bytes) -> str | None:
    """The extension of the format ``data`` is in, from its first bytes (the signatures of
    :mod:`poolcli.core.formats`); None if unknown.

    >>> sniff_suffix(b"\\x89PNG\\r\\n\\x1a\\n..."), sniff_suffix(b"RIFF1234WEBPVP8 "), sniff_suffix(b"hello")
    ('.png', '.webp', None)
    """
    record = formats.sniff(data)
    return None if record is None else record.extension


def format_for(path: Path, error: type[PoolError]) -> formats.Format:
    """The format ``path``'s suffix names, or ``error`` saying which suffixes there are."""
    suffix = path.suffix.lower()
    record = formats.by_suffix(suffix)
    if record is None:
        known = ", ".join(formats.read_suffixes())
        raise error(f"{path}: unknown extension {suffix or '(none)'!r}; use one of {known}")
    return record


@dataclass(frozen=True)
class ReadRequest:
    """What :func:`load` hands a format's reader: the format and the caller's limits."""

    format: formats.Format
    max_pixels: int | None
    max_bytes: int | None  # what compressed data may inflate to, resolved by decoded_limit
    channel_order: str
    page: int


@dataclass(frozen=True, eq=False)
class WriteRequest:
    """What :func:`save` hands a format's writer: the format, the data and the options."""

    format: formats.Format
    array: np.ndarray | None
    key_arrays: dict[str, np.ndarray] | None
    normalize: str | None
    icc: bytes | None
    quality: int
    bgr: bool
    metadata: ImageMetadata | None = None  # EXIF, XMP, resolution: what an image output keeps
    nodata: int | float | None = None  # recorded where the format has a place for it (TIFF: GDAL_NODATA)
    compression: str | None = None  # TIFF: the compression asked for (None: as poolcli writes TIFF by default)
    calibration: Calibration | None = None  # the pixels' physical size, where the format records it (TIFF)
    ome: bool = False  # TIFF: an OME-TIFF (as a name ending .ome.tif is anyway)

    def single_array(self, path: Path) -> np.ndarray:
        """The one array to write (``array``, or the only one of ``key_arrays``); an OutputError otherwise."""
        if self.array is not None or not self.key_arrays:
            return self.required(path)
        if len(self.key_arrays) == 1:
            return np.asanyarray(next(iter(self.key_arrays.values())))
        keys = ", ".join(self.key_arrays)
        raise OutputError(f"{path}: {len(self.key_arrays)} arrays ({keys}) need one file; save as .npz")

    def required(self, path: Path) -> np.ndarray:
        if self.array is None:
            raise OutputError(f"{path}: nothing to write; pass an array")
        return np.asanyarray(self.array)


DEFAULT_MAX_PIXELS: int | None = Image.MAX_IMAGE_PIXELS

"""Largest width*height :func:`load` decodes by default: Pillow's own limit (~89.5 M)."""

MMAP_THRESHOLD_BYTES = 64 * 2**20

"""``.npy`` files larger than this are memory-mapped read-only instead of read."""

CHANNEL_ORDERS = ("rgb", "bgr")

"""How the channels of a 3- or 4-channel image array are ordered: RGB(A) or BGR(A)."""

LAYOUT_AXES = {
    "n": "batch",
    "c": "channel",
    "d": "depth",
    "h": "height",
    "w": "width",
    "l": "length",
    "t": "time",  # and OME-Zarr's names: z (depth), y (height), x (width)
    "z": "depth",
    "y": "height",
    "x": "width",
}

SPATIAL_AXES = "dhwlzyx"
SAME = {"z": "d", "y": "h", "x": "w"}  # two letters of one axis

_GUESSED_LAYOUTS = {1: "l", 2: "hw", 3: "chw", 4: "nchw", 5: "ncdhw"}

# zlib level 1 with run-length matching after libpng's adaptive row filters: on photos, 7x
# faster than Pillow's default (level 6) and about 5% smaller; OpenCV's own default is 40%
# faster still but 10% bigger than Pillow's. Pillow writes what OpenCV cannot (gray + alpha)
# with the same zlib settings.
PILLOW_PNG = {"compress_level": 1, "compress_type": zlib.Z_RLE}

NUMERIC_KINDS = "biuf"

DTYPE_FIXES = {
    "c": "save np.abs(x) or x.real instead",
    "U": "convert it to numbers first",
    "S": "convert it to numbers first",
    "V": "save each field as its own array",
    "M": "save x.astype('int64') instead",
    "m": "save x.astype('int64') instead",
}


@dataclass(frozen=True, eq=False)  # arrays compare element-wise, so Loaded compares by identity
class Loaded:
    """The arrays of one input file and what poolcli knows about their origin.

    ``arrays`` holds one entry, ``"array"``, for an image or ``.npy`` and one entry
    per key, in file order, for ``.npz``. ``layout`` is ``"hwc"`` for images and a
    guess by ndim (:func:`guess_layout`) of the first array otherwise. ``frames``
    counts the pages of a multi-page TIFF or the frames of an animation (only the
    first is read); it is 1 for ``.npy`` and ``.npz``. ``channel_order`` is "bgr"
    only for a 3- or 4-channel image that :func:`load` was asked to keep in
    OpenCV's order; pass it on to :func:`save`.

    >>> item = Loaded({"array": np.zeros((2, 3, 1), np.uint8)}, "image", "hwc", "PNG", "L", 1,
    ...               Path("a.png"))
    >>> item.array.shape
    (2, 3, 1)
    """

    arrays: dict[str, np.ndarray]
    kind: str
    layout: str
    format: str
    source_mode: str | None
    frames: int
    path: Path
    icc_profile: bytes | None = field(default=None, repr=False)
    channel_order: str = "rgb"
    metadata: ImageMetadata | None = field(default=None, repr=False)  # EXIF, XMP, resolution of an image
    nodata: int | float | None = None  # the value the file declares for missing cells (a TIFF's GDAL_NODATA)
    calibration: Calibration | None = None  # the pixels' physical size (a TIFF's resolution), where known

    @property
    def array(self) -> np.ndarray:
        """The only array of an image, a ``.npy`` or a one-key ``.npz``."""
        if len(self.arrays) != 1:
            keys = ", ".join(self.arrays)
            raise InputError(
                f"{self.path}: holds {len(self.arrays)} arrays ({keys}); pick one by key"
            )
        return next(iter(self.arrays.values()))


def guess_layout(ndim: int) -> str:
    """The layout poolcli assumes for an array read from ``.npy``/``.npz``; "" when none.

    >>> [guess_layout(n) for n in range(7)]
    ['', 'l', 'hw', 'chw', 'nchw', 'ncdhw', '']
    """
    return _GUESSED_LAYOUTS.get(ndim, "")


def pooled_axes_for_layout(layout: str, ndim: int) -> tuple[int, ...]:
    """The axes to pool for a layout string: those lettered d, h, w or l.

    Letters (any case, commas between them allowed): n batch, t time, c channel, d or z depth,
    h or y height, w or x width, l length. Every letter but n may appear once.

    >>> pooled_axes_for_layout("hwc", 3)
    (0, 1)
    >>> pooled_axes_for_layout("NCDHW", 5)
    (2, 3, 4)
    >>> pooled_axes_for_layout("nlc", 3)
    (1,)
    >>> pooled_axes_for_layout("t,c,z,y,x", 5)
    (2, 3, 4)
    >>> try:
    ...     pooled_axes_for_layout("hw", 3)
    ... except PoolError as error:
    ...     print(error)
    layout 'hw' names 2 axes but the array has 3; give one letter per axis, e.g. 'chw'
    """
    letters = layout.lower().replace(",", "")
    unknown = sorted(set(letters) - set(LAYOUT_AXES))
    if unknown:
        raise PoolError(
            f"{param('layout')} {layout!r} has unknown letters {''.join(unknown)!r}; use n, t, c, d (or z),"
            " h (or y), w (or x) and l, e.g. hwc, chw, nchw, ncdhw, nlc or z,y,x"
        )
    if len(letters) != ndim:
        example = f", e.g. {guess_layout(ndim)!r}" if guess_layout(ndim) else ""
        raise PoolError(
            f"{param('layout')} {layout!r} names {len(letters)} axes but the array has {ndim};"
            f" give one letter per axis{example}"
        )
    repeated = sorted({c for c in letters if c != "n" and sum(SAME.get(o, o) == SAME.get(c, c) for o in letters) > 1})
    if repeated:
        raise PoolError(f"{param('layout')} {layout!r} repeats {''.join(repeated)!r}; name each axis once")
    axes = tuple(i for i, letter in enumerate(letters) if letter in SPATIAL_AXES)
    if not axes:
        raise PoolError(f"{param('layout')} {layout!r} has no axis to pool; include d, h, w or l (or z, y, x)")
    return axes


def decoded_limit(max_pixels: int | None, max_bytes: int | None = None) -> int | None:
    """The bytes a compressed input may inflate to: ``max_bytes`` when given, else
    4 bytes per pixel of ``max_pixels`` (as much as the largest 8-bit RGBA image poolcli
    decodes), no limit when both are None.

    >>> decoded_limit(1000), decoded_limit(1000, 64), decoded_limit(None)
    (4000, 64, None)
    """
    if max_bytes is not None:
        return max_bytes
    return None if max_pixels is None else 4 * max_pixels


def one_line(text: object) -> str:
    return " ".join(str(text).split()) or "no detail"


@contextlib.contextmanager
def input_errors(path: Path, what: str, fix: str) -> Iterator[None]:
    """Turn any decoder failure into one InputError line; poolcli's own errors pass through."""
    try:
        yield
    except PoolError:
        raise
    except Exception as error:
        reason = one_line(error)
        raise InputError(f"{path}: cannot read it as {what} ({reason}); {fix}") from error

