"""Read and write the files poolcli pools: images, ``.npy`` and ``.npz``.

Pure file I/O: no pooling math and no printing. Every failure is an
:class:`~poolcli.errors.InputError` or :class:`~poolcli.errors.OutputError` whose
message is one line, ``"<path>: <reason>; <fix>"``. Every decision about how an
image is decoded or encoded lives here, so ``pool`` and ``batch`` write the same bytes.

Reading (:func:`load`)
    Images come through Pillow (PNG, JPEG, TIFF, BMP, GIF, WebP) as H x W x C
    arrays with their EXIF orientation applied. Plain 8-bit JPEG and PNG files
    (L, RGB or RGBA, nothing Pillow would rotate, convert or treat specially) are
    decoded by OpenCV instead, which gives Pillow's pixels, mode and ICC profile
    faster; ``channel_order="bgr"`` keeps OpenCV's BGR(A) order for those, for
    callers that never mix channels. 16-bit colour PNG/TIFF, which Pillow cuts to
    8 bits, and TIFFs that Pillow cannot decode (float64 or multi-channel float)
    go through OpenCV too. The image size is checked against ``max_pixels`` from
    the header, before any pixel is decoded. Arrays come through
    :func:`numpy.load`, never unpickling.

Writing (:func:`save`)
    The format follows the extension. A format that cannot hold the array's
    values and channels exactly is refused, never converted with a loss (unless
    ``normalize="minmax"`` asks for 8 bits). PNG (but 8-bit gray+alpha) and JPEG
    are encoded by OpenCV: PNG at zlib level 1 with run-length matching, JPEG at
    ``quality`` (default :data:`JPEG_QUALITY`, 90) with 4:2:0 chroma, as Pillow and
    libjpeg write by default; the ICC profile of ``like`` goes along. Every file is
    written atomically by :func:`atomic_output`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import stat
import struct
import sys
import tempfile
import threading
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import opencv
from .choices import FORMAT_SUFFIXES, JPEG_QUALITY  # noqa: F401 (FORMAT_SUFFIXES: io's public names)
from .errors import InputError, OutputError, PoolError, param

IMAGE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".webp": "WEBP",
}
ARRAY_FORMATS = {".npy": "NPY", ".npz": "NPZ"}
SUFFIXES = (*IMAGE_FORMATS, *ARRAY_FORMATS)
_SIGNATURES = (  # how each format's bytes begin: for data that comes without a file name (stdin)
    (b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"II*\x00", ".tiff"), (b"MM\x00*", ".tiff"),
    (b"II+\x00", ".tiff"), (b"MM\x00+", ".tiff"), (b"GIF8", ".gif"), (b"BM", ".bmp"), (b"\x93NUMPY", ".npy"),
    (b"PK\x03\x04", ".npz"),
)


def sniff_suffix(data: bytes) -> str | None:
    """The extension of the format ``data`` is in, from its first bytes; None if unknown.

    >>> sniff_suffix(b"\\x89PNG\\r\\n\\x1a\\n..."), sniff_suffix(b"RIFF1234WEBPVP8 "), sniff_suffix(b"hello")
    ('.png', '.webp', None)
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((suffix for signature, suffix in _SIGNATURES if data.startswith(signature)), None)

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
}
SPATIAL_AXES = "dhwl"
_GUESSED_LAYOUTS = {1: "l", 2: "hw", 3: "chw", 4: "nchw", 5: "ncdhw"}

# The Pillow plugins poolcli lets near its inputs (JPEG also opens MPO, multi-picture JPEG).
_PILLOW_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "DIB", "GIF", "WEBP")
# Pillow modes turned into the mode whose array poolcli returns (P is decided per file).
_MODE_CONVERSIONS = {
    "1": "L",
    "La": "LA",
    "PA": "RGBA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
}
_PNG_WIDE_COLOUR = {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}  # PNG colour type -> mode
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PLAIN_PNG_MODES = {0: "L", 2: "RGB", 6: "RGBA"}  # 8-bit colour types without a palette
_PNG_ROTATION_KEYWORDS = (b"Raw profile type exif", b"XML:com.adobe.xmp")  # where Pillow finds orientation
_ORIENTATION = 0x0112  # the EXIF tag
# zlib level 1 with run-length matching after libpng's adaptive row filters: on photos, 7x
# faster than Pillow's default (level 6) and about 5% smaller; OpenCV's own default is 40%
# faster still but 10% bigger than Pillow's. Pillow writes what OpenCV cannot (gray + alpha)
# with the same zlib settings.
_PILLOW_PNG = {"compress_level": 1, "compress_type": zlib.Z_RLE}
_OPENCV_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tiff"}
_UINT8_CHANNELS = {  # channel counts each format keeps exactly, for uint8 arrays
    "PNG": (1, 2, 3, 4),
    "TIFF": (1, 2, 3, 4),
    "WEBP": (1, 2, 3, 4),
    "JPEG": (1, 3),
    "BMP": (1, 3),
    "GIF": (1, 3, 4),  # colour is quantised to a 256-colour palette: lossy, as GIF is
}
_NUMERIC_KINDS = "biuf"
_DTYPE_FIXES = {
    "c": "save np.abs(x) or x.real instead",
    "U": "convert it to numbers first",
    "S": "convert it to numbers first",
    "V": "save each field as its own array",
    "M": "save x.astype('int64') instead",
    "m": "save x.astype('int64') instead",
}
_FROM_PILLOW_LIMIT = threading.Lock()


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

    @property
    def array(self) -> np.ndarray:
        """The only array of an image, a ``.npy`` or a one-key ``.npz``."""
        if len(self.arrays) != 1:
            keys = ", ".join(self.arrays)
            raise InputError(
                f"{self.path}: holds {len(self.arrays)} arrays ({keys}); pick one by key"
            )
        return next(iter(self.arrays.values()))


# --------------------------------------------------------------------------- layouts


def guess_layout(ndim: int) -> str:
    """The layout poolcli assumes for an array read from ``.npy``/``.npz``; "" when none.

    >>> [guess_layout(n) for n in range(7)]
    ['', 'l', 'hw', 'chw', 'nchw', 'ncdhw', '']
    """
    return _GUESSED_LAYOUTS.get(ndim, "")


def pooled_axes_for_layout(layout: str, ndim: int) -> tuple[int, ...]:
    """The axes to pool for a layout string: those lettered d, h, w or l.

    Letters (any case): n batch, c channel, d depth, h height, w width, l length.
    Every letter but n may appear once.

    >>> pooled_axes_for_layout("hwc", 3)
    (0, 1)
    >>> pooled_axes_for_layout("NCDHW", 5)
    (2, 3, 4)
    >>> pooled_axes_for_layout("nlc", 3)
    (1,)
    >>> try:
    ...     pooled_axes_for_layout("hw", 3)
    ... except PoolError as error:
    ...     print(error)
    layout 'hw' names 2 axes but the array has 3; give one letter per axis, e.g. 'chw'
    """
    letters = layout.lower()
    unknown = sorted(set(letters) - set(LAYOUT_AXES))
    if unknown:
        raise PoolError(
            f"{param('layout')} {layout!r} has unknown letters {''.join(unknown)!r}; use n, c, d, h, w"
            " and l, e.g. hwc, chw, nchw, ncdhw or nlc"
        )
    if len(letters) != ndim:
        example = f", e.g. {guess_layout(ndim)!r}" if guess_layout(ndim) else ""
        raise PoolError(
            f"{param('layout')} {layout!r} names {len(letters)} axes but the array has {ndim};"
            f" give one letter per axis{example}"
        )
    repeated = sorted({c for c in letters if c != "n" and letters.count(c) > 1})
    if repeated:
        raise PoolError(f"{param('layout')} {layout!r} repeats {''.join(repeated)!r}; name each axis once")
    axes = tuple(i for i, letter in enumerate(letters) if letter in SPATIAL_AXES)
    if not axes:
        raise PoolError(f"{param('layout')} {layout!r} has no axis to pool; include d, h, w or l")
    return axes


