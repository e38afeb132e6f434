"""Local Zarr arrays read straight from their chunk files: zarr gives the metadata (chunk keys,
codecs, fill value), numcodecs decodes, and a read is one file read and one decode per chunk it
touches, without the asynchronous machinery of `zarr.Array.__getitem__` (which took about as
much CPU time again as the decoding itself).

Layouts read this way: Zarr v2 in C order with any numcodecs compressor and filters, and Zarr v3
with the bytes codec followed by Blosc, Zstd or Gzip (or nothing). Others (sharding, transposes,
checksums) are read by zarr itself (`chunk_files` returns None).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Decode = Callable[[bytes], np.ndarray]


@dataclass(frozen=True)
class ChunkFiles:
    """A local Zarr array, sliced into NumPy arrays chunk file by chunk file."""

    folder: Path
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype  # as stored (its byte order)
    fill_value: object
    key: Callable[[tuple[int, ...]], str]
    decode: Decode  # a chunk file's bytes -> the chunk's values, of shape `chunks`

    def __getitem__(self, index: tuple) -> np.ndarray:
        region = [range(*s.indices(n)) for s, n in zip(full_index(index, len(self.shape)), self.shape, strict=True)]
        if any(r.step != 1 for r in region):
            raise ValueError("chunk files are read with unit steps only")
        out = np.empty(tuple(len(r) for r in region), dtype=self.dtype)
        spans = [range(r.start // c, -(-r.stop // c)) for r, c in zip(region, self.chunks, strict=True)]
        for coords in itertools.product(*spans):
            corner = [i * c for i, c in zip(coords, self.chunks, strict=True)]
            inside = tuple(slice(max(r.start, a) - a, min(r.stop, a + c) - a)
                           for r, a, c in zip(region, corner, self.chunks, strict=True))
            placed = tuple(slice(a + s.start - r.start, a + s.stop - r.start)
                           for r, a, s in zip(region, corner, inside, strict=True))
            out[placed] = self.chunk(coords)[inside]
        return out

    def chunk(self, coords: tuple[int, ...]) -> np.ndarray:
        """One whole chunk's values (the fill value where its file is missing)."""
        try:
            data = (self.folder / self.key(coords)).read_bytes()
        except FileNotFoundError:
            return np.full(self.chunks, self.fill_value, dtype=self.dtype)
        return self.decode(data)


def chunk_files(array, folder: Path) -> ChunkFiles | None:
    """The chunk-file reader of zarr array `array` stored in local `folder`, or None where its
    layout is one zarr reads itself."""
    metadata = array.metadata
    reading = _v2_decode(metadata) if metadata.zarr_format == 2 else _v3_decode(array)
    if reading is None:
        return None
    dtype, decode_bytes = reading
    chunks = tuple(int(c) for c in array.chunks)
    fill = 0 if array.fill_value is None else array.fill_value

    def decode(data: bytes) -> np.ndarray:
        return np.frombuffer(decode_bytes(data), dtype=dtype).reshape(chunks)

    return ChunkFiles(folder, tuple(int(n) for n in array.shape), chunks, dtype, fill, metadata.encode_chunk_key,
                      decode)


def _v2_decode(metadata) -> tuple[np.dtype, Callable[[bytes], bytes]] | None:
    if metadata.order != "C":
        return None
    dtype = np.dtype(metadata.dtype.to_native_dtype())
    if dtype.kind not in "biuf":
        return None
    stages = ([metadata.compressor] if metadata.compressor is not None else []) + list(metadata.filters or [])[::-1]
    return dtype, _chain(stages)


def _v3_decode(array) -> tuple[np.dtype, Callable[[bytes], bytes]] | None:
    import numcodecs
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    first, *rest = array.metadata.codecs
    if not isinstance(first, BytesCodec):
        return None
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "biuf":
        return None
    if first.endian is not None and dtype.itemsize > 1:
        dtype = dtype.newbyteorder("<" if first.endian.value == "little" else ">")
    known = {BloscCodec: numcodecs.Blosc, ZstdCodec: numcodecs.Zstd, GzipCodec: numcodecs.GZip}
    if any(type(codec) not in known for codec in rest):
        return None
    return dtype, _chain([known[type(codec)]() for codec in reversed(rest)])


def _chain(stages: list) -> Callable[[bytes], bytes]:
    """Decoding by numcodecs codecs, in the order given (outermost first)."""

    def decode(data: bytes) -> bytes:
        for stage in stages:
            data = stage.decode(data)
        return data

    return decode


def full_index(index: tuple, ndim: int) -> tuple:
    """`index` with whole slices for the axes it leaves out."""
    return (*index, *(slice(None),) * (ndim - len(index)))
