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

from ...core.calibration import AXIS_TYPES, Calibration, guess_axes, unit_name
from ...core.choices import COMPRESSIONS as NAMES
from ...core.modes import MODES
from ...core.options import nodata_from_text
from ...engine import FAST_PATHS
from ...errors import InputError, OutputError, PoolError, param
from ...io import atomic_path
from ...io.remote import CONCURRENCY, NamedReads, is_url, published_zarr, zarr_store
from ...version import __version__
from ..budget import Budget
from ..chunkfiles import ChunkFiles, NotRegular, check_regular, check_storage_files, chunk_files, writable
from ..pyramid import Pyramid, build
from ..sinks import AlignedWriter, Sink, StoreOptions
from ..sources import Level, Source

SUFFIXES = (".zarr", ".zarr2", ".zarr3", ".ome.zarr")
OME_SUFFIX = ".ome.zarr"  # a pool output named so is an OME-Zarr image (of one level)
COMPRESSIONS = NAMES  # Blosc zstd and lz4, zlib, none
ZARR_CONCURRENCY = 2  # chunks Zarr encodes at once
SETTLE_SECONDS = 30  # how long an interrupted output waits for zarr's writes in flight
NGFF_VERSIONS = {2: "0.4", 3: "0.5"}
RGB = (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"), ("alpha", "FFFFFF"))
GREY = "FFFFFF"
WINDOW_BYTES = 4 << 20  # the smallest level read back for the display window, at most (well inside any budget)
LISTED_LEVELS = 64  # the levels of an OME-Zarr input's metadata looked at, at most
Progress = Callable[[int], None]


def ngff_nameable(axes: tuple[str, ...]) -> bool:
    """Whether NGFF can hold arrays of these axis names: 2 to 5 axes, each of t, c, z, y, x at
    most once, 2 or 3 of them space axes."""
    space = sum(AXIS_TYPES.get(name) == "space" for name in axes)
    return 2 <= len(axes) <= 5 and len(set(axes)) == len(axes) and all(n in AXIS_TYPES for n in axes) \
        and 2 <= space <= 3


def level0_calibration(shape: tuple[int, ...], spatial: tuple[int, ...], options: StoreOptions) -> Calibration:
    """The axes and sizes of an OME-Zarr output's level 0 (array order): those given in `options`,
    else the axes `guess_axes` names, one pixel a step; an OutputError naming the layout to give
    where NGFF cannot name them."""
    calibration = options.calibration
    if calibration is None:
        names = guess_axes(shape, spatial)
        calibration = None if names is None else Calibration.uncalibrated(names)
    if calibration is None or len(calibration.axes) != len(shape) or not ngff_nameable(calibration.axes):
        named = "" if calibration is None else f" named {''.join(calibration.axes)}"
        raise OutputError(f"OME-Zarr holds 2-5 axes (t, c, z, y, x, each at most once, 2 or 3 of them space"
                          f" axes); a {len(shape)}-d array{named} pooled over axes {list(spatial)} does not fit;"
                          f" give {param('layout')} with one letter per axis (e.g. czyx), or write a plain .zarr"
                          " with pool instead")
    return calibration


def storage_order(calibration: Calibration) -> tuple[int, ...]:
    """The array's axes in storage order: NGFF's (t, c, z, y, x), an H x W x C image stored C x H x W."""
    return calibration.storage_order()


def ngff_axes(calibration: Calibration) -> list[dict]:
    """NGFF's axes, in storage order: name, type and (where known) unit."""
    return [{"name": calibration.axes[a], "type": AXIS_TYPES[calibration.axes[a]],
             **({"unit": calibration.units[a]} if calibration.units[a] else {})}
            for a in storage_order(calibration)]


def transforms(calibration: Calibration) -> list[dict]:
    """One level's coordinateTransformations, in storage order: its scale, then its translation."""
    order = storage_order(calibration)
    return [{"type": "scale", "scale": [float(calibration.scale[a]) for a in order]},
            {"type": "translation", "translation": [float(calibration.translation[a]) for a in order]}]


def level_calibration(pyramid: Pyramid, level0: Calibration, k: int) -> Calibration:
    """Level k's calibration: level 0's pooled by 2^k along the pooled axes (scale times 2^k,
    origin moved to the centre of the first window: (2^k - 1) / 2 of level 0's pixels)."""
    return level0.pooled(tuple(2 ** k if axis in pyramid.spatial else 1 for axis in range(len(pyramid.shape))))


def multiscales(pyramid: Pyramid, name: str, zarr_format: int, level0: Calibration,
                display: dict | None = None) -> dict:
    """The group's attributes: NGFF multiscales (axes with their units, each level's scale and
    translation) and the channels' `display` (`omero`), as NGFF 0.4 (Zarr v2) or 0.5 (Zarr v3) puts them."""
    datasets = [{"path": str(k), "coordinateTransformations": transforms(level_calibration(pyramid, level0, k))}
                for k in range(pyramid.levels + 1)]
    description = {
        "name": name,
        "axes": ngff_axes(level0),
        "datasets": datasets,
        "type": MODES[pyramid.mode].ngff,
        "metadata": {"method": "poolcli.pool", "version": __version__,
                     "kwargs": {"window": 2, "stride": 2, "mode": pyramid.mode, "nan_policy": pyramid.nan_policy,
                                **({} if pyramid.nodata is None else {"nodata": _json_number(pyramid.nodata)})}},
    }
    return ngff_attributes(description, zarr_format, display)


def ngff_attributes(description: dict, zarr_format: int, display: dict | None) -> dict:
    """One multiscale image's `description` (and its channels' `display`) as the group attributes
    of NGFF 0.4 (Zarr v2: a version in each multiscale) or 0.5 (Zarr v3: all under "ome")."""
    shown = {} if display is None else {"omero": display}
    version = NGFF_VERSIONS[zarr_format]
    if zarr_format == 2:
        return {"multiscales": [{"version": version, **description}], **shown}
    return {"ome": {"version": version, "multiscales": [description], **shown}}


def omero(calibration: Calibration, shape: tuple[int, ...], dtype: np.dtype, smallest: Any = None,
          rgb: bool = False) -> dict:
    """The channels' display: a name and colour per channel (red, green, blue (and alpha) for an
    RGB(A) image, grey otherwise) and a window. The window's min and max are the dtype's range
    for integers; its start and end too for 8-bit and boolean data, else the finite range of
    each channel in `smallest` (the smallest level, a small array in array order; None: the
    dtype's range), which also gives a float image its min and max."""
    channel = calibration.axes.index("c") if "c" in calibration.axes else None
    count = 1 if channel is None else shape[channel]
    rgb = rgb and count in (3, 4)
    low, high = (0.0, 1.0) if dtype.kind in "bf" else (float(np.iinfo(dtype).min), float(np.iinfo(dtype).max))
    channels = []
    for c in range(count):
        start, end = low, high
        if smallest is not None and dtype.itemsize > 1 and dtype.kind != "b":
            values = smallest if channel is None else np.take(smallest, c, axis=channel)
            finite = values[np.isfinite(values)] if dtype.kind == "f" else values
            if finite.size:
                start, end = float(finite.min()), float(finite.max())
        label, colour = RGB[c] if rgb else (f"channel {c}", GREY)
        window = {"min": min(low, start) if dtype.kind != "f" else start,
                  "max": max(high, end) if dtype.kind != "f" else end, "start": start, "end": end}
        channels.append({"label": label, "color": colour, "active": True, "window": window})
    return {"channels": channels, "rdefs": {"model": "color" if count > 1 else "greyscale"}}


def smallest_level(group, k: int, order: tuple[int, ...]) -> np.ndarray | None:
    """Level k of the written `group` (in array order), read back where it holds at most
    WINDOW_BYTES; None otherwise."""
    array = group[str(k)]
    if math.prod(array.shape) * np.dtype(array.dtype).itemsize > WINDOW_BYTES:
        return None
    return np.asarray(array[...]).transpose(np.argsort(order))


def level_dimensions(calibration: Calibration, zarr_format: int) -> tuple[str, ...] | None:
    """The dimension_names of a level array (NGFF 0.5 wants the axes' names; Zarr v2 has none)."""
    return tuple(calibration.axes[a] for a in storage_order(calibration)) if zarr_format == 3 else None


def write_ome_zarr(source: Source, pyramid: Pyramid, target: Path, options: StoreOptions, budget: Budget, *,
                   overwrite: bool, progress: Progress | None = None,
                   finish: Callable[[dict], dict] | None = None) -> list[tuple[int, ...]]:
    """The pyramid of `source` as an OME-Zarr image at `target`; the levels' stored shapes.
    `finish` turns the group's NGFF attributes into others once the levels are written (a label
    image's, stream/stores/labels.py)."""
    import zarr

    level0 = level0_calibration(pyramid.shape, pyramid.spatial, options)
    order = storage_order(level0)
    names = level_dimensions(level0, options.zarr_format)
    room = budget.level_room(pyramid.levels)  # per level, for gathering whole chunk rows
    with zarr_target(target, overwrite=overwrite, inputs=(source.path,)) as (store, folder):
        group = zarr.open_group(store, mode="w", zarr_format=cast(Any, options.zarr_format))
        spatial = tuple(order.index(a) for a in pyramid.spatial)
        writers: list[_LevelWriter | None] = []
        level0_folder = None if folder is None else folder / "0"
        origin = None if level0_folder is None else level0_origin(source, order, options)
        for k, shape in enumerate(pyramid.shapes):
            if k == 0 and origin is not None:
                writers.append(None)  # level 0 is the input's own chunks, copied as they are
                continue
            stored = tuple(shape[a] for a in order)
            dtype = pyramid.level_dtype(source.dtype, k)
            chunks = chunk_shape(stored, spatial, options.chunk)
            array = writable(create_zarr_array(group, str(k), stored, dtype, chunks, options,
                                               options.nodata_for(dtype, source.dtype), names),
                             folder and folder / str(k))
            writers.append(_level_writer(array, order, pyramid.spatial[0], shape, room))

        def write(k: int, index: tuple, values: np.ndarray) -> None:
            writer = writers[k]
            if writer is not None:
                writer(index, values)

        with level0_copied_meanwhile(origin, level0_folder, names):  # gathering and the codecs take the rest
            for done in build(source, pyramid, write, budget.bands):
                if progress is not None:
                    progress(done)
        for writer in writers:
            if writer is not None:
                writer.flush()
        metadata = ngff_metadata(group, source, pyramid, options.zarr_format, level0)
        group.attrs.update(metadata if finish is None else finish(metadata))
        return [tuple(pyramid.shape[a] for a in order) if w is None else tuple(w.array_shape) for w in writers]


def ngff_metadata(group, source: Source, pyramid: Pyramid, zarr_format: int, level0: Calibration) -> dict:
    """The attributes of the written pyramid `group` of `source`: its multiscales and, from its
    smallest level, the channels' display."""
    order = storage_order(level0)
    shown = omero(level0, pyramid.shape, pyramid.level_dtype(source.dtype, pyramid.levels),
                  smallest_level(group, pyramid.levels, order), rgb=source.kind == "image")
    return multiscales(pyramid, source.path.name, zarr_format, level0, shown)


def level0_origin(source: Source, order: tuple[int, ...], options: StoreOptions) -> ChunkFiles | None:
    """The chunk files of a Zarr input whose encoded chunks are level 0 as they are (the output's
    Zarr format, NGFF's axis order, chunk files read straight): copied as files under NGFF's
    nested keys, no decoding, no encoding. None for others."""
    if source.format != "ZARR" or order != tuple(range(len(order))) or source.zarr_format != options.zarr_format:
        return None
    return source.array if isinstance(source.array, ChunkFiles) else None


METADATA_BYTES = 1 << 20  # a level 0 metadata file larger than this is not copied (zarr wrote it small)


def copy_level0(files: ChunkFiles, folder: Path, *, chunks: bool = True, stop: threading.Event | None = None,
                names: tuple[str, ...] | None = None) -> None:
    """Copy the Zarr array of `files` to `folder` as a level of an OME-Zarr image: its metadata
    file with nested chunk keys ("/") and `names` as its dimension names (Zarr v3), then (with
    `chunks`) the chunk file of every chunk of its grid that has one (`copy_chunk`), stopping
    between two files once `stop` is set. Nothing else of its folder is copied, and no link is
    followed."""
    folder.mkdir(parents=True, exist_ok=True)
    _copy_opened(files.open_file(".zattrs"), folder / ".zattrs")
    for name in (".zarray", "zarr.json"):
        opened = files.open_file(name)
        if opened is not None:
            _write_level_metadata(files, opened, folder / name, names)
    if not chunks:
        return
    for coords in files.grid():
        if stop is not None and stop.is_set():
            return
        copy_chunk(files, coords, folder)


def _write_level_metadata(files: ChunkFiles, opened: tuple[int, int], target: Path,
                          names: tuple[str, ...] | None) -> None:
    """The input's array metadata (open file `opened`, closed here) with nested chunk keys and
    the dimension names, written to `target`; an InputError naming the store for one that is
    not a JSON object of a sensible size."""
    import json

    with open(opened[0], "rb") as handle:
        text = handle.read(METADATA_BYTES + 1)
    try:
        metadata = json.loads(text) if len(text) <= METADATA_BYTES else None
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict):
        raise InputError(f"{files.folder}: {target.name} is not a JSON object of at most {METADATA_BYTES} bytes;"
                         " the store is damaged")
    if target.name == ".zarray":
        metadata["dimension_separator"] = "/"
    else:
        encoding = metadata.get("chunk_key_encoding")
        name = encoding.get("name", "default") if isinstance(encoding, dict) else "default"
        metadata["chunk_key_encoding"] = {"name": name, "configuration": {"separator": "/"}}
        if names is not None:
            metadata["dimension_names"] = list(names)
    target.write_text(json.dumps(metadata, indent=2))


