"""TIFF reading through tifffile: pages, strips and samples checked before decoding."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..core.calibration import Calibration
from ..core.options import nodata_from_text
from ..errors import InputError, param
from .chatter import quiet_decoders
from .checks import check_page, check_pixels, hwc_samples, open_lazily, orient
from .formats import NUMERIC_KINDS, Loaded, input_errors

_TIFF_MODES = {  # (dtype, channels) -> the Pillow-style mode name poolcli reports
    ("uint8", 1): "L", ("uint8", 2): "LA", ("uint8", 3): "RGB", ("uint8", 4): "RGBA",
    ("uint16", 1): "I;16", ("uint16", 2): "LA;16", ("uint16", 3): "RGB;16", ("uint16", 4): "RGBA;16",
    ("int32", 1): "I", ("float32", 1): "F",
}

_TIFF_BYTES_PER_PIXEL = 32  # the most a page may decode to, per pixel allowed (float64 RGBA)


def load_tiff(path: Path, max_pixels: int | None, page: int) -> Loaded | None:
    """A page of a TIFF or BigTIFF through tifffile: gray or RGB(A) samples of any bit depth
    and type, interleaved or planar, striped or tiled, any compression. None for the
    photometric kinds Pillow turns into RGB (palette, CMYK, YCbCr, bilevel, white-is-zero)."""
    import tifffile

    fix = "the file may be truncated or corrupt; re-export it"
    with input_errors(path, "a TIFF image", fix), quiet_decoders(), tifffile.TiffFile(path) as tiff:
        frames = len(tiff.pages)
        check_page(path, page, frames)
        chosen: Any = tiff.pages[page]  # a TiffPage (tifffile types it as TiffPage | TiffFrame)
        check_pixels(path, (int(chosen.imagewidth), int(chosen.imagelength)), max_pixels)
        if not tifffile_decodes(chosen):
            return None
        segments = check_segments(path, chosen, tiff.filehandle.size)
        most = None if max_pixels is None else _TIFF_BYTES_PER_PIXEL * max_pixels
        if most is not None and chosen.nbytes > most:
            raise InputError(
                f"{path}: page {page} decodes to {chosen.nbytes:,} bytes ({chosen.samplesperpixel} samples of"
                f" {chosen.dtype} per pixel), more than the limit; pass {param('max_pixels')} 0 if you trust this file"
            )
        if most is not None and segments.decoded > most:
            raise InputError(f"{path}: page {page}: each of its {segments.kind}s decodes to {segments.decoded:,}"
                             f" bytes, more than the limit; pass {param('max_pixels')} 0 if you trust this file")
        check_headers(path, chosen, segments, tiff.filehandle)
        array = hwc_samples(chosen.asarray(), chosen.shape, chosen.axes)
        orientation = int(chosen.tags.valueof(274, default=1) or 1)
        icc = chosen.tags.valueof(34675)
        nodata = gdal_nodata(chosen)
        calibration = tiff_calibration(tiff, chosen, ("y", "x", "c"))
    array = orient(array, orientation)
    if orientation > 4 and calibration is not None:  # turned a quarter: y and x swap
        calibration = replace(calibration, scale=(calibration.scale[1], calibration.scale[0], 1.0),
                              units=(calibration.units[1], calibration.units[0], ""))
    mode = _TIFF_MODES.get((array.dtype.name, array.shape[2]), f"{array.dtype.name}x{array.shape[2]}")
    return Loaded({"array": array}, "image", "hwc", "TIFF", mode, frames, path, bytes(icc) if icc else None,
                  nodata=nodata, calibration=calibration)


GDAL_NODATA = 42113  # GDAL's private tag: the nodata value as ASCII


def gdal_nodata(page) -> int | float | None:
    """The nodata a TIFF page declares in its GDAL_NODATA tag, or None (no tag, or no number)."""
    text = page.tags.valueof(GDAL_NODATA)
    return nodata_from_text(text) if isinstance(text, str) else None


def gdal_nodata_tags(nodata: int | float | None) -> list:
    """tifffile's `extratags` recording `nodata` as GDAL does (none for None)."""
    from ..core.options import nodata_text

    return [] if nodata is None else [(GDAL_NODATA, "s", 0, nodata_text(nodata), True)]


