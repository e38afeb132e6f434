"""Pyramids on disk: OME-Zarr multiscales (NGFF 0.4 on Zarr v2, 0.5 on Zarr v3) and pyramidal
tiled BigTIFF (level 0 with its reduced levels as sub-IFDs), each written in the one pass of
`pyramid.build` and published whole (`io.atomic_path`).

OME-Zarr wants the spatial axes last (t, c, z, y, x): arrays whose pooled axes are not
trailing (an H x W x C image) are stored with the others moved first (C x H x W).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..core.modes import MODES
from ..errors import OutputError
from ..io import atomic_path, scratch
from ..version import __version__
from .chunkfiles import ChunkFiles, writable
from .npyfile import NpyFile
from .pyramid import Pyramid, build
from .sinks import (
    TILE,
    AlignedWriter,
    StoreOptions,
    check_tiff_shape,
    chunk_shape,
    create_zarr_array,
    tiff_options,
    tiles,
    zarr_writing,
)
from .sources import Source

NGFF_VERSIONS = {2: "0.4", 3: "0.5"}
SPATIAL_NAMES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}
OTHER_AXES = {0: (), 1: (("c", "channel"),), 2: (("t", "time"), ("c", "channel"))}
Progress = Callable[[int], None]


def storage_order(ndim: int, spatial: tuple[int, ...]) -> tuple[int, ...]:
    """The array's axes in storage order: the unpooled ones first, then the spatial ones."""
    return tuple(a for a in range(ndim) if a not in spatial) + tuple(spatial)


def ngff_axes(ndim: int, spatial: tuple[int, ...]) -> list[dict]:
    others = ndim - len(spatial)
    if others not in OTHER_AXES or len(spatial) not in SPATIAL_NAMES or ndim < 2:
        raise OutputError(f"OME-Zarr holds 2-5 axes (t, c, z, y, x); a {ndim}-d array pooled over {len(spatial)}"
                          " axes has no such names; write a plain .zarr with pool instead")
    axes = [{"name": name, "type": kind} for name, kind in OTHER_AXES[others]]
    return axes + [{"name": name, "type": "space"} for name in SPATIAL_NAMES[len(spatial)]]


def multiscales(pyramid: Pyramid, name: str, zarr_format: int) -> dict:
    """The group's attributes: NGFF multiscales with axes and one scale transform per level."""
    order = storage_order(len(pyramid.shape), pyramid.spatial)
    datasets = [{"path": str(k), "coordinateTransformations": [
        {"type": "scale", "scale": [float(2 ** k if axis in pyramid.spatial else 1) for axis in order]}]}
        for k in range(pyramid.levels + 1)]
    description = {
        "name": name,
        "axes": ngff_axes(len(pyramid.shape), pyramid.spatial),
        "datasets": datasets,
        "type": MODES[pyramid.mode].ngff,
        "metadata": {"method": "poolcli.pool", "version": __version__,
                     "kwargs": {"window": 2, "stride": 2, "mode": pyramid.mode, "nan_policy": pyramid.nan_policy}},
    }
    version = NGFF_VERSIONS[zarr_format]
    if zarr_format == 2:
        return {"multiscales": [{"version": version, **description}]}
    return {"ome": {"version": version, "multiscales": [description]}}


