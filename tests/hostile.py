"""Generators of small hostile input files for poolcli, built at test time.

Every generator takes a folder, writes one file there and returns its path. The files are
small on disk (a few MB at most; the 300,000-page TIFF, about 13 MB, is the largest) but
each attacks one weakness of a decoder or of the command line: decompression bombs,
headers that lie about sizes, decoder-exhaustion files, corrupt or cut data, and file
names that can break one-line error messages. The compressed bombs are built in
milliseconds without ever holding their inflated data: one compressed block of zeros is
repeated (deflate after a full flush, bzip2 block by block), so equal input gives equal
output. Only the LZMA bomb is compressed for real (about 1 s for its 400 MB).

``tests/test_hostile.py`` runs poolcli on them (:func:`run` starts a real ``python -m poolcli``
under a memory cap and a wall limit and measures it); ``python tests/hostile.py FOLDER`` writes
the whole corpus into FOLDER for a look by hand.
"""

from __future__ import annotations

import bz2
import contextlib
import io
import lzma
import os
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
_BLOCK = MiB  # the unit of zeros the deflate bombs repeat


# ------------------------------------------------------------------ compressed zeros


def deflate_zeros(count: int, *, prefix: bytes = b"", wrapper: str = "raw") -> bytes:
    """A deflate stream of ``prefix`` then ``count`` zero bytes; ``wrapper`` "raw" (zip) or
    "zlib" (PNG chunks). About 1 KB per MiB of zeros, the best deflate can do."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 15 if wrapper == "zlib" else -15, 9)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(_BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(bytes(_BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == again, "a full flush no longer resets zlib's state"
    whole, rest = divmod(count, _BLOCK)
    tail = compressor.compress(bytes(rest)) + compressor.flush(zlib.Z_FULL_FLUSH) if rest else b""
    stream = head + block * whole + tail + b"\x03\x00"  # an empty final fixed-Huffman block
    if wrapper == "zlib":  # Adler-32 after `count` zeros: a stays, b grows by count * a
        adler = zlib.adler32(prefix)
        a, b = adler & 0xFFFF, adler >> 16
        stream += struct.pack(">I", (((b + (count % 65521) * a) % 65521) << 16) | a)
    return stream


def bzip2_zeros(count: int, *, prefix: bytes = b"") -> bytes:
    """A one-stream bzip2 file of ``prefix`` then ``count`` zeros, built block by block.

    bzip2 blocks are bit-aligned: each is cut out of a one-block stream and the blocks are
    joined bit by bit, with the stream CRC combined as bzip2 does (rotate left 1, xor)."""
    per_block = 32 * MiB  # ~660 KB after bzip2's first run-length pass: one 900k block
    first = min(count, per_block - len(prefix))
    pieces = [(prefix + bytes(first), 1)]
    whole, rest = divmod(count - first, per_block)
    if whole:
        pieces.append((bytes(per_block), whole))
    if rest:
        pieces.append((bytes(rest), 1))
    bits, length, combined = 0, 0, 0
    for data, repeat in pieces:
        block, block_bits, block_crc = _bzip2_block(data)
        for _ in range(repeat):
            bits, length = (bits << block_bits) | block, length + block_bits
            combined = (((combined << 1) | (combined >> 31)) & 0xFFFFFFFF) ^ block_crc
    bits, length = (bits << 48) | 0x177245385090, length + 48  # end of stream
    bits, length = (bits << 32) | combined, length + 32
    pad = -length % 8
    return b"BZh9" + (bits << pad).to_bytes((length + pad) // 8, "big")


def _bzip2_block(data: bytes) -> tuple[int, int, int]:
    """(bits, bit count, CRC) of the single block that bzip2 makes of ``data``."""
    stream = bz2.compress(data, 9)
    total = len(stream) * 8
    value = int.from_bytes(stream, "big")
    for pad in range(8):  # the stream ends: block, end magic (48 bits), CRC (32 bits), 0-7 pad bits
        end = total - pad - 80
        if (value >> (total - end - 48)) & ((1 << 48) - 1) == 0x177245385090:
            block_bits = end - 32
            block = (value >> (total - end)) & ((1 << block_bits) - 1)
            crc = (block >> (block_bits - 80)) & 0xFFFFFFFF  # after the 48-bit block magic
            if crc == (value >> (total - end - 80)) & 0xFFFFFFFF:  # one block: stream CRC = block CRC
                return block, block_bits, crc
    raise AssertionError("bz2.compress made more than one block")


def lzma_zeros(count: int, *, prefix: bytes = b"") -> bytes:
    """A zip LZMA member (version, properties, raw LZMA1 with end marker) of prefix + zeros."""
    options = {"id": lzma.FILTER_LZMA1, "preset": 0}
    properties = lzma._encode_filter_properties(options)
    compressor = lzma.LZMACompressor(lzma.FORMAT_RAW, filters=[options])
    parts = [struct.pack("<BBH", 9, 4, len(properties)), properties, compressor.compress(prefix)]
    chunk = bytes(16 * MiB)
    whole, rest = divmod(count, len(chunk))
    parts += [compressor.compress(chunk) for _ in range(whole)]
    parts += [compressor.compress(bytes(rest)), compressor.flush()]
    return b"".join(parts)


def crc32_zeros(count: int, *, prefix: bytes = b"") -> int:
    crc, chunk = zlib.crc32(prefix), bytes(64 * MiB)
    whole, rest = divmod(count, len(chunk))
    for _ in range(whole):
        crc = zlib.crc32(chunk, crc)
    return zlib.crc32(bytes(rest), crc)


# ------------------------------------------------------------------ containers


def write_zip(path: Path, members: list[tuple[str, int, bytes, int, int]]) -> Path:
    """A zip of (name, method, compressed data, CRC-32, inflated size) members, written by
    hand: zipfile cannot store data that is already compressed."""
    versions = {0: 10, 8: 20, 12: 46, 14: 63}  # the zip version each method needs
    local, central = bytearray(), bytearray()
    for name, method, data, crc, size in members:
        raw = name.encode()
        flags = 0x02 if method == 14 else 0  # LZMA: an end-of-stream marker is present
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, versions[method], flags, method, 0, 0x21,
                             crc, len(data), size, len(raw), 0) + raw + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, versions[method], versions[method], flags,
                               method, 0, 0x21, crc, len(data), size, len(raw), 0, 0, 0, 0, 0o644 << 16,
                               offset) + raw
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path


def npy_header(shape: tuple[int, ...], dtype: str = "|u1") -> bytes:
    """The magic and header of a version 1.0 .npy file for ``shape`` and ``dtype``."""
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    text += " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_file(width: int, height: int, idat: bytes, *, extra: tuple[bytes, ...] = (), colour: int = 0) -> bytes:
    """An 8-bit PNG (gray by default) with ``extra`` chunks between IHDR and IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + b"".join(extra)
            + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