def tifffile_decodes(page) -> bool:
    """Whether poolcli reads `page` through tifffile (gray or RGB(A) samples of 8 bits or more); Pillow
    reads the other kinds (palette, CMYK, YCbCr, bilevel, white-is-zero) and converts them."""
    import tifffile

    photometric = tifffile.PHOTOMETRIC
    return (
        page.photometric in (photometric.MINISBLACK, photometric.RGB)
        and page.bitspersample >= 8
        and page.dtype is not None
        and page.dtype.kind in NUMERIC_KINDS
        and not page.is_subsampled
    )


# What a segment's stored bytes may be at most, per compression: the codec's worst case for
# `size` decoded bytes in `rows` rows (its compress bound, with room for headers).
_WORST_CASES = {
    1: lambda size, rows: size,  # none: exactly the decoded bytes (a short final strip: fewer)
    5: lambda size, rows: size + size // 2 + 64,  # LZW: at most 12-bit codes per byte, clear codes
    8: lambda size, rows: size + size // 256 + 64,  # Adobe deflate: zlib's compressBound
    32946: lambda size, rows: size + size // 256 + 64,  # deflate
    32773: lambda size, rows: size + size // 128 + rows + 64,  # PackBits: 1 header byte per 128, per row
    50000: lambda size, rows: size + size // 128 + 1024,  # Zstandard: ZSTD_COMPRESSBOUND
    34926: lambda size, rows: size + size // 128 + 1024,  # Zstandard (old code)
    34925: lambda size, rows: size + size // 64 + 4096,  # LZMA
}


_PADDED_SEGMENT_BYTES = 1 << 26  # a segment may pad a small page (a 512x512 tile of a 100x100 page) up to this


def _image_codec(size: int, rows: int) -> int:
    """Image codecs (JPEG, PNG, WebP, JPEG 2000): twice the decoded bytes and a header."""
    return 2 * size + 65536


# Image codecs decode a segment to the size their own header claims, whatever the TIFF's tags say:
# the header is read (by Pillow, without decoding) and checked against the segment before any
# decode. Per compression: the format whose header is read.
_JPEG_CODES = (6, 7, 33007, 34892)  # old-style JPEG, JPEG, ALT_JPEG, lossy DNG JPEG (tifffile's JPEG set)
_HEADERS: dict[int, str] = {
    **dict.fromkeys(_JPEG_CODES, "JPEG"),
    34933: "PNG",
    **dict.fromkeys((34927, 50001), "WEBP"),
    **dict.fromkeys((33003, 33004, 33005, 34712), "JPEG2000"),
}
_J2K_CODESTREAM = b"\xff\x4f\xff\x51"  # SOC then SIZ: what OpenJPEG decodes, in a JP2 box or bare


@dataclass(frozen=True)
class Segments:
    """A page's tiles or strips as its tags describe them, checked against the file."""

    kind: str  # "tile" or "strip"
    rows: int  # rows of one segment (a strip's RowsPerStrip, a tile's length)
    columns: int
    samples: int  # samples per pixel stored in one segment (1 for planar pages)
    count: int
    decoded: int  # the bytes one whole segment decodes to
    row_bytes: int  # the bytes of one decoded row of a segment

    def stored(self, page, index: int) -> int:
        """The bytes segment `index` decodes to: a whole tile; a strip's rows of the image (the last
        strip may hold fewer rows than RowsPerStrip)."""
        if self.kind == "tile":
            return self.decoded
        down = math.ceil(int(page.imagelength) / self.rows)
        return min(self.rows, int(page.imagelength) - index % down * self.rows) * self.row_bytes

    def check_header(self, path: Path, page, index: int, data: bytes | None) -> None:
        """Refuse segment `index` (its encoded `data`) of an image codec whose own header claims more
        columns, rows or samples than the segment holds: the codec would decode that size, whatever
        the tags say. Smaller is accepted, as libtiff accepts it (the last strip of a JPEG page
        may claim RowsPerStrip rows, or only the rows left). Other compressions pass."""
        kind = _HEADERS.get(int(page.compression))
        if kind is None or not data:
            return
        where = f"{path}: page {page.index}: {self.kind} {index}"
        claimed = _claimed_size(kind, page, data)
        if claimed is None:
            raise InputError(f"{where}: its {kind} header cannot be read; the file is corrupt; re-export it")
        rows = self.rows if self.kind == "tile" else min(self.rows, int(page.imagelength))  # tiles are padded
        if claimed[0] > self.columns or claimed[1] > rows or claimed[2] > self.samples:
            raise InputError(f"{where}: its {kind} header claims {claimed[0]}x{claimed[1]} pixels of {claimed[2]}"
                             f" sample(s), more than the {self.kind}'s {self.columns}x{rows} of {self.samples};"
                             " the file is corrupt or forged; re-export it")


