"""`load`: one door for every input, the reader chosen by the suffix in the table of formats (core/formats.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..core import formats
from ..errors import InputError, PoolError
from .formats import CHANNEL_ORDERS, DEFAULT_MAX_PIXELS, Loaded, ReadRequest, decoded_limit, format_for


def load(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
    channel_order: str = "rgb",
    page: int = 0,
) -> Loaded:
    """Read an image, ``.npy`` or ``.npz`` file (or one of any format in :data:`poolcli.core.formats.FORMATS`).

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
    >>> import numpy as np
    >>> from poolcli.io import load, save
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
    record = format_for(path, InputError)
    request = ReadRequest(record, max_pixels, decoded_limit(max_pixels, max_bytes), channel_order, page)
    return formats.resolve(record.reader)(path, request)


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

