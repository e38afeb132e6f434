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

Formats
    One record each in :mod:`poolcli.core.formats` (suffixes, signature, kind, what it
    holds, its reader, writer and completeness check): :func:`load`, :func:`save`,
    :func:`is_complete` and :func:`sniff_suffix` look the format up there, and a reader
    gets a :class:`ReadRequest`, a writer a :class:`WriteRequest`.

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

from ..core.choices import JPEG_QUALITY
from .arrays import npy_header
from .atomic import (
    TEMPORARY_SUFFIX,
    atomic_output,
    atomic_path,
    check_apart,
    check_output,
    make_folder,
    scratch,
    sweep_temporaries,
    temporary_prefix,
)
from .chatter import decoder_chatter_held, quiet_logs
from .complete import is_complete
from .encode import PNG_OPENCV_PIXELS, minmax_to_uint8
from .formats import (
    CHANNEL_ORDERS,
    DEFAULT_MAX_PIXELS,
    LAYOUT_AXES,
    MMAP_THRESHOLD_BYTES,
    SPATIAL_AXES,
    Loaded,
    ReadRequest,
    WriteRequest,
    decoded_limit,
    guess_layout,
    pooled_axes_for_layout,
    sniff_suffix,
)
from .images import MAX_JPEG_SCANS
from .metadata import ImageMetadata
from .png import MAX_ICC_BYTES
from .reading import load
from .tiff import tiff_levels
from .writing import save

__all__ = [
    "atomic_path",
    "CHANNEL_ORDERS",
    "DEFAULT_MAX_PIXELS",
    "ImageMetadata",
    "JPEG_QUALITY",
    "LAYOUT_AXES",
    "Loaded",
    "MAX_ICC_BYTES",
    "MAX_JPEG_SCANS",
    "MMAP_THRESHOLD_BYTES",
    "PNG_OPENCV_PIXELS",
    "ReadRequest",
    "SPATIAL_AXES",
    "TEMPORARY_SUFFIX",
    "WriteRequest",
    "atomic_output",
    "check_apart",
    "check_output",
    "decoded_limit",
    "decoder_chatter_held",
    "guess_layout",
    "is_complete",
    "load",
    "make_folder",
    "minmax_to_uint8",
    "npy_header",
    "pooled_axes_for_layout",
    "quiet_logs",
    "save",
    "scratch",
    "sniff_suffix",
    "sweep_temporaries",
    "temporary_prefix",
    "tiff_levels",
]