def check_segments(path: Path, page, file_size: int) -> Segments:
    """The tiles or strips of `page`; an InputError naming `path` and the segment for a table
    that lies: segments missing from it, RowsPerStrip 0, bytes past the end of the file, more bytes
    than the compression can take for the segment's size, or uncompressed bytes of another size.
    A segment of no bytes at offset 0 is empty: tifffile reads it as zeros.
    The in-memory and the streamed reader both check this first, so they refuse the same files."""
    import tifffile

    where = f"{path}: page {page.index}"
    if not isinstance(page.compression, tifffile.COMPRESSION):
        raise InputError(f"{where}: its compression {int(page.compression)} is not one tifffile knows; the file is"
                         " corrupt or needs another reader; re-export it")
    if 0 in page.shape:
        raise InputError(f"{where}: is {page.imagewidth}x{page.imagelength} pixels ({page.axes} {page.shape}): it"
                         " holds no image; re-export it")
    segments = _segment_shape(where, page)
    if segments.decoded > max(int(page.nbytes), _PADDED_SEGMENT_BYTES):
        raise InputError(f"{where}: each of its {segments.kind}s ({segments.columns}x{segments.rows}) decodes to"
                         f" {segments.decoded:,} bytes, more than its whole {page.imagewidth}x{page.imagelength} page"
                         f" ({page.nbytes:,} bytes); the file is corrupt; re-save it with smaller {segments.kind}s")
    offsets, counts = page.dataoffsets, page.databytecounts
    if len(offsets) < segments.count or len(counts) < segments.count:
        raise InputError(f"{where}: its {segments.kind} table lists {min(len(offsets), len(counts))} of its"
                         f" {segments.count} {segments.kind}s; the file is corrupt; re-export it")
    worst = _codec_bound(where, page, segments.kind)
    for index in range(segments.count):
        offset, count = int(offsets[index]), int(counts[index])
        label = f"{where}: {segments.kind} {index}"
        if count == 0 and offset != 0:  # tifffile would read the segments after it from the wrong bytes
            raise InputError(f"{label} holds 0 bytes at offset {offset:,} (an empty one has offset 0 too);"
                             " the file is corrupt; re-export it")
        if count == 0:
            continue
        if offset == 0 or offset + count > file_size:
            raise InputError(f"{label} lies outside the file (bytes {offset:,} to {offset + count:,} of a"
                             f" {file_size:,}-byte file); the file is truncated or corrupt; re-export it")
        size = segments.stored(page, index)
        least, most = (size, segments.decoded) if page.compression == 1 else (1, worst(size, segments.rows))
        if not least <= count <= most:
            raise InputError(f"{label} holds {count:,} bytes for {size:,} decoded bytes, which its compression"
                             f" ({_compression_name(page)}) cannot; the file is corrupt; re-export it")
    return segments


def check_headers(path: Path, page, segments: Segments, handle) -> None:
    """`Segments.check_header` over every segment of `page` (read from `handle`, a tifffile
    FileHandle, a bounded buffer at a time), before the page is decoded whole."""
    if int(page.compression) not in _HEADERS:
        return
    for data, index in handle.read_segments(page.dataoffsets, page.databytecounts, buffersize=1 << 26):
        segments.check_header(path, page, index, data)


def _claimed_size(kind: str, page, data: bytes) -> tuple[int, int, int] | None:
    """Columns, rows and samples the header of one image-codec segment claims (Pillow reads the
    header only); None where Pillow finds none. A JPEG segment may lean on the page's JPEGTables
    (an abbreviated stream): the tables go before it, as libjpeg reads them."""
    if kind == "JPEG" and page.jpegtables is not None and data[:2] == b"\xff\xd8":
        data = bytes(page.jpegtables[:-2]) + bytes(data[2:])  # tables without their EOI, tile without its SOI
    if kind == "JPEG2000":
        start = bytes(data).find(_J2K_CODESTREAM)
        if start < 0:
            return None
        data = data[start:]
    if kind == "WEBP":
        return _webp_size(bytes(data[:30]))
    try:
        with open_lazily(io.BytesIO(data), (kind,)) as image:
            return image.size[0], image.size[1], len(image.getbands())
    except Exception:  # Pillow raises many kinds for a header it cannot parse
        return None


