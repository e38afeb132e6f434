"""Seeded mutation fuzzing of the loaders: ``poolcli.io.load`` must succeed or raise one InputError.

Small valid files of every input kind (PNG, JPEG, TIFF, GIF, WebP, BMP, .npy, .npz, in several
variants each) are made at test time and mutated: bit flips, byte overwrites, truncations,
inserted and deleted bytes, duplicated slices, and format-aware changes (PNG chunks with their
CRC fixed, JPEG segments, TIFF IFDs, zip headers, .npy headers, GIF/BMP/WebP header fields).
Every case must end in either a sane ``Loaded`` or an ``InputError`` whose message is one line
naming the path; any other exception, a Python warning or C-library chatter on stderr escaping
``load``, or more than 2 s for one case is a failure. A smaller pass runs a few dozen mutants
through ``python -m poolcli info`` (exit 0 or 1, at most one clean stderr line).

Everything is seeded (SEED; each case from ``f"{SEED}:{variant}:{case}"``): a failure names its
variant and case, and ``python tests/test_fuzz_loaders.py VARIANT CASE [FOLDER]`` writes that
mutant again. POOLCLI_FUZZ_CASES sets the cases per variant (default 300).
"""

from __future__ import annotations

import contextlib
import io as bytes_io
import logging
import os
import random
import struct
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

import cv2
import hostile
import numpy as np
import pytest
from PIL import Image

from poolcli import io
from poolcli.errors import InputError

SEED = 20240607
CASES = int(os.environ.get("POOLCLI_FUZZ_CASES", "300"))
MAX_PIXELS = 1 << 22  # what load may decode in a case (the mutants may claim any size): keeps cases fast
SLOW_SECONDS = 2.0
SUBPROCESS_CASES = 24

# ------------------------------------------------------------------ the valid files


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _image(shape, seed=0) -> np.ndarray:
    """A smooth gradient plus noise: compresses like a photo, not like noise."""
    height, width = shape[:2]
    base = (np.add.outer(np.arange(height) * 5, np.arange(width) * 3) % 256).astype(np.int32)
    if len(shape) == 3:
        base = np.stack([base + 40 * c for c in range(shape[2])], axis=-1)
    return ((base + _rng(seed).integers(0, 24, size=shape)) % 256).astype(np.uint8)


def _pillow(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = bytes_io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _opencv(suffix: str, array: np.ndarray, params=()) -> bytes:
    ok, data = cv2.imencode(suffix, array, list(params))
    assert ok
    return data.tobytes()


def _tifffile(array: np.ndarray, **options) -> bytes:
    tifffile = pytest.importorskip("tifffile")
    buffer = bytes_io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def _npy(array: np.ndarray, version=None) -> bytes:
    buffer = bytes_io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=False)
    return buffer.getvalue()


def _npz(compressed: bool, **arrays) -> bytes:
    buffer = bytes_io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _exif_rotated_jpeg() -> bytes:
    image = Image.fromarray(_image((20, 28, 3), 4))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _pillow(image, "JPEG", exif=exif.tobytes(), quality=85)


def _palette(seed=0, transparency=False) -> Image.Image:
    image = Image.fromarray(_image((24, 20, 3), seed)).quantize(16)
    if transparency:
        image.info["transparency"] = 3
    return image


def _frames(count: int, shape=(16, 16, 3)) -> list[Image.Image]:
    return [Image.fromarray(_image(shape, seed)) for seed in range(count)]


VARIANTS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "png-gray": (".png", lambda: _pillow(Image.fromarray(_image((24, 20))), "PNG")),
    "png-rgb": (".png", lambda: _pillow(Image.fromarray(_image((20, 24, 3), 1)), "PNG")),
    "png-rgba": (".png", lambda: _pillow(Image.fromarray(_image((20, 16, 4), 2)), "PNG")),
    "png-la": (".png", lambda: _pillow(Image.fromarray(_image((16, 16, 2), 3), "LA"), "PNG")),
    "png-palette": (".png", lambda: _pillow(_palette(4), "PNG")),
    "png-palette-trns": (".png", lambda: _pillow(_palette(5, True), "PNG", transparency=3)),
    "png-bilevel": (".png", lambda: _pillow(Image.fromarray(_image((20, 24)) > 128), "PNG")),
    "png-gray16": (".png", lambda: _opencv(".png", _image((18, 22)).astype(np.uint16) * 257)),
    "png-rgb16": (".png", lambda: _opencv(".png", _image((18, 22, 3), 6).astype(np.uint16) * 251)),
    "png-icc": (".png", lambda: _pillow(Image.fromarray(_image((16, 16, 3), 7)), "PNG",
                                        icc_profile=b"\0" * 16 + b"RGB " + bytes(108))),
    "jpeg-rgb": (".jpg", lambda: _pillow(Image.fromarray(_image((24, 32, 3), 8)), "JPEG", quality=90)),
    "jpeg-gray": (".jpg", lambda: _pillow(Image.fromarray(_image((24, 32), 9)), "JPEG", quality=90)),
    "jpeg-progressive": (".jpg", lambda: _pillow(Image.fromarray(_image((32, 24, 3), 10)), "JPEG",
                                                 progressive=True, quality=80)),
    "jpeg-restart": (".jpg", lambda: _opencv(".jpg", _image((32, 48, 3), 11), [cv2.IMWRITE_JPEG_RST_INTERVAL, 1])),
    "jpeg-exif-rotated": (".jpg", _exif_rotated_jpeg),
    "jpeg-cmyk": (".jpg", lambda: _pillow(Image.fromarray(_image((16, 16, 4), 12), "CMYK"), "JPEG")),
    "tiff-raw": (".tif", lambda: _pillow(Image.fromarray(_image((20, 24, 3), 13)), "TIFF")),
    "tiff-lzw": (".tif", lambda: _pillow(Image.fromarray(_image((20, 24, 3), 14)), "TIFF", compression="tiff_lzw")),
    "tiff-deflate": (".tif", lambda: _pillow(Image.fromarray(_image((20, 24), 15)), "TIFF",
                                             compression="tiff_adobe_deflate")),
    "tiff-packbits": (".tif", lambda: _pillow(Image.fromarray(_image((20, 24), 16)), "TIFF", compression="packbits")),
    "tiff-pages": (".tif", lambda: _pillow(_frames(3)[0], "TIFF", save_all=True, append_images=_frames(3)[1:])),
    "tiff-float32": (".tif", lambda: _pillow(Image.fromarray(_rng(17).random((16, 20)).astype(np.float32)), "TIFF")),
    "tiff-float64": (".tif", lambda: hostile.tiff_float64(12, 10, 18)),
    "tiff-rgb16": (".tif", lambda: _opencv(".tiff", _image((16, 20, 3), 19).astype(np.uint16) * 255)),
    "tiff-tiled": (".tif", lambda: _tifffile(_image((32, 32, 3), 20), tile=(16, 16))),
    "tiff-planar": (".tif", lambda: _tifffile(_image((3, 16, 16), 21), planarconfig="separate",
                                              photometric="rgb")),
    "tiff-bigendian": (".tif", lambda: _tifffile(_image((16, 16), 22).astype(np.uint16), byteorder=">")),
    "gif-still": (".gif", lambda: _pillow(_palette(23), "GIF")),
    "gif-animated": (".gif", lambda: _pillow(_frames(3)[0], "GIF", save_all=True, append_images=_frames(3)[1:],
                                             duration=50, loop=0)),
    "webp-lossless": (".webp", lambda: _pillow(Image.fromarray(_image((16, 20, 3), 24)), "WEBP", lossless=True)),
    "webp-lossy": (".webp", lambda: _pillow(Image.fromarray(_image((16, 20, 4), 25)), "WEBP", quality=70)),
    "webp-animated": (".webp", lambda: _pillow(_frames(2)[0], "WEBP", save_all=True, append_images=_frames(2)[1:],
                                               lossless=True)),
    "bmp-rgb": (".bmp", lambda: _pillow(Image.fromarray(_image((18, 21, 3), 26)), "BMP")),
    "bmp-palette": (".bmp", lambda: _pillow(_palette(27), "BMP")),
    "npy-float32": (".npy", lambda: _npy(_rng(28).random((3, 10, 12)).astype(np.float32))),
    "npy-int16-be": (".npy", lambda: _npy(_rng(29).integers(-999, 999, (9, 11)).astype(">i2"))),
    "npy-fortran": (".npy", lambda: _npy(np.asfortranarray(_rng(30).random((8, 6))))),
    "npy-v2": (".npy", lambda: _npy(_rng(31).integers(0, 255, (2, 8, 8)).astype(np.uint8), version=(2, 0))),
    "npz-stored": (".npz", lambda: _npz(False, a=_rng(32).random((4, 6)), b=np.arange(12, dtype=np.int32))),
    "npz-deflated": (".npz", lambda: _npz(True, maps=_rng(33).random((2, 8, 8)).astype(np.float32),
                                          mask=np.eye(5, dtype=bool))),
}


