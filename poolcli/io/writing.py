"""`save`: the format from the suffix, the bytes from `encode` or NumPy, written through `atomic_output`.

Images are H x W or H x W x C with C <= 4, and a format must hold the array exactly or it is
refused:

- uint8 (and bool, stored as 0/255): PNG, TIFF, WebP (lossless; gray is stored as RGB) with
  1-4 channels; JPEG and BMP with 1 or 3; GIF with 1, 3 or 4 (colour is quantised to one
  adaptive 256-colour palette, lossy like JPEG; gray is exact; with alpha, pixels below half
  opacity take the palette's transparent index, the others are opaque).
- uint16: PNG or TIFF with 1, 3 or 4 channels.
- float: TIFF only (float16 is widened to float32); 1, 3 or 4 channels.
- other integers: single-channel TIFF (32-bit signed) when every value fits.

PNG is encoded by OpenCV at zlib level 1 with run-length matching (Pillow, with the same
settings, writes 8-bit gray + alpha), several times faster than zlib's default and no bigger
on photos. JPEG is encoded by OpenCV with 4:2:0 chroma subsampling.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..core import formats
from ..core.calibration import Calibration
from ..core.choices import JPEG_QUALITY
from ..errors import OutputError
from .atomic import atomic_output, check_output
from .encode import encode_image, rgb_array
from .formats import CHANNEL_ORDERS, Loaded, WriteRequest, format_for
from .metadata import ImageMetadata


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
    metadata: ImageMetadata | None = None,
    nodata: int | float | None = None,
    compression: str | None = None,
    calibration: Calibration | None = None,
    ome: bool = False,
) -> Path:
    """Write ``array`` (or, for ``.npz``, ``key_arrays``) to ``path`` atomically; return the path.

    The format follows the extension: .png .jpg/.jpeg .tif/.tiff .bmp .gif .webp
    .npy .npz (what each holds: this module's docstring). ``.npz`` stores
    ``key_arrays`` under their keys (or ``array`` under "array"). JPEG quality is
    ``quality`` (1..100, default :data:`JPEG_QUALITY`). ``channel_order="bgr"`` says
    that a 3- or 4-channel array is BGR(A), as ``load(..., channel_order="bgr")``
    returned it: OpenCV encodes it as it is and every other format gets it turned to
    RGB(A) first; pass ``like.channel_order``.

    ``normalize="minmax"`` makes an 8-bit image of any array (float, integers of
    any width, uint8 and bool too): it is mapped linearly from its finite
    [min, max] to 0..255 over all channels at once, rounding half up; +inf becomes
    255, -inf and NaN become 0, a constant array becomes 0 (see
    :func:`minmax_to_uint8`). ``.npy``/``.npz`` outputs are written unchanged.
    ``like`` lends its ICC profile to the image when the colour spaces agree, and its EXIF, XMP
    and resolution (``like.metadata``) unless ``metadata`` is given (io/metadata.py: what each
    format keeps). A TIFF records ``nodata`` (the value of cells without data) in its GDAL_NODATA
    tag, as GDAL does. A TIFF is written with ``compression`` ("zlib", "zstd" or "none"; None:
    uncompressed, as ever) and records ``calibration``'s pixel size as its resolution;
    ``ome=True`` (or a name ending ``.ome.tif``) makes it an OME-TIFF.
    An existing ``path`` is replaced only with ``overwrite=True``; a path that is
    one of ``inputs`` never is.

    >>> import tempfile
    >>> from poolcli.io import load, save
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = save(Path(folder) / "wave.png", np.linspace(-1.0, 1.0, 5)[None],
    ...                normalize="minmax")
    ...     load(out).array[..., 0]
    array([[  0,  64, 128, 191, 255]], dtype=uint8)
    """
    path = Path(path)
    record, writer = _output_format(path, normalize, quality, channel_order)
    inputs = list(inputs)
    check_output(path, overwrite=overwrite, inputs=inputs)
    icc = like.icc_profile if like is not None else None
    if metadata is None and like is not None:
        metadata = like.metadata
    request = WriteRequest(record, array, key_arrays, normalize, icc, quality, channel_order == "bgr", metadata,
                           nodata, compression, calibration, ome)
    write = formats.resolve(writer)(path, request)
    with atomic_output(path, overwrite=overwrite, inputs=inputs, durable=durable, checked=True) as file:
        write(file)
    return path


def _output_format(
    path: Path, normalize: str | None, quality: int, channel_order: str
) -> tuple[formats.Format, str | Callable[..., Any]]:
    """The format the suffix names and its writer, once every option is known good; an OutputError otherwise."""
    output_format = format_for(path, OutputError)
    writer = output_format.writer
    if writer is None:
        raise OutputError(f"{path}: poolcli reads {output_format.name} but does not write it;"
                          f" use one of {', '.join(formats.written_suffixes().values())}")
    if normalize not in (None, "minmax"):
        raise OutputError(f"{path}: normalize {normalize!r} is unknown; use 'minmax' or None")
    if not 1 <= quality <= 100:
        raise OutputError(f"{path}: quality {quality} is out of range; use 1..100")
    if channel_order not in CHANNEL_ORDERS:
        raise OutputError(f"{path}: channel_order {channel_order!r} is unknown; use 'rgb' or 'bgr'")
    return output_format, writer


def image_writer(path: Path, request: WriteRequest):
    """The writer of every image format: `encode_image` (OpenCV, Pillow or tifffile) makes the bytes now."""
    data = encode_image(path, request.single_array(path), request.format.name, normalize=request.normalize,
                        icc=request.icc, quality=request.quality, bgr=request.bgr, metadata=request.metadata,
                        nodata=request.nodata, compression=request.compression, calibration=request.calibration,
                        ome=request.ome)
    return _bytes_writer(data)


def npy_writer(path: Path, request: WriteRequest):
    array = request.single_array(path)
    _check_savable(str(path), array)
    return _npy_writer(rgb_array(array, request.bgr))


def npz_writer(path: Path, request: WriteRequest):
    """``key_arrays`` under their keys, or ``array`` under "array"."""
    arrays = request.key_arrays if request.key_arrays is not None else {"array": request.required(path)}
    for key, value in arrays.items():
        _check_savable(f"{path} (key {key!r})", np.asanyarray(value))
    return _npz_writer({key: rgb_array(value, request.bgr) for key, value in arrays.items()})


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