def copy_chunk(files: ChunkFiles, coords: tuple[int, ...], folder: Path) -> None:
    """Copy the chunk file at `coords` as it is into `folder`, under its nested key (none for a
    chunk never written: the fill value); an InputError naming the store for one that is not a
    regular file in it or is larger than a chunk can be encoded (`ChunkFiles.open_chunk`)."""
    key = files.key(coords)
    opened = files.open_chunk(key)
    if opened is not None:
        nested = folder / key.replace(".", "/")
        nested.parent.mkdir(parents=True, exist_ok=True)
        _copy_opened(opened, nested)


def _copy_opened(opened: tuple[int, int] | None, target: Path) -> None:
    """Copy the open file `opened` (descriptor, size; closed here) to `target`; nothing for None."""
    if opened is None:
        return
    with open(opened[0], "rb") as source, open(target, "wb") as copy:
        shutil.copyfileobj(source, copy)


@contextlib.contextmanager
def level0_copied_meanwhile(origin: ChunkFiles | None, folder: Path | None,
                            names: tuple[str, ...] | None = None) -> Iterator[None]:
    """Copy level 0 (`copy_level0`) on a thread while the block runs; wait for it at the end of
    the block (its error raised), or stop it between two files if the block fails."""
    if origin is None or folder is None:
        yield
        return
    stop = threading.Event()
    with ThreadPoolExecutor(1) as copier:
        copying = copier.submit(copy_level0, origin, folder, stop=stop, names=names)
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


