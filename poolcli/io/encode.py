"""Encoding images: which library writes which array (OpenCV, Pillow, tifffile), refusals for what a format cannot hold.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from ..backends import opencv
from ..core import formats
from ..core.calibration import Calibration
from ..errors import OutputError, param
from .chatter import quiet_decoders
from .formats import NUMERIC_KINDS, PILLOW_PNG
from .metadata import ImageMetadata, pillow_options, png_chunk, with_jpeg_metadata, with_png_metadata
from .tiff import compression_keywords, is_ome_name, ome_metadata, resolution_keywords


def encode_image(
    path: Path,
    array: np.ndarray,
    fmt: str,
    *,
    normalize: str | None,
    icc: bytes | None,
    quality: int,
    bgr: bool,
    metadata: ImageMetadata | None = None,
    nodata: int | float | None = None,
    compression: str | None = None,
    calibration: Calibration | None = None,
    ome: bool = False,
) -> bytes:
    """The bytes of ``array`` in image format ``fmt``, or an OutputError naming the fix; with
    ``metadata`` (EXIF, XMP, resolution) where the format has a place for it (io/metadata.py). A
    TIFF asked for a ``compression``, given a ``calibration`` with a pixel size, a ``nodata``
    (GDAL's GDAL_NODATA tag), or an OME-TIFF (``ome``, or a path named ``.ome.tif``) is written by
    tifffile (that compression, that resolution, its OME-XML)."""
    record = formats.by_name(fmt)
    array = _as_hwc(path, np.asarray(array))
    _check_side_limit(path, array, record)
    if normalize == "minmax":
        array = minmax_to_uint8(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * np.uint8(255)
    array, by_opencv = _encodable(path, array, record)
    if icc is not None and not (
        array.dtype in (np.uint8, np.uint16) and "icc" in record.metadata and _icc_matches(icc, array.shape[2])
    ):
        icc = None
    metadata = (metadata or ImageMetadata()).kept_by(record.metadata)
    ome = fmt == "TIFF" and (ome or is_ome_name(path))
    if fmt == "TIFF" and (ome or compression is not None or resolution_keywords(calibration) or nodata is not None
                          or (by_opencv and (icc is not None or metadata.dpi is not None))):
        # OpenCV's TIFFs have no place for a profile or resolution, Pillow's none for a nodata
        resolution = resolution_keywords(calibration) or _dpi_keywords(metadata.dpi)
        return _tifffile_bytes(swap_red_blue(array) if bgr else array, icc, compression=compression,
                               resolution=resolution, ome_calibration=calibration if ome else None, ome=ome,
                               nodata=nodata)
    if by_opencv:  # OpenCV encodes BGR(A)
        data = _opencv_bytes(path, array if bgr else swap_red_blue(array), fmt, quality, icc)
    else:
        data = _pillow_bytes(swap_red_blue(array) if bgr else array, fmt, icc, metadata)
    if fmt == "JPEG" and metadata:
        return with_jpeg_metadata(data, metadata)
    if fmt == "PNG" and metadata:
        return with_png_metadata(data, metadata)
    return data


def _check_side_limit(path: Path, array: np.ndarray, record: formats.Format) -> None:
    height, width = array.shape[:2]
    limit = record.max_side
    if limit is not None and max(width, height) > limit:
        raise OutputError(
            f"{path}: {record.name} holds images up to {limit:,} pixels a side, not {width}x{height};"
            " save as .tiff, .png or .npy"
        )


def _encodable(path: Path, array: np.ndarray, record: formats.Format) -> tuple[np.ndarray, bool]:
    """``array`` as the format stores it and whether OpenCV encodes it (else Pillow), or an
    OutputError when the format cannot hold it exactly (its record's channel counts say what it holds)."""
    channels, dtype, fmt = array.shape[2], array.dtype, record.name
    if dtype == np.uint8:
        if channels not in record.uint8_channels:
            allowed = " or ".join(str(c) for c in record.uint8_channels)
            raise OutputError(
                f"{path}: {fmt} keeps {allowed} channel(s), not {channels}; save as .png or .tiff"
            )
        return array, channels != 2 and _opencv_encodes(fmt, array.shape[0] * array.shape[1])
    if dtype == np.uint16 and record.uint16_channels:
        if channels in record.uint16_channels:
            return array, fmt == "PNG" or channels > 1
        raise OutputError(
            f"{path}: 16-bit {fmt} with {channels} channels is not supported;"
            f" save as .npy, or pass {param('dtype')} uint8 (scales 16 to 8 bits)"
        )
    if dtype.kind == "f" and record.float_channels:
        array = array.astype(np.float32) if dtype.itemsize < 4 else array
        if channels in record.float_channels:
            return array, not (array.dtype == np.float32 and channels == 1)
        raise OutputError(
            f"{path}: float {fmt} with {channels} channels is not supported; save as .npy"
        )
    if dtype.kind in "iu" and channels in record.int32_channels and _fits_int32(array):
        return array.astype(np.int32), False
    raise OutputError(f"{path}: {_cannot_hold(record, dtype, channels)}")


PNG_OPENCV_PIXELS = 1 << 19

"""PNG outputs of at least this many pixels are encoded by OpenCV (about a quarter faster than
Pillow with the same zlib settings, more than its import costs); smaller ones by Pillow. The
rule depends on the size alone, so `pool` and `batch` write the same bytes."""


def _opencv_encodes(fmt: str, pixels: int) -> bool:
    """JPEG: OpenCV where it pays (its bytes are Pillow's, byte for byte). PNG: by size alone."""
    if fmt == "JPEG":
        return opencv.pays(pixels)
    return fmt == "PNG" and pixels >= PNG_OPENCV_PIXELS


def _cannot_hold(record: formats.Format, dtype: np.dtype, channels: int) -> str:
    """Why ``record`` cannot hold these values, and only fixes that give a usable image: 8 bits
    from 16 by scaling (a ``dtype`` of uint8 does that for 16-bit values, docs/semantics.md), from
    anything else by ``normalize`` (a plain cast would clip most values)."""
    fmt = record.name
    eight_bits = f"{param('dtype')} uint8 (scales 16 to 8 bits) or " if dtype == np.uint16 else ""
    if dtype.kind == "f":
        return f"{fmt} cannot hold {dtype} values; save as .tiff or .npy, or pass {param('normalize')} minmax"
    if record.uint16_channels:  # more than 8 bits, but not these
        return (
            f"{fmt} cannot hold {channels}-channel {dtype} values; save as .npy,"
            f" or pass {eight_bits}{param('normalize')} minmax"
        )
    return (
        f"{fmt} holds 8-bit values, not {dtype}; pass {eight_bits}{param('normalize')} minmax,"
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
    if array.dtype.kind not in NUMERIC_KINDS:
        raise OutputError(f"{path}: dtype {array.dtype} cannot be an image; save as .npy")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def _fits_int32(array: np.ndarray) -> bool:
    info = np.iinfo(np.int32)
    return array.size == 0 or (int(array.min()) >= info.min and int(array.max()) <= info.max)


def _pillow_bytes(array: np.ndarray, fmt: str, icc: bytes | None, metadata: ImageMetadata) -> bytes:
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    options: dict[str, object] = {}
    if fmt == "GIF" and array.shape[2] == 4:
        image, options["transparency"] = _gif_with_transparency(array)
    elif fmt == "GIF" and array.shape[2] > 1:
        image = image.quantize(256, method=Image.Quantize.MEDIANCUT)
    if fmt == "PNG":
        options = dict(PILLOW_PNG)
    elif fmt == "WEBP":
        options = {"lossless": True, "exact": True}
    if icc is not None:
        options["icc_profile"] = icc
    if fmt not in ("PNG", "JPEG"):  # those two get theirs spliced in, whichever library encodes them
        options.update(pillow_options(metadata))
    buffer = io.BytesIO()
    with quiet_decoders():  # Pillow warns of EXIF it cannot parse (the input's, carried over)
        image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


GIF_OPAQUE = 128

"""GIF holds one transparent palette index, no partial alpha: pixels of an RGBA image with alpha
below this become transparent, the others opaque (ImageMagick's threshold)."""


def _gif_with_transparency(array: np.ndarray) -> tuple[Image.Image, int]:
    """An RGBA array as a palette image (255 colours of the opaque pixels) whose index 255 is
    transparent, and that index."""
    opaque = array[:, :, 3] >= GIF_OPAQUE
    rgb = np.ascontiguousarray(array[:, :, :3])
    if opaque.any():  # the hidden pixels take an opaque one's colour: no palette entry spent on them
        rgb[~opaque] = rgb[opaque][0]
    paletted = Image.fromarray(rgb).quantize(255, method=Image.Quantize.MEDIANCUT)
    indices = np.asarray(paletted).copy()
    indices[~opaque] = 255
    palette = (paletted.getpalette() or [])[: 3 * 255]
    image = Image.fromarray(indices, "P")
    image.putpalette(palette + [0] * (3 * 256 - len(palette)))
    return image, 255


def _dpi_keywords(dpi: tuple[float, float] | None) -> dict:
    """tifffile's resolution keywords for a resolution in dots per inch (none for None)."""
    return {} if dpi is None else dict(resolution=dpi, resolutionunit="INCH")


def _tifffile_bytes(array: np.ndarray, icc: bytes | None, *, compression: str | None, resolution: dict,
                    ome_calibration: Calibration | None, ome: bool, nodata: int | float | None) -> bytes:
    """A TIFF of a gray, RGB(A) array with its ICC profile, compression (None: none), resolution
    (tifffile's keywords) and nodata, written by tifffile; an OME-TIFF (with its OME-XML, the
    pixel size of `ome_calibration`) where `ome`."""
    import tifffile

    from .tiff import gdal_nodata_tags

    buffer = io.BytesIO()
    channels = array.shape[2]
    data = array if channels > 1 else array[:, :, 0]
    packing = compression_keywords(compression, array.dtype) if compression is not None else {}
    tifffile.imwrite(
        buffer, data, photometric="rgb" if channels >= 3 else "minisblack", ome=ome,
        extrasamples=("unassalpha",) if channels == 4 else None, iccprofile=icc,
        metadata=ome_metadata(data.shape, False, ome_calibration) if ome else None,
        **packing, **resolution, extratags=gdal_nodata_tags(nodata),
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
        with quiet_decoders():
            ok, encoded = cv2.imencode(formats.by_name(fmt).extension, array, params)
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
    chunk = png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc))
    at = 8 + 8 + 13 + 4  # signature, IHDR length and type, IHDR data, CRC
    return data[:at] + chunk + data[at:]


def swap_red_blue(array: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A) of an H x W x C array, as a new array; 1 or 2 channels stay as they are.

    NumPy, not the faster cv2.cvtColor: once OpenCV's thread pool has started, a process
    forked afterwards (a batch worker) deadlocks in its next parallel OpenCV call.
    """
    channels = array.shape[2]
    if channels < 3:
        return array
    return array[:, :, [2, 1, 0, 3][:channels]]


def rgb_array(array: np.ndarray, bgr: bool) -> np.ndarray:
    """An H x W x 3|4 array that ``bgr`` says is BGR(A), turned RGB(A); anything else as it is."""
    array = np.asanyarray(array)
    if bgr and array.ndim == 3 and array.shape[2] in (3, 4):
        return swap_red_blue(array)
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