def gray_png_rows(width: int, height: int) -> bytes:
    """The zlib data of a black gray image: filter byte 0 and zeros for each row."""
    return zlib.compress(bytes((width + 1) * height))


def noise(shape: tuple[int, ...], seed: int = 0, dtype=np.uint8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape).astype(dtype)


def encoded(array: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


# ------------------------------------------------------------------ PNG


def png_iccp_bomb(folder: Path) -> Path:
    """PNG whose iCCP profile inflates to 2 GiB (2 MB on disk; every chunk CRC valid): unbounded zlib.decompress."""
    body = b"ICC Profile\0\0" + deflate_zeros(2 * GiB, wrapper="zlib")
    path = folder / "iccp_bomb.png"
    path.write_bytes(png_file(8, 8, gray_png_rows(8, 8), extra=(png_chunk(b"iCCP", body),)))
    return path


def png_ztxt_bomb(folder: Path) -> Path:
    """PNG with a zTXt comment that inflates to 1 GiB: text-chunk bomb."""
    body = b"Comment\0\0" + deflate_zeros(GiB, wrapper="zlib")
    path = folder / "ztxt_bomb.png"
    path.write_bytes(png_file(8, 8, gray_png_rows(8, 8), extra=(png_chunk(b"zTXt", body),)))
    return path


def png_itxt_bomb(folder: Path) -> Path:
    """PNG with a compressed iTXt (XMP keyword, which Pillow parses for orientation) inflating to 1 GiB."""
    body = b"XML:com.adobe.xmp\0\1\0\0\0" + deflate_zeros(GiB, wrapper="zlib")
    path = folder / "itxt_bomb.png"
    path.write_bytes(png_file(8, 8, gray_png_rows(8, 8), extra=(png_chunk(b"iTXt", body),)))
    return path


def png_huge_dimensions(folder: Path) -> Path:
    """PNG whose IHDR claims 100000x100000 pixels over a few bytes of data: allocation from the header."""
    path = folder / "huge_dimensions.png"
    path.write_bytes(png_file(100_000, 100_000, gray_png_rows(16, 16)))
    return path


def png_idat_bomb(folder: Path) -> Path:
    """64x64 PNG whose IDAT inflates to 2 GiB, far beyond the 4 KB the header needs: inflate-to-the-end loops."""
    path = folder / "idat_bomb.png"
    path.write_bytes(png_file(64, 64, deflate_zeros(2 * GiB, wrapper="zlib")))
    return path


def png_truncated(folder: Path) -> Path:
    """A real 128x128 RGB PNG cut at 60% of its bytes, in the middle of IDAT: partial decode."""
    data = encoded(noise((128, 128, 3), 1), "PNG")
    path = folder / "truncated.png"
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def zero_byte_png(folder: Path) -> Path:
    """An empty file named .png: nothing for any decoder to read."""
    path = folder / "empty.png"
    path.write_bytes(b"")
    return path


# ------------------------------------------------------------------ .npy and .npz


def _npz_bomb(folder: Path, name: str, method: int, shape: tuple[int, ...]) -> Path:
    header = npy_header(shape)
    size = int(np.prod(shape))
    if method == 8:
        data = deflate_zeros(size, prefix=header)
    elif method == 12:
        data = bzip2_zeros(size, prefix=header)
    else:
        data = lzma_zeros(size, prefix=header)
    crc = crc32_zeros(size, prefix=header)
    return write_zip(folder / name, [("bomb.npy", method, data, crc, len(header) + size)])


def npz_bomb_deflate(folder: Path) -> Path:
    """.npz whose deflated member is a (2, 32768, 32768) uint8 array of zeros, 2 GiB from 2 MB: zip bomb."""
    return _npz_bomb(folder, "bomb_deflate.npz", 8, (2, 32768, 32768))


def npz_bomb_bzip2(folder: Path) -> Path:
    """.npz whose bzip2 member inflates to a 2 GiB array of zeros from about 10 KB: zip bomb."""
    return _npz_bomb(folder, "bomb_bzip2.npz", 12, (2, 32768, 32768))


def npz_bomb_lzma(folder: Path) -> Path:
    """.npz whose LZMA member inflates to a (1, 20000, 20000) uint8 array (400 MB) from 60 KB: zip bomb
    (smaller than the others: LZMA cannot be built by repetition and compresses at ~400 MB/s)."""
    return _npz_bomb(folder, "bomb_lzma.npz", 14, (1, 20000, 20000))


def npz_bomb_under_cap(folder: Path) -> Path:
    """.npz whose deflated member inflates to 576 MiB: fits the tests' memory cap, so only a size
    check (not a failed allocation) keeps the process small."""
    return _npz_bomb(folder, "bomb_576mib.npz", 8, (1, 24576, 24576))


def npz_shape_lie(folder: Path) -> Path:
    """.npz member whose header claims a (65536, 65536) float64 array (32 GiB) but holds 16 bytes."""
    data = npy_header((65536, 65536), "<f8") + bytes(16)
    path = folder / "shape_lie.npz"
    return write_zip(path, [("lie.npy", 0, data, zlib.crc32(data), len(data))])


def npz_shape_lie_deflated(folder: Path) -> Path:
    """Deflated .npz member claiming (16384, 16384) float32 (1 GiB) that inflates to 64 bytes."""
    data = npy_header((16384, 16384), "<f4") + bytes(64)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = compressor.compress(data) + compressor.flush()
    path = folder / "shape_lie_deflated.npz"
    return write_zip(path, [("lie.npy", 8, packed, zlib.crc32(data), len(data))])


def npy_shape_lie(folder: Path) -> Path:
    """.npy whose header claims (100000, 100000) float32 (40 GB) in a file of a few hundred bytes."""
    path = folder / "shape_lie.npy"
    path.write_bytes(npy_header((100_000, 100_000), "<f4") + bytes(256))
    return path


def npy_shape_overflow(folder: Path) -> Path:
    """.npy whose header shape (2**32, 2**32, 2**32) float32 overflows int64 (NumPy's memmap warns
    "overflow encountered in scalar multiply" on it)."""
    path = folder / "shape_overflow.npy"
    path.write_bytes(npy_header((2**32,) * 3, "<f4") + bytes(16))
    return path


def npy_negative_shape(folder: Path) -> Path:
    """.npy whose header declares a negative length, (-1, 4) uint8."""
    path = folder / "negative_shape.npy"
    path.write_bytes(npy_header((-1, 4)) + bytes(16))
    return path


def npz_shape_overflow(folder: Path) -> Path:
    """.npz member whose header shape (2**40, 2**40) float64 overflows int64."""
    data = npy_header((2**40, 2**40), "<f8") + bytes(16)
    path = folder / "shape_overflow.npz"
    return write_zip(path, [("huge.npy", 0, data, zlib.crc32(data), len(data))])


def npy_pickle(folder: Path) -> Path:
    """.npy of an object array (a pickle): loading it with allow_pickle would run code."""
    path = folder / "pickled.npy"
    np.save(path, np.array([{"a": 1}, None, "text"], dtype=object), allow_pickle=True)
    return path


def npy_big_endian(folder: Path, dtype: str = ">f4") -> Path:
    """A valid big-endian (4, 33, 37) array: must pool exactly like the same values in native order."""
    values = np.random.default_rng(5).integers(-1000, 1000, size=(4, 33, 37))
    path = folder / f"big_endian_{dtype[1:]}.npy"
    np.save(path, values.astype(dtype))
    return path


def npy_extremes(folder: Path, dtype: str = "int64") -> Path:
    """(2, 6, 6) array of the dtype's extremes (int64/uint64 maxima and minima, 0, -1): overflow in sums,
    squares and integer means."""
    info = np.iinfo(dtype)
    values = [info.max, info.min, 0, info.max - 1] if info.min == 0 else [info.max, info.min, -1, 0]
    pattern = np.array(values, dtype=dtype)
    array = np.empty((2, 6, 6), dtype=dtype)
    array[0] = info.max  # a plane of maxima: every window sums to 4 * max
    array[1] = np.resize(pattern, (6, 6))
    path = folder / f"extremes_{dtype}.npy"
    np.save(path, array)
    return path


# ------------------------------------------------------------------ TIFF


def _ifd(entries: list[tuple[int, int, int, int]], next_offset: int) -> bytes:
    """A little-endian classic TIFF IFD of (tag, type, count, value) entries, sorted by tag."""
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in sorted(entries):
        body += struct.pack("<HHII", tag, kind, count, value)
    return body + struct.pack("<I", next_offset)


def tiff_many_pages(folder: Path, pages: int = 300_000) -> Path:
    """TIFF of 300,000 2x2 bilevel pages (IFDs of 4 entries sharing one strip, 16 MB): page counting in
    quadratic time (Pillow's n_frames) or any per-page work."""
    pixels_at, first = 8, 10  # header, two bytes of pixels (one per row), then the IFDs
    size = 2 + 4 * 12 + 4
    parts = [b"II*\0" + struct.pack("<I", first), b"\x80\x40"]
    for page in range(pages):
        following = first + (page + 1) * size if page + 1 < pages else 0
        parts.append(_ifd([(256, 3, 1, 2), (257, 3, 1, 2), (273, 4, 1, pixels_at), (279, 4, 1, 2)], following))
    path = folder / "many_pages.tif"
    path.write_bytes(b"".join(parts))
    return path


def tiff_ifd_loop(folder: Path) -> Path:
    """8-bit gray TIFF of three 4x4 pages whose last IFD points back to the first: an endless page walk."""
    pixels_at, first = 8, 8 + 16
    size = 2 + 6 * 12 + 4
    offsets = [first + page * size for page in range(3)]
    parts = [b"II*\0" + struct.pack("<I", first), bytes(range(0, 256, 16))]
    for page in range(3):
        following = offsets[(page + 1) % 3]  # page 3 -> page 1
        parts.append(_ifd([(256, 3, 1, 4), (257, 3, 1, 4), (258, 3, 1, 8), (262, 3, 1, 1),
                           (273, 4, 1, pixels_at), (279, 4, 1, 16)], following))
    path = folder / "ifd_loop.tif"
    path.write_bytes(b"".join(parts))
    return path


def tiff_float64(width: int, height: int, seed: int = 0, *, next_to_first: bool = False) -> bytes:
    """A float64 gray TIFF of two pages (Pillow cannot read it: OpenCV's libtiff does), written by hand;
    with ``next_to_first`` the second IFD points back to the first."""
    pixels = [np.random.default_rng(seed + page).random((height, width)).astype("<f8").tobytes() for page in (0, 1)]
    size = 2 + 10 * 12 + 4
    first = 8 + 2 * len(pixels[0])
    parts = [b"II*\0" + struct.pack("<I", first), *pixels]
    for page in (0, 1):
        following = first + size if page == 0 else (first if next_to_first else 0)
        parts.append(_ifd([(256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, 64), (259, 3, 1, 1),
                           (262, 3, 1, 1), (273, 4, 1, 8 + page * len(pixels[0])), (277, 3, 1, 1),
                           (278, 3, 1, height), (279, 4, 1, len(pixels[0])), (339, 3, 1, 3)], following))
    return b"".join(parts)


def tiff_ifd_loop_float64(folder: Path) -> Path:
    """float64 TIFF (Pillow cannot read it: OpenCV's libtiff does) whose second IFD points back to the first:
    page walks and libtiff's own 'IFD looping' chatter."""
    path = folder / "ifd_loop_float64.tif"
    path.write_bytes(tiff_float64(8, 8, next_to_first=True))
    return path


# ------------------------------------------------------------------ JPEG


def jpeg_many_scans(folder: Path, scans: int = 40_000) -> Path:
    """Progressive 2048x2048 JPEG (Pillow's) with 40,000 empty DC scans inserted before EOI (~400 KB):
    every scan is a pass over all 65,536 blocks, minutes of decoding."""
    data = encoded(np.full((2048, 2048), 128, np.uint8), "JPEG", progressive=True, quality=75)
    component = _jpeg_first_component(data)
    scan = b"\xff\xda" + struct.pack(">HB", 8, 1) + bytes((component, 0x00, 0, 0, 0))
    assert data.endswith(b"\xff\xd9")
    path = folder / "many_scans.jpg"
    path.write_bytes(data[:-2] + scan * scans + b"\xff\xd9")
    return path


def _jpeg_first_component(data: bytes) -> int:
    at = 2
    while at < len(data):
        marker, length = data[at + 1], struct.unpack_from(">H", data, at + 2)[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return data[at + 4 + 6]  # precision, height, width, count, then the first component id
        at += 2 + length
    raise AssertionError("no SOF marker")


def jpeg_cut_with_eoi(folder: Path) -> Path:
    """Baseline 256x256 photo-like JPEG cut in the middle of its scan and closed with EOI (FF D9):
    libjpeg pads the rest with gray and only warns."""
    data = encoded(noise((256, 256, 3), 2), "JPEG", quality=90)
    path = folder / "cut_eoi.jpg"
    path.write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    return path


def jpeg_garbage_middle(folder: Path) -> Path:
    """Baseline JPEG whose middle 2 KB of entropy-coded data are random bytes: corrupt-data warnings."""
    data = bytearray(encoded(noise((256, 256, 3), 3), "JPEG", quality=90))
    middle = len(data) // 2
    data[middle: middle + 2048] = np.random.default_rng(4).integers(0, 256, 2048, dtype=np.uint8).tobytes()
    path = folder / "garbage_middle.jpg"
    path.write_bytes(bytes(data))
    return path


# ------------------------------------------------------------------ GIF and WebP


_GIF_FRAME = (b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0)  # image descriptor: 1x1 at (0, 0)
              + b"\x02\x02\x44\x01\x00")  # LZW minimum code size 2; clear, pixel 0, end; block end


def _gif(width: int, height: int, frames: int) -> bytes:
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    return head + _GIF_FRAME * frames + b"\x3b"


def gif_huge_screen(folder: Path) -> Path:
    """GIF whose logical screen is 65535x65535 (4.3 G pixels) around one 1x1 frame: canvas allocation."""
    path = folder / "huge_screen.gif"
    path.write_bytes(_gif(65535, 65535, 1))
    return path


def gif_many_frames(folder: Path, frames: int = 100_000) -> Path:
    """A 4x4 GIF (Pillow's) followed by 100,000 1x1 frames (1.5 MB): frame counting or per-frame work."""
    first = encoded(noise((4, 4), 6), "GIF")
    assert first.endswith(b"\x3b")
    path = folder / "many_frames.gif"
    path.write_bytes(first[:-1] + _GIF_FRAME * frames + b"\x3b")
    return path


def webp_huge_canvas(folder: Path) -> Path:
    """Animated WebP (VP8X) claiming a 30000x30000 canvas around one 1x1 lossless frame: the animation
    decoder allocates two canvases (3.6 GB each) when the file is opened."""
    still = encoded(np.zeros((1, 1, 3), np.uint8), "WEBP", lossless=True)
    assert still[12:16] == b"VP8L"
    frame_chunk = still[12:]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return kind + struct.pack("<I", len(body)) + body + b"\0" * (len(body) % 2)

    def u24(value: int) -> bytes:
        return struct.pack("<I", value)[:3]

    width = height = 30_000
    vp8x = chunk(b"VP8X", bytes((0x02, 0, 0, 0)) + u24(width - 1) + u24(height - 1))
    anim = chunk(b"ANIM", b"\0\0\0\0" + struct.pack("<H", 0))
    anmf = chunk(b"ANMF", u24(0) + u24(0) + u24(0) + u24(0) + u24(100) + b"\0" + frame_chunk)
    body = b"WEBP" + vp8x + anim + anmf
    path = folder / "huge_canvas.webp"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


# ------------------------------------------------------------------ names


NAME_NEWLINE = "new\nline.png"
NAME_ESCAPE = "esc\x1b[31mred\x1b[0m.png"
NAME_NON_UTF8 = os.fsdecode(b"caf\xe9\xff.png")  # 'caf\udce9\udcff.png': surrogate escapes


def named(folder: Path, name: str, data: bytes) -> Path:
    """``data`` under a file name that may hold a newline, escape sequences or non-UTF-8 bytes."""
    path = folder / name
    with open(os.fsencode(path), "wb") as file:
        file.write(data)
    return path


def small_png_bytes(seed: int = 0) -> bytes:
    """A valid 16x16 RGB PNG."""
    return encoded(noise((16, 16, 3), seed), "PNG")


# ------------------------------------------------------------------ running poolcli


MEMORY_CAP = 1536 * MiB
"""Address space (RLIMIT_AS) of every poolcli child: a plain run needs about 500 MB of it
(Python, NumPy, OpenCV and Pillow mapped), so bombs fail here long before the machine suffers."""

WALL_SECONDS = 20.0
"""A child still running after this is killed (with its process group) and the run fails."""


@dataclass(repr=False)
class Run:
    """One finished (or killed) poolcli child: exit code as the shell shows it (128 + n for signal n),
    its output, wall time and peak resident memory (wait4's ru_maxrss, children included)."""

    args: list
    code: int
    out: bytes
    err: bytes
    seconds: float
    rss_mb: float
    timed_out: bool

    @property
    def err_text(self) -> str:
        return self.err.decode("utf-8", "backslashreplace")

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err_text.split("\n") if line.strip()]

    def __str__(self) -> str:
        shown = " ".join(os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in self.args)
        state = "killed after the wall limit" if self.timed_out else f"exit {self.code}"
        return (f"poolcli {shown}\n  -> {state} in {self.seconds:.1f} s, peak {self.rss_mb:.0f} MB\n"
                f"  stderr: {self.err_text[-1500:]!r}\n  stdout: {self.out[-300:]!r}")

    __repr__ = __str__  # pytest shows a non-string assertion message by its repr


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every child: UTF-8 locale with Python's strict stdout, no colour forcing."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONIOENCODING", "PYTHONUTF8", "PYTHONWARNINGS", "FORCE_COLOR", "NO_COLOR",
                        "COLUMNS", "LINES", "TERM")}
    env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def _child_setup(memory: int | None):
    def setup() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(number, signal.SIG_DFL)  # a background shell may have left SIGINT ignored

    return setup


