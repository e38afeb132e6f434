"""Big inputs, opened without reading them: `.npy` (read with pread), Zarr arrays and groups
(v2 and v3, any local store; chunk files read straight by `chunkfiles` where it can) and
TIFF/BigTIFF (tiled or striped; `tiffsegments` decodes only the tiles or strips a read touches).

Each is a `Source`: a shape, a dtype, the chunk shape reads are best aligned to, and `read`,
which returns the selected block as an in-memory NumPy array.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine import FAST_PATHS
from ..errors import InputError, param
from ..io.chatter import quiet_logs
from ..io.formats import input_errors, one_line
from ..io.tiff import check_segments, tifffile_decodes
from .chunkfiles import NotRegular, check_storage_files, chunk_files, open_regular
from .npyfile import NpyFile
from .tiffsegments import SEGMENT_SHARE, TiffSegments

ZARR_SUFFIXES = (".zarr", ".zarr2", ".zarr3", ".ome.zarr")
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
DEFAULT_MEMORY = 512 * 10**6  # the memory budget of streaming, where none is given


@dataclass
class Source:
    """A big input: read block by block, never whole."""

    path: Path
    array: Any  # NpyFile, zarr.Array or an ndarray: anything sliced into NumPy arrays
    kind: str  # "array" (.npy, Zarr) or "image" (TIFF)
    format: str  # "NPY", "ZARR" or "TIFF"
    chunks: tuple[int, ...]  # the store's chunk shape (the whole shape for .npy)
    dataset: str = ""  # the array's path inside a Zarr group
    order: tuple[int, ...] | None = None  # a planar TIFF's (S, Y, X) seen as (Y, X, S)
    zarr_format: int | None = None  # a Zarr input's format

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


def is_big_input(path: Path) -> bool:
    """Whether `path` is read by this package in any case: a Zarr store (a folder)."""
    return path.suffix.lower() in ZARR_SUFFIXES or (path.is_dir() and _is_zarr(path))


@contextlib.contextmanager
def open_source(path: Path | str, dataset: str | None = None) -> Iterator[Source]:
    """The input at `path`, opened for reading blocks; an InputError naming it and the fix."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; check the path")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in ZARR_SUFFIXES:
        yield _zarr_source(path, dataset)
    elif suffix == ".npy":
        source = _npy_source(path)
        try:
            yield source
        finally:
            source.array.close()
    elif suffix in TIFF_SUFFIXES:
        with _tiff_source(path) as source:
            yield source
    else:
        raise InputError(f"{path}: big inputs are .npy, Zarr (.zarr) or TIFF; convert it, or pool it in memory")


def _npy_source(path: Path) -> Source:
    array = NpyFile.open(path)  # read with pread, never mapped: mapped pages would count as resident memory
    if array.dtype.kind not in "biuf":
        array.close()
        raise InputError(f"{path}: dtype {array.dtype} cannot be pooled; use bool, integer or float data")
    return Source(path, array, "array", "NPY", tuple(array.shape))


def _is_zarr(path: Path) -> bool:
    return any((path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))


def _zarr_source(path: Path, dataset: str | None) -> Source:
    import zarr

    if not _is_zarr(path):
        raise InputError(f"{path}: not a Zarr store (no zarr.json, .zarray or .zgroup); check the path")
    _check_metadata_files(path, path)
    try:
        node: Any = zarr.open(str(path), mode="r")
    except Exception as error:  # zarr raises many kinds for a broken store
        raise InputError(f"{path}: cannot open the Zarr store ({type(error).__name__}: {error})") from None
    name = ""
    if isinstance(node, zarr.Group):
        name, node = _group_array(path, node, dataset if dataset is not None else _default_dataset(path, node))
    elif dataset:
        raise InputError(f"{path}: is a Zarr array, not a group; leave out {param('dataset')}")
    _check_zarr_array(path, node)
    folder = path / name if name else path
    reader = (chunk_files(node, folder) if FAST_PATHS.chunk_files else None) or ZarrReads(path, node, folder)
    return Source(path, reader, "array", "ZARR", tuple(int(c) for c in node.chunks), name,
                  zarr_format=node.metadata.zarr_format)


