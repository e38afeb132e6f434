"""What a photo carries beside its pixels: EXIF, XMP and its resolution (the ICC profile travels on
its own, as `Loaded.icc_profile`), read from a Pillow image and written into the bytes of an output.

The rules (README, "Metadata"): EXIF and XMP are kept as they are, but the orientation, which
poolcli applies to the pixels when it reads them, is reset to 1 (top-left) in both; the
resolution follows the pixels' pitch, so the physical size stays the same: an axis pooled with
stride s has s times fewer pixels per inch (300 dpi pooled by 2 -> 150 dpi), in the JFIF or pHYs
header and in EXIF's XResolution and YResolution alike.

PNG and JPEG outputs get the metadata spliced into the encoder's bytes (whichever encoder made
them, OpenCV or Pillow, so `pool` and `batch` write the same file): PNG as pHYs, eXIf and an
``XML:com.adobe.xmp`` iTXt chunk after IHDR; JPEG as JFIF density and APP1 EXIF and XMP
segments after APP0 (each at most one segment, 64 KB; larger ones are left out, as Pillow
does). Pillow writes them into WebP (EXIF and XMP; WebP has no resolution), TIFF (EXIF and
resolution; no XMP) and BMP (resolution); GIF keeps none. TIFF outputs that tifffile writes
(16-bit colour with a profile or a resolution) get the resolution.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, replace

from PIL import Image

_EXIF_HEADER = b"Exif\0\0"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\0"
_ORIENTATION, _X_RESOLUTION, _Y_RESOLUTION, _RESOLUTION_UNIT = 0x0112, 0x011A, 0x011B, 0x0128
_SHORT, _RATIONAL = 3, 5
_SEGMENT_MOST = 65533  # a JPEG segment's payload, less its two length bytes
_XMP_ORIENTATION = re.compile(rb'(tiff:Orientation(?:="|>))([0-9])')


@dataclass(frozen=True)
class ImageMetadata:
    """An image's EXIF (the TIFF structure, without the ``Exif\\0\\0`` header), XMP packet and
    resolution in pixels per inch (x, y); None where the file has none.

    >>> ImageMetadata(dpi=(300.0, 300.0)).pooled(stride_x=2, stride_y=3).dpi
    (150.0, 100.0)
    """

    exif: bytes | None = None
    xmp: bytes | None = None
    dpi: tuple[float, float] | None = None

    def __bool__(self) -> bool:
        return any(value is not None for value in (self.exif, self.xmp, self.dpi))

    def kept_by(self, carried: tuple[str, ...]) -> ImageMetadata:
        """What a format that carries ``carried`` (its record's ``metadata``) keeps of this."""
        return ImageMetadata(self.exif if "exif" in carried else None, self.xmp if "xmp" in carried else None,
                             self.dpi if "resolution" in carried else None)

    def pooled(self, stride_x: int, stride_y: int) -> ImageMetadata:
        """The metadata of the image pooled with these strides: fewer pixels per inch, the same size."""
        dpi = None if self.dpi is None else (self.dpi[0] / stride_x, self.dpi[1] / stride_y)
        exif = None if self.exif is None else _exif_resolution_divided(self.exif, stride_x, stride_y)
        return replace(self, dpi=dpi, exif=exif)


def read_metadata(image: Image.Image) -> ImageMetadata | None:
    """The EXIF, XMP and resolution of an opened Pillow image, orientation reset to 1; None if it has none."""
    info = image.info
    exif = info.get("exif")
    if isinstance(exif, bytes):
        exif = exif.removeprefix(_EXIF_HEADER)
    elif image.format == "TIFF" and image.getexif():  # TIFF's EXIF tags are its own
        exif = image.getexif().tobytes().removeprefix(_EXIF_HEADER)
    if not (isinstance(exif, bytes) and exif[:4] in (b"II*\0", b"MM\0*")):
        exif = None
    xmp = info.get("xmp", info.get("XML:com.adobe.xmp"))
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if not isinstance(xmp, bytes) or not xmp:
        xmp = None
    metadata = ImageMetadata(None if exif is None else _exif_upright(exif),
                             None if xmp is None else _XMP_ORIENTATION.sub(rb"\g<1>1", xmp),
                             _dpi(info.get("dpi"), per_metre=image.format in ("PNG", "BMP")))
    return metadata or None


def _dpi(value: object, *, per_metre: bool = False) -> tuple[float, float] | None:
    """Pillow's ``info["dpi"]`` as two positive floats, or None; ``per_metre``: the file stores
    whole pixels per metre (PNG, BMP), so 300 dpi reads 299.9994 and is taken as 300."""
    try:
        x, y = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    if per_metre:
        x, y = (float(round(v)) if round(round(v) / 0.0254) == round(v / 0.0254) else v for v in (x, y))
    return (x, y) if x > 0 and y > 0 else None


def png_dpi(body: bytes) -> tuple[float, float] | None:
    """The resolution of a pHYs chunk's body (pixels per metre), or None when its unit is unknown."""
    if len(body) != 9 or body[8] != 1:
        return None
    x, y = struct.unpack(">II", body[:8])
    return _dpi((x * 0.0254, y * 0.0254), per_metre=True)


# ------------------------------------------------------------------ EXIF, patched in place


def _ifd0(exif: bytes) -> tuple[str, dict[int, tuple[int, int, int]]] | None:
    """The byte order and the entries of IFD0 (tag -> (type, count, where its value field is))."""
    if len(exif) < 8 or exif[:4] not in (b"II*\0", b"MM\0*"):
        return None
    order = "<" if exif[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(order + "I", exif, 4)
    if offset + 2 > len(exif):
        return None
    (count,) = struct.unpack_from(order + "H", exif, offset)
    entries = {}
    for at in range(offset + 2, min(offset + 2 + 12 * count, len(exif) - 11), 12):
        tag, kind, number = struct.unpack_from(order + "HHI", exif, at)
        entries[tag] = (kind, number, at + 8)
    return order, entries


def _exif_upright(exif: bytes) -> bytes:
    """EXIF with its orientation set to 1: the pixels were turned when they were read."""
    found = _ifd0(exif)
    if found is None or found[1].get(_ORIENTATION, (0, 0, 0))[:2] != (_SHORT, 1):
        return exif
    order, entries = found
    patched = bytearray(exif)
    struct.pack_into(order + "H", patched, entries[_ORIENTATION][2], 1)
    return bytes(patched)


def _exif_resolution_divided(exif: bytes, stride_x: int, stride_y: int) -> bytes:
    """EXIF with XResolution and YResolution divided by the strides (the denominators multiplied)."""
    found = _ifd0(exif)
    if found is None:
        return exif
    order, entries = found
    patched = bytearray(exif)
    for tag, stride in ((_X_RESOLUTION, stride_x), (_Y_RESOLUTION, stride_y)):
        kind, number, field = entries.get(tag, (0, 0, 0))
        if (kind, number) != (_RATIONAL, 1) or stride == 1:
            continue
        (where,) = struct.unpack_from(order + "I", exif, field)
        if where + 8 > len(exif):
            continue
        numerator, denominator = struct.unpack_from(order + "II", exif, where)
        if denominator * stride <= 0xFFFFFFFF:
            denominator *= stride
        else:
            numerator = max(round(numerator / stride), 1)
        struct.pack_into(order + "II", patched, where, numerator, denominator)
    return bytes(patched)


# ------------------------------------------------------------------ into the encoders' bytes


def with_jpeg_metadata(data: bytes, metadata: ImageMetadata) -> bytes:
    """``data`` (a JPEG that starts with a JFIF APP0 segment) with the resolution in its JFIF
    density and APP1 EXIF and XMP segments after APP0."""
    if data[2:4] != b"\xff\xe0" or data[6:11] != b"JFIF\0":
        return data
    end = 4 + struct.unpack(">H", data[4:6])[0]
    head = bytearray(data[:end])
    if metadata.dpi is not None:
        x, y = (min(max(round(v), 1), 0xFFFF) for v in metadata.dpi)
        head[13:18] = struct.pack(">BHH", 1, x, y)  # units: dots per inch
    segments = b""
    for header, payload in ((_EXIF_HEADER, metadata.exif), (_XMP_HEADER, metadata.xmp)):
        if payload is not None and len(header) + len(payload) <= _SEGMENT_MOST:
            segments += b"\xff\xe1" + struct.pack(">H", 2 + len(header) + len(payload)) + header + payload
    return bytes(head) + segments + data[end:]


def with_png_metadata(data: bytes, metadata: ImageMetadata) -> bytes:
    """``data`` (a PNG) with pHYs, eXIf and XMP iTXt chunks right after IHDR."""
    chunks = b""
    if metadata.dpi is not None:
        x, y = (max(round(v / 0.0254), 1) for v in metadata.dpi)
        chunks += png_chunk(b"pHYs", struct.pack(">IIB", x, y, 1))
    if metadata.exif is not None:
        chunks += png_chunk(b"eXIf", metadata.exif)
    if metadata.xmp is not None:  # keyword, no compression, no language, no translated keyword
        chunks += png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + metadata.xmp)
    at = 8 + 8 + 13 + 4  # signature, IHDR length and type, IHDR data, CRC
    return data[:at] + chunks + data[at:]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body, CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def pillow_options(metadata: ImageMetadata) -> dict[str, object]:
    """The keywords of Pillow's ``save`` that carry ``metadata`` (already cut to what the format keeps)."""
    options: dict[str, object] = {}
    if metadata.dpi is not None:
        options["dpi"] = metadata.dpi
    if metadata.exif is not None:
        options["exif"] = _EXIF_HEADER + metadata.exif
    if metadata.xmp is not None:
        options["xmp"] = metadata.xmp
    return options
