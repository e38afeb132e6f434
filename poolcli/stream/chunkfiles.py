"""Local Zarr arrays read and written straight through their chunk files: zarr gives the
metadata (chunk keys, codecs, fill value), numcodecs encodes and decodes, and a read or a write
is one file and one codec call per chunk, without the asynchronous machinery of zarr's own
reads and writes (which took about as much CPU time again as the decoding itself, and 1-3 ms a
chunk written).

Layouts handled this way: Zarr v2 in C order with a Blosc, Zstd, LZ4, Zlib, GZip or BZ2
compressor (or none) and size-preserving filters (Delta, Shuffle), and Zarr v3 with the bytes
codec followed by Blosc, Zstd or Gzip (or nothing). Others (sharding, transposes, checksums,
other codecs) are left to zarr (`chunk_files` returns None).

Chunk files are hostile input: each is opened only as a regular file inside the array's folder
(no symbolic link followed, no FIFO waited on), no larger than a chunk can be encoded, and
decoded to exactly one chunk's bytes with the size known before anything is inflated
(`decode_exactly`); anything else is an InputError naming the store and the chunk's key.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import itertools
import math
import os
import stat
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError


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
        spare = np.empty(self.chunks, self.dtype) if spare is None else spare
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
        """One whole chunk's values (the fill value where its file is missing, as zarr reads it),
        in `into` if given; an InputError naming the store and the chunk's key where its file is
        not a regular file inside the store, or is not exactly one chunk once decoded."""
        key = self.key(coords)
        data = self._file_bytes(key)
        if data is None:
            return np.full(self.chunks, self.fill_value, dtype=self.dtype)
        values = np.empty(self.chunks, self.dtype) if into is None else into
        try:
            decode_exactly(self.stages, data, values.view(np.uint8).reshape(-1))  # `into` is contiguous
        except CorruptChunk as error:
            raise self.refusal(key, str(error)) from None
        return values

    @property
    def chunk_bytes(self) -> int:
        """The bytes of one decoded chunk."""
        return math.prod(self.chunks) * self.dtype.itemsize

    @property
    def largest_encoded(self) -> int:
        """The most bytes a chunk file may hold: exactly a chunk's bytes uncompressed, else what
        the codec's worst case (incompressible data stored as it is, plus headers) allows."""
        return self.chunk_bytes if not self.stages else self.chunk_bytes + self.chunk_bytes // 128 + 4096

    def refusal(self, key: str, problem: str) -> InputError:
        return InputError(f"{self.folder}: chunk {key!r} {problem}; the store is damaged: rewrite that chunk,"
                          " or delete its file to read the fill value")

    def open_chunk(self, key: str) -> tuple[int, int] | None:
        """The open descriptor of the chunk file at `key` and its size, or None where there is no
        such file (a chunk never written: the fill value). An InputError for a file that is not
        regular (`open_regular`) or is larger than a chunk can be encoded (`largest_encoded`); an
        uncompressed one must be exactly a chunk."""
        opened = self.open_file(key)
        if opened is None:
            return None
        descriptor, size = opened
        if size > self.largest_encoded or (not self.stages and size != self.chunk_bytes):
            os.close(descriptor)
            raise self.refusal(key, f"holds {size:,} bytes where one chunk of {self.chunk_bytes:,} bytes is stored"
                                    f" in {'exactly' if not self.stages else 'at most'} {self.largest_encoded:,}")
        return descriptor, size

    def open_file(self, key: str) -> tuple[int, int] | None:
        """`open_regular` of the file at `key` in the array's folder; its failures an InputError."""
        try:
            return open_regular(self.folder, key)
        except NotRegular as error:
            raise self.refusal(key, str(error)) from None

    def grid(self) -> Iterator[tuple[int, ...]]:
        """The coordinates of every chunk of the array's grid."""
        return itertools.product(*(range(-(-n // c)) for n, c in zip(self.shape, self.chunks, strict=True)))

    def _file_bytes(self, key: str) -> memoryview | None:
        """A chunk file's bytes (`open_chunk`), read into this thread's buffer (kept from chunk to
        chunk: Dask workers hand freed memory back to the system at once, and fresh pages cost as
        much to clear as the file takes to read); None where the file is missing."""
        opened = self.open_chunk(key)
        if opened is None:
            return None
        descriptor, size = opened
        with open(descriptor, "rb", buffering=0) as file:
            held = getattr(self.buffers, "read", None)
            if held is None or len(held) < size:
                held = self.buffers.read = bytearray(size)
            view = memoryview(held)[:size]
            got = 0
            while got < size:
                count = file.readinto(view[got:])
                if not count:
                    break
                got += count
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


def writable(array, folder: Path | None):
    """`array` (stored in local `folder`) with whole-chunk writes straight to its files where the
    `chunk_files` fast path is on and its layout allows; for a store in object storage (`folder`
    None) with its writes in the background (`io.remote.background_writes`); else `array` itself."""
    from ..engine import FAST_PATHS
    from ..io.remote import background_writes

    if folder is None:
        return background_writes(array)  # in object storage: uploaded while the next rows are computed
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
    filters = list(metadata.filters or [])
    if not all(_size_preserving(f) for f in filters) or not _decodable(metadata.compressor) \
            or (filters and metadata.compressor is None):  # the last stage is the compressor, if any
        return None
    return dtype, filters + ([metadata.compressor] if metadata.compressor is not None else [])


def _decodable(compressor) -> bool:
    """Whether chunk files of `compressor` are decoded here (`DECODERS`), each to exactly one chunk."""
    return compressor is None or (type(compressor).__module__.startswith("numcodecs.")
                                  and type(compressor).__name__ in DECODERS)


def _size_preserving(stage) -> bool:
    """Filters whose decoded bytes are as many as their encoded ones (others are left to zarr)."""
    if type(stage).__name__ == "Delta":
        return np.dtype(stage.dtype).itemsize == np.dtype(stage.astype).itemsize
    return type(stage).__name__ == "Shuffle"


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
    return (dtype, stages) if len(stages) <= 1 else None  # one compressor: its decoded size is a chunk's


def check_storage_files(array, folder: Path, path: Path, index: tuple) -> None:
    """Before zarr reads `index` of `array` (stored in local `folder`; a layout it reads itself):
    every file the read touches (a chunk's, or a shard's) must be a regular file inside the
    store or missing (`open_regular`), never a link, a folder or a FIFO zarr would wait on; an
    InputError naming the store `path` and the key."""
    shape = tuple(int(n) for n in array.shape)
    unit = tuple(int(c) for c in (getattr(array, "shards", None) or array.chunks))
    region = [range(*s.indices(n)) for s, n in zip(full_index(index, len(shape)), shape, strict=True)]
    spans = [range(r.start // c, -(-r.stop // c)) if len(r) else range(0) for r, c in zip(region, unit, strict=True)]
    for coords in itertools.product(*spans):
        key = array.metadata.encode_chunk_key(coords)
        try:
            check_regular(folder, key)
        except NotRegular as error:
            raise InputError(f"{path}: chunk {key!r} {error}; the store is damaged: rewrite that chunk, or delete"
                             " its file to read the fill value") from None


def full_index(index: tuple, ndim: int) -> tuple:
    """`index` with whole slices for the axes it leaves out."""
    return (*index, *(slice(None),) * (ndim - len(index)))


# ------------------------------------------------------------------ opening and decoding one chunk safely

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO opens at once (then refused)


class NotRegular(ValueError):
    """A path in a store that is not a regular file reached without a symbolic link (the message says what it is)."""


def check_regular(folder: Path, key: str) -> None:
    """NotRegular unless the file at `key` below `folder` is a regular file or missing (`open_regular`)."""
    opened = open_regular(folder, key)
    if opened is not None:
        os.close(opened[0])


def open_regular(folder: Path, key: str) -> tuple[int, int] | None:
    """The open descriptor of the file at `key` ("c/0/1", "0.1", ".zattrs") below `folder` and
    its size; None where there is no such file (or folder on its way). Each folder of the key is
    opened without following a symbolic link, the file too and without blocking (a FIFO opens
    at once), and it is checked once open: a NotRegular for a link, a folder, a FIFO, a device
    or a file where a folder should be."""
    parts = key.split("/")
    try:
        where = os.open(folder, FOLDER_FLAGS & ~os.O_NOFOLLOW)  # the array's own folder may be reached by a link
    except FileNotFoundError:
        return None
    except OSError as error:
        raise NotRegular(f"cannot be read: its array's folder cannot be opened ({error.strerror or error})") from None
    for depth, part in enumerate(parts, start=1):
        try:
            inner = os.open(part, FILE_FLAGS if depth == len(parts) else FOLDER_FLAGS, dir_fd=where)
        except OSError as error:
            problem = None if isinstance(error, FileNotFoundError) else _unopened(part, where, error)
            os.close(where)
            if problem is None:
                return None
            raise NotRegular(problem) from None
        os.close(where)
        where = inner
    descriptor = where
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise NotRegular(f"is not a regular file (a {_kind(status.st_mode)})")
    return descriptor, status.st_size


def _unopened(part: str, folder: int, error: OSError) -> str:
    """Why `part` of a key (in the open `folder`) could not be opened, in words."""
    with contextlib.suppress(OSError):
        if stat.S_ISLNK(os.lstat(part, dir_fd=folder).st_mode):
            return "is a symbolic link" + ("" if error.errno == errno.ELOOP else f" ({part!r}, a folder of chunks)")
    if error.errno == errno.ENOTDIR:
        return f"lies under {part!r}, a file where a folder of chunks should be"
    return f"cannot be read ({error.strerror or error})"


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))
    return next((name for test, name in kinds if test(mode)), "special file")


class CorruptChunk(ValueError):
    """A chunk file whose bytes do not decode to exactly one chunk (the message says how)."""


def decode_exactly(stages: tuple, data: memoryview, target: np.ndarray) -> None:
    """Decode the chunk file bytes `data` (encoded by `stages`, filters first) into `target`, a
    chunk's bytes (uint8), never writing past it nor leaving any of it unwritten: a CorruptChunk
    for data that decodes to any other size. The compressor learns the size first (its header,
    or a decoder bounded to one byte more than a chunk), so a bomb is never inflated.

    >>> import numcodecs
    >>> chunk = np.empty(4, np.uint8)
    >>> decode_exactly((numcodecs.Zlib(),), memoryview(numcodecs.Zlib().encode(b"abcd")), chunk)
    >>> bytes(chunk)
    b'abcd'
    >>> decode_exactly((numcodecs.Zlib(),), memoryview(numcodecs.Zlib().encode(b"ab")), chunk)
    Traceback (most recent call last):
    ...
    poolcli.stream.chunkfiles.CorruptChunk: decodes to 2 bytes, not one chunk's 4
    """
    if not stages:
        if len(data) != len(target):
            raise CorruptChunk(f"holds {len(data):,} bytes, not {len(target):,}")
        target[:] = np.frombuffer(data, np.uint8)
        return
    *filters, compressor = stages
    try:
        DECODERS[type(compressor).__name__](compressor, data, target)
        for stage in reversed(filters):  # size-preserving filters (`_size_preserving`)
            decoded = np.asarray(stage.decode(target.copy())).reshape(-1).view(np.uint8)
            _expect(len(decoded), len(target))
            target[:] = decoded
    except (RuntimeError, ValueError, TypeError, OSError, EOFError, zlib.error) as error:
        if isinstance(error, CorruptChunk):
            raise
        raise CorruptChunk(f"does not decode ({type(error).__name__}: {' '.join(str(error).split())[:200]})") from None


def _expect(size: int, wanted: int) -> None:
    if size != wanted:
        raise CorruptChunk(f"decodes to {size:,} bytes, not one chunk's {wanted:,}")


def _blosc(codec, data: memoryview, target: np.ndarray) -> None:
    """Blosc's 16-byte header holds the decoded size (bytes 4-7) and the encoded one (12-15)."""
    if len(data) < 16:
        raise CorruptChunk(f"holds {len(data)} bytes, less than a Blosc header")
    _expect(int.from_bytes(data[4:8], "little"), len(target))
    if int.from_bytes(data[12:16], "little") != len(data):
        raise CorruptChunk(f"holds {len(data):,} bytes where its Blosc header says"
                           f" {int.from_bytes(data[12:16], 'little'):,}")
    codec.decode(data, out=target)


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _zstd(codec, data: memoryview, target: np.ndarray) -> None:
    """A frame that states its content size must state a chunk's (numcodecs would decode a
    smaller one into `target` and leave the rest unwritten); one that does not is decoded by
    numcodecs' stream into `target`, which fails unless it fills it exactly."""
    if bytes(data[:4]) != ZSTD_MAGIC or len(data) < 6:
        raise CorruptChunk("is not a Zstandard frame")
    descriptor = data[4]
    single = descriptor >> 5 & 1
    width = (single, 2, 4, 8)[descriptor >> 6]
    if width:
        start = 5 + (not single) + (0, 1, 2, 4)[descriptor & 3]
        if len(data) < start + width:
            raise CorruptChunk("is cut short in its Zstandard header")
        _expect(int.from_bytes(data[start:start + width], "little") + (256 if width == 2 else 0), len(target))
    codec.decode(data, out=target)


def _lz4(codec, data: memoryview, target: np.ndarray) -> None:
    """numcodecs' LZ4 stores the decoded size first (4 bytes, little-endian)."""
    if len(data) < 4:
        raise CorruptChunk(f"holds {len(data)} bytes, less than an LZ4 header")
    _expect(int.from_bytes(data[:4], "little"), len(target))
    codec.decode(data, out=target)


def _streamed(new: Callable[[Any], Any], members: bool) -> Callable[[Any, memoryview, np.ndarray], None]:
    """A decoder through decompressor objects (`new(codec)`: zlib, gzip, bz2), each asked for at
    most one byte more than what is left of the chunk; with `members`, streams that follow the
    first are decoded too (as gzip and bz2 read them), else they are ignored (as zlib does)."""

    def decode(codec, data: memoryview, target: np.ndarray) -> None:
        filled, rest = 0, bytes(data)
        while rest:
            decompressor = new(codec)
            piece = decompressor.decompress(rest, len(target) - filled + 1)
            if filled + len(piece) > len(target):
                raise CorruptChunk(f"decodes to more than one chunk's {len(target):,} bytes")
            target[filled:filled + len(piece)] = np.frombuffer(piece, np.uint8)
            filled += len(piece)
            if not decompressor.eof:
                raise CorruptChunk("is cut short (its compressed stream does not end)")
            rest = decompressor.unused_data if members else b""
        _expect(filled, len(target))

    return decode


DECODERS: dict[str, Callable[[Any, memoryview, np.ndarray], None]] = {
    "Blosc": _blosc,
    "Zstd": _zstd,
    "LZ4": _lz4,
    "Zlib": _streamed(lambda codec: zlib.decompressobj(), members=False),
    "GZip": _streamed(lambda codec: zlib.decompressobj(16 + zlib.MAX_WBITS), members=True),
    "BZ2": _streamed(lambda codec: bz2.BZ2Decompressor(), members=True),
}
"""The compressors whose chunk files are read straight, each decoded to exactly one chunk."""