def _webp_size(head: bytes) -> tuple[int, int, int] | None:
    """Columns, rows and samples of a WebP's canvas, from its first chunk's header. Read here, not
    by Pillow: Pillow's open allocates the canvas the header claims (libwebp's animation decoder)."""
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    chunk, body = head[12:16], head[20:]
    if chunk == b"VP8X":  # flags, 3 reserved bytes, then 24-bit width - 1 and height - 1
        size = int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1
        return (*size, 4 if body[0] & 0x10 else 3)
    if chunk == b"VP8L" and body[0] == 0x2F:  # signature, then 14-bit width - 1, height - 1, alpha
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1, 4 if bits >> 28 & 1 else 3
    if chunk == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":  # frame tag, start code, 14-bit width and height
        return int.from_bytes(body[6:8], "little") & 0x3FFF, int.from_bytes(body[8:10], "little") & 0x3FFF, 3
    return None


def _segment_shape(where: str, page) -> Segments:
    _, depth, length, width, samples = (int(n) for n in page.shaped)
    planes = int(page.shaped[0])
    if page.is_tiled:
        kind, rows, columns, deep = "tile", int(page.tilelength), int(page.tilewidth), int(page.tiledepth)
        if min(rows, columns, deep) < 1:
            raise InputError(f"{where}: its tiles are {columns}x{rows}x{deep}; the TIFF specification needs at"
                             f" least 1 on each side; the file is corrupt; re-export it")
    else:
        kind, rows, columns, deep = "strip", int(page.rowsperstrip), width, 1
        if rows < 1:
            raise InputError(f"{where}: RowsPerStrip is {rows}; the TIFF specification (and libtiff) need at least"
                             f" 1; the file is corrupt; re-export it")
    count = planes * math.ceil(depth / deep) * math.ceil(length / rows) * math.ceil(width / columns)
    row_bytes = math.ceil(columns * samples * int(page.bitspersample) / 8)
    return Segments(kind, rows, columns, samples, count, deep * rows * row_bytes, row_bytes)


def _codec_bound(where: str, page, kind: str):
    """The worst case of the page's compression; an InputError for an image codec whose segment
    headers poolcli cannot read (JPEG XL, JPEG XR, LERC, ...): each would decode to whatever size
    its header claims."""
    code = int(page.compression)
    if code in _WORST_CASES:
        return _WORST_CASES[code]
    if code in _HEADERS:
        return _image_codec
    raise InputError(f"{where}: its {kind}s are compressed with {_compression_name(page)}, which decodes to"
                     " whatever size its own header claims, a header poolcli cannot check before decoding;"
                     " re-save it with zlib, zstd, LZW, JPEG, PNG, WebP or JPEG 2000 compression")


def _compression_name(page) -> str:
    compression = page.compression
    return getattr(compression, "name", str(compression)).lower()


# Physical size in TIFF and OME-TIFF. A TIFF's resolution tags give pixels per inch or per
# centimeter; OME-XML gives the physical size of a pixel with a unit symbol. Calibration keeps
# NGFF's unit names; the size of one unit in centimeters converts a unit TIFF tags lack.
_CENTIMETERS = {"meter": 100.0, "centimeter": 1.0, "millimeter": 0.1, "micrometer": 1e-4, "nanometer": 1e-7,
                "inch": 2.54}
_OME_UNITS = {"m": "meter", "cm": "centimeter", "mm": "millimeter", "µm": "micrometer", "\u03bcm": "micrometer",
              "um": "micrometer", "nm": "nanometer", "in": "inch"}
_RESOLUTION_UNITS = {2: "inch", 3: "centimeter"}  # ResolutionUnit tag values (1: none)