def _group_array(path: Path, group, name: str) -> tuple[str, Any]:
    """The array `name` of `group` (a path inside the store, reached without a symbolic link) and
    that path; an InputError naming the store where there is none."""
    import zarr

    parts = name.strip("/").split("/")
    if not name.strip("/") or any(part in ("", ".", "..") for part in parts):
        raise InputError(f"{path}: {param('dataset')} {name!r} is not a path inside the store; pass one of"
                         f" {_listed(path, group)}")
    if any((path / Path(*parts[:depth])).is_symlink() for depth in range(1, len(parts) + 1)):
        raise InputError(f"{path}: {param('dataset')} {name!r} is reached through a symbolic link; the arrays"
                         " read are the store's own folders")
    for depth in range(1, len(parts) + 1):
        _check_metadata_files(path, path.joinpath(*parts[:depth]))
    try:
        node = group["/".join(parts)]
    except Exception:  # zarr raises KeyError for a missing node, others for a broken one
        raise InputError(f"{path}: the group has no array {name!r}; pass {param('dataset')} with one of"
                         f" {_listed(path, group)}") from None
    if isinstance(node, zarr.Array):
        return "/".join(parts), node
    raise InputError(f"{path}: {name!r} is a group, not an array; pass {param('dataset')} with one of"
                     f" {_listed(path, group)}")


ZARR_METADATA_FILES = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")


def _check_metadata_files(path: Path, folder: Path) -> None:
    """The metadata files zarr reads in `folder` (of the store at `path`) must be regular files or
    missing (`open_regular`): a FIFO would hold zarr forever, a link would read another file."""
    for name in ZARR_METADATA_FILES:
        try:
            opened = open_regular(folder, name)
        except NotRegular as error:
            raise InputError(f"{path}: {os.fsdecode(folder.relative_to(path) / name)} {error}; the store is"
                             " damaged") from None
        if opened is not None:
            os.close(opened[0])


def _array_names(path: Path, group) -> list[str]:
    """The arrays of the store's root `group`, each child's metadata files checked before zarr
    reads them (`_check_metadata_files`)."""
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir():
                _check_metadata_files(path, Path(entry.path))
    return sorted(group.array_keys())


def _listed(path: Path, group) -> str:
    return ", ".join(_array_names(path, group)) or "(none)"


def _check_zarr_array(path: Path, array) -> None:
    """An array whose metadata can be read block by block: a dtype to pool, every chunk side at
    least 1, a chunk and the whole within what NumPy can index; an InputError naming the store."""
    if np.dtype(array.dtype).kind not in "biuf":
        raise InputError(f"{path}: dtype {array.dtype} cannot be pooled; use bool, integer or float data")
    shape, chunks = tuple(int(n) for n in array.shape), tuple(int(c) for c in array.chunks)
    itemsize = np.dtype(array.dtype).itemsize
    if len(chunks) != len(shape) or any(c < 1 for c in chunks):
        raise InputError(f"{path}: chunk shape {chunks} does not fit shape {shape} (each side must be >= 1);"
                         " the store's metadata is damaged")
    limit = np.iinfo(np.intp).max
    if math.prod(chunks) * itemsize > limit or math.prod(shape) * itemsize > limit:
        raise InputError(f"{path}: shape {shape} with chunks {chunks} is larger than any array can be;"
                         " the store's metadata is damaged")


class ZarrReads:
    """A Zarr array (stored in `folder` of the store at `path`) read by zarr itself (layouts
    `chunkfiles` leaves to it): the files a read touches checked first (`check_storage_files`:
    no link followed, no FIFO waited on), and zarr's failures on a damaged chunk one InputError
    naming the store; its other attributes are the array's."""

    def __init__(self, path: Path, array, folder: Path):
        self.path = path
        self.array = array
        self.folder = folder

    def __getattr__(self, name: str):
        return getattr(self.array, name)

    def __getitem__(self, index: tuple) -> np.ndarray:
        check_storage_files(self.array, self.folder, self.path, index)
        try:
            return self.array[index]
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as error:  # zarr and its codecs raise many kinds for a damaged chunk
            _settle_zarr()
            raise InputError(f"{self.path}: cannot read its chunks ({type(error).__name__}:"
                             f" {' '.join(str(error).split())[:200]}); the store is damaged") from None


def _settle_zarr() -> None:
    """Wait for the reads zarr still runs after one of them failed (the others of that read go
    on as tasks of its event loop, and would complain on stderr once the process is exiting)."""
    import asyncio

    from zarr.core.sync import sync

    async def others() -> None:
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        await asyncio.gather(*pending, return_exceptions=True)

    with contextlib.suppress(Exception):
        sync(others())


