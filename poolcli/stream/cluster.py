"""Big arrays on a Dask distributed cluster: the input as a lazy Dask array (each chunk read by
the task that needs it, from storage every worker sees), pooled by `engine.lazy` (one task per
output chunk, the bits of pooling in memory), stored to Zarr by the workers, the store published
whole by this process.

Pyramids: level k is `pool(level k-1, 2)` for max and min, exact integer sums carried level to
level for integer means and sums (each level rounded once from its own sums, as
`stream.pyramid` does), and `pool(level 0, 2**k)` otherwise; every level is stored in one
computation, so each chunk of level 0 is read once.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..core.spec import PoolSpec
from ..engine import pool, pool_with
from ..errors import OutputError, PoolError, param
from ..io.remote import bucket, is_url, zarr_store
from .chunkfiles import ChunkFiles, chunk_files, writable
from .npyfile import NpyFile
from .pyramid import Pyramid, Scratch, band_levels, from_sums, nests, sum_dtype
from .sinks import StoreOptions
from .sources import Source
from .stores import STORES, by_suffix, checked_options, input_store, open_source
from .stores.zarr import (
    OME_SUFFIX,
    copy_chunk_files,
    copy_level0,
    create_zarr_array,
    level0_calibration,
    level0_origin,
    level_dimensions,
    ngff_metadata,
    storage_order,
    zarr_target,
)

CONNECT_SECONDS = 10
TILE_BYTES = 16 << 20  # level-0 bytes a pyramid task reads, about
READ_CHUNK = 1024  # the side of a chunk read from an .npy or TIFF input, along its last two axes


def lazy_input(path: Path, dataset: str | None = None):
    """The input as a Dask array whose chunks are read by the workers."""
    import dask.array as da

    with open_source(path, dataset) as source:
        shape, dtype, chunks, name, order = source.shape, source.dtype, source.chunks, source.dataset, source.order
    if _is_zarr_input(path) and is_url(path):  # the workers read the objects themselves
        import zarr

        return da.from_zarr(zarr.open_array(zarr_store(path, read_only=True), path=name or "", mode="r"))
    if _is_zarr_input(path):
        return da.from_zarr(str(path), component=name or None)
    if order is not None:
        chunks = tuple(chunks[a] for a in order)
    chunks = tuple(min(n, max(c, READ_CHUNK)) if axis >= len(shape) - 2 else 1
                   for axis, (n, c) in enumerate(zip(shape, chunks, strict=True)))
    return _file_array(path, dataset, shape, dtype, chunks)


def _is_zarr_input(path: Path) -> bool:
    return input_store(path).name == "ZARR"


def _file_array(path: Path, dataset: str | None, shape, dtype: np.dtype, chunks: tuple[int, ...]):
    """A Dask array of one reading task per chunk of an .npy or TIFF file."""
    import itertools

    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    name = "poolcli-read-" + tokenize(str(path), path.stat().st_mtime_ns, dataset, chunks)
    bounds = [list(range(0, n, c)) for n, c in zip(shape, chunks, strict=True)]
    layer = {}
    for index in itertools.product(*(range(len(b)) for b in bounds)):
        slices = tuple(slice(b[i], min(b[i] + c, n)) for b, i, c, n in zip(bounds, index, chunks, shape, strict=True))
        layer[(name, *index)] = (_read_block, str(path), dataset, slices)
    sizes = tuple(tuple(min(c, n - start) for start in range(0, n, c)) for n, c in zip(shape, chunks, strict=True))
    graph = HighLevelGraph.from_collections(name, cast(Any, layer), dependencies=[])
    return da.Array(graph, name, sizes, meta=np.empty((0,) * len(shape), dtype))


def _read_block(path: str, dataset: str | None, slices: tuple) -> np.ndarray:
    """On a worker: one block of an .npy, Zarr or TIFF input."""
    if input_store(Path(path)).name == "NPY":
        array = NpyFile.open(Path(path))
        try:
            return array[slices]
        finally:
            array.close()
    with open_source(Path(path), dataset) as source:
        return source.read(slices)


SCHEDULER_SCHEMES = ("tcp", "tls")
_ADDRESS = re.compile(r"(?:(?P<scheme>[A-Za-z]+)://)?(?P<host>[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")


def scheduler_address(text: str) -> str:
    """`text` as a Dask scheduler address: tcp://HOST:PORT or tls://HOST:PORT (HOST:PORT is tcp);
    a PoolError naming it if it is none, before anything connects.

    >>> scheduler_address("10.0.0.5:8786"), scheduler_address("TLS://[::1]:8786")
    ('tcp://10.0.0.5:8786', 'tls://[::1]:8786')
    """
    match = _ADDRESS.fullmatch(text)
    scheme = (match["scheme"] or "tcp").lower() if match else ""
    if match is None or scheme not in SCHEDULER_SCHEMES or not 0 < int(match["port"]) < 65536:
        raise PoolError(f"{param('scheduler')} {text!r} is not a Dask scheduler address;"
                        " use tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT (as `dask scheduler` prints it)")
    return f"{scheme}://{match['host']}:{int(match['port'])}"


def connect(address: str):
    """A client of the scheduler at `address`; a PoolError naming it (one line, nothing on stderr)
    if none answers within `connect_seconds()`: a malformed address, a port that never answers
    or answers something else than Dask."""
    address = scheduler_address(address)
    try:
        import dask
        from distributed import Client
    except ImportError:
        raise PoolError(f"{param('scheduler')} needs Dask distributed; install poolcli[dask]") from None
    seconds = connect_seconds()
    with dask.config.set({"distributed.comm.timeouts.connect": f"{seconds}s"}), _quiet_loggers():
        problem = _handshake(address, seconds)
        if problem is None:
            try:
                return Client(address, timeout=f"{seconds}s", set_as_default=False)
            except Exception as error:  # the scheduler answered the handshake, then failed
                problem = error
    reason = f"no answer within {seconds:g} s" if isinstance(problem, TimeoutError) else \
        " ".join(str(problem).split()) or type(problem).__name__
    raise PoolError(f"{param('scheduler')} {address}: no Dask scheduler answers ({reason});"
                    " start one with `dask scheduler` and workers with `dask worker ADDRESS`") from None


def connect_seconds() -> float:
    """How long a connection may take: Dask's `distributed.comm.timeouts.connect`, at most CONNECT_SECONDS."""
    import dask
    from dask.utils import parse_timedelta

    configured = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect", CONNECT_SECONDS), "s")
    return min(float(CONNECT_SECONDS), float(configured or CONNECT_SECONDS))