PEAK_FILE = "POOLCLI_TEST_PEAK"
LAUNCHER = """
import atexit, os, runpy, sys

def report_peak():  # VmHWM: the peak resident memory of this program alone (not of the parent it was forked from)
    if os.environ.get("POOLCLI_TEST_PEAK"):
        with open("/proc/self/status") as status, open(os.environ["POOLCLI_TEST_PEAK"], "w") as out:
            out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))

atexit.register(report_peak)
sys.argv[0] = "poolcli"
runpy.run_module("poolcli", run_name="__main__", alter_sys=True)
"""


def start(*args, cwd: Path | None = None, memory: int | None = MEMORY_CAP, stdout=None, stderr=None,
          env: dict | None = None) -> subprocess.Popen:
    """``python -m poolcli ARGS`` in a new session (its own process group), under ``memory``; it
    writes its peak resident memory to the file the environment's POOLCLI_TEST_PEAK names."""
    argv = [sys.executable, "-c", LAUNCHER, *(os.fsencode(a) if isinstance(a, Path) else a for a in args)]
    return subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            env=child_env() if env is None else env, start_new_session=True,
                            preexec_fn=_child_setup(memory))


def finish(process: subprocess.Popen, timeout: float = WALL_SECONDS) -> tuple[int, float, bool, float]:
    """Reap ``process`` with wait4 (for its rusage): (code, peak MB, timed out, seconds waited).
    A child past ``timeout`` is killed with its whole process group."""
    started = time.monotonic()
    deadline, timed_out = started + timeout, False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline and not timed_out:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group of the child we started
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.005)
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    return (128 - code if code < 0 else code), usage.ru_maxrss / 1024, timed_out, time.monotonic() - started