def _default_dataset(path: Path, group) -> str:
    """An OME-Zarr image's full resolution, or a group's only array."""
    attributes = group.attrs.asdict()
    ome = attributes.get("ome")
    multiscales = attributes.get("multiscales") or (ome.get("multiscales") if isinstance(ome, dict) else None)
    if multiscales:
        return _full_resolution(path, multiscales)
    names = _array_names(path, group)
    if len(names) != 1:
        raise InputError(f"{path}: the group holds {len(names)} arrays ({', '.join(names) or 'none'});"
                         f" pass {param('dataset')} NAME to choose one")
    return names[0]


def _full_resolution(path: Path, multiscales: object) -> str:
    """The path of the first dataset of the first multiscale image (OME-NGFF); an InputError
    naming the store where the metadata says no such thing."""
    first = multiscales[0] if isinstance(multiscales, list) and multiscales else None
    datasets = first.get("datasets") if isinstance(first, dict) else None
    dataset = datasets[0] if isinstance(datasets, list) and datasets else None
    if not isinstance(dataset, dict) or not isinstance(dataset.get("path"), str) or not dataset["path"]:
        raise InputError(f"{path}: its OME-Zarr metadata (multiscales) names no dataset path; fix the metadata,"
                         f" or pass {param('dataset')} NAME")
    return dataset["path"]


@contextlib.contextmanager
def _tiff_source(path: Path) -> Iterator[Source]:
    """A TIFF's one page of axes YX, YXS or SYX, its segment table checked as `io.load` checks it
    (the same files refused, the same pixels read); anything tifffile raises or logs is one
    InputError naming the file."""
    import tifffile

    fix = "the file may be truncated or corrupt; re-export it"
    with quiet_logs():
        try:
            tiff = tifffile.TiffFile(path)
        except Exception as error:  # tifffile raises many kinds for a corrupt directory
            raise InputError(f"{path}: not a readable TIFF ({one_line(error)}); check the file") from None
    with tiff:
        with input_errors(path, "a TIFF image", fix), quiet_logs():
            array = _tiff_segments(path, tiff)
        yield Source(path, array, "image", "TIFF", array.chunks, order=TIFF_VIEWS[array.axes])


TIFF_VIEWS = {"YX": None, "YXS": None, "SYX": (1, 2, 0)}  # what `pool` reads in memory: H x W (x C)


def _tiff_segments(path: Path, tiff) -> TiffSegments:
    """Page 0, as `io.load` reads it by default: refused where a series stacks it with other pages,
    or where `io.load` would convert or turn its pixels."""
    page: Any = tiff.pages.first
    if page.axes not in TIFF_VIEWS or _stacked(tiff):
        raise InputError(f"{path}: a TIFF page of axes {page.axes} in a series of several pages is streamed only as"
                         f" one page of axes YX, YXS or SYX; pool one page in memory ({param('page')}) or convert it"
                         " to Zarr")
    if not tifffile_decodes(page):
        kind = getattr(page.photometric, "name", page.photometric)
        raise InputError(f"{path}: its samples ({str(kind).lower()}, {page.bitspersample} bits) are converted when"
                         " pooled in memory, never streamed; convert it to gray or RGB(A) of 8 bits or more")
    table = check_segments(path, page, tiff.filehandle.size)
    try:
        page.decode  # noqa: B018 (tifffile raises here for codecs it cannot decode)
    except (ValueError, NotImplementedError) as error:
        raise InputError(f"{path}: cannot decode its tiles ({error}); convert it to an uncompressed tiled TIFF") \
            from None
    orientation = int(page.tags.valueof(274, default=1) or 1)
    if orientation != 1:
        raise InputError(f"{path}: its Orientation tag ({orientation}) turns it when pooled in memory, never"
                         " streamed; pool it in memory, or re-save it upright")
    return TiffSegments(path, tiff.filehandle, page, page.axes, table, DEFAULT_MEMORY // SEGMENT_SHARE)


def _stacked(tiff) -> bool:
    """Whether page 0 is one of several pages of its series (a stack, not an image with reduced
    pages beside it); corrupt series metadata (which `io.load` never reads) counts as none."""
    try:
        return len(tiff.series[0].pages) > 1
    except Exception:  # tifffile raises many kinds for a corrupt description
        return False
