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

import functools
import math
import os
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..engine import pool
from ..errors import OutputError, PoolError, param
from ..io import atomic_path
from .npyfile import NpyFile
from .pyramid import Pyramid, from_sums, nests, sum_dtype
from .sinks import StoreOptions, create_zarr_array
from .sources import TIFF_SUFFIXES, ZARR_SUFFIXES, Source, open_source
from .stores import copy_level0, multiscales, storage_order

CONNECT_SECONDS = 10
READ_CHUNK = 1024  # the side of a chunk read from an .npy or TIFF input, along its last two axes


def lazy_input(path: Path, dataset: str | None = None):
    """The input as a Dask array whose chunks are read by the workers."""
    import dask.array as da

    with open_source(path, dataset) as source:
        shape, dtype, chunks, name, order = source.shape, source.dtype, source.chunks, source.dataset, source.order
    if path.is_dir() or path.suffix.lower() in ZARR_SUFFIXES:
        return da.from_zarr(str(path), component=name or None)
    if order is not None:
        chunks = tuple(chunks[a] for a in order)
    chunks = tuple(min(n, max(c, READ_CHUNK)) if axis >= len(shape) - 2 else 1
                   for axis, (n, c) in enumerate(zip(shape, chunks, strict=True)))
    return _file_array(path, dataset, shape, dtype, chunks)


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
    """On a worker: one block of an .npy or TIFF file."""
    if path.lower().endswith(".npy"):
        array = NpyFile.open(Path(path))
        try:
            return array[slices]
        finally:
            array.close()
    with open_source(Path(path), dataset) as source:
        return source.read(slices)


def connect(address: str):
    """A client of the scheduler at `address`; a PoolError naming it if there is none."""
    try:
        from distributed import Client
    except ImportError:
        raise PoolError(f"{param('scheduler')} needs Dask distributed; install poolcli[dask]") from None
    try:
        return Client(address, timeout=f"{CONNECT_SECONDS}s", set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise PoolError(f"{param('scheduler')} {address}: no Dask scheduler answers ({error});"
                        " start one with `dask scheduler` and workers with `dask worker ADDRESS`") from None


def worker_count(client) -> int:
    return len(client.scheduler_info().get("workers", {}))


def _sees(source: str, out_dir: str) -> str | None:
    """On a worker: None if it reads `source` and can write into `out_dir`, else why not."""
    if not os.path.exists(source):
        return f"does not see the input {'folder ' if not os.path.splitext(source)[1] else ''}{source}"
    folder = Path(out_dir)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        return f"cannot write to {out_dir}"
    return None


def check_shared(client, source: Path, out_dir: Path) -> None:
    """Every worker must see the input and write the output folder (a shared file system); a
    PoolError naming the first worker that cannot."""
    answers = client.run(_sees, str(source.resolve()), str(out_dir.resolve()))
    if not answers:
        raise PoolError(f"{param('scheduler')}: the cluster has no workers; start some with `dask worker ADDRESS`")
    for worker, problem in sorted(answers.items()):
        if problem is not None:
            raise PoolError(f"worker {worker} {problem}; inputs and outputs must be on storage every worker sees"
                            " (a shared file system)")


def check_cluster_paths(source: Path, target: Path) -> None:
    if not (source.is_dir() or source.suffix.lower() in (*ZARR_SUFFIXES, ".npy", *TIFF_SUFFIXES)):
        raise OutputError(f"{source}: on a cluster, inputs are Zarr, .npy or TIFF; pool it without a scheduler")
    if target.suffix.lower() not in ZARR_SUFFIXES:
        raise OutputError(f"{target}: on a cluster the workers write Zarr; use a .zarr output")


def regular(array, side: int):
    """`array` rechunked where its chunks are uneven (a Zarr store takes one chunk shape)."""
    even = all(len(set(c[:-1])) <= 1 and (len(c) < 2 or c[-1] <= c[0]) for c in array.chunks)
    return array if even else array.rechunk(tuple(min(n, side) for n in array.shape))


def pool_on_cluster(client, source: Path, target: Path, keywords: dict, dtype: np.dtype | None, *,
                    options: StoreOptions, overwrite: bool, dataset: str | None = None) -> tuple:
    """Pool `source` into the Zarr store `target` on the cluster of `client`; the output's shape and dtype."""
    import dask.array as da

    check_cluster_paths(source, target)
    result = regular(pool(lazy_input(source, dataset), **keywords, dtype=dtype), options.chunk)
    with atomic_path(target, overwrite=overwrite, inputs=(source,), folder=True) as store:
        array = create_zarr_array(store, None, result.shape, result.dtype, tuple(c[0] for c in result.chunks), options)
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
            level = pool(x, dtype=pyramid.dtype, **pyramid.keywords(k))
        levels.append(level)
    return levels


def pyramid_on_cluster(client, source: Path, target: Path, pyramid: Pyramid, *, options: StoreOptions,
                       overwrite: bool, dataset: str | None = None) -> list[tuple[int, ...]]:
    """Every level of `pyramid` as OME-Zarr at `target`, computed and stored by the cluster in one go."""
    import dask.array as da
    import zarr

    check_cluster_paths(source, target)
    order = storage_order(len(pyramid.shape), pyramid.spatial)
    levels = [regular(level.transpose(order), options.chunk) for level in pyramid_levels(lazy_input(source, dataset),
                                                                                          pyramid)]
    with atomic_path(target, overwrite=overwrite, inputs=(source,), folder=True) as store, \
            open_source(source, dataset) as opened:
        group = zarr.open_group(str(store), mode="w", zarr_format=options.zarr_format)  # type: ignore[arg-type]
        first = 1 if copy_level0(opened, order, options, store / "0") else 0  # a Zarr input's chunks as they are
        arrays = [create_zarr_array(group, str(k), level.shape, level.dtype, tuple(c[0] for c in level.chunks),
                                    options) for k, level in enumerate(levels) if k >= first]
        client.gather(client.compute(da.store(levels[first:], arrays, lock=False, compute=False)))
        group.attrs.update(multiscales(pyramid, source.name, options.zarr_format))
    return [tuple(level.shape) for level in levels]


def task_count(levels: list) -> int:
    """The tasks of the arrays' graphs together (for the notes: about one per output chunk)."""
    keys: set = set()
    for level in levels:
        keys.update(dict(level.__dask_graph__()))
    return len(keys)


def chunk_count(levels: list) -> int:
    return sum(math.prod(len(c) for c in level.chunks) for level in levels)


__all__ = ["Source", "lazy_input", "pool_on_cluster", "pyramid_levels", "pyramid_on_cluster"]