def run(*args, cwd: Path | None = None, timeout: float = WALL_SECONDS, memory: int | None = MEMORY_CAP,
        env: dict | None = None) -> Run:
    """Run poolcli to the end (or the wall limit) and return what it did."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak"
        env = dict(child_env() if env is None else env, **{PEAK_FILE: str(peak_file)})
        started = time.monotonic()
        process = start(*args, cwd=cwd, memory=memory, stdout=out, stderr=err, env=env)
        code, rss, timed_out, _ = finish(process, timeout)
        seconds = time.monotonic() - started
        if peak_file.exists() and peak_file.read_text().strip():  # wait4's figure counts the forked parent
            rss = int(peak_file.read_text()) / 1024
        out.seek(0)
        err.seek(0)
        return Run(list(args), code, out.read(), err.read(), seconds, rss, timed_out)


# ------------------------------------------------------------------ the corpus

GENERATORS = (
    png_iccp_bomb, png_ztxt_bomb, png_itxt_bomb, png_huge_dimensions, png_idat_bomb, png_truncated,
    zero_byte_png, npz_bomb_deflate, npz_bomb_bzip2, npz_bomb_lzma, npz_bomb_under_cap, npz_shape_lie,
    npz_shape_lie_deflated, npy_shape_lie, npy_shape_overflow, npy_negative_shape, npz_shape_overflow,
    npy_pickle, npy_big_endian, npy_extremes, tiff_many_pages,
    tiff_ifd_loop, tiff_ifd_loop_float64, jpeg_many_scans, jpeg_cut_with_eoi, jpeg_garbage_middle,
    gif_huge_screen, gif_many_frames, webp_huge_canvas,
)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    target.mkdir(exist_ok=True)
    for generate in GENERATORS:
        written = generate(target)
        print(f"{written.stat().st_size:>12,}  {written}")