def tiff_calibration(tiff, page, axes: tuple[str, ...]) -> Calibration | None:
    """The physical size of `page`'s pixels along the image's `axes` (array order, "y", "x" and
    "c"): an OME-TIFF's PhysicalSizeX/Y (unit µm unless named), else the page's X/YResolution and
    ResolutionUnit (inch or centimeter); None where it says none (or says it unreadably)."""
    sizes = _ome_sizes(tiff) if tiff.is_ome else None
    if sizes is None:
        sizes = _resolution_sizes(page)
    if sizes is None:
        return None
    (y, y_unit), (x, x_unit) = sizes
    known = {"y": (y, y_unit), "x": (x, x_unit)}
    scale = tuple(known.get(axis, (1.0, ""))[0] for axis in axes)
    units = tuple(known.get(axis, (1.0, ""))[1] for axis in axes)
    return Calibration(axes, scale, (0.0,) * len(axes), units)


def _resolution_sizes(page) -> tuple[tuple[float, str], tuple[float, str]] | None:
    unit = _RESOLUTION_UNITS.get(int(page.tags.valueof(296, default=2) or 1))
    x, y = page.tags.valueof(282), page.tags.valueof(283)
    if unit is None or x is None or y is None:
        return None
    try:
        x_size, y_size = x[1] / x[0], y[1] / y[0]
    except (TypeError, IndexError, ZeroDivisionError):
        return None
    if not (math.isfinite(x_size) and math.isfinite(y_size) and x_size > 0 and y_size > 0):
        return None
    return (y_size, unit), (x_size, unit)


def _ome_sizes(tiff) -> tuple[tuple[float, str], tuple[float, str]] | None:
    """PhysicalSizeY and X of the first image's Pixels (None where either is missing or unreadable)."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(tiff.ome_metadata)
        pixels = next(element for element in root.iter() if element.tag.rsplit("}", 1)[-1] == "Pixels")
        sizes = tuple((float(pixels.attrib[f"PhysicalSize{a}"]),
                       _OME_UNITS.get(pixels.attrib.get(f"PhysicalSize{a}Unit", "µm"), "")) for a in "YX")
    except Exception:  # a missing or malformed description: no calibration, as without one
        return None
    if not all(math.isfinite(size) and size > 0 for size, _ in sizes):
        return None
    return sizes[0], sizes[1]


def resolution_keywords(calibration: Calibration | None) -> dict:
    """tifffile's `resolution` and `resolutionunit` for `calibration`'s x and y: pixels per
    centimeter or per inch, as exact fractions of the sizes (a length in another unit is given
    per centimeter); none where it has no length unit on both."""
    sizes = _xy_sizes(calibration)
    if sizes is None:
        return {}
    (x, unit), (y, _) = sizes
    if unit not in ("inch", "centimeter"):
        x, y, unit = x * _CENTIMETERS[unit], y * _CENTIMETERS[unit], "centimeter"
    return dict(resolution=(_rational(1 / x), _rational(1 / y)), resolutionunit=unit.upper())


def ome_sizes(calibration: Calibration | None) -> dict:
    """OME-XML's PhysicalSizeX/Y and their units for `calibration` (none where it has none)."""
    sizes = _xy_sizes(calibration)
    if sizes is None:
        return {}
    symbols = {name: symbol for symbol, name in reversed(_OME_UNITS.items())}
    (x, unit), (y, _) = sizes
    return dict(PhysicalSizeX=x, PhysicalSizeXUnit=symbols[unit], PhysicalSizeY=y, PhysicalSizeYUnit=symbols[unit])


OME_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.btf", ".ome.tf8")  # TIFF names written as OME-TIFF


def is_ome_name(path: Path) -> bool:
    """Whether `path` is named as an OME-TIFF (`.ome.tif`, ...)."""
    return path.name.lower().endswith(OME_SUFFIXES)


def ome_metadata(shape: tuple[int, ...], planar: bool, calibration: Calibration | None) -> dict:
    """tifffile's `metadata` of an OME-TIFF image of `shape`: H x W, H x W x 3|4 (interleaved
    samples), or C x H x W (`planar`: one page per channel): the axes (DimensionOrder), the
    channel names and the physical size of a pixel."""
    if planar:
        axes, names = "CYX", [f"Channel {c}" for c in range(shape[0])]
    elif len(shape) == 3 and shape[2] > 1:
        axes, names = "YXS", ["RGB" if shape[2] in (3, 4) else "Gray"]
    else:
        axes, names = "YX", ["Gray"]
    return dict(axes=axes, Channel={"Name": names}, **ome_sizes(calibration))


