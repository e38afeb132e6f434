"""`.npy` files read and written block by block with pread/pwrite, never memory-mapped: a
mapped file's pages count as the process's resident memory while they are touched, so a
memory budget could not hold; blocks read into (and written from) ordinary arrays can.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import npy_header


class NpyFile:
    """A C-order `.npy` file as an array: ``file[index]`` reads a block, ``file[index] = block``
    writes one. An index is a tuple of step-1 slices over the leading axes (the rest whole)."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype, offset: int, descriptor: int):
        self.path, self.shape, self.dtype, self.offset, self._fd = path, shape, dtype, offset, descriptor
        self.chunks = shape

    @classmethod
    def open(cls, path: Path) -> NpyFile:
        """An existing `.npy` for reading; an InputError for a Fortran-order or unreadable one."""
        with open(path, "rb") as file:
            try:
                header = npy_header(file)
            except ValueError as error:
                raise InputError(f"{path}: not a readable .npy file ({error}); check the file") from None
        shape, fortran, dtype, offset = header.shape, header.fortran_order, header.dtype, header.offset
        if fortran and len(shape) > 1:
            raise InputError(f"{path}: a Fortran-order .npy is not streamed; save it in C order")
        if offset + math.prod(shape) * dtype.itemsize > path.stat().st_size:
            raise InputError(f"{path}: shorter than its header says; the file is cut")
        return cls(path, tuple(shape), np.dtype(dtype), offset, os.open(path, os.O_RDONLY))

    @classmethod
    def create(cls, path: Path, shape: tuple[int, ...], dtype: np.dtype) -> NpyFile:
        """A new `.npy` of `shape` and `dtype` (the data zero until written)."""
        with open(path, "wb") as file:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                      "shape": tuple(shape)}
            np.lib.format.write_array_header_2_0(file, header)
            offset = file.tell()
            file.truncate(offset + math.prod(shape) * np.dtype(dtype).itemsize)
        return cls(path, tuple(shape), np.dtype(dtype), offset, os.open(path, os.O_RDWR))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __getitem__(self, index: tuple) -> np.ndarray:
        starts, counts = self._selection(index)
        out = np.empty(counts, dtype=self.dtype)
        for run, offset in self._runs(starts, counts):
            _read_fully(self._fd, out[run].reshape(-1).view(np.uint8).data, offset)
        return out

    def __setitem__(self, index: tuple, block: np.ndarray) -> None:
        starts, counts = self._selection(index)
        block = np.ascontiguousarray(np.broadcast_to(np.asarray(block, dtype=self.dtype), counts))
        for run, offset in self._runs(starts, counts):
            _write_fully(self._fd, np.ascontiguousarray(block[run]).reshape(-1).view(np.uint8).data, offset)

    def _selection(self, index) -> tuple[list[int], tuple[int, ...]]:
        index = index if isinstance(index, tuple) else (index,)
        starts, counts = [], []
        for axis, n in enumerate(self.shape):
            item = index[axis] if axis < len(index) else slice(None)
            start, stop, step = item.indices(n) if isinstance(item, slice) else (item, item + 1, 1)
            if step != 1:
                raise ValueError("NpyFile reads step-1 slices only")
            starts.append(start)
            counts.append(max(0, stop - start))
        return starts, tuple(counts)

    def _runs(self, starts: list[int], counts: tuple[int, ...]):
        """(index into the block, file offset) of each contiguous run of the selection."""
        split = len(self.shape)  # the run: the last axis not whole, and every axis after it
        while split > 0 and starts[split - 1] == 0 and counts[split - 1] == self.shape[split - 1]:
            split -= 1
        split = max(split - 1, 0)
        strides = np.array([math.prod(self.shape[a + 1:]) for a in range(len(self.shape))], dtype=np.int64)
        for prefix in np.ndindex(*counts[:split]):
            flat = sum((starts[a] + prefix[a]) * int(strides[a]) for a in range(split))
            flat += starts[split] * int(strides[split]) if split < len(self.shape) else 0
            yield prefix, self.offset + flat * self.dtype.itemsize


def _read_fully(descriptor: int, view: memoryview, offset: int) -> None:
    while view.nbytes:
        count = os.preadv(descriptor, [view], offset)
        if count <= 0:
            raise OSError(f"unexpected end of file at byte {offset}")
        view, offset = view[count:], offset + count


def _write_fully(descriptor: int, view: memoryview, offset: int) -> None:
    while view.nbytes:
        count = os.pwritev(descriptor, [view], offset)
        view, offset = view[count:], offset + count
