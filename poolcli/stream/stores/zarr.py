"""The Zarr store: arrays and groups read (v2 and v3, any local store; chunk files read straight
by `chunkfiles` where it can), arrays written (v2 or v3, Blosc-compressed chunks), and OME-Zarr
multiscales (NGFF 0.4 on Zarr v2, 0.5 on Zarr v3) written in the one pass of `pyramid.build`,
each published whole (`io.atomic_path`).

OME-Zarr wants the spatial axes last (t, c, z, y, x): arrays whose pooled axes are not
trailing (an H x W x C image) are stored with the others moved first (C x H x W).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np

from ...core.choices import COMPRESSIONS as NAMES
from ...core.modes import MODES
from ...engine import FAST_PATHS
from ...errors import InputError, OutputError, PoolError, param
from ...io import atomic_path
from ...io.remote import CONCURRENCY, NamedReads, is_url, published_zarr, zarr_store
from ...version import __version__
from ..budget import Budget
from ..chunkfiles import ChunkFiles, NotRegular, check_regular, check_storage_files, chunk_files, writable
from ..pyramid import Pyramid, build
from ..sinks import AlignedWriter, Sink, StoreOptions
from ..sources import Source

SUFFIXES = (".zarr", ".zarr2", ".zarr3", ".ome.zarr")
COMPRESSIONS = NAMES  # Blosc zstd and lz4, zlib, none
ZARR_CONCURRENCY = 2  # chunks Zarr encodes at once
SETTLE_SECONDS = 30  # how long an interrupted output waits for zarr's writes in flight
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


def write_ome_zarr(source: Source, pyramid: Pyramid, target: Path, options: StoreOptions, budget: Budget, *,
                   overwrite: bool, progress: Progress | None = None) -> list[tuple[int, ...]]:
    """The pyramid of `source` as an OME-Zarr image at `target`; the levels' stored shapes."""
    import zarr

    order = storage_order(len(pyramid.shape), pyramid.spatial)
    metadata = multiscales(pyramid, source.path.name, options.zarr_format)
    room = budget.level_room(pyramid.levels)  # per level, for gathering whole chunk rows
    with zarr_target(target, overwrite=overwrite, inputs=(source.path,)) as (store, folder):
        group = zarr.open_group(store, mode="w", zarr_format=cast(Any, options.zarr_format))
        spatial = tuple(range(len(order) - len(pyramid.spatial), len(order)))
        writers: list[_LevelWriter | None] = []
        level0 = None if folder is None else folder / "0"
        origin = None if level0 is None else level0_origin(source, order, options)
        for k, shape in enumerate(pyramid.shapes):
            if k == 0 and origin is not None:
                writers.append(None)  # level 0 is the input's own chunks, copied as they are
                continue
            stored = tuple(shape[a] for a in order)
            array = writable(create_zarr_array(group, str(k), stored, pyramid.level_dtype(source.dtype, k),
                                               chunk_shape(stored, spatial, options.chunk), options),
                             folder and folder / str(k))
            writers.append(_level_writer(array, order, pyramid.spatial[0], shape, room))

        def write(k: int, index: tuple, values: np.ndarray) -> None:
            writer = writers[k]
            if writer is not None:
                writer(index, values)

        with level0_copied_meanwhile(origin, level0):  # gathering and the codecs take the rest
            for done in build(source, pyramid, write, budget.bands):
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
def level0_copied_meanwhile(origin: ChunkFiles | None, folder: Path | None) -> Iterator[None]:
    """Copy level 0 (`copy_level0`) on a thread while the block runs; wait for it at the end of
    the block (its error raised), or stop it between two files if the block fails."""
    if origin is None or folder is None:
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


@contextlib.contextmanager
def zarr_target(target: Any, *, overwrite: bool, inputs: tuple) -> Iterator[tuple[Any, Path | None]]:
    """Where a Zarr output is written, as (what zarr opens, its local folder or None): a hidden
    local folder published whole (`io.atomic_path`), or a prefix in object storage published by
    its metadata, written last (`io.remote.published_zarr`), with more requests in flight."""
    if is_url(target):
        with published_zarr(target, overwrite=overwrite, inputs=inputs) as store, zarr_writing(CONCURRENCY):
            yield store, None
        return
    with atomic_path(target, overwrite=overwrite, inputs=inputs, folder=True) as folder, zarr_writing():
        yield folder, folder


@contextlib.contextmanager
def zarr_writing(concurrency: int = ZARR_CONCURRENCY) -> Iterator[None]:
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
        with zarr.config.set({"async.concurrency": concurrency, "array.write_empty_chunks": True}):
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
        return zarr.create_array(store=group_or_store, zarr_format=cast(Any, options.zarr_format), **keywords)
    return group_or_store.create_array(name, **keywords)


def is_zarr(path: Path) -> bool:
    """Whether the folder `path` holds Zarr metadata (a store named without its suffix)."""
    return any((path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))


def _zarr_source(path: Path, dataset: str | None) -> Source:
    import zarr

    remote = is_url(path)
    if not is_zarr(path):
        raise InputError(f"{path}: not a Zarr store (no zarr.json, .zarray or .zgroup); check the path")
    _check_metadata_files(path, path)
    try:
        node: Any = zarr.open(zarr_store(path, read_only=True) if remote else str(path), mode="r")
    except PoolError:
        raise
    except Exception as error:  # zarr raises many kinds for a broken store
        raise InputError(f"{path}: cannot open the Zarr store ({type(error).__name__}: {error})") from None
    name = ""
    if isinstance(node, zarr.Group):
        name, node = _group_array(path, node, dataset if dataset is not None else _default_dataset(path, node))
    elif dataset:
        raise InputError(f"{path}: is a Zarr array, not a group; leave out {param('dataset')}")
    _check_zarr_array(path, node)
    folder = path / name if name else path
    if remote:
        reader: Any = NamedReads(path, node)
    else:
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
    if not is_url(path) and any((path / Path(*parts[:depth])).is_symlink() for depth in range(1, len(parts) + 1)):
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
    missing (`open_regular`): a FIFO would hold zarr forever, a link would read another file.
    Object storage (a URL) holds objects only: nothing to check."""
    if is_url(path):
        return
    for name in ZARR_METADATA_FILES:
        try:
            check_regular(folder, name)
        except NotRegular as error:
            raise InputError(f"{path}: {os.fsdecode(folder.relative_to(path) / name)} {error}; the store is"
                             " damaged") from None


def _array_names(path: Path, group) -> list[str]:
    """The arrays of the store's root `group`, each child's metadata files checked before zarr
    reads them (`_check_metadata_files`)."""
    if not is_url(path):
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
def open_source(path: Path, dataset: str | None = None) -> Iterator[Source]:
    yield _zarr_source(path, dataset)


@contextlib.contextmanager
def open_sink(target: Path, shape: tuple[int, ...], dtype: np.dtype, *, spatial: tuple[int, ...],
              options: StoreOptions, overwrite: bool, inputs: tuple[Path, ...]) -> Iterator[Sink]:
    with zarr_target(target, overwrite=overwrite, inputs=inputs) as (store, folder):
        chunks = chunk_shape(shape, spatial, options.chunk)
        yield Sink(writable(create_zarr_array(store, None, shape, dtype, chunks, options), folder), chunked=True)