def _xy_sizes(calibration: Calibration | None) -> tuple[tuple[float, str], tuple[float, str]] | None:
    """x's and y's size and unit, where both are positive, finite and in one length unit TIFF can express."""
    if calibration is None or "x" not in calibration.axes or "y" not in calibration.axes:
        return None
    x, y = calibration.axes.index("x"), calibration.axes.index("y")
    unit, sizes = calibration.units[x], (calibration.scale[x], calibration.scale[y])
    if unit not in _CENTIMETERS or calibration.units[y] != unit or not all(0 < s < math.inf for s in sizes):
        return None
    return (sizes[0], unit), (sizes[1], unit)


def _rational(value: float) -> tuple[int, int]:
    """`value` (finite, > 0) as a TIFF RATIONAL, the nearest simple fraction of 32-bit terms (values
    beyond them clamped): 40000 / 2 ** k stays exact, and so does a resolution read from a TIFF and
    divided by 2 ** k."""
    top = (1 << 32) - 1
    value = min(max(value, 1 / top), float(top))
    simple = 1 << 16 if value >= 1 / (1 << 8) else top  # small values need large denominators
    fraction = Fraction(value).limit_denominator(max(1, int(min(top / value, simple))))
    return (fraction.numerator, fraction.denominator) if fraction.numerator else (1, top)


# Compression of TIFF outputs. Deflate (zlib) with the horizontal predictor, at level 1, is the
# default: libtiff (and so OpenCV, Pillow, GDAL, libvips), Bio-Formats and ImageJ all decode it,
# unlike ZSTD. `python benchmarks/tiff_compression.py` (photo-like RGB and microscopy-like 16-bit
# planes) measured it as small as ZSTD with the predictor (within 4 %) and 1.2-1.4x smaller than
# ZSTD without it (the former default), 10 % smaller than LZW with the predictor, and within 4 %
# of deflate's default level 6 at a fifth to a half of its write time (about 1.5x ZSTD's).
# Floats take no predictor (the floating-point predictor is not decoded everywhere).
TIFF_COMPRESSIONS = ("zlib", "zstd", "none")  # the default first; TIFF has no LZ4
_TIFF_LEVELS = {"zlib": 1}


def compression_keywords(compression: str | None, dtype) -> dict:
    """tifffile's keywords for `compression` (None: the default) of samples of `dtype`."""
    name = TIFF_COMPRESSIONS[0] if compression is None else compression
    if name == "none":
        return dict(compression=None)
    keywords: dict = dict(compression=name, predictor=dtype.kind in "iu")
    if name in _TIFF_LEVELS:
        keywords["compressionargs"] = {"level": _TIFF_LEVELS[name]}
    return keywords


_MOST_LEVELS = 64  # sub-IFDs `info` lists at most (a forged table may name millions)


def tiff_levels(path: Path) -> list[dict]:
    """The levels of a pyramidal TIFF's first page (itself and its reduced-resolution sub-IFDs, the
    first 64): shape, axes, the size of a pixel (y, x) and its unit (from the level's resolution
    tags, or an OME-TIFF's PhysicalSize scaled to the level), and compression; an empty list for a
    TIFF without sub-IFDs (or whose sub-IFDs cannot be read). Only page 0 and its sub-IFDs are
    read, never the chain of pages (which may be endless)."""
    import tifffile

    try:
        with quiet_decoders(), tifffile.TiffFile(path) as tiff:
            first: Any = tiff.pages.first
            if not first.subifds:
                return []
            reduced = tifffile.TiffPages(first)
            pages = [first] + [reduced[i] for i in range(min(len(first.subifds), _MOST_LEVELS))]
            ome = _ome_sizes(tiff) if tiff.is_ome else None
            width = int(first.imagewidth)
            return [_level_row(page, ome, width / max(1, int(page.imagewidth))) for page in pages]
    except Exception:  # sub-IFDs tifffile cannot read: described as one level, as `load` reads page 0
        return []


def _level_row(page, ome, factor: float) -> dict:
    sizes = _resolution_sizes(page)
    if sizes is None and ome is not None:
        sizes = ((ome[0][0] * factor, ome[0][1]), (ome[1][0] * factor, ome[1][1]))
    return dict(shape=[int(n) for n in page.shape], axes=page.axes, compression=_compression_name(page),
                pixel_size=None if sizes is None else [sizes[0][0], sizes[1][0]],
                unit=None if sizes is None else sizes[1][1])
