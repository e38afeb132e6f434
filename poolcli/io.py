"""Read and write the files poolcli pools: images, ``.npy`` and ``.npz``.

Pure file I/O: no pooling math and no printing. Every failure is an
:class:`~poolcli.errors.InputError` or :class:`~poolcli.errors.OutputError` whose
message is one line, ``"<path>: <reason>; <fix>"``.

Reading (:func:`load`)
    Images come through Pillow (PNG, JPEG, TIFF, BMP, GIF, WebP) as H x W x C
    arrays with their EXIF orientation applied. 16-bit colour PNG/TIFF, which
    Pillow cuts to 8 bits, and TIFFs that Pillow cannot decode (float64 or
    multi-channel float) go through OpenCV instead. The image size is checked
    against ``max_pixels`` from the header, before any pixel is decoded.
    Arrays come through :func:`numpy.load`, never unpickling.

Writing (:func:`save`)
    The format follows the extension. A format that cannot hold the array's
    values and channels exactly is refused, never converted with a loss (unless
    ``normalize="minmax"`` asks for 8 bits). Every file is written atomically by
    :func:`atomic_output`.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import cv2
import numpy as np
from PIL import Image, ImageOps, TiffImagePlugin, UnidentifiedImageError

from .errors import InputError, OutputError, PoolError

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

DEFAULT_MAX_PIXELS: int | None = Image.MAX_IMAGE_PIXELS
"""Largest width*height :func:`load` decodes by default: Pillow's own limit (~89.5 M)."""

MMAP_THRESHOLD_BYTES = 64 * 2**20
"""``.npy`` files larger than this are memory-mapped read-only instead of read."""