# --------------------------------------------------------------------------- reading


def load(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
    channel_order: str = "rgb",
    page: int = 0,
) -> Loaded:
    """Read an image, ``.npy`` or ``.npz`` file.

    Images are always H x W x C. Pillow modes map to arrays as follows:
    L, LA, RGB, RGBA -> uint8 with 1, 2, 3, 4 channels; 1 (bilevel) -> uint8 0/255
    gray; P -> RGB, or RGBA when the palette has transparency; I;16 -> uint16;
    I -> int32; F -> float32; CMYK, YCbCr -> RGB. 16-bit colour PNG and TIFF are
    read by OpenCV at full depth (uint16, ``source_mode`` "RGB;16", "RGBA;16" or
    "LA;16"); TIFFs Pillow cannot decode are read by OpenCV (``format`` "OPENCV").
    Plain 8-bit L, RGB and RGBA JPEG and PNG files are decoded by OpenCV, with the
    pixels, mode and ICC profile Pillow would give.

    ``channel_order="bgr"`` returns those plain RGB and RGBA files as OpenCV decodes
    them, BGR(A), saving a copy, for a caller that never mixes channels and hands
    the array back to :func:`save` with the same ``channel_order``. Every other
    image stays RGB(A); ``Loaded.channel_order`` says which order the array has.

    ``max_pixels`` refuses images whose width*height exceeds it, read from the
    header before decoding (decompression bombs); ``None`` means no limit.
    ``max_bytes`` caps what the compressed members of an ``.npz`` may inflate to, in
    all; by default (None) :func:`decoded_limit` of ``max_pixels``.
    ``page`` picks the page of a multi-page TIFF or the frame of an animation (0, the
    first, by default); ``Loaded.frames`` says how many there are.
    ``.npy`` files over :data:`MMAP_THRESHOLD_BYTES` are memory-mapped read-only.
    Pickles and non-real dtypes (complex, strings, records, dates) are refused.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     ramp = save(Path(folder) / "ramp.png", np.arange(6, dtype=np.uint8).reshape(2, 3))
    ...     item = load(ramp)
    >>> item.array.shape, item.array.dtype, item.kind, item.layout, item.format, item.source_mode
    ((2, 3, 1), dtype('uint8'), 'image', 'hwc', 'PNG', 'L')
    """
    path = Path(path)
    if max_pixels is not None and max_pixels < 1:
        raise PoolError(f"max_pixels {max_pixels} must be >= 1; use a positive limit or None")
    if channel_order not in CHANNEL_ORDERS:
        raise PoolError(f"channel_order {channel_order!r} is unknown; use 'rgb' or 'bgr'")
    if isinstance(page, bool) or not isinstance(page, int) or page < 0:
        raise PoolError(f"page {page!r} must be an integer >= 0; use 0 for the first page")
    _check_input_file(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _load_npy(path)
    if suffix == ".npz":
        return _load_npz(path, decoded_limit(max_pixels, max_bytes))
    if suffix in IMAGE_FORMATS:
        return _load_image(path, max_pixels, channel_order, page)
    raise InputError(
        f"{path}: unknown extension {suffix or '(none)'!r}; use one of {', '.join(SUFFIXES)}"
    )


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


def _check_input_file(path: Path) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({error.strerror}); check the path") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a folder, not a file; pass a file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: is not a regular file; pass a file")
    if info.st_size == 0:
        raise InputError(f"{path}: is empty (0 bytes); check that it was written completely")


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "no detail"


@contextlib.contextmanager
def _input_errors(path: Path, what: str, fix: str) -> Iterator[None]:
    """Turn any decoder failure into one InputError line; poolcli's own errors pass through."""
    try:
        yield
    except PoolError:
        raise
    except Exception as error:
        reason = _one_line(error)
        raise InputError(f"{path}: cannot read it as {what} ({reason}); {fix}") from error


# .npy and .npz


def _load_npy(path: Path) -> Loaded:
    with _input_errors(path, "a .npy array", "re-save it with numpy.save"):
        with open(path, "rb") as file:
            header = _npy_header(file)
            size = os.fstat(file.fileno()).st_size
        _check_array_dtype(str(path), header.dtype)
        _check_npy_length(str(path), header, size)
        large = size > MMAP_THRESHOLD_BYTES
        array = np.load(path, allow_pickle=False, mmap_mode="r" if large else None)
    return Loaded({"array": array}, "npy", guess_layout(array.ndim), "NPY", None, 1, path)


def _load_npz(path: Path, max_bytes: int | None) -> Loaded:
    """Every member of an .npz, each checked from its header before a byte is inflated:
    its length must match the header, and compressed members must inflate to at most
    ``max_bytes`` in all (zip bombs)."""
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: is not a .npz (zip) archive; save it with numpy.savez")
    arrays: dict[str, np.ndarray] = {}
    inflated = 0
    with _input_errors(path, "a .npz archive", "re-save it with numpy.savez"), zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            key = member.filename.removesuffix(".npy")
            where = f"{path} (key {key!r})"
            if member.compress_type != zipfile.ZIP_STORED:  # as declared (less a header), before a byte
                _check_inflated(where, inflated + member.file_size - _NPY_HEADER_ROOM, max_bytes)
            with _member_stream(archive, member) as stream:
                header = _npy_header(stream)
                _check_array_dtype(where, header.dtype)
                _check_npy_length(where, header, member.file_size)
                if member.compress_type != zipfile.ZIP_STORED:
                    inflated += header.nbytes
                    _check_inflated(where, inflated, max_bytes)
                arrays[key] = _read_npy_body(where, stream, header)
    if not arrays:
        raise InputError(f"{path}: holds no arrays; save at least one with numpy.savez")
    layout = guess_layout(next(iter(arrays.values())).ndim)
    return Loaded(arrays, "npz", layout, "NPZ", None, 1, path)


@dataclass(frozen=True)
class _NpyHeader:
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    offset: int  # where the data starts

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _npy_header(file: IO[bytes]) -> _NpyHeader:
    """What a .npy stream declares, read without touching its data."""
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
    else:
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
    return _NpyHeader(tuple(shape), bool(fortran_order), dtype, file.tell())


def _check_npy_length(where: str, header: _NpyHeader, length: int) -> None:
    """Refuse a .npy whose data is shorter or longer than its header says."""
    if header.dtype.hasobject or length - header.offset == header.nbytes:
        return
    raise InputError(
        f"{where}: its header promises a {header.shape} {header.dtype} array ({header.nbytes:,} bytes) but"
        f" {length - header.offset:,} bytes follow; the file is truncated or corrupt; re-save it with numpy.save"
    )


_NPY_HEADER_ROOM = 64 << 10  # more than any .npy header numpy writes


