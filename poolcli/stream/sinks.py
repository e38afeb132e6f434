"""Big outputs, written block by block and published whole: `.npy` (with pwrite), Zarr
(a folder: v2 or v3, Blosc-compressed chunks) and tiled BigTIFF (tifffile).

Every sink writes to a hidden temporary name beside the target (`io.atomic_path`) and takes
the final name only when every block is in: an interrupted run leaves nothing that looks
complete, and the next run starts clean.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import OutputError, param
from ..io import atomic_path, scratch
from .chunkfiles import writable
from .npyfile import NpyFile
from .sources import TIFF_SUFFIXES, ZARR_SUFFIXES

SINK_SUFFIXES = (".npy", *ZARR_SUFFIXES, *TIFF_SUFFIXES)
COMPRESSIONS = ("zstd", "lz4", "zlib", "none")
TILE = 256  # TIFF tile side
CHUNK = 1024  # Zarr chunk side along the pooled (spatial) axes
ZARR_CONCURRENCY = 2  # chunks Zarr encodes at once
SETTLE_SECONDS = 30  # how long an interrupted output waits for zarr's writes in flight
# Blosc's zstd at clevel 2 stores photo-like data within 0.5 % of clevel 3's size, four times as
# fast (clevel 3 runs zstd at a slower level); lz4 is about speed, zlib about compatibility.
LEVELS = {"zstd": 2, "lz4": 5, "zlib": 3, "none": 0}


@dataclass(frozen=True)
class StoreOptions:
    """How outputs are stored: Zarr format and chunk side, compression of Zarr and TIFF."""

    compression: str = "zstd"
    level: int | None = None  # None: LEVELS[compression]
    chunk: int = CHUNK
    zarr_format: int = 2

    @property
    def chosen_level(self) -> int:
        return LEVELS.get(self.compression, 0) if self.level is None else self.level

    def check(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise OutputError(f"{param('compression')} {self.compression!r} is not known;"
                              f" use one of {', '.join(COMPRESSIONS)}")
        if self.zarr_format not in (2, 3):
            raise OutputError(f"{param('zarr_format')} {self.zarr_format} is not known; use 2 or 3")
        if self.chunk < 1:
            raise OutputError(f"{param('chunk')} {self.chunk} must be >= 1; use a chunk side such as 1024")


@dataclass
class Sink:
    """Where blocks of an output go: `write(index, block)` in any order."""

    array: Any  # NpyFile or zarr.Array
    chunked: bool = False  # a Zarr store: blocks are best written in whole chunk rows

    def write(self, index: tuple, block: np.ndarray) -> None:
        self.array[index] = block

    def writer(self, axis: int, room: int) -> AlignedWriter:
        """`write`, gathering whole chunk rows along `axis` in at most `room` bytes (Zarr)."""
        shape = tuple(self.array.shape)
        rows = int(self.array.chunks[axis]) if self.chunked else 1
        row_bytes = math.prod(shape[axis + 1:]) * np.dtype(self.array.dtype).itemsize
        return AlignedWriter(self.write, axis, rows, row_bytes, room)


class AlignedWriter:
    """Blocks that arrive in order along one axis, gathered into whole chunk rows before they
    reach a Zarr store: no chunk is read back and written twice. Blocks pass straight through
    where a chunk row would not fit `room` bytes, or the store has one chunk row anyway."""

    def __init__(self, write: Callable[[tuple, np.ndarray], None], axis: int, chunk_rows: int, row_bytes: int,
                 room: int):
        self.write, self.axis, self.rows = write, axis, chunk_rows
        self.direct = chunk_rows <= 1 or chunk_rows * row_bytes > room
        self.outer: tuple = ()
        self.start = self.stop = 0
        self.blocks: list[np.ndarray] = []

    def __call__(self, index: tuple, block: np.ndarray) -> None:
        if self.direct:
            self.write(index, block)
            return
        outer, band = index[:self.axis], index[self.axis]
        if self.blocks and (outer != self.outer or band.start != self.stop):
            self.flush()
        if not self.blocks:
            self.outer, self.start = outer, band.start
        self.blocks.append(block)
        self.stop = band.stop
        aligned = self.stop // self.rows * self.rows
        if aligned > self.start:
            self._emit(aligned)

    def flush(self) -> None:
        if self.blocks:
            self._emit(self.stop)

    def _emit(self, until: int) -> None:
        gathered = np.concatenate(self.blocks, axis=self.axis) if len(self.blocks) > 1 else self.blocks[0]
        cut = until - self.start
        head = (slice(None),) * self.axis
        self.write((*self.outer, slice(self.start, until)), gathered[(*head, slice(0, cut))])
        rest = gathered[(*head, slice(cut, None))]
        self.blocks = [rest] if rest.shape[self.axis] else []
        self.start = until


@contextlib.contextmanager
def zarr_writing() -> Iterator[None]:
    """Zarr's own concurrency held down (each chunk in flight holds its raw and encoded bytes),
    and Blosc's threads off: Zarr already codes chunks in parallel, and Blosc's own threads
    only add CPU time (measured: a fifth more to decode the same chunks). Every chunk is
    written: looking for chunks that hold only the fill value costs a pass over each (5 % of a
    pyramid's CPU time), and a compressed chunk of zeros takes a few bytes."""
    import numcodecs
    import zarr

    threads = numcodecs.blosc.use_threads
    numcodecs.blosc.use_threads = False
    try:
        with zarr.config.set({"async.concurrency": ZARR_CONCURRENCY, "array.write_empty_chunks": True}):
            yield
    except BaseException:
        settle_zarr()  # before the caller removes the store
        raise
    finally:
        numcodecs.blosc.use_threads = threads


def settle_zarr(seconds: float = SETTLE_SECONDS) -> None:
    """Wait (at most `seconds`) until zarr's event loop has finished every write it started. zarr
    writes on its own thread: an interrupt stops the thread that waits for a write, not the write,
    which would create its folders again in a store removed meanwhile."""
    import asyncio
    import warnings

    from zarr.core import sync

    warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
    loop = sync.loop[0]  # an interrupt may cut a write between making its coroutine and running it
    if loop is None or loop.is_closed() or not loop.is_running():
        return

    async def drained() -> None:
        deadline = loop.time() + seconds
        current = asyncio.current_task()
        while loop.time() < deadline:
            tasks = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
            if not tasks:
                return
            await asyncio.wait(tasks, timeout=deadline - loop.time())

    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(drained(), loop).result(seconds + 1)


def sink_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return "NPY"
    if suffix in ZARR_SUFFIXES:
        return "ZARR"
    if suffix in TIFF_SUFFIXES:
        return "TIFF"
    raise OutputError(f"{path}: big outputs are .npy, .zarr or .tif/.tiff; use one of those extensions")


def chunk_shape(shape: tuple[int, ...], spatial: tuple[int, ...], side: int) -> tuple[int, ...]:
    """Chunks of `side` along the spatial axes, one along the others (each at most the shape)."""
    return tuple(max(1, min(n, side if axis in spatial else 1)) for axis, n in enumerate(shape))


def zarr_compressors(options: StoreOptions, zarr_format: int):
    """The Blosc (or no) compressor of an output array, in the form its Zarr format wants."""
    if options.compression == "none":
        return None
    if zarr_format == 2:
        import numcodecs

        if options.compression == "zlib":
            return numcodecs.Zlib(level=options.chosen_level)
        return numcodecs.Blosc(cname=options.compression, clevel=options.chosen_level, shuffle=numcodecs.Blosc.SHUFFLE)
    import zarr.codecs

    if options.compression == "zlib":
        return zarr.codecs.GzipCodec(level=options.chosen_level)
    return zarr.codecs.BloscCodec(cname=cast(Any, options.compression), clevel=options.chosen_level, shuffle="shuffle")


def create_zarr_array(group_or_store, name: str | None, shape, dtype, chunks, options: StoreOptions):
    """A new, empty Zarr array (in a group under `name`, or as the store itself)."""
    import zarr

    keywords = dict(shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                    compressors=zarr_compressors(options, options.zarr_format))
    if name is None:
        return zarr.create_array(store=str(group_or_store), zarr_format=cast(Any, options.zarr_format), **keywords)
    return group_or_store.create_array(name, **keywords)


@contextlib.contextmanager
def open_sink(target: Path, shape: tuple[int, ...], dtype: np.dtype, *, spatial: tuple[int, ...],
              options: StoreOptions, overwrite: bool, inputs: tuple[Path, ...]) -> Iterator[Sink]:
    """A sink for an output of `shape` and `dtype` that becomes `target` when the block ends."""
    kind = sink_format(target)
    if kind == "ZARR":
        with atomic_path(target, overwrite=overwrite, inputs=inputs, folder=True) as store, zarr_writing():
            chunks = chunk_shape(shape, spatial, options.chunk)
            yield Sink(writable(create_zarr_array(store, None, shape, dtype, chunks, options), store), chunked=True)
        return
    if kind == "TIFF":
        check_tiff_shape(target, shape)
    with atomic_path(target, overwrite=overwrite, inputs=inputs) as temporary:
        if kind == "NPY":
            with _npy_file(temporary, shape, dtype) as array:
                yield Sink(array)
            return
        with scratch(target) as levels, _npy_file(levels, shape, dtype) as array:  # TIFF: tiled at the end
            yield Sink(array)
            write_tiff(temporary, [array], options)


@contextlib.contextmanager
def _npy_file(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> Iterator[NpyFile]:
    array = NpyFile.create(path, shape, dtype)
    try:
        yield array
    finally:
        array.close()


def check_tiff_shape(target: Path, shape: tuple[int, ...]) -> None:
    if len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4)):
        return
    raise OutputError(f"{target}: a {len(shape)}-d result of shape {shape} is no TIFF image (H x W or"
                      " H x W x 1|3|4); write .zarr or .npy instead")


