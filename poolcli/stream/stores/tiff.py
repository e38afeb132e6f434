"""The TIFF store: tiled or striped TIFF/BigTIFF read tile by tile or strip by strip
(`tiffsegments`), tiled BigTIFF written (gathered in a scratch .npy, tiled at the end), and
pyramidal TIFF (level 0 with its reduced levels as sub-IFDs) written in one pass.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...core.choices import COMPRESSIONS as NAMES
from ...errors import InputError, OutputError, param
from ...io import atomic_path, scratch
from ...io.chatter import quiet_logs
from ...io.formats import input_errors, one_line
from ...io.remote import is_url, object_file
from ...io.tiff import check_segments, gdal_nodata, gdal_nodata_tags, tifffile_decodes
from ..budget import DEFAULT_MEMORY, Budget
from ..npyfile import NpyFile
from ..pyramid import Pyramid, build
from ..sinks import Sink, StoreOptions, npy_file
from ..sources import Source
from ..tiffsegments import TiffSegments

SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
COMPRESSIONS = NAMES  # lz4 is written as zstd (TIFF has no lz4)
TILE = 256  # TIFF tile side
Progress = Callable[[int], None]


@contextlib.contextmanager
def open_source(path: Path, dataset: str | None = None) -> Iterator[Source]:
    with _tiff_source(path) as source:
        yield source


def data_bytes(path: Path) -> int:
    """The first page's decoded size from its tags (0 where the file cannot be read: the reader
    says why); the first page only, as listing every page costs time."""
    import tifffile

    try:
        with quiet_logs(), tifffile.TiffFile(path) as tiff:
            return int(tiff.pages.first.nbytes)
    except Exception:
        return 0


@contextlib.contextmanager
def open_sink(target: Path, shape: tuple[int, ...], dtype: np.dtype, *, spatial: tuple[int, ...],
              options: StoreOptions, overwrite: bool, inputs: tuple[Path, ...]) -> Iterator[Sink]:
    check_tiff_shape(target, shape)
    with atomic_path(target, overwrite=overwrite, inputs=inputs) as temporary, scratch(target) as levels, \
            npy_file(levels, shape, dtype) as array:  # tiled at the end
        yield Sink(array)
        write_tiff(temporary, [array], options)


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
    first = levels[0].dtype
    with tifffile.TiffWriter(os.fspath(path), bigtiff=True) as tiff:
        tiff.write(tiles(levels[0]), shape=levels[0].shape, dtype=first, subifds=len(levels) - 1,
                   extratags=gdal_nodata_tags(options.nodata), **common)
        for level in levels[1:]:
            tiff.write(tiles(level), shape=level.shape, dtype=level.dtype, subfiletype=1,
                       extratags=gdal_nodata_tags(options.nodata_for(level.dtype, first)), **common)


@contextlib.contextmanager
def _tiff_source(path: Path) -> Iterator[Source]:
    """A TIFF's one page of axes YX, YXS or SYX, its segment table checked as `io.load` checks it
    (the same files refused, the same pixels read); anything tifffile raises or logs is one
    InputError naming the file."""
    import tifffile

    fix = "the file may be truncated or corrupt; re-export it"
    with quiet_logs():
        try:
            tiff = tifffile.TiffFile(object_file(path) if is_url(path) else path)  # an object: read by ranges
        except Exception as error:  # tifffile raises many kinds for a corrupt directory
            raise InputError(f"{path}: not a readable TIFF ({one_line(error)}); check the file") from None
    with tiff:
        with input_errors(path, "a TIFF image", fix), quiet_logs():
            array = _tiff_segments(path, tiff)
        yield Source(path, array, "image", "TIFF", array.chunks, order=TIFF_VIEWS[array.axes],
                     nodata=gdal_nodata(tiff.pages.first))


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
    return TiffSegments(path, tiff.filehandle, page, page.axes, table, Budget(DEFAULT_MEMORY).segment)


def _stacked(tiff) -> bool:
    """Whether page 0 is one of several pages of its series (a stack, not an image with reduced
    pages beside it); corrupt series metadata (which `io.load` never reads) counts as none."""
    try:
        return len(tiff.series[0].pages) > 1
    except Exception:  # tifffile raises many kinds for a corrupt description
        return False


def write_pyramid_tiff(source: Source, pyramid: Pyramid, target: Path, options: StoreOptions, budget: Budget, *,
                       overwrite: bool, progress: Progress | None = None) -> list[tuple[int, ...]]:
    """The pyramid of `source` as a tiled BigTIFF: level 0 streamed tile row by tile row while the
    reduced levels gather (in memory, or in scratch files beside the target), then written as its
    sub-IFDs. The bands take `budget.bands`, the levels held `budget.gathering`, tifffile's tiles
    and buffers the rest."""
    import tifffile

    if pyramid.spatial != (0, 1):
        raise OutputError(f"{target}: a pyramidal TIFF is an image (H x W, or H x W x C); pool axes 0,1 or"
                          " write .zarr")
    check_tiff_shape(target, pyramid.shape)
    common = tiff_options(pyramid.shape, options)
    held = sum(math.prod(pyramid.level_shape(k)) * pyramid.level_dtype(source.dtype, k).itemsize
               for k in range(1, pyramid.levels + 1))
    in_memory = held <= budget.gathering  # levels 1..L held until level 0 is written: in memory, or in scratch files
    with atomic_path(target, overwrite=overwrite, inputs=(source.path,)) as temporary, \
            _scratch_levels(target, pyramid, source.dtype, in_memory) as levels:
        pending: list[np.ndarray] = []

        def write(k: int, index: tuple, values: np.ndarray) -> None:
            if k == 0:
                pending.append(values)
            else:
                levels[k - 1][index] = values

        def level0_tiles() -> Iterator[np.ndarray]:
            for done in build(source, pyramid, write, budget.bands - (held if in_memory else 0), align=TILE):
                if progress is not None:  # before the tiles: tifffile stops asking once it has the last one
                    progress(done)
                yield from tiles(pending.pop())

        with tifffile.TiffWriter(temporary, bigtiff=True) as tiff:
            tiff.write(level0_tiles(), shape=pyramid.shape, dtype=source.dtype, subifds=pyramid.levels,
                       extratags=gdal_nodata_tags(options.nodata), **common)
            for level in levels:
                tiff.write(tiles(level), shape=level.shape, dtype=level.dtype, subfiletype=1,
                           extratags=gdal_nodata_tags(options.nodata_for(level.dtype, source.dtype)), **common)
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