def _member_stream(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Any:
    """A member's bytes, inflated at most as far as they are read. zipfile does that for
    deflate; its bzip2 and LZMA readers inflate all a read's input at once (a few KB of a
    bzip2 bomb make gigabytes), so those are inflated here, with a bound on every step."""
    if member.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return archive.open(member)
    raw = zipfile.ZipInfo(member.filename, member.date_time)
    raw.compress_type, raw.compress_size, raw.file_size = zipfile.ZIP_STORED, member.compress_size, member.compress_size
    raw.header_offset, raw.flag_bits = member.header_offset, member.flag_bits
    raw.CRC = None  # type: ignore[assignment]  # the stored bytes are compressed: no CRC to check
    return _Inflating(archive.open(raw), member.compress_type, member.file_size)


class _Inflating(io.RawIOBase):
    """Read-only bytes of a bzip2 or zip-LZMA stream, inflated `size` bytes at most and never more
    than each read asks for."""

    def __init__(self, raw: IO[bytes], compress_type: int, size: int):
        super().__init__()
        self._raw, self._left, self._type = raw, size, compress_type
        self._decompressor: Any = None
        self._input = b""
        self._position = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self._left)
        while wanted:
            if self._input == b"" and self._needs_input():
                self._input = self._raw.read(64 << 10)
                if not self._input and self._needs_input():
                    return 0
            chunk = self._inflate(wanted)
            if chunk:
                buffer[: len(chunk)] = chunk
                self._left -= len(chunk)
                self._position += len(chunk)
                return len(chunk)
            if self._decompressor is not None and self._decompressor.eof:
                return 0
        return 0

    def _needs_input(self) -> bool:
        return self._decompressor is None or self._decompressor.needs_input

    def _inflate(self, wanted: int) -> bytes:
        if self._decompressor is None and not self._start():
            return b""
        data, self._input = self._input, b""
        return self._decompressor.decompress(data, wanted)

    def _start(self) -> bool:
        import bz2
        import lzma

        if self._type == zipfile.ZIP_BZIP2:
            self._decompressor = bz2.BZ2Decompressor()
            return True
        if self._type != zipfile.ZIP_LZMA:
            raise ValueError(f"zip compression method {self._type} is not supported")
        if len(self._input) < 4 or len(self._input) < 4 + struct.unpack("<H", self._input[2:4])[0]:
            more = self._raw.read(64 << 10)
            if not more:
                raise ValueError("the LZMA member is cut short")
            self._input += more
            return False
        size = struct.unpack("<H", self._input[2:4])[0]
        properties = lzma._decode_filter_properties(  # type: ignore[attr-defined]  # as zipfile does
            lzma.FILTER_LZMA1, self._input[4 : 4 + size])
        self._decompressor = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[properties])
        self._input = self._input[4 + size :]
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()


def _check_inflated(where: str, inflated: int, max_bytes: int | None) -> None:
    if max_bytes is not None and inflated > max_bytes:
        raise InputError(
            f"{where}: compressed arrays inflate to {inflated:,} bytes, more than the limit of {max_bytes:,}"
            f" (decompression-bomb guard); pass {param('max_bytes')} {inflated} if you trust this file"
        )


def _read_npy_body(where: str, stream: Any, header: _NpyHeader) -> np.ndarray:
    """The data of a .npy stream after its header, read into one array of the declared size."""
    array = np.empty(header.shape, header.dtype, order="F" if header.fortran_order else "C")
    view = memoryview(array.reshape(-1, order="A").view(np.uint8))  # type: ignore[arg-type]
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:filled + (16 << 20)])
        if not count:
            raise InputError(f"{where}: the array data ends early; the file is truncated; re-save it")
        filled += count
    return array


def _check_array_dtype(where: str, dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise InputError(
            f"{where}: holds Python objects (pickle); poolcli never unpickles;"
            " save it with a numeric dtype"
        )
    if dtype.kind not in _NUMERIC_KINDS:
        fix = _DTYPE_FIXES.get(dtype.kind, "convert it to a real numeric dtype first")
        raise InputError(f"{where}: dtype {dtype} cannot be pooled; {fix}")


# images


def _load_image(path: Path, max_pixels: int | None, channel_order: str, page: int) -> Loaded:
    expected = IMAGE_FORMATS[path.suffix.lower()]
    data = None
    if expected == "TIFF":
        tiff = _load_tiff(path, max_pixels, page)
        if tiff is not None:
            return tiff
    if expected in ("JPEG", "PNG") and page == 0:
        data = _read_bytes(path)
        if expected == "JPEG":
            _check_jpeg_scans(path, data)
        else:
            _check_png_data(path, data)
        plain = _load_plain(path, data, expected, max_pixels, channel_order)
        if plain is not None:
            return plain
    try:
        with _quiet_decoders():
            image = _open_lazily(path)
    except UnidentifiedImageError:
        raise InputError(
            f"{path}: is not an image Pillow can identify (expected {expected});"
            " check that the file is an image and complete"
        ) from None
    except Exception as error:  # Pillow reads the header here: a broken one raises anything
        raise InputError(f"{path}: cannot open it ({_one_line(error)}); the file may be corrupt; re-export it") \
            from None
    if image.format == "PNG" and not _png_is_complete(_read_bytes(path) if data is None else data):
        image.close()
        raise InputError(f"{path}: PNG is cut short (it ends before its IEND chunk); the file may be"
                         " truncated; re-export it")
    fix = "the file may be truncated or corrupt; re-export it"
    with image, _input_errors(path, f"a {image.format} image", fix), _quiet_decoders():
        _check_pixels(path, image.size, max_pixels)
        frames = _frame_count(path, image)
        _check_page(path, page, frames)
        wide_mode = _wide_colour_mode(path, image) if page == 0 else None
        if wide_mode is None:
            array, mode = _pillow_pixels(image, page), image.mode
        else:
            array, mode = _full_depth_pixels(path, image, wide_mode), wide_mode
        icc = image.info.get("icc_profile")
    if image.format in ("JPEG", "MPO"):
        _check_jpeg_intact(path, _read_bytes(path) if data is None else data)
    return Loaded({"array": array}, "image", "hwc", image.format or expected, mode, frames, path, icc)


def _check_page(path: Path, page: int, count: int) -> None:
    if page >= count:
        raise InputError(f"{path}: has {count} page(s) or frame(s), no page {page}; use {param('page')} 0..{count - 1}")


def _read_bytes(path: Path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({_one_line(error.strerror or error)}); check the file") from None


def _frame_count(path: Path, image: Image.Image) -> int:
    """Pages of a TIFF (counted by tifffile: Pillow's count takes quadratic time) or frames of
    an animation."""
    if image.format != "TIFF":
        return getattr(image, "n_frames", 1)
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        return len(tiff.pages)


MAX_JPEG_SCANS = 500
"""Most scans a JPEG may have; real progressive files have about 10 (libjpeg-turbo's
fuzzers use the same limit). Each scan costs a pass over the image, so a file of many
empty scans would otherwise take minutes to refuse."""

_JPEG_CORRUPTION = (
    "Corrupt JPEG data",
    "Premature end of JPEG file",
    "Inconsistent progression sequence",
    "Invalid SOS parameters",
    "Huffman",
)  # what libjpeg says, as warnings only, of data it patched over with gray or zeros


def _check_jpeg_scans(path: Path, data: np.ndarray) -> None:
    """Refuse a JPEG with more than MAX_JPEG_SCANS start-of-scan markers (FF DA).

    Entropy-coded data never holds FF DA (an FF there is followed by 00 or a restart
    marker), so the pairs count the scans, plus those of an embedded thumbnail.
    """
    scans = int(np.count_nonzero((data[:-1] == 0xFF) & (data[1:] == 0xDA))) if data.size > 1 else 0
    if scans > MAX_JPEG_SCANS:
        raise InputError(
            f"{path}: JPEG has {scans:,} scans, more than the {MAX_JPEG_SCANS} any real file needs"
            " (a decoder-exhaustion file?); re-export it as a baseline or normal progressive JPEG"
        )


def _refuse_corrupt_jpeg(path: Path, chatter: _Chatter) -> None:
    if chatter.has(*_JPEG_CORRUPTION):
        detail = next(line for line in chatter.text.splitlines() if any(c in line for c in _JPEG_CORRUPTION))
        raise InputError(
            f"{path}: JPEG data is corrupt or cut short (libjpeg: {_one_line(detail)});"
            " the file may be truncated or corrupt; re-export it"
        )


def _check_jpeg_intact(path: Path, data: np.ndarray) -> None:
    """Refuse a JPEG that libjpeg decodes only by patching over bad or missing data (Pillow
    hides those warnings). A 1/8-scale gray decode reads every scan, at little cost."""
    cv2 = opencv.cv2()
    with _quiet_decoders() as chatter, contextlib.suppress(cv2.error):
        cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8 | cv2.IMREAD_IGNORE_ORIENTATION)
    _refuse_corrupt_jpeg(path, chatter)


def _open_lazily(path: Path) -> Image.Image:
    """Pillow's lazy open (header only), with Pillow's own bomb limit lifted for the call.

    poolcli checks the size itself, against the caller's limit, right after; the
    lock keeps concurrent loads from restoring Pillow's global limit wrongly.
    """
    with _FROM_PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path, formats=_PILLOW_FORMATS)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(
            f"{path}: {width}x{height} = {width * height:,} pixels exceeds the limit of"
            f" {max_pixels:,} (decompression-bomb guard); pass {param('max_pixels')}"
            f" {width * height} if you trust this file"
        )


