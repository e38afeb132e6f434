"""Local Zarr arrays read and written straight through their chunk files: zarr gives the
metadata (chunk keys, codecs, fill value), numcodecs encodes and decodes, and a read or a write
is one file and one codec call per chunk, without the asynchronous machinery of zarr's own
reads and writes (which took about as much CPU time again as the decoding itself, and 1-3 ms a
chunk written).

Layouts handled this way: Zarr v2 in C order with any numcodecs compressor and filters, and
Zarr v3 with the bytes codec followed by Blosc, Zstd or Gzip (or nothing). Others (sharding,
transposes, checksums) are left to zarr (`chunk_files` returns None).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ChunkFiles:
    """A local Zarr array, read and written chunk file by chunk file."""

    folder: Path
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype  # as stored (its byte order)
    fill_value: object
    key: Callable[[tuple[int, ...]], str]
    stages: tuple  # numcodecs codecs, in the order that encodes a chunk's bytes
    buffers: threading.local = field(default_factory=threading.local, compare=False, repr=False)

    def __getitem__(self, index: tuple) -> np.ndarray:
        return self.read(index)

    def read(self, index: tuple, out: np.ndarray | None = None, spare: np.ndarray | None = None) -> np.ndarray:
        """The values at `index`: in `out` if given (of the region's shape), else a new array;
        `spare` (of one chunk's shape) takes each chunk as it is decoded."""
        region = self._region(index)
        pieces = list(self._pieces(region))
        if out is None and len(pieces) == 1 and all(len(r) == c for r, c in zip(region, self.chunks, strict=True)):
            return self.chunk(pieces[0][0])  # one whole chunk: its values as decoded, no copy
        out = np.empty(tuple(len(r) for r in region), dtype=self.dtype) if out is None else out
        spare = np.empty(self.chunks, self.dtype) if spare is None and len(self.stages) == 1 else spare
        for coords, inside, placed in pieces:
            out[placed] = self.chunk(coords, spare)[inside]
        return out

    def __setitem__(self, index: tuple, values: np.ndarray) -> None:
        """Write the whole chunks `index` covers (`aligned` says whether it covers only such)."""
        region = self._region(index)
        if not self._aligned(region):
            raise ValueError("chunk files are written in whole chunks; write other regions through zarr")
        for coords, inside, placed in self._pieces(region):
            part = values[placed]
            if part.shape != self.chunks:  # an edge chunk: stored whole, the rest the fill value
                whole = np.full(self.chunks, self.fill_value, dtype=self.dtype)
                whole[inside] = part
                part = whole
            self.write_chunk(coords, part)

    def aligned(self, index: tuple) -> bool:
        return self._aligned(self._region(index))

    def chunk(self, coords: tuple[int, ...], into: np.ndarray | None = None) -> np.ndarray:
        """One whole chunk's values (the fill value where its file is missing), in `into` if given."""
        try:
            data: Any = self._file_bytes(self.folder / self.key(coords))
        except FileNotFoundError:
            return np.full(self.chunks, self.fill_value, dtype=self.dtype)
        if len(self.stages) == 1:  # one codec (the usual compressor): decoded straight into the array
            values = np.empty(self.chunks, self.dtype) if into is None else into
            self.stages[0].decode(data, out=values)
            return values
        for stage in reversed(self.stages):
            data = stage.decode(data)
        return np.frombuffer(data, dtype=self.dtype).reshape(self.chunks).copy()  # writable, as zarr gives

    def _file_bytes(self, path: Path) -> memoryview:
        """A chunk file's bytes, read into this thread's buffer (kept from chunk to chunk: Dask
        workers hand freed memory back to the system at once, and fresh pages cost as much to
        clear as the file takes to read)."""
        with open(path, "rb", buffering=0) as file:
            size = os.fstat(file.fileno()).st_size
            held = getattr(self.buffers, "read", None)
            if held is None or len(held) < size:
                held = self.buffers.read = bytearray(size)
            view = memoryview(held)[:size]
            got = file.readinto(view)
            return view[:got]

    def write_chunk(self, coords: tuple[int, ...], values: np.ndarray) -> None:
        data: object = np.ascontiguousarray(values, dtype=self.dtype)
        for stage in self.stages:
            data = stage.encode(data)
        path = self.folder / self.key(coords)
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as file:
            file.write(memoryview(data))  # type: ignore[arg-type]

    def _region(self, index: tuple) -> list[range]:
        region = [range(*s.indices(n)) for s, n in zip(full_index(index, len(self.shape)), self.shape, strict=True)]
        if any(r.step != 1 for r in region):
            raise ValueError("chunk files are read and written with unit steps only")
        return region

    def _aligned(self, region: list[range]) -> bool:
        return all(r.start % c == 0 and (r.stop % c == 0 or r.stop == n)
                   for r, c, n in zip(region, self.chunks, self.shape, strict=True))

    def _pieces(self, region: list[range]) -> Iterator[tuple[tuple[int, ...], tuple, tuple]]:
        """Per chunk `region` touches: its coordinates, the part inside the chunk, the part of the region."""
        spans = [range(r.start // c, -(-r.stop // c)) for r, c in zip(region, self.chunks, strict=True)]
        for coords in itertools.product(*spans):
            corner = [i * c for i, c in zip(coords, self.chunks, strict=True)]
            inside = tuple(slice(max(r.start, a) - a, min(r.stop, a + c) - a)
                           for r, a, c in zip(region, corner, self.chunks, strict=True))
            placed = tuple(slice(a + s.start - r.start, a + s.stop - r.start)
                           for r, a, s in zip(region, corner, inside, strict=True))
            yield coords, inside, placed


class ChunkedArray:
    """A zarr array whose writes of whole chunks go straight to their files (`ChunkFiles`),
    and every other read or write through zarr; its other attributes are the array's."""

    def __init__(self, array, folder: Path):
        self.array = array
        self.files = chunk_files(array, folder)

    def __getattr__(self, name: str):
        return getattr(self.array, name)

    def __getitem__(self, index: tuple) -> np.ndarray:
        return self.files[index] if self.files is not None else self.array[index]

    def __setitem__(self, index: tuple, values: np.ndarray) -> None:
        if self.files is not None and self.files.aligned(index):
            self.files[index] = values
        else:
            self.array[index] = values


def writable(array, folder: Path):
    """`array` (stored in local `folder`) with whole-chunk writes straight to its files where the
    `chunk_files` fast path is on and its layout allows; else `array` itself."""
    from ..engine import FAST_PATHS

    if not FAST_PATHS.chunk_files or chunk_files(array, folder) is None:
        return array
    return ChunkedArray(array, folder)


def chunk_files(array, folder: Path) -> ChunkFiles | None:
    """The chunk files of zarr array `array` stored in local `folder`, or None where its layout
    is one zarr reads and writes itself."""
    metadata = array.metadata
    layout = _v2_layout(metadata) if metadata.zarr_format == 2 else _v3_layout(array)
    if layout is None:
        return None
    dtype, stages = layout
    fill = 0 if array.fill_value is None else array.fill_value
    return ChunkFiles(folder, tuple(int(n) for n in array.shape), tuple(int(c) for c in array.chunks), dtype, fill,
                      metadata.encode_chunk_key, tuple(stages))


def _v2_layout(metadata) -> tuple[np.dtype, list] | None:
    if metadata.order != "C":
        return None
    dtype = np.dtype(metadata.dtype.to_native_dtype())
    if dtype.kind not in "biuf":
        return None
    return dtype, list(metadata.filters or []) + ([metadata.compressor] if metadata.compressor is not None else [])


def _v3_layout(array) -> tuple[np.dtype, list] | None:
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
    stages = []
    for codec in rest:
        if isinstance(codec, BloscCodec):
            shuffle = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE,
                       "bitshuffle": numcodecs.Blosc.BITSHUFFLE}[codec.shuffle.value]
            stages.append(numcodecs.Blosc(cname=codec.cname.value, clevel=codec.clevel, shuffle=shuffle,
                                          blocksize=codec.blocksize))
        elif isinstance(codec, ZstdCodec):
            stages.append(numcodecs.Zstd(level=codec.level, checksum=codec.checksum))
        elif isinstance(codec, GzipCodec):
            stages.append(numcodecs.GZip(level=codec.level))
        else:
            return None
    return dtype, stages


def full_index(index: tuple, ndim: int) -> tuple:
    """`index` with whole slices for the axes it leaves out."""
    return (*index, *(slice(None),) * (ndim - len(index)))