JPEG_QUALITY = 95

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
_UINT8_CHANNELS = {  # channel counts each format keeps exactly, for uint8 arrays
    "PNG": (1, 2, 3, 4),
    "TIFF": (1, 2, 3, 4),
    "WEBP": (1, 2, 3, 4),
    "JPEG": (1, 3),
    "BMP": (1, 3),
    "GIF": (1,),
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
    first is read); it is 1 for ``.npy`` and ``.npz``.

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
    --layout 'hw' names 2 axes but the array has 3; give one letter per axis, e.g. 'chw'
    """
    letters = layout.lower()
    unknown = sorted(set(letters) - set(LAYOUT_AXES))
    if unknown:
        raise PoolError(
            f"--layout {layout!r} has unknown letters {''.join(unknown)!r}; use n, c, d, h, w"
            " and l, e.g. hwc, chw, nchw, ncdhw or nlc"
        )
    if len(letters) != ndim:
        example = f", e.g. {guess_layout(ndim)!r}" if guess_layout(ndim) else ""
        raise PoolError(
            f"--layout {layout!r} names {len(letters)} axes but the array has {ndim};"
            f" give one letter per axis{example}"
        )
    repeated = sorted({c for c in letters if c != "n" and letters.count(c) > 1})
    if repeated:
        raise PoolError(f"--layout {layout!r} repeats {''.join(repeated)!r}; name each axis once")
    axes = tuple(i for i, letter in enumerate(letters) if letter in SPATIAL_AXES)
    if not axes:
        raise PoolError(f"--layout {layout!r} has no axis to pool; include d, h, w or l")
    return axes


# --------------------------------------------------------------------------- reading


def load(path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Loaded:
    """Read an image, ``.npy`` or ``.npz`` file.

    Images are always H x W x C. Pillow modes map to arrays as follows:
    L, LA, RGB, RGBA -> uint8 with 1, 2, 3, 4 channels; 1 (bilevel) -> uint8 0/255
    gray; P -> RGB, or RGBA when the palette has transparency; I;16 -> uint16;
    I -> int32; F -> float32; CMYK, YCbCr -> RGB. 16-bit colour PNG and TIFF are
    read by OpenCV at full depth (uint16, ``source_mode`` "RGB;16", "RGBA;16" or
    "LA;16"); TIFFs Pillow cannot decode are read by OpenCV (``format`` "OPENCV").

    ``max_pixels`` refuses images whose width*height exceeds it, read from the
    header before decoding (decompression bombs); ``None`` means no limit.
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
    _check_input_file(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _load_npy(path)
    if suffix == ".npz":
        return _load_npz(path)
    if suffix in IMAGE_FORMATS:
        return _load_image(path, max_pixels)
    raise InputError(
        f"{path}: unknown extension {suffix or '(none)'!r}; use one of {', '.join(SUFFIXES)}"
    )


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
            dtype = _npy_header_dtype(file)
        _check_array_dtype(str(path), dtype)
        large = path.stat().st_size > MMAP_THRESHOLD_BYTES
        array = np.load(path, allow_pickle=False, mmap_mode="r" if large else None)
    return Loaded({"array": array}, "npy", guess_layout(array.ndim), "NPY", None, 1, path)


def _load_npz(path: Path) -> Loaded:
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: is not a .npz (zip) archive; save it with numpy.savez")
    arrays: dict[str, np.ndarray] = {}
    with (
        _input_errors(path, "a .npz archive", "re-save it with numpy.savez"),
        np.load(path, allow_pickle=False) as archive,
    ):
        members = set(archive.zip.namelist())
        for key in archive.files:
            member = key + ".npy" if key + ".npy" in members else key
            with archive.zip.open(member) as file:
                dtype = _npy_header_dtype(file)
            _check_array_dtype(f"{path} (key {key!r})", dtype)
            arrays[key] = archive[key]
    if not arrays:
        raise InputError(f"{path}: holds no arrays; save at least one with numpy.savez")
    layout = guess_layout(next(iter(arrays.values())).ndim)
    return Loaded(arrays, "npz", layout, "NPZ", None, 1, path)


def _npy_header_dtype(file: IO[bytes]) -> np.dtype:
    """The dtype a .npy stream declares, read without touching its data."""
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        _, _, dtype = np.lib.format.read_array_header_1_0(file)
    else:
        _, _, dtype = np.lib.format.read_array_header_2_0(file)
    return dtype


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


def _load_image(path: Path, max_pixels: int | None) -> Loaded:
    expected = IMAGE_FORMATS[path.suffix.lower()]
    try:
        image = _open_lazily(path)
    except UnidentifiedImageError:
        if expected == "TIFF":
            return _load_tiff_with_opencv(path, max_pixels)
        raise InputError(
            f"{path}: is not an image Pillow can identify (expected {expected});"
            " check that the file is an image and complete"
        ) from None
    except OSError as error:
        raise InputError(f"{path}: cannot open it ({_one_line(error)}); check the file") from None
    fix = "the file may be truncated or corrupt; re-export it"
    with image, _input_errors(path, f"a {image.format} image", fix), _quiet_decoders():
        _check_pixels(path, image.size, max_pixels)
        frames = getattr(image, "n_frames", 1)
        wide_mode = _wide_colour_mode(path, image)
        if wide_mode is None:
            array, mode = _pillow_pixels(image), image.mode
        else:
            array, mode = _full_depth_pixels(path, image, wide_mode), wide_mode
        icc = image.info.get("icc_profile")
    return Loaded({"array": array}, "image", "hwc", image.format, mode, frames, path, icc)


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
            f" {max_pixels:,} (decompression-bomb guard); pass --max-pixels"
            f" {width * height} if you trust this file"
        )