class _Chatter:
    """What the C decoders (libjpeg, libpng, libtiff, OpenCV) wrote to stderr during a call."""

    text = ""

    def has(self, *needles: str) -> bool:
        return any(needle in self.text for needle in needles)


_STDERR_LOCK = threading.RLock()  # re-entrant: a quiet call may nest in another


@contextlib.contextmanager
def _quiet_decoders() -> Iterator[_Chatter]:
    """Keep decoder chatter off stderr and hand it to the caller.

    Pillow's warnings are dropped (poolcli applies its own limits and checks); what the
    C libraries print on file descriptor 2 (libjpeg's "Corrupt JPEG data", libpng's and
    libtiff's warnings, OpenCV's log) is caught in a temporary file and returned, so a
    caller can refuse a file that libjpeg only warned about.
    """
    chatter = _Chatter()
    logging = opencv.cv2().utils.logging if opencv.loaded() else None
    previous = None if logging is None else logging.getLogLevel()
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        with _STDERR_LOCK, warnings.catch_warnings(), _stderr_caught(chatter):
            warnings.simplefilter("ignore")
            yield chatter
    finally:
        if logging is not None:
            logging.setLogLevel(previous)


@contextlib.contextmanager
def _stderr_caught(chatter: _Chatter) -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr to guard
        yield
        return
    sink = _stderr_sink()
    sink.seek(0)
    sink.truncate()
    os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        sink.seek(0)
        chatter.text = sink.read(1 << 16).decode("utf-8", "replace")


_SINKS: dict[int, IO[bytes]] = {}


def _stderr_sink() -> IO[bytes]:
    """One unnamed temporary file per process (a forked worker makes its own) that takes what
    the decoders print; made once, emptied before each use."""
    sink = _SINKS.get(os.getpid())
    if sink is None:
        sink = _SINKS[os.getpid()] = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for the process)
    return sink


def _wide_colour_mode(path: Path, image: Image.Image) -> str | None:
    """'RGB;16', 'RGBA;16' or 'LA;16' for a 16-bit colour PNG, which Pillow would cut to 8 bits."""
    if image.format == "PNG":
        with open(path, "rb") as file:
            header = file.read(26)  # signature, IHDR length and type, width, height, depth, type
        if len(header) == 26 and header[24] == 16:
            return _PNG_WIDE_COLOUR.get(header[25])
    return None


def _full_depth_pixels(path: Path, image: Image.Image, wide_mode: str) -> np.ndarray:
    """16-bit colour through OpenCV, turned as the EXIF orientation Pillow read says."""
    orientation = image.getexif().get(_ORIENTATION, 1)
    return _orient(_opencv_pixels(path, wide_mode), orientation)


def _pillow_pixels(image: Image.Image, page: int = 0) -> np.ndarray:
    image.seek(page)
    image.load()
    if image.getexif().get(_ORIENTATION, 1) != 1:  # exif_transpose copies even when upright
        image = ImageOps.exif_transpose(image)
    if image.mode == "P":
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    elif image.mode in _MODE_CONVERSIONS:
        image = image.convert(_MODE_CONVERSIONS[image.mode])
    array = np.asarray(image)
    if array.dtype.kind in "iu" and not array.dtype.isnative:  # I;16B
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array[:, :, np.newaxis] if array.ndim == 2 else array)


# plain 8-bit JPEG and PNG: OpenCV's decoders


@dataclass(frozen=True)
class _PlainHeader:
    format: str
    mode: str  # L, RGB or RGBA: what Pillow reports, one letter per channel
    size: tuple[int, int]  # width, height
    icc: bytes | None


def _load_plain(
    path: Path, data: np.ndarray, fmt: str, max_pixels: int | None, channel_order: str
) -> Loaded | None:
    """A plain JPEG or PNG decoded by OpenCV; None where Pillow must read the file.

    OpenCV links the same libjpeg-turbo as Pillow and PNG is lossless, so the pixels
    are Pillow's (tests/test_io.py checks both on many variants), without Pillow's
    copies: JPEG in about two thirds of the time. A JPEG that libjpeg decodes only by
    patching over corrupt or missing data is refused; any other file OpenCV fails on
    (truncated, corrupt) goes to Pillow, which says what is wrong with it.
    """
    header = _plain_png(path, data) if fmt == "PNG" else _plain_jpeg(data)
    if header is None or (fmt == "PNG" and not opencv.pays(header.size[0] * header.size[1])):
        return None
    _check_pixels(path, header.size, max_pixels)
    cv2 = opencv.cv2()
    order = channel_order if len(header.mode) >= 3 else "rgb"
    flags = cv2.IMREAD_UNCHANGED  # BGR(A) as it comes, or gray
    if header.mode == "RGB" and order == "rgb":  # the decoder writes RGB itself, sparing a swap
        flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        with _quiet_decoders() as chatter:
            array = cv2.imdecode(data, flags)
    except (cv2.error, MemoryError):
        return None
    if fmt == "JPEG":
        _refuse_corrupt_jpeg(path, chatter)
    width, height = header.size
    if array is None or array.dtype != np.uint8 or array.shape[:2] != (height, width):
        return None
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.shape[2] != len(header.mode):
        return None
    if header.mode == "RGBA" and order == "rgb":
        array = _swap_red_blue(array)
    return Loaded({"array": array}, "image", "hwc", fmt, header.mode, 1, path, header.icc, order)


def _plain_jpeg(data: np.ndarray) -> _PlainHeader | None:
    """The header of an L or RGB JPEG (not MPO) with no EXIF or XMP orientation to apply."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data.data), formats=("JPEG",)) as image:  # reads the header only
                if image.format != "JPEG" or image.mode not in ("L", "RGB"):
                    return None
                if image.getexif().get(_ORIENTATION, 1) != 1:
                    return None
                return _PlainHeader("JPEG", image.mode, image.size, image.info.get("icc_profile"))
    except Exception:  # Pillow's own limit, a broken header: Pillow's full path says why
        return None


MAX_ICC_BYTES = 1 << 20
"""Largest ICC profile read from a PNG: Pillow's limit for compressed PNG chunks (1 MiB)."""


def _plain_png(path: Path, data: np.ndarray) -> _PlainHeader | None:
    """The header of a complete, 8-bit L, RGB or RGBA PNG without transparency chunk, animation
    or anything Pillow could read an orientation from; found by walking every chunk."""
    raw = data.data  # the bytes as a memoryview
    if bytes(raw[:8]) != _PNG_SIGNATURE:
        return None
    position, mode, size, icc = 8, None, (0, 0), None
    while position + 12 <= len(raw):
        length, kind = struct.unpack_from(">I4s", raw, position)
        body = position + 8
        if body + length + 4 > len(raw):
            return None  # truncated
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack_from(">IIBB", raw, body)
            mode, size = (_PLAIN_PNG_MODES.get(colour) if depth == 8 else None), (width, height)
            if mode is None:
                return None
        elif kind in (b"tRNS", b"eXIf", b"acTL"):
            return None
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword = bytes(raw[body:body + min(length, 80)]).split(b"\0", 1)[0]
            if keyword in _PNG_ROTATION_KEYWORDS:
                return None
        elif kind == b"iCCP":
            icc = _png_icc(path, bytes(raw[body:body + length]))
            if icc is None:
                return None
        elif kind == b"IEND":
            return None if mode is None else _PlainHeader("PNG", mode, size, icc)
        position = body + length + 4
    return None  # no IEND: truncated