class Transposed:
    """A Zarr array stored with its axes in `order`, seen and written in array order."""

    def __init__(self, array, order: tuple[int, ...]):
        self.array, self.order = array, order
        back = np.argsort(order)
        self.shape = tuple(int(array.shape[b]) for b in back)
        self.chunks = tuple(int(array.chunks[b]) for b in back)
        self.dtype = array.dtype

    def __setitem__(self, index: tuple, values: np.ndarray) -> None:
        full = (*index, *(slice(None),) * (values.ndim - len(index)))
        self.array[tuple(full[a] for a in self.order)] = values.transpose(self.order)


def _level_writer(array, order: tuple[int, ...], axis: int, shape: tuple[int, ...], room: int) -> _LevelWriter:
    """Blocks of one level in the input's axis order, gathered into chunk rows, stored transposed."""
    stored = Transposed(array, order)
    rows = stored.chunks[axis]
    row_bytes = math.prod(shape[axis + 1:]) * np.dtype(array.dtype).itemsize
    writer = _LevelWriter(stored.__setitem__, axis, rows, row_bytes, room)
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


def create_zarr_array(group_or_store, name: str | None, shape, dtype, chunks, options: StoreOptions,
                      nodata: int | float | None = None, names: tuple[str, ...] | None = None):
    """A new, empty Zarr array (in a group under `name`, or as the store itself); a `nodata` is its
    fill value and its "nodata" attribute (what `open_source` reads back); a level of an OME-Zarr
    image (`name` given) has nested chunk keys ("/", as NGFF 0.4 wants them on Zarr v2) and, on
    Zarr v3, its axes' `names` as dimension names (NGFF 0.5)."""
    import zarr

    keywords: dict[str, Any] = dict(shape=shape, chunks=chunks, dtype=dtype, fill_value=0 if nodata is None else nodata,
                                    compressors=zarr_compressors(options, options.zarr_format))
    if nodata is not None:
        keywords["attributes"] = {NODATA_ATTRIBUTE: _json_number(nodata)}
    if name is not None and options.zarr_format == 2:
        keywords["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    if names is not None:
        keywords["dimension_names"] = names
    if name is None:
        return zarr.create_array(store=group_or_store, zarr_format=cast(Any, options.zarr_format), **keywords)
    return group_or_store.create_array(name, **keywords)


def _json_number(value: int | float) -> int | float | str:
    """A number as JSON holds it: NaN and the infinities as the strings "nan", "inf", "-inf"."""
    return value if math.isfinite(value) else str(value)


NODATA_ATTRIBUTE = "nodata"  # an array's declared nodata (JSON: a number, or "nan", "inf", "-inf")


def declared_nodata(array) -> int | float | None:
    """The nodata a Zarr array declares in its "nodata" attribute, or None."""
    value = array.attrs.get(NODATA_ATTRIBUTE)
    if isinstance(value, str):
        return nodata_from_text(value)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def fill_value(array) -> int | float | None:
    """A Zarr array's fill value as a number (None where it has none)."""
    value = array.fill_value
    if value is None:
        return None
    value = np.asarray(value).item()
    return int(value) if isinstance(value, bool) else value if isinstance(value, (int, float)) else None


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
    levels: tuple[Level, ...] = ()
    if isinstance(node, zarr.Group):
        group = node
        name, node = _group_array(path, group, dataset if dataset is not None else _default_dataset(path, group))
        levels = ome_levels(path, group)
    elif dataset:
        raise InputError(f"{path}: is a Zarr array, not a group; leave out {param('dataset')}")
    _check_zarr_array(path, node)
    folder = path / name if name else path
    if remote:
        reader: Any = NamedReads(path, node)
    else:
        reader = (chunk_files(node, folder) if FAST_PATHS.chunk_files else None) or ZarrReads(path, node, folder)
    calibration = next((level.calibration for level in levels if level.path == name), None)
    return Source(path, reader, "array", "ZARR", tuple(int(c) for c in node.chunks), name,
                  zarr_format=node.metadata.zarr_format, nodata=declared_nodata(node), fill_value=fill_value(node),
                  calibration=calibration, levels=levels)


def _multiscale(attributes: dict) -> dict | None:
    """The first multiscale image an OME-Zarr group's attributes describe (NGFF 0.4 or 0.5)."""
    ome = attributes.get("ome")
    found = attributes.get("multiscales") or (ome.get("multiscales") if isinstance(ome, dict) else None)
    first = found[0] if isinstance(found, list) and found else None
    return first if isinstance(first, dict) else None


def ome_levels(path: Path, group) -> tuple[Level, ...]:
    """The levels of the OME-Zarr image in `group` (of the store at `path`), as its metadata
    lists them: path, shape and calibration (None where the metadata gives none poolcli can
    carry: axes that are not t, c, z, y, x, transforms other than scale and translation).
    Levels the store does not hold as arrays are left out; () for a group that is no image."""
    multiscale = _multiscale(group.attrs.asdict())
    datasets = multiscale.get("datasets") if multiscale is not None else None
    if not isinstance(datasets, list):
        return ()
    levels = []
    for dataset in datasets[:LISTED_LEVELS]:
        name = dataset.get("path") if isinstance(dataset, dict) else None
        if not isinstance(name, str):
            continue
        try:
            _, array = _group_array(path, group, name)
        except InputError:
            continue
        shape = tuple(int(n) for n in array.shape)
        levels.append(Level(name, shape, _calibration(cast(dict, multiscale), dataset, len(shape))))
    return tuple(levels)


def _calibration(multiscale: dict, dataset: dict, ndim: int) -> Calibration | None:
    """One dataset's calibration: the multiscale's axes and units, the dataset's transforms and
    then the multiscale's own (NGFF applies both), composed exactly (a scale alone is kept as it is)."""
    axes = multiscale.get("axes")
    if not isinstance(axes, list) or len(axes) != ndim:
        return None
    names = tuple(a.get("name") if isinstance(a, dict) else a for a in axes)
    if not all(isinstance(n, str) and n in AXIS_TYPES for n in names) or len(set(names)) != ndim:
        return None
    units = tuple(_known_unit(a.get("unit")) if isinstance(a, dict) else "" for a in axes)
    scale, translation = [1.0] * ndim, [0.0] * ndim
    given = [dataset.get("coordinateTransformations"), multiscale.get("coordinateTransformations")]
    for transform in [t for listed in given if isinstance(listed, list) for t in listed]:
        kind = transform.get("type") if isinstance(transform, dict) else None
        vector = transform.get(kind) if isinstance(kind, str) else None
        if kind == "identity":
            continue
        if kind not in ("scale", "translation") or not isinstance(vector, list) or not _finite_vector(vector, ndim):
            return None
        if kind == "scale":
            scale = [s * v for s, v in zip(scale, vector)]
            translation = [t * v for t, v in zip(translation, vector)]
        else:
            translation = [t + v for t, v in zip(translation, vector)]
    if not all(s > 0 for s in scale):
        return None
    return Calibration(cast(tuple, names), tuple(scale), tuple(translation), units)


def _finite_vector(vector: object, ndim: int) -> bool:
    return isinstance(vector, list) and len(vector) == ndim and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vector)


