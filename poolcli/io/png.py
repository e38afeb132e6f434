"""PNG chunks read directly: plain headers, the ICC profile, IDAT data bounded by the header's size, completeness."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .metadata import ImageMetadata, png_dpi

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_PLAIN_PNG_MODES = {0: "L", 2: "RGB", 6: "RGBA"}  # 8-bit colour types without a palette

_PNG_ROTATION_KEYWORDS = (b"Raw profile type exif", b"XML:com.adobe.xmp")  # where Pillow finds orientation


@dataclass(frozen=True)
class PlainHeader:
    format: str
    mode: str  # L, RGB or RGBA: what Pillow reports, one letter per channel
    size: tuple[int, int]  # width, height
    icc: bytes | None
    metadata: ImageMetadata | None = None  # the resolution of a PNG; EXIF, XMP and resolution of a JPEG


MAX_ICC_BYTES = 1 << 20

"""Largest ICC profile read from a PNG: Pillow's limit for compressed PNG chunks (1 MiB)."""


def plain_png(path: Path, data: np.ndarray) -> PlainHeader | None:
    """The header of a complete, 8-bit L, RGB or RGBA PNG without transparency chunk, animation
    or anything Pillow could read an orientation from; found by walking every chunk."""
    raw = data.data  # the bytes as a memoryview
    if bytes(raw[:8]) != _PNG_SIGNATURE:
        return None
    position, mode, size, icc, dpi = 8, None, (0, 0), None, None
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
        elif kind == b"pHYs":
            dpi = png_dpi(bytes(raw[body:body + length]))
        elif kind == b"iCCP":
            icc = _png_icc(path, bytes(raw[body:body + length]))
            if icc is None:
                return None
        elif kind == b"IEND":
            return None if mode is None else PlainHeader("PNG", mode, size, icc, dpi and ImageMetadata(dpi=dpi))
        position = body + length + 4
    return None  # no IEND: truncated


_DEFLATE_MOST = 1032  # deflate inflates one byte to at most this many
BOMB_SLACK = 128 << 20
"""Image data that cannot inflate past 4x the header's size plus this is decoded unchecked: at
worst libpng inflates that much more in vain (about 0.3 s, memory streamed). Small PNGs (a
dataset's, up to about 130 KB of data: 320x320 RGB noise) are then inflated once, by the
decoder, not twice."""


def check_png_data(path: Path, data: np.ndarray) -> None:
    """Refuse a PNG whose image data inflates to more than its header's size needs (libpng
    inflates it all): checked by inflating at most that much, and only where the compressed
    data could inflate to more than a few times that."""
    header, compressed = _png_image_data(data)
    if header is None:
        return  # not a PNG with a readable header: the decoders say what is wrong
    width, height, depth, colour = header
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 4)
    needed = height * (1 + (width * channels * depth + 7) // 8)  # a filter byte per row
    if _DEFLATE_MOST * sum(len(part) for part in compressed) <= 4 * needed + BOMB_SLACK:
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


def png_is_complete(data: np.ndarray) -> bool:
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