_DEFLATE_MOST = 1032  # deflate inflates one byte to at most this many


def _check_png_data(path: Path, data: np.ndarray) -> None:
    """Refuse a PNG whose image data inflates to more than its header's size needs (libpng
    inflates it all): checked by inflating at most that much, and only where the compressed
    data could inflate to more than a few times that."""
    header, compressed = _png_image_data(data)
    if header is None:
        return  # not a PNG with a readable header: the decoders say what is wrong
    width, height, depth, colour = header
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 4)
    needed = height * (1 + (width * channels * depth + 7) // 8)  # a filter byte per row
    if _DEFLATE_MOST * sum(len(part) for part in compressed) <= 4 * needed + (1 << 20):
        return
    inflater = zlib.decompressobj()
    inflated = 0
    try:
        for part in compressed:
            inflated += len(inflater.decompress(part, needed + 1 - inflated))
            if inflated > needed or inflater.unconsumed_tail:
                raise InputError(
                    f"{path}: its image data inflates to more than its {width}x{height} size needs"
                    " (a decompression bomb?); re-export the image"
                )
    except zlib.error:
        return  # corrupt data: the decoders say so


def _png_image_data(data: np.ndarray) -> tuple[tuple[int, int, int, int] | None, list[memoryview]]:
    """The IHDR fields (width, height, bit depth, colour type) and the IDAT chunks' data."""
    raw = data.data  # the bytes as a memoryview
    if bytes(raw[:8]) != _PNG_SIGNATURE:
        return None, []
    header, parts, position = None, [], 8
    while position + 12 <= len(raw):
        length, kind = struct.unpack_from(">I4s", raw, position)
        body = raw[position + 8 : position + 8 + length]
        if kind == b"IHDR" and len(body) >= 13:
            header = struct.unpack_from(">IIBB", body)
        elif kind == b"IDAT":
            parts.append(body)
        elif kind == b"IEND":
            break
        position += 12 + length
    return header, parts


def _png_is_complete(data: np.ndarray) -> bool:
    """Whether the chunks of a PNG run whole up to an IEND chunk."""
    raw = data.data  # the bytes as a memoryview
    position = 8
    while position + 12 <= len(raw):
        length, kind = struct.unpack_from(">I4s", raw, position)
        position += 12 + length
        if kind == b"IEND":
            return position <= len(raw)
    return False


def _png_icc(path: Path, chunk: bytes) -> bytes | None:
    """The profile of an iCCP chunk, inflated within MAX_ICC_BYTES; None if it is broken."""
    inflater = zlib.decompressobj()
    try:
        icc = inflater.decompress(chunk[chunk.index(b"\0") + 2:], MAX_ICC_BYTES)
    except (ValueError, zlib.error):
        return None
    if inflater.unconsumed_tail:
        raise InputError(
            f"{path}: its ICC profile inflates to more than {MAX_ICC_BYTES >> 20} MiB, which no real"
            " profile needs (a decompression bomb?); re-save the image without it"
        )
    return icc


_TIFF_MODES = {  # (dtype, channels) -> the Pillow-style mode name poolcli reports
    ("uint8", 1): "L", ("uint8", 2): "LA", ("uint8", 3): "RGB", ("uint8", 4): "RGBA",
    ("uint16", 1): "I;16", ("uint16", 2): "LA;16", ("uint16", 3): "RGB;16", ("uint16", 4): "RGBA;16",
    ("int32", 1): "I", ("float32", 1): "F",
}
_TIFF_BYTES_PER_PIXEL = 32  # the most a page may decode to, per pixel allowed (float64 RGBA)


def _load_tiff(path: Path, max_pixels: int | None, page: int) -> Loaded | None:
    """A page of a TIFF or BigTIFF through tifffile: gray or RGB(A) samples of any bit depth
    and type, interleaved or planar, striped or tiled, any compression. None for the
    photometric kinds Pillow turns into RGB (palette, CMYK, YCbCr, bilevel, white-is-zero)."""
    import tifffile

    fix = "the file may be truncated or corrupt; re-export it"
    with _input_errors(path, "a TIFF image", fix), _quiet_decoders(), tifffile.TiffFile(path) as tiff:
        frames = len(tiff.pages)
        _check_page(path, page, frames)
        chosen: Any = tiff.pages[page]  # a TiffPage (tifffile types it as TiffPage | TiffFrame)
        _check_pixels(path, (int(chosen.imagewidth), int(chosen.imagelength)), max_pixels)
        if not _tifffile_decodes(chosen):
            return None
        _check_tiff_strips(path, chosen, os.fstat(tiff.filehandle.fileno()).st_size if _has_fileno(tiff) else None)
        if max_pixels is not None and chosen.nbytes > _TIFF_BYTES_PER_PIXEL * max_pixels:
            raise InputError(
                f"{path}: page {page} decodes to {chosen.nbytes:,} bytes ({chosen.samplesperpixel} samples of"
                f" {chosen.dtype} per pixel), more than the limit; pass {param('max_pixels')} 0 if you trust this file"
            )
        array = _hwc_samples(chosen.asarray(), chosen.shape, chosen.axes)
        orientation = int(chosen.tags.valueof(274, default=1) or 1)
        icc = chosen.tags.valueof(34675)
    array = _orient(array, orientation)
    mode = _TIFF_MODES.get((array.dtype.name, array.shape[2]), f"{array.dtype.name}x{array.shape[2]}")
    return Loaded({"array": array}, "image", "hwc", "TIFF", mode, frames, path, bytes(icc) if icc else None)


def _has_fileno(tiff) -> bool:
    try:
        tiff.filehandle.fileno()
    except Exception:
        return False
    return True


def _check_tiff_strips(path: Path, page, file_size: int | None) -> None:
    """Refuse a page whose strips or tiles lie past the end of the file, or, uncompressed,
    hold fewer bytes than its size needs (tifffile would fill the gap with zeros)."""
    counts, offsets = page.databytecounts, page.dataoffsets
    ends = [offset + count for offset, count in zip(offsets, counts)]
    cut = file_size is not None and max(ends, default=0) > file_size
    short = page.compression == 1 and sum(counts) < page.nbytes
    if cut or short:
        shape = "x".join(map(str, page.shape))
        raise InputError(f"{path}: its pixel data is cut short or missing ({sum(counts):,} bytes stored for a"
                         f" {shape} {page.dtype} page); the file may be truncated; re-export it")


def _tifffile_decodes(page) -> bool:
    import tifffile

    photometric = tifffile.PHOTOMETRIC
    return (
        page.photometric in (photometric.MINISBLACK, photometric.RGB)
        and page.bitspersample >= 8
        and page.dtype is not None
        and page.dtype.kind in _NUMERIC_KINDS
        and not page.is_subsampled
    )


def _hwc_samples(array: np.ndarray, shape: tuple[int, ...], axes: str) -> np.ndarray:
    """tifffile's page array (axes such as 'YX', 'YXS' or 'SYX') as native H x W x C."""
    if 0 in shape or array.size != math.prod(shape) or math.prod(shape[:-3]) != 1:
        raise ValueError(f"its page of shape {shape} ({axes}) holds no image of rows and columns")
    array, axes = array.reshape(shape[-3:]), axes[-3:]
    if "S" not in axes:
        array, axes = array.reshape(array.shape[-2:])[..., np.newaxis], axes[-2:] + "S"
    array = np.moveaxis(array, axes.index("S"), -1)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def _opencv_pixels(path: Path, wide_mode: str | None) -> np.ndarray:
    cv2 = opencv.cv2()
    array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise InputError(f"{path}: neither Pillow nor OpenCV can decode it; re-export the image")
    if array.ndim == 2:
        return array[:, :, np.newaxis]
    if wide_mode == "LA;16":  # OpenCV spreads gray + alpha over BGRA
        return np.ascontiguousarray(array[:, :, [0, 3]])
    return _swap_red_blue(array)


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an H x W x C array, as ImageOps.exif_transpose does."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    transform = transforms.get(orientation)
    return array if transform is None else np.ascontiguousarray(transform(array))


# --------------------------------------------------------------------------- writing


def save(
    path: str | os.PathLike[str],
    array: np.ndarray | None = None,
    *,
    like: Loaded | None = None,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    normalize: str | None = None,
    key_arrays: dict[str, np.ndarray] | None = None,
    quality: int = JPEG_QUALITY,
    channel_order: str = "rgb",
    durable: bool = True,
) -> Path:
    """Write ``array`` (or, for ``.npz``, ``key_arrays``) to ``path`` atomically; return the path.

    The format follows the extension: .png .jpg/.jpeg .tif/.tiff .bmp .gif .webp
    .npy .npz. ``.npz`` stores ``key_arrays`` under their keys (or ``array`` under
    "array"). Images are H x W or H x W x C with C <= 4, and a format must hold the
    array exactly or it is refused:

    - uint8 (and bool, stored as 0/255): PNG, TIFF, WebP (lossless; gray is stored
      as RGB) with 1-4 channels; JPEG and BMP with 1 or 3; GIF with 1, 3 or 4 (colour
      is quantised to one adaptive 256-colour palette, lossy like JPEG; gray is exact).
    - uint16: PNG or TIFF with 1, 3 or 4 channels.
    - float: TIFF only (float16 is widened to float32); 1, 3 or 4 channels.
    - other integers: single-channel TIFF (32-bit signed) when every value fits.

    PNG is encoded by OpenCV at zlib level 1 with run-length matching (Pillow, with
    the same settings, writes 8-bit gray + alpha), several times faster than zlib's
    default and no bigger on photos. JPEG is encoded by OpenCV at ``quality``
    (1..100, default :data:`JPEG_QUALITY`) with 4:2:0 chroma subsampling.
    ``channel_order="bgr"`` says that a 3- or 4-channel array is BGR(A), as
    ``load(..., channel_order="bgr")`` returned it: OpenCV encodes it as it is and
    every other format gets it turned to RGB(A) first; pass ``like.channel_order``.

    ``normalize="minmax"`` makes an 8-bit image of any array (float, integers of
    any width, uint8 and bool too): it is mapped linearly from its finite
    [min, max] to 0..255 over all channels at once, rounding half up; +inf becomes
    255, -inf and NaN become 0, a constant array becomes 0 (see
    :func:`minmax_to_uint8`). ``.npy``/``.npz`` outputs are written unchanged.
    ``like`` lends its ICC profile to the image when the colour spaces agree.
    An existing ``path`` is replaced only with ``overwrite=True``; a path that is
    one of ``inputs`` never is.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = save(Path(folder) / "wave.png", np.linspace(-1.0, 1.0, 5)[None],
    ...                normalize="minmax")
    ...     load(out).array[..., 0]
    array([[  0,  64, 128, 191, 255]], dtype=uint8)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    output_format = IMAGE_FORMATS.get(suffix) or ARRAY_FORMATS.get(suffix)
    if output_format is None:
        raise OutputError(
            f"{path}: unknown extension {suffix or '(none)'!r}; use one of {', '.join(SUFFIXES)}"
        )
    if normalize not in (None, "minmax"):
        raise OutputError(f"{path}: normalize {normalize!r} is unknown; use 'minmax' or None")
    if not 1 <= quality <= 100:
        raise OutputError(f"{path}: quality {quality} is out of range; use 1..100")
    if channel_order not in CHANNEL_ORDERS:
        raise OutputError(f"{path}: channel_order {channel_order!r} is unknown; use 'rgb' or 'bgr'")
    inputs = list(inputs)
    check_output(path, overwrite=overwrite, inputs=inputs)
    bgr = channel_order == "bgr"
    if output_format == "NPZ":
        arrays = key_arrays if key_arrays is not None else {"array": _required(path, array)}
        for key, value in arrays.items():
            _check_savable(f"{path} (key {key!r})", np.asanyarray(value))
        write = _npz_writer({key: _rgb_array(value, bgr) for key, value in arrays.items()})
    else:
        array = _single_array(path, array, key_arrays)
        if output_format == "NPY":
            _check_savable(str(path), array)
            write = _npy_writer(_rgb_array(array, bgr))
        else:
            icc = like.icc_profile if like is not None else None
            data = _encode_image(
                path, array, output_format, normalize=normalize, icc=icc, quality=quality, bgr=bgr
            )
            write = _bytes_writer(data)
    with atomic_output(path, overwrite=overwrite, inputs=inputs, durable=durable) as file:
        write(file)
    return path


def _required(path: Path, array: np.ndarray | None) -> np.ndarray:
    if array is None:
        raise OutputError(f"{path}: nothing to write; pass an array")
    return np.asanyarray(array)


def _single_array(
    path: Path, array: np.ndarray | None, key_arrays: dict[str, np.ndarray] | None
) -> np.ndarray:
    if array is not None or not key_arrays:
        return _required(path, array)
    if len(key_arrays) == 1:
        return np.asanyarray(next(iter(key_arrays.values())))
    keys = ", ".join(key_arrays)
    raise OutputError(f"{path}: {len(key_arrays)} arrays ({keys}) need one file; save as .npz")


def _check_savable(where: str, array: np.ndarray) -> None:
    if array.dtype.hasobject:
        raise OutputError(f"{where}: holds Python objects; save a numeric array")


def _npy_writer(array: np.ndarray):
    def write(file: IO[bytes]) -> None:
        np.lib.format.write_array(file, array, allow_pickle=False)

    return write


def _npz_writer(arrays: dict[str, np.ndarray]):
    # Written member by member, as numpy.savez does, so no key can clash with its arguments.
    def write(file: IO[bytes]) -> None:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for key, value in arrays.items():
                with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)

    return write


def _bytes_writer(data: bytes):
    def write(file: IO[bytes]) -> None:
        file.write(data)

    return write


# image encoding


def _encode_image(
    path: Path,
    array: np.ndarray,
    fmt: str,
    *,
    normalize: str | None,
    icc: bytes | None,
    quality: int,
    bgr: bool,
) -> bytes:
    """The bytes of ``array`` in image format ``fmt``, or an OutputError naming the fix."""
    array = _as_hwc(path, np.asarray(array))
    _check_side_limit(path, array, fmt)
    if normalize == "minmax":
        array = minmax_to_uint8(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * np.uint8(255)
    array, by_opencv = _encodable(path, array, fmt)
    if icc is not None and not (
        array.dtype in (np.uint8, np.uint16) and fmt not in ("BMP", "GIF") and _icc_matches(icc, array.shape[2])
    ):
        icc = None
    if fmt == "TIFF" and by_opencv and icc is not None:  # OpenCV's TIFF has no place for a profile
        return _tifffile_bytes(_swap_red_blue(array) if bgr else array, icc)
    if by_opencv:  # OpenCV encodes BGR(A)
        return _opencv_bytes(path, array if bgr else _swap_red_blue(array), fmt, quality, icc)
    return _pillow_bytes(_swap_red_blue(array) if bgr else array, fmt, icc)


_MAX_SIDE = {"JPEG": 65500, "WEBP": 16383, "GIF": 65535, "PNG": 2**31 - 1, "BMP": 2**31 - 1}
"""The widest and tallest image each format holds (libjpeg's limit, WebP's 14 bits, GIF's 16)."""


def _check_side_limit(path: Path, array: np.ndarray, fmt: str) -> None:
    height, width = array.shape[:2]
    limit = _MAX_SIDE.get(fmt)
    if limit is not None and max(width, height) > limit:
        raise OutputError(
            f"{path}: {fmt} holds images up to {limit:,} pixels a side, not {width}x{height};"
            " save as .tiff, .png or .npy"
        )


def _encodable(path: Path, array: np.ndarray, fmt: str) -> tuple[np.ndarray, bool]:
    """``array`` as ``fmt`` stores it and whether OpenCV encodes it (else Pillow), or an
    OutputError when ``fmt`` cannot hold it exactly."""
    channels, dtype = array.shape[2], array.dtype
    if dtype == np.uint8:
        if channels not in _UINT8_CHANNELS[fmt]:
            allowed = " or ".join(str(c) for c in _UINT8_CHANNELS[fmt])
            raise OutputError(
                f"{path}: {fmt} keeps {allowed} channel(s), not {channels}; save as .png or .tiff"
            )
        return array, channels != 2 and _opencv_encodes(fmt, array.shape[0] * array.shape[1])
    if dtype == np.uint16 and fmt in ("PNG", "TIFF"):
        if channels in (1, 3, 4):
            return array, fmt == "PNG" or channels > 1
        raise OutputError(
            f"{path}: 16-bit {fmt} with {channels} channels is not supported;"
            f" save as .npy, or pass {param('dtype')} uint8"
        )
    if dtype.kind == "f" and fmt == "TIFF":
        array = array.astype(np.float32) if dtype.itemsize < 4 else array
        if channels in (1, 3, 4):
            return array, not (array.dtype == np.float32 and channels == 1)
        raise OutputError(
            f"{path}: float TIFF with {channels} channels is not supported; save as .npy"
        )
    if dtype.kind in "iu" and fmt == "TIFF" and channels == 1 and _fits_int32(array):
        return array.astype(np.int32), False
    raise OutputError(f"{path}: {_cannot_hold(fmt, dtype, channels)}")


PNG_OPENCV_PIXELS = 1 << 19
"""PNG outputs of at least this many pixels are encoded by OpenCV (about a quarter faster than
Pillow with the same zlib settings, more than its import costs); smaller ones by Pillow. The
rule depends on the size alone, so `pool` and `batch` write the same bytes."""


def _opencv_encodes(fmt: str, pixels: int) -> bool:
    """JPEG: OpenCV where it pays (its bytes are Pillow's, byte for byte). PNG: by size alone."""
    if fmt == "JPEG":
        return opencv.pays(pixels)
    return fmt == "PNG" and pixels >= PNG_OPENCV_PIXELS


def _cannot_hold(fmt: str, dtype: np.dtype, channels: int) -> str:
    if dtype.kind == "f":
        return (
            f"{fmt} cannot hold {dtype} values; save as .tiff or .npy,"
            f" or pass {param('normalize')} minmax or {param('dtype')} uint8"
        )
    if fmt in ("PNG", "TIFF"):
        return (
            f"{fmt} cannot hold {channels}-channel {dtype} values; save as .npy,"
            f" or pass {param('dtype')} uint8 or {param('normalize')} minmax"
        )
    return (
        f"{fmt} holds 8-bit values, not {dtype}; pass {param('dtype')} uint8 or {param('normalize')} minmax,"
        " or save as .png, .tiff or .npy"
    )


def _as_hwc(path: Path, array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or not 1 <= array.shape[2] <= 4 or 0 in array.shape:
        raise OutputError(
            f"{path}: an array of shape {array.shape} is not an image (H x W or H x W x C with"
            f" C <= 4); save as .npy, or check {param('layout')}"
        )
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise OutputError(f"{path}: dtype {array.dtype} cannot be an image; save as .npy")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def _fits_int32(array: np.ndarray) -> bool:
    info = np.iinfo(np.int32)
    return array.size == 0 or (int(array.min()) >= info.min and int(array.max()) <= info.max)


def _pillow_bytes(array: np.ndarray, fmt: str, icc: bytes | None) -> bytes:
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    if fmt == "GIF" and array.shape[2] > 1:
        image = image.quantize(256, method=Image.Quantize.FASTOCTREE if array.shape[2] == 4 else
                               Image.Quantize.MEDIANCUT)
    options: dict[str, object] = {}
    if fmt == "PNG":
        options = dict(_PILLOW_PNG)
    elif fmt == "WEBP":
        options = {"lossless": True, "exact": True}
    if icc is not None:
        options["icc_profile"] = icc
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _tifffile_bytes(array: np.ndarray, icc: bytes) -> bytes:
    """A TIFF of a gray, RGB(A) array with its ICC profile, written by tifffile."""
    import tifffile

    buffer = io.BytesIO()
    channels = array.shape[2]
    tifffile.imwrite(
        buffer, array if channels > 1 else array[:, :, 0], photometric="rgb" if channels >= 3 else "minisblack",
        extrasamples=("unassalpha",) if channels == 4 else None, iccprofile=icc, metadata=None,
    )
    return buffer.getvalue()


def _opencv_bytes(path: Path, array: np.ndarray, fmt: str, quality: int, icc: bytes | None) -> bytes:
    """OpenCV's ``fmt`` bytes of a gray, BGR or BGRA array, with ``icc`` where Pillow puts it."""
    cv2 = opencv.cv2()
    params = []
    if fmt == "PNG":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    elif fmt == "JPEG":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality,
                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    try:
        with _quiet_decoders():
            ok, encoded = cv2.imencode(_OPENCV_SUFFIXES[fmt], array, params)
    except cv2.error:
        ok = False
    if not ok:
        raise OutputError(
            f"{path}: OpenCV cannot encode a {array.shape[1]}x{array.shape[0]}"
            f" {array.shape[2]}-channel {array.dtype} {fmt}; save as .tiff or .npy"
        )
    data = encoded.tobytes()
    if icc is not None:
        data = _png_with_icc(data, icc) if fmt == "PNG" else _jpeg_with_icc(data, icc)
    return data


def _icc_matches(icc: bytes, channels: int) -> bool:
    """Whether the profile's colour space (bytes 16-20) is that of the channels: gray or RGB."""
    return icc[16:20] == (b"GRAY" if channels <= 2 else b"RGB ")


def _jpeg_with_icc(data: bytes, icc: bytes) -> bytes:
    """``data`` with ``icc`` in APP2 ICC_PROFILE segments after the JFIF header, as Pillow writes it."""
    size = 65519  # 65535 - 2 (length) - 12 (ICC_PROFILE\0) - 2 (sequence number, count)
    chunks = [icc[i : i + size] for i in range(0, len(icc), size)]
    if len(chunks) > 255:  # more than a JPEG can hold: written without it, as OpenCV alone would
        return data
    segments = b"".join(
        b"\xff\xe2" + struct.pack(">H", 16 + len(chunk)) + b"ICC_PROFILE\0"
        + bytes((i + 1, len(chunks))) + chunk
        for i, chunk in enumerate(chunks)
    )
    at = 2
    if data[2:4] == b"\xff\xe0":
        at = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:at] + segments + data[at:]


def _png_with_icc(data: bytes, icc: bytes) -> bytes:
    """``data`` with an iCCP chunk right after IHDR, as Pillow writes it."""
    body = b"ICC Profile\0\0" + zlib.compress(icc)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    at = 8 + 8 + 13 + 4  # signature, IHDR length and type, IHDR data, CRC
    return data[:at] + chunk + data[at:]


def _swap_red_blue(array: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A) of an H x W x C array, as a new array; 1 or 2 channels stay as they are.

    NumPy, not the faster cv2.cvtColor: once OpenCV's thread pool has started, a process
    forked afterwards (a batch worker) deadlocks in its next parallel OpenCV call.
    """
    channels = array.shape[2]
    if channels < 3:
        return array
    return array[:, :, [2, 1, 0, 3][:channels]]


def _rgb_array(array: np.ndarray, bgr: bool) -> np.ndarray:
    """An H x W x 3|4 array that ``bgr`` says is BGR(A), turned RGB(A); anything else as it is."""
    array = np.asanyarray(array)
    if bgr and array.ndim == 3 and array.shape[2] in (3, 4):
        return _swap_red_blue(array)
    return array


def minmax_to_uint8(array: np.ndarray) -> np.ndarray:
    """Map ``array`` linearly from its finite [min, max] to uint8 0..255, rounding half up.

    +inf becomes 255, -inf and NaN become 0; a constant (or all-NaN) array becomes 0.

    >>> minmax_to_uint8(np.array([-1.0, 0.0, 1.0, np.nan, np.inf]))
    array([  0, 128, 255,   0, 255], dtype=uint8)
    """
    values = np.asarray(array, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.uint8)
    low, high = values[finite].min(), values[finite].max()
    if high == low:
        return np.zeros(values.shape, np.uint8)
    clipped = np.clip(np.nan_to_num(values, nan=low), low, high)
    return np.floor((clipped - low) * (255.0 / (high - low)) + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- atomic writes


def make_folder(folder: str | os.PathLike[str], name: str) -> Path:
    """`folder`, created if missing (its parent must exist); an OutputError naming it as `name`
    (the option that gave it) when it is a file or cannot be created."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{name} {folder} is a file, not a folder; give a folder")
    if not folder.exists():
        if not folder.parent.is_dir():
            raise OutputError(f"{name} {folder}: its parent folder {folder.parent} does not exist; create it first")
        try:
            folder.mkdir()
        except FileExistsError:  # made meanwhile by another process
            pass
        except OSError as error:
            raise OutputError(f"{name} {folder}: cannot create it ({error.strerror}); choose a writable folder") \
                from None
    return folder


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_current_umask()


def check_output(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Refuse an output path that is an input, a folder, exists (without ``overwrite``) or
    lies in a missing folder. :func:`atomic_output` calls it; a batch can call it up front.

    >>> check_output(Path(__file__), overwrite=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    poolcli.errors.OutputError: ... exists; pass overwrite to replace it
    """
    path = Path(path)
    if _is_one_of(path, inputs):
        raise OutputError(
            f"{path}: is one of the inputs; poolcli never overwrites an input, even with"
            f" {param('overwrite')}; choose another output path"
        )
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name such as {path / 'out.png'}")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputError(f"{path} exists; pass {param('overwrite')} to replace it")
    parent = path.parent
    if not parent.exists():
        raise OutputError(f"{path}: folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise OutputError(f"{path}: {parent} is not a folder; write inside a folder")


def _is_one_of(path: Path, inputs: Iterable[str | os.PathLike[str]]) -> bool:
    target = os.path.realpath(path)  # unlike Path.resolve, never raises on a symlink loop
    for item in inputs:
        if os.path.realpath(item) == target:
            return True
        with contextlib.suppress(OSError):
            if os.path.samefile(item, path):
                return True
    return False


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    durable: bool = True,
) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes ``path`` only if the block finishes.

    ``durable=False`` skips the fsync: for a caller that syncs many files at once when it
    ends (batch) and that tells a file cut by a crash from a complete one (:func:`is_complete`).
    The data goes to ``.<name>.<random>.tmp`` in the target folder, is flushed to
    disk (fsync: a crash right after the rename never leaves an empty file under the
    final name), then ``os.replace`` moves it into place. On any failure, KeyboardInterrupt
    included, the temporary file is removed and the error re-raised (an OSError
    as an OutputError), so no partial file is ever left behind.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with atomic_output(Path(folder) / "note.txt") as file:
    ...         _ = file.write(b"pooled")
    ...     sorted(p.name for p in Path(folder).iterdir())
    ['note.txt']
    """
    path = Path(path)
    inputs = list(inputs)
    check_output(path, overwrite=overwrite, inputs=inputs)
    try:
        descriptor, temporary_name = tempfile.mkstemp(
            dir=path.parent, prefix=temporary_prefix(path), suffix=TEMPORARY_SUFFIX
        )
    except OSError as error:
        raise OutputError(
            f"{path}: cannot create a file in {path.parent} ({error.strerror});"
            " choose a writable folder"
        ) from None
    temporary = Path(temporary_name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            if durable:
                os.fsync(file.fileno())
        os.chmod(temporary, _mode_for(path))
        check_output(path, overwrite=overwrite, inputs=inputs)  # it may have appeared meanwhile
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            reason = error.strerror or _one_line(error)
            raise OutputError(
                f"{path}: cannot write it ({reason}); check free space and permissions"
            ) from error
        raise


def _mode_for(path: Path) -> int:
    """Keep the read/write/execute permissions of a file being replaced (never its setuid,
    setgid or sticky bits); a new file gets the umask's default."""
    try:
        return stat.S_IMODE(path.stat().st_mode) & 0o777
    except OSError:
        return _NEW_FILE_MODE


TEMPORARY_SUFFIX = ".tmp"
_RANDOM_PART = 8  # the characters tempfile.mkstemp adds


def temporary_prefix(path: Path) -> str:
    """``.<name>.``: how the temporary files of writes to ``path`` begin (hidden, so never an
    input), with the name shortened where the whole would pass the file system's name limit.

    >>> temporary_prefix(Path("out/cat.png"))
    '.cat.png.'
    >>> len(os.fsencode(temporary_prefix(Path("x" * 255))))
    243
    """
    limit = _name_max(path.parent) - _RANDOM_PART - len(TEMPORARY_SUFFIX) - 2
    name = path.name
    while len(os.fsencode(name)) > limit:
        name = name[:-1]
    return f".{name}."


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


# --------------------------------------------------------------------------- completeness


def is_complete(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a whole file of the format its suffix names, by cheap checks
    of its structure (no pixel is decoded): not empty, and not cut short where the format
    tells (PNG up to IEND, JPEG up to EOI, GIF's trailer, WebP's and BMP's size fields,
    the data of .npy and .npz members and TIFF strips). ``batch --skip-existing`` counts
    only complete outputs as done.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     whole = save(Path(folder) / "ramp.png", np.arange(6, dtype=np.uint8).reshape(2, 3))
    ...     cut = Path(folder) / "cut.png"
    ...     _ = cut.write_bytes(whole.read_bytes()[:-5])
    ...     is_complete(whole), is_complete(cut)
    (True, False)
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            return False
        check = _COMPLETENESS.get(IMAGE_FORMATS.get(path.suffix.lower()) or ARRAY_FORMATS.get(path.suffix.lower(), ""))
        return True if check is None else bool(check(path, size))
    except Exception:  # whatever a broken file makes a parser raise, it is not complete
        return False


def _tail(path: Path, count: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(max(file.seek(0, os.SEEK_END) - count, 0))
        return file.read()


def _head(path: Path, count: int) -> bytes:
    with open(path, "rb") as file:
        return file.read(count)


def _npy_complete(path: Path, size: int) -> bool:
    with open(path, "rb") as file:
        header = _npy_header(file)
    return size - header.offset == header.nbytes


def _npz_complete(path: Path, size: int) -> bool:
    with zipfile.ZipFile(path) as archive:  # a cut archive has no central directory: BadZipFile
        for member in archive.infolist():
            with archive.open(member) as stream:
                header = _npy_header(stream)
            if member.file_size - header.offset != header.nbytes:
                return False
    return True


def _tiff_complete(path: Path, size: int) -> bool:
    import tifffile

    with _quiet_decoders(), tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)]
        return max(ends, default=0) <= size


_COMPLETENESS = {
    "PNG": lambda path, size: _png_is_complete(np.fromfile(path, dtype=np.uint8)),
    "JPEG": lambda path, size: _head(path, 2) == b"\xff\xd8" and _tail(path, 64).rstrip(b"\0")[-2:] == b"\xff\xd9",
    "GIF": lambda path, size: _tail(path, 1) == b"\x3b",
    "WEBP": lambda path, size: struct.unpack("<4sI4s", _head(path, 12))[1] + 8 <= size,
    "BMP": lambda path, size: struct.unpack("<2sI", _head(path, 6))[1] <= size,
    "TIFF": _tiff_complete,
    "NPY": _npy_complete,
    "NPZ": _npz_complete,
}