def _handshake(address: str, seconds: float) -> BaseException | None:
    """Open one connection to `address` and finish Dask's handshake on it within `seconds`; the
    error if that fails. On a daemon thread with its own event loop: distributed waits for the
    peer's handshake without a time limit, and a peer that never answers (or announces a frame
    of exabytes) must not hold this process."""
    import asyncio

    from distributed.comm import connect as open_comm
    from distributed.security import Security

    arguments = Security().get_connection_args("client")
    outcome: list[BaseException | None] = []

    async def attempt() -> None:
        comm = await asyncio.wait_for(open_comm(address, timeout=seconds, **arguments), seconds)
        await comm.close()

    def run() -> None:
        try:
            asyncio.run(attempt())
            outcome.append(None)
        except BaseException as error:  # MemoryError included: a frame length read from a stranger
            outcome.append(error)

    thread = threading.Thread(target=run, name="poolcli-scheduler-handshake", daemon=True)
    thread.start()
    thread.join(seconds + 1)
    return outcome[0] if outcome else TimeoutError()


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """distributed's and asyncio's log lines off while connecting: a failure is one line, ours."""
    import logging

    loggers = [logging.getLogger(name) for name in ("distributed", "asyncio", "tornado")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def worker_count(client) -> int:
    return len(client.scheduler_info().get("workers", {}))


def _sees(source: Any, out_dir: Any) -> str | None:
    """On a worker: None if it reads `source` and can write into `out_dir` (local paths as text, or
    `io.remote.Url`s: an object or prefix it reaches, a bucket it reaches), else why not."""
    try:
        seen = source.exists() if is_url(source) else os.path.exists(source)
        if is_url(out_dir):
            return None if seen and bucket(out_dir).exists() else \
                f"does not reach {source if not seen else bucket(out_dir)}"
    except PoolError as error:
        return f"cannot reach the storage ({error})"
    if not seen:
        return f"does not see the input {'folder ' if not os.path.splitext(source)[1] else ''}{source}"
    folder = Path(out_dir)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        return f"cannot write to {out_dir}"
    return None


def check_shared(client, source: Path, out_dir: Path) -> None:
    """Every worker must see the input and write the output folder (a shared file system, or
    object storage each worker reaches itself: a URL is sent as it is, its options with it); a
    PoolError naming the first worker that cannot."""
    answers = client.run(_sees, *(path if is_url(path) else str(path.resolve()) for path in (source, out_dir)))
    if not answers:
        raise PoolError(f"{param('scheduler')}: the cluster has no workers; start some with `dask worker ADDRESS`")
    for worker, problem in sorted(answers.items()):
        if problem is not None:
            raise PoolError(f"worker {worker} {problem}; inputs and outputs must be on storage every worker sees"
                            " (a shared file system)")


def check_cluster_paths(source: Path, target: Path) -> None:
    if not (source.is_dir() or by_suffix(source) is not None):
        raise OutputError(f"{source}: on a cluster, inputs are Zarr, .npy or TIFF; pool it without a scheduler")
    if is_url(source) and not _is_zarr_input(source):
        raise OutputError(f"{source}: on a cluster, inputs in object storage are Zarr stores; pool it without a"
                          " scheduler")
    if by_suffix(target) is not STORES["ZARR"]:
        raise OutputError(f"{target}: on a cluster the workers write Zarr; use a .zarr output")


def regular(array, side: int):
    """`array` rechunked where its chunks are uneven (a Zarr store takes one chunk shape)."""
    even = all(len(set(c[:-1])) <= 1 and (len(c) < 2 or c[-1] <= c[0]) for c in array.chunks)
    return array if even else array.rechunk(tuple(min(n, side) for n in array.shape))


def pool_on_cluster(client, source: Path, target: Path, spec: PoolSpec, dtype: np.dtype | None, *,
                    options: StoreOptions, overwrite: bool, dataset: str | None = None) -> tuple:
    """Pool `source` into the Zarr store `target` on the cluster of `client`; the output's shape and dtype."""
    import dask.array as da

    check_cluster_paths(source, target)
    if target.name.lower().endswith(OME_SUFFIX):
        raise OutputError(f"{target}: pooling on a cluster writes a plain Zarr array, not an OME-Zarr image; name"
                          " the output .zarr, or pool it on this machine")
    options = checked_options(target, options)
    result = regular(pool_with(spec.but(dtype=dtype), lazy_input(source, dataset)), options.chunk)
    with zarr_target(target, overwrite=overwrite, inputs=(source,)) as (store, _):
        array = create_zarr_array(store, None, result.shape, result.dtype, tuple(c[0] for c in result.chunks), options,
                                  options.nodata)
        client.gather(client.compute(da.store(result, array, lock=False, compute=False)))
    return result.shape, np.dtype(result.dtype)


def pyramid_levels(x, pyramid: Pyramid) -> list:
    """Level 0 and the lazy levels 1..L of Dask array `x`, each exactly as `stream.pyramid` makes it."""
    route = nests(pyramid, np.dtype(x.dtype))
    levels, carried = [x], x
    for k in range(1, pyramid.levels + 1):
        if route == "extreme":
            carried = pool(carried, 2, axes=pyramid.spatial, mode=pyramid.mode, nan_policy=pyramid.nan_policy)
            level = carried.astype(pyramid.level_dtype(np.dtype(x.dtype), k))
        elif route == "sums":
            carried = pool(carried, 2, axes=pyramid.spatial, mode="sum", dtype=sum_dtype(pyramid, np.dtype(x.dtype), k))
            level = carried.map_blocks(functools.partial(from_sums, pyramid), np.dtype(x.dtype), k,
                                       dtype=pyramid.level_dtype(np.dtype(x.dtype), k))
        else:
            level = pool_with(pyramid.spec(k), x)
        levels.append(level)
    return levels


def pyramid_on_cluster(client, source: Path, target: Path, pyramid: Pyramid, *, options: StoreOptions,
                       overwrite: bool, dataset: str | None = None,
                       progress: Callable[[int], None] | None = None) -> list[tuple[int, ...]]:
    """Every level of `pyramid` as OME-Zarr at `target`: one task per tile of level 0 reads the tile
    once, makes its part of every level (`pyramid.band_levels`, the local engine's arithmetic) and
    writes it into whole chunks of each level's array; this process publishes the store."""
    import zarr
    from distributed import as_completed

    check_cluster_paths(source, target)
    options = checked_options(target, options)
    level0 = level0_calibration(pyramid.shape, pyramid.spatial, options)
    order, names = storage_order(level0), level_dimensions(level0, options.zarr_format)
    with open_source(source, dataset) as opened:
        tiles = tile_grid(pyramid, opened.chunks if opened.order is None else pyramid.shape, opened.dtype.itemsize)
    shapes = [tuple(shape[a] for a in order) for shape in pyramid.shapes]
    with zarr_target(target, overwrite=overwrite, inputs=(source,)) as (store, folder), \
            open_source(source, dataset) as opened:
        group = zarr.open_group(store, mode="w", zarr_format=options.zarr_format)  # type: ignore[arg-type]
        origin = None if folder is None else level0_origin(opened, order, options)  # a Zarr input's chunks as they are
        spread = folder is not None and _level0_files(str(source), dataset) is not None  # the tasks copy its chunk
        # files, or this process
        if origin is not None:
            copy_level0(origin, store / "0", chunks=not spread, names=names)
        first = 0 if origin is None else 1
        for k in range(first, pyramid.levels + 1):
            chunks = tuple(max(1, tiles.side[a] >> k) if a in pyramid.spatial else 1 for a in range(len(order)))
            dtype = pyramid.level_dtype(opened.dtype, k)
            create_zarr_array(group, str(k), shapes[k], dtype,
                              tuple(min(chunks[a], shapes[k][i]) for i, a in enumerate(order)), options,
                              options.nodata_for(dtype, opened.dtype), names)
        futures = client.map(_pyramid_tile, tiles.indices, source=source if is_url(source) else str(source),
                             dataset=dataset, store=str(store) if folder is not None else store,
                             pyramid=pyramid, order=order, first=first, copy=first == 1 and spread, pure=False)
        try:
            for _, done in as_completed(futures, with_results=True, loop=client.loop):
                if progress is not None:
                    progress(done)
        except BaseException:
            client.cancel(futures, force=True)  # before the temporary store goes
            raise
        group.attrs.update(ngff_metadata(group, opened, pyramid, options.zarr_format, level0))
    return shapes


@dataclass(frozen=True)
class Tiles:
    side: tuple[int, ...]  # per axis: the tile's length (whole windows of the last level on spatial axes)
    indices: list  # per tile: its slices of level 0


def tile_grid(pyramid: Pyramid, chunks: tuple[int, ...], itemsize: int = 1) -> Tiles:
    """Tiles of level 0: the input's chunks where they hold whole 2^L windows (else rounded up to
    them; at least READ_CHUNK wide), doubled along the spatial axes (the last first) up to about
    TILE_BYTES (fewer tasks: each costs the scheduler and a worker about a millisecond), one index
    at a time on the other axes."""
    unit = 2 ** pyramid.levels
    side = [(-(-max(c, READ_CHUNK if c >= n else c) // unit) * unit) if a in pyramid.spatial else 1
            for a, (n, c) in enumerate(zip(pyramid.shape, chunks, strict=True))]
    for axis in reversed(pyramid.spatial):
        while side[axis] < pyramid.shape[axis] and 2 * math.prod(side) * itemsize <= TILE_BYTES:
            side[axis] *= 2
    ranges = [[slice(start, min(start + t, n)) for start in range(0, n, t)]
              for n, t in zip(pyramid.shape, side, strict=True)]
    return Tiles(tuple(side), [tuple(index) for index in itertools.product(*ranges)])


def _pyramid_tile(index: tuple, *, source: Any, dataset: str | None, store: Any, pyramid: Pyramid,
                  order: tuple[int, ...], first: int, copy: bool = False) -> int:
    """On a worker: read one tile of level 0, write its part of every level (level 0 by copying the
    chunk files that start in the tile, with `copy`); its input bytes."""
    if copy:
        copy_chunk_files(cast(ChunkFiles, _level0_files(source, dataset)), Path(store) / "0", index)

    scratch = _scratch()
    values = _read_tile(index, source, dataset, scratch)
    parts = [values, *band_levels(pyramid, values, scratch)]
    for k in range(first, pyramid.levels + 1):
        start = [s.start >> k if a in pyramid.spatial else s.start for a, s in enumerate(index)]
        region = tuple(slice(st, st + n) for st, n in zip(start, parts[k].shape, strict=True))
        _level_array(store, k)[tuple(region[a] for a in order)] = parts[k].transpose(order)
    return int(values.nbytes)


@functools.lru_cache(maxsize=64)
def _opened(source: Any, dataset: str | None):
    """On a worker: a Zarr input's array, opened once per process (None for other inputs)."""
    path = source if is_url(source) else Path(source)
    if not _is_zarr_input(path):
        return None
    with open_source(path, dataset) as opened:
        return _NativeReads(opened)


def _read_tile(index: tuple, source: Any, dataset: str | None, scratch: Scratch) -> np.ndarray:
    """On a worker: one tile of level 0; a Zarr input's into this thread's buffers (Dask workers
    hand freed memory back to the system at once, and fresh pages cost as much as decoding)."""
    files = _level0_files(source, dataset)
    if files is not None and files.dtype.isnative:
        shape = tuple(len(range(*s.indices(n))) for s, n in zip(index, files.shape, strict=True))
        return files.read(index, out=scratch.buffer("tile", shape, files.dtype),
                          spare=scratch.buffer("chunk", files.chunks, files.dtype))
    reader = _opened(source, dataset)
    return reader[index] if reader is not None else _read_block(source, dataset, index)


def _scratch() -> Scratch:
    """On a worker: the calling thread's scratch buffers, kept from task to task."""
    held = _THREADS.__dict__.setdefault("scratch", Scratch())
    return cast(Scratch, held)


_THREADS = threading.local()


@functools.lru_cache(maxsize=64)
def _level0_files(source: Any, dataset: str | None) -> ChunkFiles | None:
    """A Zarr input's chunk files (None for other inputs and layouts, and for objects), looked up
    once per process."""
    path = source if is_url(source) else Path(source)
    if is_url(path) or not _is_zarr_input(path):
        return None
    with open_source(path, dataset) as opened:
        if isinstance(opened.array, ChunkFiles):
            return opened.array
        return chunk_files(opened.array, path / opened.dataset if opened.dataset else path)


@dataclass(frozen=True)
class _NativeReads:
    source: Source

    def __getitem__(self, index: tuple) -> np.ndarray:
        return self.source.read(index)


def _level_array(store: Any, k: int):
    """On a worker: level `k` of the output: in a local folder (`store` its path), or in object
    storage (`store` the zarr store sent with its metadata, chunks written straight to the prefix)."""
    if isinstance(store, str):
        return _opened_output(str(Path(store) / str(k)))
    import zarr

    return zarr.open_array(store, path=str(k), mode="r+")


@functools.lru_cache(maxsize=64)
def _opened_output(path: str):
    """On a worker: a level's output array (whole chunks written straight to their files), opened once per process."""
    import zarr

    return writable(zarr.open_array(path, mode="r+"), Path(path))


def task_count(levels: list) -> int:
    """The tasks of the arrays' graphs together (for the notes: about one per output chunk)."""
    keys: set = set()
    for level in levels:
        keys.update(dict(level.__dask_graph__()))
    return len(keys)


def chunk_count(levels: list) -> int:
    return sum(math.prod(len(c) for c in level.chunks) for level in levels)


__all__ = ["Source", "connect", "lazy_input", "pool_on_cluster", "pyramid_levels", "pyramid_on_cluster",
           "scheduler_address"]