def write_ome_zarr(source: Source, pyramid: Pyramid, target: Path, options: StoreOptions, memory: int, *,
                   overwrite: bool, progress: Progress | None = None) -> list[tuple[int, ...]]:
    """The pyramid of `source` as an OME-Zarr image at `target`; the levels' stored shapes."""
    import zarr

    order = storage_order(len(pyramid.shape), pyramid.spatial)
    metadata = multiscales(pyramid, source.path.name, options.zarr_format)
    room = memory // (4 * (pyramid.levels + 1))  # per level, for gathering whole chunk rows
    with atomic_path(target, overwrite=overwrite, inputs=(source.path,), folder=True) as store, zarr_writing():
        group = zarr.open_group(str(store), mode="w", zarr_format=cast(Any, options.zarr_format))
        spatial = tuple(range(len(order) - len(pyramid.spatial), len(order)))
        writers: list[_LevelWriter | None] = []
        origin = level0_origin(source, order, options)
        for k, shape in enumerate(pyramid.shapes):
            if k == 0 and origin is not None:
                writers.append(None)  # level 0 is the input's own chunks, copied as they are
                continue
            stored = tuple(shape[a] for a in order)
            array = writable(create_zarr_array(group, str(k), stored, pyramid.level_dtype(source.dtype, k),
                                               chunk_shape(stored, spatial, options.chunk), options), store / str(k))
            writers.append(_level_writer(array, order, pyramid.spatial[0], shape, room))

        def write(k: int, index: tuple, values: np.ndarray) -> None:
            writer = writers[k]
            if writer is not None:
                writer(index, values)

        with level0_copied_meanwhile(origin, store / "0"):  # half of `memory` for the bands, a quarter to
            for done in build(source, pyramid, write, memory // 2):  # gather chunk rows, a quarter for the codecs
                if progress is not None:
                    progress(done)
        for writer in writers:
            if writer is not None:
                writer.flush()
        group.attrs.update(metadata)
        return [tuple(pyramid.shape[a] for a in order) if w is None else tuple(w.array_shape) for w in writers]


ZARR_METADATA = (".zarray", ".zattrs", "zarr.json")


def level0_origin(source: Source, order: tuple[int, ...], options: StoreOptions) -> ChunkFiles | None:
    """The chunk files of a Zarr input whose encoded chunks are level 0 as they are (the output's
    Zarr format, NGFF's axis order, chunk files read straight): copied as files, no decoding, no
    encoding. None for others."""
    if source.format != "ZARR" or order != tuple(range(len(order))) or source.zarr_format != options.zarr_format:
        return None
    return source.array if isinstance(source.array, ChunkFiles) else None


def copy_level0(files: ChunkFiles, folder: Path, *, chunks: bool = True, stop: threading.Event | None = None) -> None:
    """Copy the Zarr array of `files` to `folder`: its metadata files, then (with `chunks`) the
    chunk file of every chunk of its grid that has one (`copy_chunk`), stopping between two files
    once `stop` is set. Nothing else of its folder is copied, and no link is followed."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ZARR_METADATA:
        _copy_opened(files.open_file(name), folder / name)
    if not chunks:
        return
    for coords in files.grid():
        if stop is not None and stop.is_set():
            return
        copy_chunk(files, coords, folder)


def copy_chunk(files: ChunkFiles, coords: tuple[int, ...], folder: Path) -> None:
    """Copy the chunk file at `coords` as it is into `folder` (none for a chunk never written: the
    fill value); an InputError naming the store for one that is not a regular file in it or is
    larger than a chunk can be encoded (`ChunkFiles.open_chunk`)."""
    key = files.key(coords)
    opened = files.open_chunk(key)
    if opened is not None:
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        _copy_opened(opened, folder / key)


def _copy_opened(opened: tuple[int, int] | None, target: Path) -> None:
    """Copy the open file `opened` (descriptor, size; closed here) to `target`; nothing for None."""
    if opened is None:
        return
    with open(opened[0], "rb") as source, open(target, "wb") as copy:
        shutil.copyfileobj(source, copy)


@contextlib.contextmanager
def level0_copied_meanwhile(origin: ChunkFiles | None, folder: Path) -> Iterator[None]:
    """Copy level 0 (`copy_level0`) on a thread while the block runs; wait for it at the end of
    the block (its error raised), or stop it between two files if the block fails."""
    if origin is None:
        yield
        return
    stop = threading.Event()
    with ThreadPoolExecutor(1) as copier:
        copying = copier.submit(copy_level0, origin, folder, stop=stop)
        try:
            yield
            copying.result()
        except BaseException:  # an interrupt while waiting for the copy too: it stops before the store goes
            stop.set()
            raise


def copy_chunk_files(source: ChunkFiles, folder: Path, region: tuple) -> None:
    """Copy, as they are, the chunk files of `source` whose first element lies in `region` (a
    tile's slices): each chunk is copied by exactly one tile."""
    spans = [range(-(-s.start // c), -(-s.stop // c)) for s, c in zip(region, source.chunks, strict=True)]
    for coords in itertools.product(*spans):
        copy_chunk(source, coords, folder)


class _LevelWriter(AlignedWriter):
    array_shape: tuple[int, ...] = ()


def _level_writer(array, order: tuple[int, ...], axis: int, shape: tuple[int, ...], room: int) -> _LevelWriter:
    """Blocks of one level in the input's axis order, gathered into chunk rows, stored transposed."""

    def store(index: tuple, values: np.ndarray) -> None:
        full = (*index, *(slice(None),) * (values.ndim - len(index)))
        array[tuple(full[a] for a in order)] = values.transpose(order)

    rows = int(array.chunks[order.index(axis)])
    row_bytes = math.prod(shape[axis + 1:]) * np.dtype(array.dtype).itemsize
    writer = _LevelWriter(store, axis, rows, row_bytes, room)
    writer.array_shape = tuple(array.shape)
    return writer


def write_pyramid_tiff(source: Source, pyramid: Pyramid, target: Path, options: StoreOptions, memory: int, *,
                       overwrite: bool, progress: Progress | None = None) -> list[tuple[int, ...]]:
    """The pyramid of `source` as a tiled BigTIFF: level 0 streamed tile row by tile row while the
    reduced levels gather (in memory, or in scratch files beside the target), then written as its
    sub-IFDs. The bands take half of `memory`, tifffile's tiles and buffers the rest."""
    import tifffile

    if pyramid.spatial != (0, 1):
        raise OutputError(f"{target}: a pyramidal TIFF is an image (H x W, or H x W x C); pool axes 0,1 or"
                          " write .zarr")
    check_tiff_shape(target, pyramid.shape)
    common = tiff_options(pyramid.shape, options)
    held = sum(math.prod(pyramid.level_shape(k)) * pyramid.level_dtype(source.dtype, k).itemsize
               for k in range(1, pyramid.levels + 1))
    in_memory = held <= memory // 4  # levels 1..L held until level 0 is written: in memory, or in scratch files
    with atomic_path(target, overwrite=overwrite, inputs=(source.path,)) as temporary, \
            _scratch_levels(target, pyramid, source.dtype, in_memory) as levels:
        pending: list[np.ndarray] = []

        def write(k: int, index: tuple, values: np.ndarray) -> None:
            if k == 0:
                pending.append(values)
            else:
                levels[k - 1][index] = values

        def level0_tiles() -> Iterator[np.ndarray]:
            for done in build(source, pyramid, write, memory // 2 - (held if in_memory else 0), align=TILE):
                if progress is not None:  # before the tiles: tifffile stops asking once it has the last one
                    progress(done)
                yield from tiles(pending.pop())

        with tifffile.TiffWriter(temporary, bigtiff=True) as tiff:
            tiff.write(level0_tiles(), shape=pyramid.shape, dtype=source.dtype, subifds=pyramid.levels, **common)
            for level in levels:
                tiff.write(tiles(level), shape=level.shape, dtype=level.dtype, subfiletype=1, **common)
        return [tuple(pyramid.shape)] + [tuple(level.shape) for level in levels]


@contextlib.contextmanager
def _scratch_levels(target: Path, pyramid: Pyramid, dtype: np.dtype, in_memory: bool) -> Iterator[list]:
    """Levels 1..L until level 0 is written: arrays `in_memory`, else scratch .npy files (written and
    read back with pwrite/pread) hidden beside `target`, always removed."""
    shapes = [(pyramid.level_shape(k), pyramid.level_dtype(dtype, k)) for k in range(1, pyramid.levels + 1)]
    if in_memory:
        yield [np.empty(shape, dtype) for shape, dtype in shapes]
        return
    with scratch(target, folder=True) as folder:
        levels = [NpyFile.create(folder / f"{k}.npy", shape, dtype) for k, (shape, dtype) in enumerate(shapes, 1)]
        try:
            yield levels
        finally:
            for level in levels:
                level.close()
