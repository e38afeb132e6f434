"""Big inputs, opened without reading them, by their store (`stores/`: `.npy` read with pread,
Zarr arrays and groups, TIFF/BigTIFF read tile by tile or strip by strip).

Each is a `Source`: a shape, a dtype, the chunk shape reads are best aligned to, and `read`,
which returns the selected block as an in-memory NumPy array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.calibration import Calibration
from .tiffsegments import TiffSegments


@dataclass(frozen=True)
class Level:
    """One level of a multi-resolution input (an OME-Zarr image's dataset), as its metadata says."""

    path: str  # inside the store
    shape: tuple[int, ...]
    calibration: Calibration | None


@dataclass
class Source:
    """A big input: read block by block, never whole."""

    path: Path
    array: Any  # NpyFile, zarr.Array or an ndarray: anything sliced into NumPy arrays
    kind: str  # "array" (.npy, Zarr) or "image" (TIFF)
    format: str  # its store's name (stores.STORES): "NPY", "ZARR", "TIFF"
    chunks: tuple[int, ...]  # the store's chunk shape (the whole shape for .npy)
    dataset: str = ""  # the array's path inside a Zarr group
    order: tuple[int, ...] | None = None  # a planar TIFF's (S, Y, X) seen as (Y, X, S)
    zarr_format: int | None = None  # a Zarr input's format
    calibration: Calibration | None = None  # its axes and physical sizes, where its metadata says
    nodata: int | float | None = None  # the value it declares for missing cells (GDAL_NODATA, a Zarr "nodata")
    fill_value: int | float | None = None  # a Zarr array's fill value (missing cells only when asked)
    levels: tuple[Level, ...] = ()  # the levels of the multi-resolution image it is one of, where it is

    @property
    def shape(self) -> tuple[int, ...]:
        shape = tuple(int(n) for n in self.array.shape)
        return shape if self.order is None else tuple(shape[a] for a in self.order)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def check_memory(self, memory: int) -> None:
        """Refuse, from sizes alone, an input whose reads would not fit `memory` (a TIFF whose one
        tile or strip decodes to more than its share), and keep its reads within it."""
        if isinstance(self.array, TiffSegments):
            self.array.check_memory(memory)

    def read(self, index: tuple) -> np.ndarray:
        """The block at `index` (slices), in memory and native byte order."""
        if self.order is not None:
            index = (*index, *(slice(None),) * (len(self.order) - len(index)))
            stored = [slice(None)] * len(self.order)
            for position, axis in enumerate(self.order):
                stored[axis] = index[position]
            block = np.asarray(self.array[tuple(stored)]).transpose(self.order)
        else:
            block = np.asarray(self.array[index])
        if block.dtype.byteorder not in "=|":
            block = block.astype(block.dtype.newbyteorder("="))
        return np.ascontiguousarray(block)