def _known_unit(unit: object) -> str:
    """An axis's unit as NGFF names it ("" for none, or one NGFF does not know)."""
    if not isinstance(unit, str) or not unit:
        return ""
    try:
        return unit_name(unit)
    except PoolError:
        return ""


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
    """A Zarr array at `target`; an OME-Zarr image of one level for a name ending .ome.zarr
    (`options.calibration` the output's axes and sizes, else guessed)."""
    if target.name.lower().endswith(OME_SUFFIX):
        with _ome_sink(target, shape, dtype, spatial=spatial, options=options, overwrite=overwrite,
                       inputs=inputs) as sink:
            yield sink
        return
    with zarr_target(target, overwrite=overwrite, inputs=inputs) as (store, folder):
        chunks = chunk_shape(shape, spatial, options.chunk)
        yield Sink(writable(create_zarr_array(store, None, shape, dtype, chunks, options, options.nodata), folder),
                   chunked=True)


@contextlib.contextmanager
def _ome_sink(target: Path, shape: tuple[int, ...], dtype: np.dtype, *, spatial: tuple[int, ...],
              options: StoreOptions, overwrite: bool, inputs: tuple[Path, ...]) -> Iterator[Sink]:
    """An OME-Zarr image of one level ("0", its axes in NGFF's order) whose metadata is written
    once every block is in."""
    import zarr

    calibration = level0_calibration(shape, spatial, options)
    order = storage_order(calibration)
    stored = tuple(shape[a] for a in order)
    with zarr_target(target, overwrite=overwrite, inputs=inputs) as (store, folder):
        group = zarr.open_group(store, mode="w", zarr_format=cast(Any, options.zarr_format))
        chunks = chunk_shape(stored, tuple(order.index(a) for a in spatial), options.chunk)
        array = create_zarr_array(group, "0", stored, dtype, chunks, options, options.nodata,
                                  level_dimensions(calibration, options.zarr_format))
        yield Sink(Transposed(writable(array, folder and folder / "0"), order), chunked=True)
        description = {"name": target.name, "axes": ngff_axes(calibration),
                       "datasets": [{"path": "0", "coordinateTransformations": transforms(calibration)}]}
        shown = omero(calibration, shape, np.dtype(dtype), smallest_level(group, 0, order))
        group.attrs.update(ngff_attributes(description, options.zarr_format, shown))