@cache
def original(variant: str) -> bytes:
    return VARIANTS[variant][1]()


# ------------------------------------------------------------------ mutations

INTERESTING = (0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFF)


def _interesting(rng: random.Random, data: bytearray | bytes, bits: int = 32) -> int:
    value = rng.choice([*INTERESTING, len(data), len(data) + 1, len(data) // 2, rng.getrandbits(bits)])
    return value & ((1 << bits) - 1)


def _put(data: bytearray, at: int, value: int, size: int, big: bool) -> None:
    if at >= 0 and at + size <= len(data):
        data[at:at + size] = (value % (1 << 8 * size)).to_bytes(size, "big" if big else "little")


# generic


def flip_bits(rng, data, fmt):
    spots = [rng.randrange(len(data) * 8) for _ in range(rng.choice((1, 1, 2, 3, 8)))]
    for spot in spots:
        data[spot // 8] ^= 1 << (spot % 8)
    return f"flip bits {spots}"


def set_bytes(rng, data, fmt):
    spots = [rng.randrange(len(data)) for _ in range(rng.randint(1, 4))]
    for spot in spots:
        data[spot] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    return f"set bytes at {spots}"


def put_integer(rng, data, fmt):
    size, big = rng.choice((2, 4)), rng.random() < 0.5
    at, value = rng.randrange(len(data)), _interesting(rng, data, size * 8)
    _put(data, at, value, size, big)
    return f"put {value:#x} ({size} bytes, {'BE' if big else 'LE'}) at {at}"


def truncate(rng, data, fmt):
    at = rng.randrange(1, len(data))
    del data[at:]
    return f"truncate at {at}"


def insert_random(rng, data, fmt):
    at, count = rng.randrange(len(data) + 1), rng.choice((1, 2, 4, 16, 64))
    data[at:at] = bytes(rng.randrange(256) for _ in range(count))
    return f"insert {count} random bytes at {at}"


def delete_slice(rng, data, fmt):
    at = rng.randrange(len(data))
    count = rng.choice((1, 2, 4, 16, 64))
    del data[at:at + count]
    return f"delete {count} bytes at {at}"


def duplicate_slice(rng, data, fmt):
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.choice((1, 4, 16, 64, 256)))
    where = end if rng.random() < 0.6 else rng.randrange(len(data) + 1)
    data[where:where] = data[start:end]
    return f"duplicate [{start}:{end}] at {where}"


# PNG: chunks (length, type, body, CRC)


def _png_chunks(data) -> list[tuple[int, int, bytes]]:
    """(start, body length, type) of each complete chunk."""
    chunks, at = [], 8
    while at + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        if at + 12 + length > len(data):
            break
        chunks.append((at, length, bytes(kind)))
        at += 12 + length
    return chunks


def _fix_crc(data: bytearray, start: int, length: int) -> None:
    body = data[start + 4:start + 8 + length]
    data[start + 8 + length:start + 12 + length] = struct.pack(">I", zlib.crc32(body))


def png_mutation(rng, data, fmt):
    chunks = _png_chunks(data)
    if not chunks:
        return flip_bits(rng, data, fmt)
    start, length, kind = rng.choice(chunks)
    action = rng.choice(("length", "duplicate", "drop", "body", "ihdr", "swap"))
    if action == "length":
        value = rng.choice((0, length - 1, length + 1, length * 2, 0x7FFFFFFF, 0xFFFFFFFF, _interesting(rng, data)))
        _put(data, start, value & 0xFFFFFFFF, 4, True)
        return f"PNG {kind!r} length {length} -> {value}"
    if action == "duplicate":
        data[start:start] = data[start:start + 12 + length]
        return f"PNG duplicate {kind!r} at {start}"
    if action == "drop":
        del data[start:start + 12 + length]
        return f"PNG drop {kind!r} at {start}"
    if action == "swap" and len(chunks) > 2:
        (a, la, ka), (b, lb, kb) = sorted(rng.sample(chunks, 2))
        first, second = bytes(data[a:a + 12 + la]), bytes(data[b:b + 12 + lb])
        data[b:b + 12 + lb] = first
        data[a:a + 12 + la] = second
        return f"PNG swap {ka!r} and {kb!r}"
    if action == "ihdr" and chunks[0][2] == b"IHDR":
        start, length, _ = chunks[0]
        field, offset, size = rng.choice((("width", 0, 4), ("height", 4, 4), ("depth", 8, 1), ("colour", 9, 1),
                                          ("compression", 10, 1), ("filter", 11, 1), ("interlace", 12, 1)))
        value = rng.choice((0, 1, 2, 3, 4, 6, 8, 16, 255)) if size == 1 else _interesting(rng, data)
        _put(data, start + 8 + offset, value, size, True)
        _fix_crc(data, start, length)
        return f"PNG IHDR {field} -> {value} (CRC fixed)"
    if length:  # change the body, then fix the CRC so the decoder reads on
        spot = start + 8 + rng.randrange(length)
        data[spot] = rng.randrange(256)
        _fix_crc(data, start, length)
        return f"PNG {kind!r} body byte {spot} changed (CRC fixed)"
    return flip_bits(rng, data, fmt)


# JPEG: marker segments before the first scan, and markers in the scan


def _jpeg_segments(data) -> list[tuple[int, int, int]]:
    """(start, marker, length) of each segment up to and including the first SOS."""
    segments, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], struct.unpack_from(">H", data, at + 2)[0]
        segments.append((at, marker, length))
        if marker == 0xDA:
            break
        at += 2 + length
    return segments


def jpeg_mutation(rng, data, fmt):
    segments = _jpeg_segments(data)
    if not segments:
        return flip_bits(rng, data, fmt)
    start, marker, length = rng.choice(segments)
    action = rng.choice(("length", "duplicate", "drop", "sof", "marker", "sos"))
    if action == "length":
        value = rng.choice((0, 1, 2, length - 1, length + 1, 0xFFFF, rng.randrange(0x10000)))
        _put(data, start + 2, value, 2, True)
        return f"JPEG segment {marker:#04x} length {length} -> {value}"
    if action == "duplicate":
        data[start:start] = data[start:start + 2 + length]
        return f"JPEG duplicate segment {marker:#04x}"
    if action == "drop" and marker != 0xDA:
        del data[start:start + 2 + length]
        return f"JPEG drop segment {marker:#04x}"
    if action == "sof":
        frames = [s for s in segments if s[1] in (0xC0, 0xC1, 0xC2)]
        if frames:
            start = frames[0][0]
            field, offset, size = rng.choice((("precision", 4, 1), ("height", 5, 2), ("width", 7, 2),
                                              ("components", 9, 1), ("sampling", 11, 1), ("table", 12, 1)))
            value = rng.choice((0, 1, 2, 3, 4, 8, 12, 16, 0x11, 0x22, 0x44, 0xFF)) if size == 1 else \
                _interesting(rng, data, 16)
            _put(data, start + offset, value, size, True)
            return f"JPEG SOF {field} -> {value}"
    if action == "marker":  # a marker in the middle of the entropy-coded data
        scan = segments[-1][0] + 2 + segments[-1][2]
        if scan < len(data) - 2:
            at = rng.randrange(scan, len(data) - 2)
            code = rng.choice((0xD0, 0xD7, 0xD9, 0xDA, 0xC4, 0xDB, 0xE1, 0x00, 0xFF))
            data[at:at] = bytes((0xFF, code))
            return f"JPEG insert marker FF {code:02X} at {at}"
    if action == "sos" and marker == 0xDA:
        spot = start + 4 + rng.randrange(max(length - 2, 1))
        data[spot] = rng.choice((0, 1, 2, 0x11, 0x3F, 0x40, 0xFF, rng.randrange(256)))
        return f"JPEG SOS header byte {spot} changed"
    return put_integer(rng, data, fmt)


# TIFF: header, IFD entry counts, entries and next-IFD offsets


def _tiff_ifds(data) -> tuple[bool, list[int]]:
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return False, []
    big = data[:2] == b"MM"
    order = ">" if big else "<"
    offsets, at = [], struct.unpack_from(order + "I", data, 4)[0]
    while at > 0 and at + 2 <= len(data) and at not in offsets and len(offsets) < 16:
        offsets.append(at)
        count = struct.unpack_from(order + "H", data, at)[0]
        if at + 2 + 12 * count + 4 > len(data):
            break
        at = struct.unpack_from(order + "I", data, at + 2 + 12 * count)[0]
    return big, offsets


def tiff_mutation(rng, data, fmt):
    big, ifds = _tiff_ifds(data)
    if not ifds:
        return put_integer(rng, data, fmt)
    order = ">" if big else "<"
    ifd = rng.choice(ifds)
    count = struct.unpack_from(order + "H", data, ifd)[0]
    action = rng.choice(("count", "entry", "entry", "entry", "next", "first"))
    if action == "count":
        value = rng.choice((0, 1, count - 1, count + 1, 0xFFFF, rng.randrange(0x10000))) & 0xFFFF
        _put(data, ifd, value, 2, big)
        return f"TIFF IFD at {ifd}: entry count {count} -> {value}"
    if action == "next" and ifd + 2 + 12 * count + 4 <= len(data):
        value = rng.choice((ifd, ifds[0], 0, 1, len(data), len(data) - 2, 0xFFFFFFFF, _interesting(rng, data)))
        _put(data, ifd + 2 + 12 * count, value, 4, big)
        return f"TIFF IFD at {ifd}: next -> {value}"
    if action == "first":
        value = rng.choice((0, 1, 8, len(data), 0xFFFFFFFF, ifds[-1], _interesting(rng, data)))
        _put(data, 4, value, 4, big)
        return f"TIFF first IFD -> {value}"
    if count and ifd + 2 + 12 * count <= len(data):
        entry = ifd + 2 + 12 * rng.randrange(count)
        tag = struct.unpack_from(order + "H", data, entry)[0]
        field, offset, size = rng.choice((("type", 2, 2), ("count", 4, 4), ("value", 8, 4), ("value", 8, 2),
                                          ("tag", 0, 2)))
        value = rng.choice((0, 1, 2, 3, 4, 5, 7, 8, 11, 12, 13, 16, 17)) if field == "type" else \
            _interesting(rng, data, size * 8)
        _put(data, entry + offset, value, size, big)
        return f"TIFF tag {tag} {field} -> {value}"
    return put_integer(rng, data, fmt)


# zip (.npz): local headers, central directory, end record


def zip_mutation(rng, data, fmt):
    fields = []
    for signature, layout in ((b"PK\x03\x04", (("method", 8, 2), ("crc", 14, 4), ("compressed size", 18, 4),
                                                ("size", 22, 4), ("name length", 26, 2), ("extra length", 28, 2))),
                              (b"PK\x01\x02", (("method", 10, 2), ("compressed size", 20, 4), ("size", 24, 4),
                                                ("name length", 28, 2), ("extra length", 30, 2),
                                                ("local offset", 42, 4))),
                              (b"PK\x05\x06", (("entries", 8, 2), ("entries total", 10, 2),
                                                ("directory size", 12, 4), ("directory offset", 16, 4)))):
        at = data.find(signature)
        while at >= 0:
            fields += [(at, signature[2:], name, offset, size) for name, offset, size in layout]
            at = data.find(signature, at + 4)
    if not fields or rng.random() < 0.3:
        return npy_mutation(rng, data, fmt)
    at, kind, name, offset, size = rng.choice(fields)
    if name == "method":
        value = rng.choice((0, 1, 8, 9, 12, 14, 93, 99, 0xFFFF))
    else:
        value = _interesting(rng, data, size * 8)
    _put(data, at + offset, value, size, False)
    return f"zip {kind.hex()} {name} at {at} -> {value}"


# .npy headers (also the members of a stored .npz)


def npy_mutation(rng, data, fmt):
    at = data.find(b"\x93NUMPY")
    if at < 0:
        return put_integer(rng, data, fmt)
    action = rng.choice(("shape", "shape", "descr", "order", "length", "version"))
    if action == "length":
        value = rng.choice((0, 1, 10, 0x7FFF, 0xFFFF, rng.randrange(0x10000)))
        _put(data, at + 8, value, 2, False)
        return f"npy header length -> {value}"
    if action == "version":
        value = rng.choice((0, 2, 3, 4, 255))
        data[at + 6] = value
        return f"npy version -> {value}"
    end = data.find(b"}", at)
    header = bytes(data[at + 10:end + 1]) if end > 0 else b""
    if action == "shape" and b"'shape': (" in header:
        shape = rng.choice(("()", "(0,)", "(1,)", "(-1, 4)", "(2**40,)", "(65536, 65536)", "(9223372036854775807,)",
                            "(3, 0, 5)", "(" + "1, " * 40 + ")", "(4, 6)", "(2, 8, 8)", "(12,)", "('a',)"))
        start = header.index(b"'shape': (") + len(b"'shape': ")
        stop = header.index(b")", start) + 1
        new = header[:start] + shape.encode() + header[stop:]
    elif action == "descr" and b"'descr': '" in header:
        descr = rng.choice(("|O", "<c16", "|V8", "<U3", "|S2", "|b1", "<M8[s]", ">f8", "<f2", "|u1", "<i8", "bad"))
        start = header.index(b"'descr': '") + len(b"'descr': '")
        stop = header.index(b"'", start)
        new = header[:start] + descr.encode() + header[stop:]
    elif action == "order" and b"'fortran_order': " in header:
        new = header.replace(b"False", b"True") if b"False" in header else header.replace(b"True", b"False")
    else:
        return put_integer(rng, data, fmt)
    new = new.ljust(len(header))[: max(len(header), len(new))]
    data[at + 10:at + 10 + len(header)] = new
    if len(new) != len(header) and rng.random() < 0.5:  # a longer header: fix the length field, half the time
        _put(data, at + 8, (struct.unpack_from("<H", data, at + 8)[0] + len(new) - len(header)) & 0xFFFF, 2, False)
    return f"npy header {action} -> {new.decode('latin1').strip()!r}"


# GIF, BMP and WebP headers


def gif_mutation(rng, data, fmt):
    spots = [("screen width", 6, 2), ("screen height", 8, 2), ("flags", 10, 1)]
    at = data.find(b"\x2c", 13)
    while at > 0 and len(spots) < 40:
        spots += [("left", at + 1, 2), ("top", at + 3, 2), ("width", at + 5, 2), ("height", at + 7, 2),
                  ("frame flags", at + 9, 1), ("LZW code size", at + 10, 1), ("block length", at + 11, 1)]
        at = data.find(b"\x2c", at + 12)
    name, offset, size = rng.choice(spots)
    value = rng.choice((0, 1, 2, 8, 11, 12, 0x7F, 0x80, 0xFF)) if size == 1 else _interesting(rng, data, 16)
    _put(data, offset, value, size, False)
    return f"GIF {name} at {offset} -> {value}"


def bmp_mutation(rng, data, fmt):
    name, offset, size = rng.choice((("file size", 2, 4), ("data offset", 10, 4), ("header size", 14, 4),
                                     ("width", 18, 4), ("height", 22, 4), ("planes", 26, 2), ("bits", 28, 2),
                                     ("compression", 30, 4), ("image size", 34, 4), ("colours", 46, 4)))
    if name == "bits":
        value = rng.choice((0, 1, 2, 4, 8, 15, 16, 24, 32, 64, 0xFFFF))
    elif name == "compression":
        value = rng.choice((0, 1, 2, 3, 4, 5, 6, 11, 0xFFFFFFFF))
    else:
        value = _interesting(rng, data, size * 8)
    _put(data, offset, value, size, False)
    return f"BMP {name} -> {value}"


def webp_mutation(rng, data, fmt):
    spots = [("RIFF size", 4, 4)]
    at = 12
    while at + 8 <= len(data):
        kind, length = bytes(data[at:at + 4]), struct.unpack_from("<I", data, at + 4)[0]
        spots.append((f"{kind!r} size", at + 4, 4))
        if kind == b"VP8X":
            spots += [("canvas width", at + 12, 3), ("canvas height", at + 15, 3), ("VP8X flags", at + 8, 1)]
        if kind == b"VP8L":
            spots.append(("VP8L size bits", at + 9, 4))
        if kind == b"VP8 ":
            spots += [("VP8 width", at + 14, 2), ("VP8 height", at + 16, 2)]
        if kind == b"ANMF":
            spots += [("frame width", at + 14, 3), ("frame height", at + 17, 3), ("frame x", at + 8, 3)]
            at += 24  # the frame's own chunks follow
            continue
        at += 8 + length + (length & 1)
    name, offset, size = rng.choice(spots)
    value = _interesting(rng, data, size * 8)
    _put(data, offset, value, size, False)
    return f"WebP {name} at {offset} -> {value}"


GENERIC = (flip_bits, set_bytes, put_integer, truncate, insert_random, delete_slice, duplicate_slice)
AWARE = {".png": png_mutation, ".jpg": jpeg_mutation, ".tif": tiff_mutation, ".npz": zip_mutation,
         ".npy": npy_mutation, ".gif": gif_mutation, ".bmp": bmp_mutation, ".webp": webp_mutation}


def mutant(variant: str, case: int) -> tuple[bytes, list[str]]:
    """The bytes of ``case`` of ``variant`` and the mutations that made them (deterministic)."""
    rng = random.Random(f"{SEED}:{variant}:{case}")
    suffix = VARIANTS[variant][0]
    data = bytearray(original(variant))
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        if len(data) < 2:
            break
        mutate = AWARE[suffix] if rng.random() < 0.55 else rng.choice(GENERIC)
        done.append(mutate(rng, data, suffix))
    return bytes(data), done


# ------------------------------------------------------------------ one case


@contextlib.contextmanager
def captured_stderr(sink):
    """Everything that reaches file descriptor 2 inside the block (C libraries, and Python's
    sys.stderr, which is made a line-buffered stream on fd 2 as in the command line), appended
    to the list it yields. The root logger's handlers (pytest's) are detached meanwhile, as in
    the command line, so a library's log record reaches logging.lastResort: stderr."""
    sink.seek(0)
    sink.truncate()
    sys.stderr.flush()
    saved = os.dup(2)
    found: list[str] = []
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    os.dup2(sink.fileno(), 2)
    stream = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    try:
        root.handlers, root.level = [], logging.WARNING
        with contextlib.redirect_stderr(stream):
            yield found
    finally:
        stream.flush()
        stream.close()
        root.handlers, root.level = handlers, level
        os.dup2(saved, 2)
        os.close(saved)
        sink.seek(0)
        found.append(sink.read().decode("utf-8", "replace"))


def check_loaded(loaded: io.Loaded) -> str | None:
    """What is wrong with a successful load's result, or None."""
    if not loaded.arrays:
        return "load returned no arrays"
    for key, array in loaded.arrays.items():
        if not isinstance(array, np.ndarray):
            return f"array {key!r} is a {type(array).__name__}"
        if array.dtype.kind not in "biuf":
            return f"array {key!r} has dtype {array.dtype}"
        channels = 4 if loaded.format != "TIFF" else 65535  # multispectral TIFFs have many bands
        if loaded.kind == "image" and (array.ndim != 3 or not 1 <= array.shape[2] <= channels or 0 in array.shape):
            return f"image array of shape {array.shape}"
    return None


def run_case(path: Path, sink) -> tuple[str | None, float]:
    """Load ``path``; (the problem, or None when the outcome is allowed; seconds)."""
    problem = None
    with captured_stderr(sink) as chatter, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        try:
            loaded = io.load(path, max_pixels=MAX_PIXELS)
        except InputError as error:
            message = str(error)
            if "\n" in message or "\r" in message:
                problem = f"InputError of {message.count(chr(10)) + 1} lines: {message!r}"
            elif str(path) not in message:
                problem = f"InputError without the path: {message!r}"
        except Exception as error:  # noqa: BLE001 - any other type is the finding
            problem = f"{type(error).__module__}.{type(error).__name__}: {' '.join(str(error).split())[:300]}"
        else:
            problem = check_loaded(loaded)
        seconds = time.perf_counter() - started
    if problem is None and caught:
        problem = f"warning escaped load(): {caught[0].category.__name__}: {caught[0].message}"
    if problem is None and chatter[0].strip():
        problem = f"chatter on stderr: {chatter[0].strip()[:300]!r}"
    if problem is None and seconds > SLOW_SECONDS:
        problem = f"took {seconds:.1f} s"
    return problem, seconds


# ------------------------------------------------------------------ the tests


def test_every_variant_loads_unmutated(tmp_path):
    with tempfile.TemporaryFile() as sink:
        for variant, (suffix, _) in VARIANTS.items():
            try:
                original(variant)
            except pytest.skip.Exception:
                continue
            path = tmp_path / f"{variant}{suffix}"
            path.write_bytes(original(variant))
            problem, _ = run_case(path, sink)
            assert problem is None, f"{variant}: {problem}"
            io.load(path)  # and at the default limits


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_load_mutants(tmp_path, variant):
    suffix = VARIANTS[variant][0]
    original(variant)  # skips a variant whose writer is missing
    failures, slowest = [], (0.0, -1)
    with tempfile.TemporaryFile() as sink:
        for case in range(CASES):
            data, mutations = mutant(variant, case)
            path = tmp_path / f"{variant}-{case}{suffix}"
            path.write_bytes(data)
            problem, seconds = run_case(path, sink)
            slowest = max(slowest, (seconds, case))
            if problem is None:
                path.unlink()
            else:
                failures.append(f"seed {SEED} case {variant}#{case} ({'; '.join(mutations)}): {problem}")
    assert not failures, (f"{len(failures)} of {CASES} mutants of {variant} broke io.load (the files are kept in "
                          f"{tmp_path}; rewrite one with `python tests/test_fuzz_loaders.py {variant} CASE`):\n"
                          + "\n".join(failures[:12]))


def _subprocess_cases(folder: Path) -> list[tuple[str, int]]:
    """SUBPROCESS_CASES (variant, case) pairs from case 10,000 on: first those that io.load got wrong in
    process (one per variant), to see what the command line makes of them, then others, round robin."""
    names = [n for n in VARIANTS if not n.startswith("tiff-") or _writable(n)]
    flagged, plain = [], []
    with tempfile.TemporaryFile() as sink:
        for case in range(10_000, 10_040):
            for variant in names:
                path = folder / f"probe{VARIANTS[variant][0]}"
                path.write_bytes(mutant(variant, case)[0])
                problem, _ = run_case(path, sink)
                if problem is not None and all(v != variant for v, _ in flagged):
                    flagged.append((variant, case))
                elif problem is None and len(plain) < SUBPROCESS_CASES:
                    plain.append((variant, case))
    chosen = flagged[: SUBPROCESS_CASES // 2]
    return chosen + plain[: SUBPROCESS_CASES - len(chosen)]


def _writable(variant: str) -> bool:
    try:
        original(variant)
    except pytest.skip.Exception:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and wait4 (tests/hostile.py)")
def test_info_on_mutants_in_a_subprocess(tmp_path):
    failures = []
    cases = _subprocess_cases(tmp_path)
    for variant, case in cases:
        data, mutations = mutant(variant, case)
        path = tmp_path / f"{variant}-{case}{VARIANTS[variant][0]}"
        path.write_bytes(data)
        result = hostile.run("info", path)
        where = f"seed {SEED} case {variant}#{case} ({'; '.join(mutations)})"
        lines = result.err_lines
        if result.timed_out:
            failures.append(f"{where}: still running after {hostile.WALL_SECONDS:.0f} s")
        elif result.code not in (0, 1):
            failures.append(f"{where}: exit {result.code}: {result.err_text[:400]!r}")
        elif "Traceback" in result.err_text:
            failures.append(f"{where}: traceback: {result.err_text[:400]!r}")
        elif result.code == 0 and lines:
            failures.append(f"{where}: exit 0 with stderr {result.err_text[:400]!r}")
        elif result.code == 1 and (len(lines) != 1 or not lines[0].startswith("poolcli: error:")
                                   or str(path) not in lines[0]):
            failures.append(f"{where}: exit 1 with stderr {result.err_text[:400]!r}")
    assert not failures, f"{len(failures)} of {len(cases)} mutants:\n" + "\n".join(failures)


# ------------------------------------------------------------------ TIFF tiles and strips, streamed
#
# The streamed reader (`poolcli.stream.open_source`, which `pool` uses for big inputs and `pyramid`
# always) on tiled and striped TIFFs of every common compression (JPEG too, whose SOF is checked
# against the segment before decoding) whose segments are cut, flipped, moved out of the file or
# given lying byte counts: each case reads the page in bands (as pooling does) and must give exactly
# tifffile's whole-page read of the same file and `io.load`'s pixels, or one InputError line naming
# the file, as `io.load` does.

STREAM_COMPRESSIONS = (None, "zlib", "lzw", "packbits", "zstd", "jpeg")


def _stream_original(tiled: bool, compression: str | None) -> bytes:
    rgb = compression in ("zlib", "lzw", None)
    image = _image((42, 40, 3) if rgb else (42, 40), 40 + len(compression or ""))
    layout = dict(tile=(16, 16)) if tiled else dict(rowsperstrip=5)  # strips: the last one holds 2 rows
    if compression == "lzw":
        image = image.astype(np.uint16) * 251
    return _tifffile(image, compression=compression, photometric="rgb" if rgb else "minisblack", **layout)


STREAM_VARIANTS = {f"{'tiled' if tiled else 'striped'}-{compression or 'none'}": (tiled, compression)
                   for tiled in (True, False) for compression in STREAM_COMPRESSIONS}


@cache
def stream_original(variant: str) -> bytes:
    return _stream_original(*STREAM_VARIANTS[variant])


def _segment_fields(data: bytes):
    """(offsets, counts): for each, the file positions of its values, their size and the values."""
    import tifffile

    with tifffile.TiffFile(bytes_io.BytesIO(data)) as tiff:
        page = tiff.pages[0]
        fields = []
        for name in (("TileOffsets", "StripOffsets"), ("TileByteCounts", "StripByteCounts")):
            tag = page.tags.get(name[0]) or page.tags[name[1]]
            size = 2 if tag.dtype == 3 else 4 if tag.dtype == 4 else 8
            values = tag.value if isinstance(tag.value, tuple) else (tag.value,)
            fields.append(([tag.valueoffset + i * size for i in range(len(values))], size, list(values)))
        return fields[0], fields[1], tiff.byteorder == ">"


def segment_mutation(rng, data: bytearray) -> str:
    """One fault in the tiles or strips: cut, flipped, moved out of the file, lying byte counts."""
    (offset_at, offset_size, offsets), (count_at, count_size, counts), big = _segment_fields(bytes(data))
    i = rng.randrange(len(offsets))
    action = rng.choice(("cut", "flip", "flip", "offset", "offset", "count", "count", "swap"))
    if action == "cut":
        at = offsets[i] + rng.randrange(max(counts[i], 1))
        del data[at:]
        return f"cut at {at}, in segment {i}"
    if action == "flip" and counts[i]:
        for _ in range(rng.choice((1, 1, 3, 16))):
            at = offsets[i] + rng.randrange(counts[i])
            data[at] ^= 1 << rng.randrange(8)
        return f"bits flipped in segment {i}"
    top = (1 << (8 * offset_size)) - 1
    if action == "offset":
        value = rng.choice((0, 8, len(data), len(data) - 1, len(data) + 4096, top, offsets[i] + 1, offsets[i] - 1,
                            rng.randrange(len(data)))) & top
        _put(data, offset_at[i], value, offset_size, big)
        return f"segment {i} offset {offsets[i]} -> {value}"
    if action == "count":
        top = (1 << (8 * count_size)) - 1
        value = rng.choice((0, 1, counts[i] - 1, counts[i] + 1, 2 * counts[i], 10**9, top, len(data),
                            counts[i] // 2)) & top
        _put(data, count_at[i], value, count_size, big)
        return f"segment {i} byte count {counts[i]} -> {value}"
    j = rng.randrange(len(offsets))
    _put(data, offset_at[i], offsets[j], offset_size, big)
    _put(data, offset_at[j], offsets[i], offset_size, big)
    return f"segments {i} and {j} swapped"


def stream_mutant(variant: str, case: int) -> tuple[bytes, list[str]]:
    """The bytes of ``case`` of the streamed ``variant`` and the mutations that made them."""
    rng = random.Random(f"{SEED}:stream:{variant}:{case}")
    data = bytearray(stream_original(variant))
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if rng.random() < 0.85:
            try:
                done.append(segment_mutation(rng, data))
                continue
            except Exception:  # noqa: BLE001 - an earlier mutation broke the directory: mutate bytes instead
                pass
        done.append(rng.choice(GENERIC)(rng, data, ".tif"))
    return bytes(data), done


def _whole_page(path: Path) -> np.ndarray | None:
    """tifffile's whole-page read of the file, None where tifffile refuses it."""
    import tifffile

    root, level = logging.getLogger("tifffile"), logging.getLogger("tifffile").level
    root.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tifffile.TiffFile(path) as tiff:
                return tiff.pages[0].asarray()
    except Exception:  # noqa: BLE001 - any refusal of tifffile's
        return None
    finally:
        root.setLevel(level)


def _tifffile_reads(path: Path) -> bool:
    """Whether io.load reads the file's first page through tifffile (else Pillow converts it, and
    the streamed reader refuses it)."""
    import tifffile

    from poolcli.io.tiff import tifffile_decodes

    try:
        with io.quiet_logs(), tifffile.TiffFile(path) as tiff:
            return tifffile_decodes(tiff.pages.first)
    except Exception:  # noqa: BLE001 - tifffile cannot read it either
        return False


def _streamed_in_bands(path: Path, rng: random.Random) -> np.ndarray:
    """The page read through the streamed reader in bands of random heights, as tifffile shapes it."""
    from poolcli.stream import open_source

    with open_source(path) as source:
        source.check_memory(16 * 10**6)
        height, bands, start = source.array.shape[0], [], 0
        while start < height:
            stop = min(height, start + rng.randrange(1, 24))
            bands.append(source.array[(slice(start, stop),)])
            start = stop
        return np.concatenate(bands) if bands else source.array[(slice(None),)]


def run_stream_case(path: Path, sink, rng: random.Random) -> str | None:
    """The problem with the streamed read of ``path`` (None when it is allowed)."""
    problem, streamed, loaded = None, None, None
    with captured_stderr(sink) as chatter, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        for reader in ("streamed", "io.load"):
            try:
                if reader == "streamed":
                    streamed = _streamed_in_bands(path, rng)
                else:
                    loaded = io.load(path, max_pixels=MAX_PIXELS).arrays["array"]
            except InputError as error:
                message = str(error)
                if "\n" in message or str(path) not in message:
                    problem = problem or f"{reader}: InputError not one line naming the path: {message!r}"
            except Exception as error:  # noqa: BLE001 - any other type is the finding
                problem = problem or f"{reader}: {type(error).__name__}: {' '.join(str(error).split())[:300]}"
        seconds = time.perf_counter() - started
    expected = _whole_page(path)
    if problem is None and streamed is not None:
        if expected is None:
            problem = "streamed a file tifffile refuses"
        elif streamed.shape != expected.shape or not np.array_equal(streamed, expected):
            problem = f"streamed pixels differ from tifffile's whole-page read ({streamed.shape}, {expected.shape})"
    if problem is None and (streamed is None) != (loaded is None) and _tifffile_reads(path):  # not Pillow
        problem = f"only {'io.load' if streamed is None else 'the streamed reader'} read it"
    if problem is None and streamed is not None and loaded is not None \
            and not np.array_equal(loaded.reshape(streamed.shape), streamed):
        problem = "io.load and the streamed reader read different pixels"
    if problem is None and caught:
        problem = f"warning escaped: {caught[0].category.__name__}: {caught[0].message}"
    if problem is None and chatter[0].strip():
        problem = f"chatter on stderr: {chatter[0].strip()[:300]!r}"
    if problem is None and seconds > SLOW_SECONDS:
        problem = f"took {seconds:.1f} s"
    return problem


def test_every_stream_variant_reads_unmutated(tmp_path):
    with tempfile.TemporaryFile() as sink:
        for variant in STREAM_VARIANTS:
            path = tmp_path / f"{variant}.tif"
            path.write_bytes(stream_original(variant))
            assert run_stream_case(path, sink, random.Random(0)) is None, variant


@pytest.mark.parametrize("variant", list(STREAM_VARIANTS))
def test_streamed_tiff_mutants(tmp_path, variant):
    failures = []
    with tempfile.TemporaryFile() as sink:
        for case in range(CASES):
            data, mutations = stream_mutant(variant, case)
            path = tmp_path / f"{variant}-{case}.tif"
            path.write_bytes(data)
            problem = run_stream_case(path, sink, random.Random(f"{SEED}:bands:{case}"))
            if problem is None:
                path.unlink()
            else:
                failures.append(f"seed {SEED} stream case {variant}#{case} ({'; '.join(mutations)}): {problem}")
    assert not failures, (f"{len(failures)} of {CASES} streamed mutants of {variant} broke a reader (kept in "
                          f"{tmp_path}; rewrite one with `python tests/test_fuzz_loaders.py stream:{variant} CASE`):\n"
                          + "\n".join(failures[:12]))


# ------------------------------------------------------------------ Zarr chunk files through the streamed reader
#
# Small Zarr stores (v2 and v3, every codec the chunk-file reader decodes, a filter) whose chunk
# files are mutated: truncated, bits flipped, bytes overwritten, grown (random bytes, the file
# twice over), emptied, swapped with another chunk's, deleted (the fill value), or replaced by a
# folder, a symbolic link (to the chunk copied outside the store) or a FIFO. Every case read
# through `stream.open_source(...).read` must give exactly what zarr reads, or one InputError
# line naming the store; a chunk that is not a regular file inside the store must be refused.

ZARR_CASES = max(1, CASES // 3)
ZARR_SHAPE, ZARR_CHUNKS = (20, 28), (8, 8)  # edge chunks on both axes
ZARR_VARIANTS = {
    **{f"zarr2-{name}": (2, name) for name in ("blosc", "zstd", "lz4", "zlib", "gzip", "bz2", "none", "delta")},
    **{f"zarr3-{name}": (3, name) for name in ("blosc", "zstd", "gzip", "none")},
}
SPECIAL = ("folder", "link", "fifo")  # chunk files that are not regular files inside the store: always refused


def _zarr_codecs(fmt: int, name: str) -> dict:
    import numcodecs
    import zarr

    if fmt == 3:
        return {"compressors": {"blosc": zarr.codecs.BloscCodec(cname="lz4", shuffle="bitshuffle"),
                                "zstd": zarr.codecs.ZstdCodec(level=3, checksum=True),
                                "gzip": zarr.codecs.GzipCodec(level=1), "none": None}[name]}
    compressors = {"blosc": numcodecs.Blosc(cname="zstd", shuffle=numcodecs.Blosc.SHUFFLE), "zstd": numcodecs.Zstd(),
                   "lz4": numcodecs.LZ4(), "zlib": numcodecs.Zlib(1), "gzip": numcodecs.GZip(1),
                   "bz2": numcodecs.BZ2(1), "none": None, "delta": numcodecs.Blosc(cname="lz4")}
    return {"compressors": compressors[name],
            "filters": [numcodecs.Delta(dtype="<u2")] if name == "delta" else None}


def zarr_store(folder: Path, variant: str) -> Path:
    """The valid store of `variant` at `folder`: uint16 values, the last chunk never written."""
    import zarr

    fmt, name = ZARR_VARIANTS[variant]
    array = zarr.create_array(store=str(folder), shape=ZARR_SHAPE, chunks=ZARR_CHUNKS, dtype="<u2", zarr_format=fmt,
                              fill_value=7, **_zarr_codecs(fmt, name))
    values = _image(ZARR_SHAPE, 40).astype(np.uint16) * 255 + np.arange(ZARR_SHAPE[1], dtype=np.uint16)
    array[:16] = values[:16]
    array[16:, :24] = values[16:, :24]
    return folder


def _chunk_files(store: Path) -> list[Path]:
    metadata = (".zarray", ".zattrs", "zarr.json")
    return sorted(p for p in store.rglob("*") if p.is_file() and p.name not in metadata)


def mutate_store(store: Path, rng: random.Random) -> list[str]:
    """Mutate 1-3 chunk files of `store` in place (deterministic in `rng`); what was done."""
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        files = [p for p in _chunk_files(store) if not p.is_symlink()]
        if not files:
            break
        path = rng.choice(files)
        data = bytearray(path.read_bytes())
        how = rng.choice(("truncate", "flip", "set", "put", "grow", "twice", "empty", "swap", "delete", *SPECIAL))
        key = os.fsdecode(path.relative_to(store))
        if how in ("truncate", "flip", "set", "put", "grow") and len(data) >= 2:
            how = {"truncate": truncate, "flip": flip_bits, "set": set_bytes, "put": put_integer,
                   "grow": insert_random}[how](rng, data, "")
            path.write_bytes(bytes(data))
        elif how == "twice":
            path.write_bytes(bytes(data) * 2)
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "swap" and len(files) > 1:
            path.write_bytes(rng.choice([f for f in files if f != path]).read_bytes())
        elif how == "delete":
            path.unlink()
        elif how in SPECIAL:
            path.unlink()
            if how == "folder":
                path.mkdir()
            elif how == "fifo":
                os.mkfifo(path)
            else:
                outside = store.parent / f"outside-{len(done)}"
                outside.write_bytes(bytes(data))
                os.symlink(outside, path)
        done.append(f"{how} {key}")
    return done


def zarr_mutant(folder: Path, variant: str, case: int) -> tuple[Path, list[str]]:
    """Case `case` of `variant`, written under `folder` (deterministic); the store and its mutations."""
    store = zarr_store(folder / f"{variant}-{case}.zarr", variant)
    return store, mutate_store(store, random.Random(f"{SEED}:{variant}:{case}"))


def run_zarr_case(store: Path, mutations: list[str], sink) -> tuple[str | None, float]:
    """Read `store` whole through the streamed reader; (the problem, or None; seconds)."""
    import zarr

    from poolcli.stream import open_source

    problem, special = None, any(m.split()[0] in SPECIAL for m in mutations)
    with captured_stderr(sink) as chatter, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        try:
            with open_source(store) as source:
                got = source.read((slice(None), slice(None)))
        except InputError as error:
            message = str(error)
            if "\n" in message or str(store) not in message:
                problem = f"InputError not one line naming the store: {message!r}"
        except Exception as error:  # noqa: BLE001 - any other type is the finding
            problem = f"{type(error).__module__}.{type(error).__name__}: {' '.join(str(error).split())[:300]}"
        else:
            if special:
                problem = "read a chunk that is not a regular file inside the store"
            else:
                try:
                    expected = zarr.open_array(str(store), mode="r")[...]
                except Exception as error:  # noqa: BLE001
                    problem = f"read values where zarr refuses the store ({type(error).__name__}: {error})"
                else:
                    if got.shape != expected.shape or not np.array_equal(got, expected):
                        problem = "values differ from zarr's"
        seconds = time.perf_counter() - started
    if problem is None and caught:
        problem = f"warning escaped the reader: {caught[0].category.__name__}: {caught[0].message}"
    if problem is None and chatter[0].strip():
        problem = f"chatter on stderr: {chatter[0].strip()[:300]!r}"
    if problem is None and seconds > SLOW_SECONDS:
        problem = f"took {seconds:.1f} s"
    return problem, seconds


def test_every_zarr_variant_reads_unmutated(tmp_path):
    with tempfile.TemporaryFile() as sink:
        for variant in ZARR_VARIANTS:
            store = zarr_store(tmp_path / f"{variant}.zarr", variant)
            problem, _ = run_zarr_case(store, [], sink)
            assert problem is None, f"{variant}: {problem}"


@pytest.mark.parametrize("variant", list(ZARR_VARIANTS))
def test_zarr_chunk_mutants(tmp_path, variant):
    failures = []
    with tempfile.TemporaryFile() as sink:
        for case in range(ZARR_CASES):
            store, mutations = zarr_mutant(tmp_path, variant, case)
            problem, _ = run_zarr_case(store, mutations, sink)
            if problem is not None:
                failures.append(f"seed {SEED} case {variant}#{case} ({'; '.join(mutations)}): {problem}")
    assert not failures, (f"{len(failures)} of {ZARR_CASES} mutants of {variant} broke the Zarr reader (rewrite one"
                          f" with `python tests/test_fuzz_loaders.py {variant} CASE`):\n" + "\n".join(failures[:12]))


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and wait4 (tests/hostile.py)")
def test_pool_on_zarr_mutants_in_a_subprocess(tmp_path):
    """A few mutants (one per variant, FIFOs included) through `python -m poolcli pool`: exit 0 with
    zarr's values pooled, or exit 1 with one line naming the store; never a hang."""
    import zarr

    from poolcli import pool

    failures = []
    for variant in ZARR_VARIANTS:
        store, mutations = zarr_mutant(tmp_path, variant, 20_000)
        target = tmp_path / f"{variant}.npy"
        result = hostile.run("pool", store, "-o", target, "-m", "max")
        where = f"seed {SEED} case {variant}#20000 ({'; '.join(mutations)})"
        lines = result.err_lines
        if result.timed_out or result.code not in (0, 1) or "Traceback" in result.err_text:
            failures.append(f"{where}: {result}")
        elif result.code == 1 and (len(lines) != 1 or not lines[0].startswith("poolcli: error:")
                                   or str(store) not in lines[0]):
            failures.append(f"{where}: exit 1 with stderr {result.err_text[:400]!r}")
        elif result.code == 0 and (lines or any(m.split()[0] in SPECIAL for m in mutations) or not np.array_equal(
                np.load(target), pool(zarr.open_array(str(store), mode="r")[...], 2, mode="max"))):
            failures.append(f"{where}: exit 0 but not zarr's values pooled: {result}")
    assert not failures, "\n".join(failures)


if __name__ == "__main__":  # python tests/test_fuzz_loaders.py VARIANT CASE [FOLDER]
    chosen, number = sys.argv[1], int(sys.argv[2])
    folder = Path(sys.argv[3] if len(sys.argv) > 3 else ".")
    if chosen in ZARR_VARIANTS:
        written_store, how = zarr_mutant(folder, chosen, number)
        print(written_store, "; ".join(how))
        sys.exit()
    streamed = chosen.startswith("stream:")  # a streamed TIFF variant: stream:tiled-zlib
    content, how = stream_mutant(chosen[7:], number) if streamed else mutant(chosen, number)
    written = folder / f"{chosen[7:]}-{number}.tif" if streamed else folder / f"{chosen}-{number}{VARIANTS[chosen][0]}"
    written.write_bytes(content)
    print(written, "; ".join(how))
