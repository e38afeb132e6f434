"""The TIFF store: tiled or striped TIFF/BigTIFF read tile by tile or strip by strip
(`tiffsegments`), tiled BigTIFF written (gathered in a scratch .npy, tiled at the end), and
pyramidal TIFF (level 0 with its reduced levels as sub-IFDs) written in one pass.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...core.calibration import Calibration
from ...errors import InputError, OutputError, param
from ...io import atomic_path, scratch
from ...io.chatter import quiet_logs
from ...io.formats import input_errors, one_line
from ...io.remote import is_url, object_file
from ...io.tiff import (
    TIFF_COMPRESSIONS,
    check_segments,
    compression_keywords,
    gdal_nodata,
    gdal_nodata_tags,
    is_ome_name,
    ome_metadata,
    resolution_keywords,
    tiff_calibration,
    tifffile_decodes,
)
from ..budget import DEFAULT_MEMORY, Budget
from ..npyfile import NpyFile
from ..pyramid import Pyramid, build
from ..sinks import Sink, StoreOptions, npy_file
from ..sources import Source
from ..tiffsegments import TiffSegments

SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
COMPRESSIONS = TIFF_COMPRESSIONS  # deflate first, the default (why: io/tiff.py); no lz4
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
    image = TiffImage.of(target, shape, spatial, options)
    with atomic_path(target, overwrite=overwrite, inputs=inputs) as temporary, scratch(target) as levels, \
            npy_file(levels, shape, dtype) as array:  # tiled at the end
        yield Sink(array)
        image.write(temporary, [array], [options.calibration])


@dataclass(frozen=True)
class TiffImage:
    """How an image of some shape is laid out in a TIFF: H x W (x 1|3|4 samples, interleaved), or
    C x H x W (`planar`: C samples, one plane each, or in an OME-TIFF one page per channel), and
    whether it is an OME-TIFF (with its OME-XML: axes, physical size, channel names)."""

    shape: tuple[int, ...]
    planar: bool
    ome: bool
    compression: str | None
    nodata: int | float | None = None  # recorded in GDAL_NODATA, as level 0's dtype holds it

    @classmethod
    def of(cls, target: Path, shape: tuple[int, ...], spatial: tuple[int, ...], options: StoreOptions) -> TiffImage:
        """The layout of `shape` pooled or pyramided over `spatial`; an OutputError where no TIFF holds it."""
        planar = len(shape) == 3 and 0 not in spatial  # axis 0 not pooled: the channels
        if not (len(shape) == 2 or planar or (len(shape) == 3 and shape[2] in (1, 3, 4))):
            raise OutputError(f"{target}: a {len(shape)}-d result of shape {shape} pooled over axes"
                              f" {','.join(map(str, spatial))} is no TIFF image (H x W, H x W x 1|3|4, or"
                              " C x H x W pooled over axes 1,2); write .zarr or .npy instead")
        ome = options.ome or is_ome_name(target)
        return cls(tuple(shape), planar, ome, options.compression, options.nodata)

    @property
    def colour(self) -> bool:
        return not self.planar and len(self.shape) == 3 and self.shape[2] in (3, 4)

    def keywords(self, dtype: np.dtype, calibration: Calibration | None) -> dict:
        """tifffile's keywords for one level: tiles, compression, samples, resolution."""
        keywords: dict = dict(tile=(TILE, TILE), photometric="rgb" if self.colour else "minisblack",
                              **compression_keywords(self.compression, dtype), **resolution_keywords(calibration))
        if self.colour and self.shape[2] == 4:
            keywords["extrasamples"] = ("unassalpha",)
        if self.planar and not self.ome:
            keywords["planarconfig"] = "separate"
        return keywords

    def metadata(self, calibration: Calibration | None) -> dict | None:
        """What tifffile writes into the first page's description: OME-XML's axes, physical
        size and channel names in an OME-TIFF; its own shape note otherwise."""
        if not self.ome:
            return {}
        return ome_metadata(self.stored_shape(self.shape), self.planar, calibration)

    @property
    def squeezed(self) -> bool:
        """An H x W x 1 image stored as H x W (OME-XML knows no axis of one sample)."""
        return self.ome and len(self.shape) == 3 and not self.planar and self.shape[2] == 1

    def stored_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[:2]) if self.squeezed else tuple(shape)

    def stored_tiles(self, tiles: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        return (tile[..., 0] for tile in tiles) if self.squeezed else tiles

    def level_tiles(self, level) -> Iterator[np.ndarray]:
        """The tiles of a whole level (an array or NpyFile), plane by plane where planar."""
        if not self.planar:
            yield from tiles(level)
            return
        for plane in range(level.shape[0]):
            yield from tiles(_Plane(level, plane))

    def write(self, path: Path | str, levels: list, calibrations: list) -> None:
        """A tiled BigTIFF of `levels[0]` (arrays or NpyFiles), the others as its reduced-resolution
        sub-IFDs, each with its calibration's resolution."""
        self.write_stream(path, self.level_tiles(levels[0]), levels[0].dtype, levels[1:], calibrations)

    def write_stream(self, path: Path | str, first: Iterator[np.ndarray], dtype: np.dtype, reduced: list,
                     calibrations: list) -> None:
        """As `write`, level 0 given as its tiles in order (streamed as they come)."""
        import tifffile

        with tifffile.TiffWriter(os.fspath(path), bigtiff=True, ome=self.ome) as tiff:
            tiff.write(self.stored_tiles(first), shape=self.stored_shape(self.shape), dtype=dtype,
                       subifds=len(reduced), metadata=self.metadata(calibrations[0]),
                       extratags=gdal_nodata_tags(self.nodata), **self.keywords(dtype, calibrations[0]))
            for level, calibration in zip(reduced, calibrations[1:]):
                tiff.write(self.stored_tiles(self.level_tiles(level)), shape=self.stored_shape(level.shape),
                           dtype=level.dtype, subfiletype=1,
                           extratags=gdal_nodata_tags(self.nodata_as(level.dtype, dtype)),
                           **self.keywords(level.dtype, calibration))

    def nodata_as(self, dtype: np.dtype, written: np.dtype) -> int | float | None:
        """The nodata as a level of `dtype` records it (cast from level 0's `written` dtype)."""
        return StoreOptions(nodata=self.nodata).nodata_for(dtype, written)


class _Plane:
    """Plane `index` of a C x H x W array or NpyFile, sliced by rows as `tiles` reads it."""

    def __init__(self, array, index: int):
        self.array, self.index = array, index
        self.shape = tuple(array.shape[1:])

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.asarray(self.array[self.index:self.index + 1, rows])[0]


def tiles(array, side: int = TILE) -> Iterator[np.ndarray]:
    """Row-major tiles of an H x W (x C) array (or NpyFile, read one row of tiles at a time), as
    tifffile takes them (it pads the edges)."""
    for top in range(0, array.shape[0], side):
        rows = np.asarray(array[top:top + side])
        for left in range(0, array.shape[1], side):
            yield np.ascontiguousarray(rows[:, left:left + side])


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
            calibration = tiff_calibration(tiff, tiff.pages.first, ("y", "x", "c")[:len(array.shape)])
        yield Source(path, array, "image", "TIFF", array.chunks, order=TIFF_VIEWS[array.axes], calibration=calibration,
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
    """The pyramid of `source` as a tiled BigTIFF (an OME-TIFF for `.ome.tif` or `options.ome`):
    level 0 streamed tile row by tile row (plane by plane where planar) while the reduced levels
    gather (in memory, or in scratch files beside the target), then written as its sub-IFDs,
    each with its resolution (level 0's, from `options.calibration` or else the source's, divided
    by 2^k). The bands take `budget.bands`, the levels held `budget.gathering`, tifffile's tiles
    and buffers the rest."""
    if pyramid.spatial not in ((0, 1), (1, 2)):
        raise OutputError(f"{target}: a pyramidal TIFF is an image (H x W, H x W x C pooled over axes 0,1, or"
                          " C x H x W over axes 1,2); pool those axes or write .zarr")
    image = TiffImage.of(target, pyramid.shape, pyramid.spatial, options)
    calibrations = level_calibrations(options.calibration or source.calibration, pyramid)
    held = sum(math.prod(pyramid.level_shape(k)) * pyramid.level_dtype(source.dtype, k).itemsize
               for k in range(1, pyramid.levels + 1))
    in_memory = held <= budget.gathering  # levels 1..L held until level 0 is written: in memory, or in scratch files
    with atomic_path(target, overwrite=overwrite, inputs=(source.path,)) as temporary, \
            _scratch_levels(target, pyramid, source.dtype, in_memory) as levels:
        pending: list[np.ndarray] = []

        def write(k: int, index: tuple, values: np.ndarray) -> None:
            if k == 0:
                pending.append(values[0] if image.planar else values)  # one plane's band
            else:
                levels[k - 1][index] = values

        def level0_tiles() -> Iterator[np.ndarray]:
            for done in build(source, pyramid, write, budget.bands - (held if in_memory else 0), align=TILE):
                if progress is not None:  # before the tiles: tifffile stops asking once it has the last one
                    progress(done)
                yield from tiles(pending.pop())

        image.write_stream(temporary, level0_tiles(), source.dtype, levels, calibrations)
        return [tuple(pyramid.shape)] + [tuple(level.shape) for level in levels]


def level_calibrations(calibration: Calibration | None, pyramid: Pyramid) -> list[Calibration | None]:
    """Level k's calibration: level 0's pooled by 2^k along the pyramid's axes (None where level 0 has none)."""
    if calibration is None or len(calibration.axes) != len(pyramid.shape):
        return [None] * (pyramid.levels + 1)
    return [calibration.pooled(tuple(2 ** k if axis in pyramid.spatial else 1 for axis in range(len(pyramid.shape))))
            for k in range(pyramid.levels + 1)]


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
