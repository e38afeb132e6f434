"""Reading images: Pillow, OpenCV for plain 8-bit JPEG/PNG, EXIF orientation, every header checked before decoding."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..backends import opencv
from ..core import formats
from ..errors import InputError
from .chatter import Chatter, quiet_decoders
from .checks import check_page, check_pixels, open_lazily, orient
from .encode import swap_red_blue
from .formats import Loaded, ReadRequest, input_errors, one_line
from .metadata import read_metadata
from .png import PlainHeader, check_png_data, plain_png, png_is_complete
from .tiff import load_tiff

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

_ORIENTATION = 0x0112  # the EXIF tag

def read_image(path: Path, request: ReadRequest) -> Loaded:
    """An image through tifffile, OpenCV or Pillow, whichever the format and the file call for."""
    return load_image(path, request.format.name, request.max_pixels, request.channel_order, request.page)


def load_image(path: Path, expected: str, max_pixels: int | None, channel_order: str, page: int) -> Loaded:
    data = None
    if expected == "TIFF":
        tiff = load_tiff(path, max_pixels, page)
        if tiff is not None:
            return tiff
    if expected in ("JPEG", "PNG") and page == 0:
        data = _read_bytes(path)
        if expected == "JPEG":
            _check_jpeg_scans(path, data)
        else:
            check_png_data(path, data)
        plain = _load_plain(path, data, expected, max_pixels, channel_order)
        if plain is not None:
            return plain
    try:
        with quiet_decoders():
            image = open_lazily(path, formats.pillow_decoders())
    except UnidentifiedImageError:
        raise InputError(
            f"{path}: is not an image Pillow can identify (expected {expected});"
            " check that the file is an image and complete"
        ) from None
    except Exception as error:  # Pillow reads the header here: a broken one raises anything
        raise InputError(f"{path}: cannot open it ({one_line(error)}); the file may be corrupt; re-export it") \
            from None
    if image.format == "PNG" and not png_is_complete(_read_bytes(path) if data is None else data):
        image.close()
        raise InputError(f"{path}: PNG is cut short (it ends before its IEND chunk); the file may be"
                         " truncated; re-export it")
    fix = "the file may be truncated or corrupt; re-export it"
    with image, input_errors(path, f"a {image.format} image", fix), quiet_decoders():
        check_pixels(path, image.size, max_pixels)
        frames = _frame_count(path, image)
        check_page(path, page, frames)
        wide_mode = _wide_colour_mode(path, image) if page == 0 else None
        if wide_mode is None:
            array, mode = _pillow_pixels(image, page), image.mode
        else:
            array, mode = _full_depth_pixels(path, image, wide_mode), wide_mode
        icc = image.info.get("icc_profile")
        metadata = read_metadata(image)
    if image.format in ("JPEG", "MPO"):
        _check_jpeg_intact(path, _read_bytes(path) if data is None else data)
    return Loaded({"array": array}, "image", "hwc", image.format or expected, mode, frames, path, icc,
                  metadata=metadata)


def _read_bytes(path: Path) -> np.ndarray:
    """The whole file, read in one call where its size holds (np.fromfile costs about a dozen
    system calls more, noticeable on a folder of small files)."""
    try:
        with open(path, "rb", buffering=0) as file:
            data = np.empty(os.fstat(file.fileno()).st_size + 1, dtype=np.uint8)  # one byte more: the end seen
            view, count = data.data, 0  # the array's bytes as a memoryview
            while count < len(data) and (got := file.readinto(view[count:])):
                count += got
            if count == len(data):  # it grew meanwhile (or is not a regular file): read it to its end
                return np.concatenate([data, np.frombuffer(file.read(), dtype=np.uint8)])
            return data[:count]
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({one_line(error.strerror or error)}); check the file") from None


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


def _refuse_corrupt_jpeg(path: Path, chatter: Chatter) -> None:
    if chatter.has(*_JPEG_CORRUPTION):
        detail = next(line for line in chatter.text.splitlines() if any(c in line for c in _JPEG_CORRUPTION))
        raise InputError(
            f"{path}: JPEG data is corrupt or cut short (libjpeg: {one_line(detail)});"
            " the file may be truncated or corrupt; re-export it"
        )


def _check_jpeg_intact(path: Path, data: np.ndarray) -> None:
    """Refuse a JPEG that libjpeg decodes only by patching over bad or missing data (Pillow
    hides those warnings). A 1/8-scale gray decode reads every scan, at little cost."""
    cv2 = opencv.cv2()
    with quiet_decoders() as chatter, contextlib.suppress(cv2.error):
        cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8 | cv2.IMREAD_IGNORE_ORIENTATION)
    _refuse_corrupt_jpeg(path, chatter)


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
    return orient(_opencv_pixels(path, wide_mode), orientation)


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
    header = plain_png(path, data) if fmt == "PNG" else _plain_jpeg(data)
    if header is None or (fmt == "PNG" and not opencv.pays(header.size[0] * header.size[1])):
        return None
    check_pixels(path, header.size, max_pixels)
    cv2 = opencv.cv2()
    order = channel_order if len(header.mode) >= 3 else "rgb"
    flags = cv2.IMREAD_UNCHANGED  # BGR(A) as it comes, or gray
    if header.mode == "RGB" and order == "rgb":  # the decoder writes RGB itself, sparing a swap
        flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        with quiet_decoders() as chatter:
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
        array = swap_red_blue(array)
    return Loaded({"array": array}, "image", "hwc", fmt, header.mode, 1, path, header.icc, order, header.metadata)


def _plain_jpeg(data: np.ndarray) -> PlainHeader | None:
    """The header of an L or RGB JPEG (not MPO) with no EXIF or XMP orientation to apply."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data.data), formats=("JPEG",)) as image:  # reads the header only
                if image.format != "JPEG" or image.mode not in ("L", "RGB"):
                    return None
                if image.getexif().get(_ORIENTATION, 1) != 1:
                    return None
                return PlainHeader("JPEG", image.mode, image.size, image.info.get("icc_profile"),
                                   read_metadata(image))
    except Exception:  # Pillow's own limit, a broken header: Pillow's full path says why
        return None


def _opencv_pixels(path: Path, wide_mode: str | None) -> np.ndarray:
    cv2 = opencv.cv2()
    array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise InputError(f"{path}: neither Pillow nor OpenCV can decode it; re-export the image")
    if array.ndim == 2:
        return array[:, :, np.newaxis]
    if wide_mode == "LA;16":  # OpenCV spreads gray + alpha over BGRA
        return np.ascontiguousarray(array[:, :, [0, 3]])
    return swap_red_blue(array)

