"""The `.npy` store: read with pread (never mapped: mapped pages would count as resident memory)
and written with pwrite, one file; it has no pyramid writer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...io import atomic_path
from ..npyfile import NpyFile
from ..sinks import Sink, StoreOptions, npy_file
from ..sources import Source


@contextlib.contextmanager
def open_source(path: Path, dataset: str | None = None) -> Iterator[Source]:
    source = _npy_source(path)
    try:
        yield source
    finally:
        source.array.close()


def _npy_source(path: Path) -> Source:
    array = NpyFile.open(path)  # read with pread, never mapped: mapped pages would count as resident memory
    if array.dtype.kind not in "biuf":
        array.close()
        raise InputError(f"{path}: dtype {array.dtype} cannot be pooled; use bool, integer or float data")
    return Source(path, array, "array", "NPY", tuple(array.shape))


def data_bytes(path: Path) -> int:
    """The array's size from the `.npy` header (0 where the header cannot be read: the reader says why)."""
    try:
        return int(np.load(path, mmap_mode="r", allow_pickle=False).nbytes)
    except Exception:
        return 0


@contextlib.contextmanager
def open_sink(target: Path, shape: tuple[int, ...], dtype: np.dtype, *, spatial: tuple[int, ...],
              options: StoreOptions, overwrite: bool, inputs: tuple[Path, ...]) -> Iterator[Sink]:
    with atomic_path(target, overwrite=overwrite, inputs=inputs) as temporary, \
            npy_file(temporary, shape, dtype) as array:
        yield Sink(array)
