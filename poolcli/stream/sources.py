"""Big inputs, opened without reading them: `.npy` (read with pread), Zarr arrays and groups
(v2 and v3, any local store; chunk files read straight by `chunkfiles` where it can) and
TIFF/BigTIFF (tiled or striped; `tiffsegments` decodes only the tiles or strips a read touches).

Each is a `Source`: a shape, a dtype, the chunk shape reads are best aligned to, and `read`,
which returns the selected block as an in-memory NumPy array.
"""

from __future__ import annotations

import contextlib
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
from .chunkfiles import chunk_files
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
    try:
        node: Any = zarr.open(str(path), mode="r")
    except Exception as error:  # zarr raises many kinds for a broken store
        raise InputError(f"{path}: cannot open the Zarr store ({type(error).__name__}: {error})") from None
    name = ""
    if isinstance(node, zarr.Group):
        name = dataset if dataset is not None else _default_dataset(path, node)
        try:
            node = node[name]
        except KeyError:
            raise InputError(f"{path}: the group has no array {name!r}; pass {param('dataset')} with one of"
                             f" {', '.join(sorted(node.array_keys())) or '(none)'}") from None
    elif dataset:
        raise InputError(f"{path}: is a Zarr array, not a group; leave out {param('dataset')}")
    if np.dtype(node.dtype).kind not in "biuf":
        raise InputError(f"{path}: dtype {node.dtype} cannot be pooled; use bool, integer or float data")
    folder = path / name if name else path
    reader = (chunk_files(node, folder) if FAST_PATHS.chunk_files else None) or node  # else zarr's own reads
    return Source(path, reader, "array", "ZARR", tuple(int(c) for c in node.chunks), name,
                  zarr_format=node.metadata.zarr_format)


def _default_dataset(path: Path, group) -> str:
    """An OME-Zarr image's full resolution, or a group's only array."""
    multiscales = group.attrs.get("multiscales") or group.attrs.get("ome", {}).get("multiscales")
    if multiscales:
        return str(multiscales[0]["datasets"][0]["path"])
    names = sorted(group.array_keys())
    if len(names) != 1:
        raise InputError(f"{path}: the group holds {len(names)} arrays ({', '.join(names) or 'none'});"
                         f" pass {param('dataset')} NAME to choose one")
    return names[0]


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