@contextlib.contextmanager
def _quiet_decoders() -> Iterator[None]:
    """Silence Pillow's bomb warning (poolcli applies its own limit) and OpenCV's log lines."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def _wide_colour_mode(path: Path, image: Image.Image) -> str | None:
    """'RGB;16', 'RGBA;16' or 'LA;16' for a 16-bit colour file Pillow would cut to 8 bits."""
    if image.format == "PNG":
        with open(path, "rb") as file:
            header = file.read(26)  # signature, IHDR length and type, width, height, depth, type
        if len(header) == 26 and header[24] == 16:
            return _PNG_WIDE_COLOUR.get(header[25])
    elif image.format == "TIFF" and image.mode in ("LA", "RGB", "RGBA"):
        bits = image.tag_v2.get(TiffImagePlugin.BITSPERSAMPLE, 8)
        if max(bits if isinstance(bits, tuple) else (bits,)) == 16:
            return image.mode + ";16"
    return None


def _full_depth_pixels(path: Path, image: Image.Image, wide_mode: str) -> np.ndarray:
    """16-bit colour through OpenCV, turned as the EXIF orientation Pillow read says."""
    if image.format == "TIFF" and image.tag_v2.get(TiffImagePlugin.PLANAR_CONFIGURATION) == 2:
        raise _planar_tiff_error(path)
    orientation = image.getexif().get(0x0112, 1)
    return _orient(_opencv_pixels(path, wide_mode), orientation)


def _pillow_pixels(image: Image.Image) -> np.ndarray:
    image.seek(0)
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode == "P":
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    elif image.mode in _MODE_CONVERSIONS:
        image = image.convert(_MODE_CONVERSIONS[image.mode])
    array = np.asarray(image)
    if array.dtype.kind in "iu" and not array.dtype.isnative:  # I;16B
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array[:, :, np.newaxis] if array.ndim == 2 else array)


def _load_tiff_with_opencv(path: Path, max_pixels: int | None) -> Loaded:
    """A TIFF Pillow cannot decode (float64, multi-channel float): header size, then OpenCV."""
    size, frames, planar = _tiff_layout(path)
    _check_pixels(path, size, max_pixels)
    if planar:
        raise _planar_tiff_error(path)
    with _quiet_decoders():
        array = _opencv_pixels(path, None)
    return Loaded({"array": array}, "image", "hwc", "OPENCV", None, frames, path)


def _tiff_layout(path: Path) -> tuple[tuple[int, int], int, bool]:
    """First page's (width, height), the page count and whether the first page is planar.

    Read from the TIFF directories alone, without decoding any pixel.
    """
    with open(path, "rb") as file:
        prefix = file.read(8)
        if prefix[2:3] == b"\x2b":  # BigTIFF has a 16-byte header
            prefix += file.read(8)
        try:
            directory = TiffImagePlugin.ImageFileDirectory_v2(prefix)
        except SyntaxError:
            raise InputError(
                f"{path}: is not a TIFF file (bad header); check the file and its extension"
            ) from None
        first, pages, seen = None, 0, set()
        with _input_errors(path, "a TIFF image", "the file may be truncated or corrupt"):
            while directory.next and directory.next not in seen and pages < 65536:
                seen.add(directory.next)
                file.seek(directory.next)
                directory.load(file)
                if first is None:
                    first = dict(directory)
                pages += 1
    width, height = (first or {}).get(256), (first or {}).get(257)
    if width is None or height is None:
        raise InputError(f"{path}: TIFF has no image width or height; re-export it")
    planar = first.get(TiffImagePlugin.PLANAR_CONFIGURATION, 1) == 2
    return (int(width), int(height)), pages, planar


def _planar_tiff_error(path: Path) -> InputError:
    # OpenCV 5 returns wrong values, silently, for planar TIFFs of more than 8 bits.
    return InputError(
        f"{path}: stores its channels in separate planes, which OpenCV misreads at this bit"
        " depth; re-save it with interleaved (contiguous) channels, or as .npy"
    )


def _opencv_pixels(path: Path, wide_mode: str | None) -> np.ndarray:
    array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise InputError(f"{path}: neither Pillow nor OpenCV can decode it; re-export the image")
    if array.ndim == 2:
        return array[:, :, np.newaxis]
    if array.shape[2] == 3:
        array = array[:, :, ::-1]
    elif array.shape[2] == 4:
        array = array[:, :, [2, 1, 0, 3]]
    if wide_mode == "LA;16":  # OpenCV spreads gray + alpha over BGRA
        array = array[:, :, [0, 3]]
    return np.ascontiguousarray(array)


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
) -> Path:
    """Write ``array`` (or, for ``.npz``, ``key_arrays``) to ``path`` atomically; return the path.

    The format follows the extension: .png .jpg/.jpeg .tif/.tiff .bmp .gif .webp
    .npy .npz. ``.npz`` stores ``key_arrays`` under their keys (or ``array`` under
    "array"). Images are H x W or H x W x C with C <= 4, and a format must hold the
    array exactly or it is refused:

    - uint8 (and bool, stored as 0/255): PNG, TIFF, WebP (lossless; gray is stored
      as RGB) with 1-4 channels; JPEG (quality 95, no chroma subsampling) and BMP
      with 1 or 3; GIF with 1.
    - uint16: PNG or TIFF with 1, 3 or 4 channels (colour is written by OpenCV).
    - float: TIFF only (float16 is widened to float32); 1, 3 or 4 channels.
    - other integers: single-channel TIFF (32-bit signed) when every value fits.

    ``normalize="minmax"`` makes an 8-bit image of any array that is not uint8
    or bool already (float, 16-bit, wider integers): it is mapped linearly from
    its finite [min, max] to 0..255 over all channels at once, rounding half up;
    +inf becomes 255, -inf and NaN become 0, a constant array becomes 0 (see
    :func:`minmax_to_uint8`). uint8 and bool arrays, and ``.npy``/``.npz``
    outputs, are written unchanged.
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
    check_output(path, overwrite=overwrite, inputs=inputs)
    if output_format == "NPZ":
        arrays = key_arrays if key_arrays is not None else {"array": _required(path, array)}
        for key, value in arrays.items():
            _check_savable(f"{path} (key {key!r})", np.asanyarray(value))
        write = _npz_writer(arrays)
    else:
        array = _single_array(path, array, key_arrays)
        if output_format == "NPY":
            _check_savable(str(path), array)
            write = _npy_writer(array)
        else:
            icc = like.icc_profile if like is not None else None
            data = _encode_image(path, array, output_format, normalize=normalize, icc=icc)
            write = _bytes_writer(data)
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as file:
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
    path: Path, array: np.ndarray, fmt: str, *, normalize: str | None, icc: bytes | None
) -> bytes:
    """The bytes of ``array`` in image format ``fmt``, or an OutputError naming the fix."""
    array = _as_hwc(path, np.asarray(array))
    if normalize == "minmax" and array.dtype not in (np.uint8, np.bool_):
        array = minmax_to_uint8(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * np.uint8(255)
    channels, dtype = array.shape[2], array.dtype
    if dtype == np.uint8:
        if channels not in _UINT8_CHANNELS[fmt]:
            allowed = " or ".join(str(c) for c in _UINT8_CHANNELS[fmt])
            raise OutputError(
                f"{path}: {fmt} keeps {allowed} channel(s), not {channels}; save as .png or .tiff"
            )
        return _pillow_bytes(array, fmt, icc)
    if dtype == np.uint16 and fmt in ("PNG", "TIFF"):
        if channels == 1:
            return _pillow_bytes(array, fmt, None)
        if channels in (3, 4):
            return _opencv_bytes(path, array, fmt)
        raise OutputError(
            f"{path}: 16-bit {fmt} with {channels} channels is not supported;"
            " save as .npy, or pass --dtype uint8"
        )
    if dtype.kind == "f" and fmt == "TIFF":
        array = array.astype(np.float32) if dtype.itemsize < 4 else array
        if array.dtype == np.float32 and channels == 1:
            return _pillow_bytes(array, fmt, None)
        if channels in (1, 3, 4):
            return _opencv_bytes(path, array, fmt)
        raise OutputError(
            f"{path}: float TIFF with {channels} channels is not supported; save as .npy"
        )
    if dtype.kind in "iu" and fmt == "TIFF" and channels == 1 and _fits_int32(array):
        return _pillow_bytes(array.astype(np.int32), fmt, None)
    raise OutputError(f"{path}: {_cannot_hold(fmt, dtype, channels)}")


def _cannot_hold(fmt: str, dtype: np.dtype, channels: int) -> str:
    if dtype.kind == "f":
        return (
            f"{fmt} cannot hold {dtype} values; save as .tiff or .npy,"
            " or pass --normalize minmax or --dtype uint8"
        )
    if fmt in ("PNG", "TIFF"):
        return (
            f"{fmt} cannot hold {channels}-channel {dtype} values; save as .npy,"
            " or pass --dtype uint8 or --normalize minmax"
        )
    return (
        f"{fmt} holds 8-bit values, not {dtype}; pass --dtype uint8 or --normalize minmax,"
        " or save as .png, .tiff or .npy"
    )


def _as_hwc(path: Path, array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or not 1 <= array.shape[2] <= 4 or 0 in array.shape:
        raise OutputError(
            f"{path}: an array of shape {array.shape} is not an image (H x W or H x W x C with"
            " C <= 4); save as .npy, or check --layout"
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
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options = {"quality": JPEG_QUALITY, "subsampling": 0}
    elif fmt == "WEBP":
        options = {"lossless": True, "exact": True}
    if icc is not None and fmt != "BMP" and fmt != "GIF" and _icc_matches(icc, image.mode):
        options["icc_profile"] = icc
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _icc_matches(icc: bytes, mode: str) -> bool:
    space = icc[16:20]
    return (space == b"RGB " and mode in ("RGB", "RGBA")) or (
        space == b"GRAY" and mode in ("L", "LA")
    )


def _opencv_bytes(path: Path, array: np.ndarray, fmt: str) -> bytes:
    if array.shape[2] == 3:
        array = array[:, :, ::-1]
    elif array.shape[2] == 4:
        array = array[:, :, [2, 1, 0, 3]]
    suffix = ".png" if fmt == "PNG" else ".tiff"
    with _quiet_decoders():
        ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(array))
    if not ok:
        raise OutputError(f"{path}: OpenCV cannot encode a {array.dtype} {fmt}; save as .npy")
    return encoded.tobytes()


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
    poolcli.errors.OutputError: ... exists; pass --overwrite to replace it
    """
    path = Path(path)
    if _is_one_of(path, inputs):
        raise OutputError(
            f"{path}: is one of the inputs; poolcli never overwrites an input, even with"
            " --overwrite; choose another output path"
        )
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name such as {path / 'out.png'}")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it")
    parent = path.parent
    if not parent.exists():
        raise OutputError(f"{path}: folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise OutputError(f"{path}: {parent} is not a folder; write inside a folder")


def _is_one_of(path: Path, inputs: Iterable[str | os.PathLike[str]]) -> bool:
    target = path.resolve()
    for item in inputs:
        if Path(item).resolve() == target:
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
) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes ``path`` only if the block finishes.

    The data goes to ``.<name>.<random>.tmp`` in the target folder, then
    ``os.replace`` moves it into place. On any failure, KeyboardInterrupt
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
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
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
    """Keep the permissions of a file being replaced; a new file gets the umask's default."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return _NEW_FILE_MODE


# --------------------------------------------------------------------------- description


def value_range(array: np.ndarray) -> tuple[float, float] | None:
    """Smallest and largest value, ignoring NaN; None when nothing else is there.

    >>> value_range(np.array([3.0, np.nan, -1.5]))
    (-1.5, 3.0)
    >>> value_range(np.array([np.nan])) is None
    True
    """
    values = np.asarray(array)
    if values.dtype.kind == "f":
        values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    return float(values.min()), float(values.max())


def describe(loaded: Loaded) -> list[str]:
    """One plain line per array: key, shape, dtype and value range (NaN ignored).

    >>> item = Loaded({"array": np.array([[1.0, np.nan]])}, "npy", "hw", "NPY", None, 1,
    ...               Path("x.npy"))
    >>> describe(item)
    ['array: shape (1, 2) float64, range 1 .. 1, 1 NaN']
    """
    lines = []
    for key, array in loaded.arrays.items():
        span = value_range(array)
        text = f"{key}: shape {tuple(array.shape)} {array.dtype}"
        text += ", no values" if span is None else f", range {span[0]:g} .. {span[1]:g}"
        if array.dtype.kind == "f":
            nans = int(np.count_nonzero(np.isnan(array)))
            text += f", {nans} NaN" if nans else ""
        lines.append(text)
    return lines
