"""Big outputs, written block by block and published whole: what every store's sink shares
(`StoreOptions`, the `Sink` blocks are written to, `AlignedWriter`); each store's own sink is
in `stores/` (`.npy` with pwrite, Zarr v2 or v3, tiled BigTIFF).

Every sink writes to a hidden temporary name beside the target (`io.atomic_path`) and takes
the final name only when every block is in: an interrupted run leaves nothing that looks
complete, and the next run starts clean.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.calibration import Calibration
from ..core.choices import COMPRESSIONS
from ..core.dtypes import cast_value
from ..errors import OutputError, param
from .npyfile import NpyFile

CHUNK = 1024  # Zarr chunk side along the pooled (spatial) axes
# Blosc's zstd at clevel 2 stores photo-like data within 0.5 % of clevel 3's size, four times as
# fast (clevel 3 runs zstd at a slower level); lz4 is about speed, zlib about compatibility.
LEVELS = {"zstd": 2, "lz4": 5, "zlib": 3, "none": 0}


@dataclass(frozen=True)
class StoreOptions:
    """How outputs are stored: Zarr format and chunk side, compression of Zarr and TIFF."""

    compression: str | None = None  # None: the output store's default (`stores.Store.compressions`)
    level: int | None = None  # None: the store's level for it (Zarr: LEVELS[compression])
    chunk: int = CHUNK
    zarr_format: int = 2
    calibration: Calibration | None = None  # the output's axes and physical sizes, recorded by its writer
    ome: bool = False  # a TIFF output is an OME-TIFF whatever its name (`.ome.tif` is one anyway)
    nodata: int | float | None = None  # the value of cells without data, as the written data (level 0) holds it

    def nodata_for(self, dtype: np.dtype, written: np.dtype | None = None) -> int | float | None:
        """The nodata as an array of `dtype` records it: cast from `written` (level 0's dtype, where
        a pyramid's reduced levels have another) as every pooled value is."""
        if self.nodata is None or written is None or np.dtype(written) == np.dtype(dtype):
            return self.nodata
        return cast_value(self.nodata, np.dtype(written), np.dtype(dtype))

    @property
    def chosen_level(self) -> int:
        return LEVELS.get(self.compression or "", 0) if self.level is None else self.level

    def check(self) -> None:
        if self.compression is not None and self.compression not in COMPRESSIONS:
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
def npy_file(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> Iterator[NpyFile]:
    """A new .npy file of `shape` and `dtype` at `path` (written with pwrite), closed when the block ends."""
    array = NpyFile.create(path, shape, dtype)
    try:
        yield array
    finally:
        array.close()