def tiles(array, side: int = TILE) -> Iterator[np.ndarray]:
    """Row-major tiles of an H x W (x C) array (or NpyFile, read one row of tiles at a time), as
    tifffile takes them (it pads the edges)."""
    for top in range(0, array.shape[0], side):
        rows = np.asarray(array[top:top + side])
        for left in range(0, array.shape[1], side):
            yield np.ascontiguousarray(rows[:, left:left + side])


def tiff_options(shape: tuple[int, ...], options: StoreOptions) -> dict:
    """tifffile's keywords for a tiled image of `shape`: tiles, compression, colour or grey."""
    compression = None if options.compression == "none" else ("zlib" if options.compression == "zlib" else "zstd")
    colour = len(shape) == 3 and shape[2] in (3, 4)
    keywords: dict = dict(tile=(TILE, TILE), compression=compression, photometric="rgb" if colour else "minisblack")
    if colour and shape[2] == 4:
        keywords["extrasamples"] = ("unassalpha",)
    return keywords


def write_tiff(path: Path | str, levels: list, options: StoreOptions) -> None:
    """A tiled BigTIFF of `levels[0]` (arrays or NpyFiles), the others as its reduced-resolution sub-IFDs."""
    import tifffile

    common = tiff_options(levels[0].shape, options)
    with tifffile.TiffWriter(os.fspath(path), bigtiff=True) as tiff:
        tiff.write(tiles(levels[0]), shape=levels[0].shape, dtype=levels[0].dtype, subifds=len(levels) - 1, **common)
        for level in levels[1:]:
            tiff.write(tiles(level), shape=level.shape, dtype=level.dtype, subfiletype=1, **common)
