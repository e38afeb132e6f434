"""poolcli on a Dask distributed cluster against poolcli on one process and against Dask's own
`coarsen` + `store` on the same cluster, and `batch` on the cluster against a local `batch`.

A `distributed.LocalCluster` of 2 worker processes (1 thread each, loopback) stands for the
cluster. CPU seconds are summed over this process and the workers (their rusage before and after),
peak memory is the largest worker's (or the single process's) resident peak. The pyramid's task
count is printed beside its output chunk count.

    python benchmarks/cluster.py                          # (4, 8192, 8192) uint8, 120 photos
    python benchmarks/cluster.py --shape 8,16384,16384    # the big-data issue's workload
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from scale import settle  # noqa: E402 (the same start for every run)

INPUTS: list[Path] = []  # what `settle` reads before each run


def usage() -> tuple[float, float]:
    """(CPU seconds, peak RSS MB) of the calling process."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime, own.ru_maxrss / 1024


def measure_cluster(client, work) -> tuple[float, float, float]:
    """(CPU s of the workers and this process, wall s, the largest worker peak MB) of `work()`."""
    settle(INPUTS)
    before = client.run(usage)
    mine = usage()[0]
    started = time.perf_counter()
    work()
    wall = time.perf_counter() - started
    after = client.run(usage)
    cpu = sum(after[w][0] - before[w][0] for w in after) + usage()[0] - mine
    return cpu, wall, max(after[w][1] for w in after)


def measure_process(argv: list[str]) -> tuple[float, float, float]:
    import os

    settle(INPUTS)
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, rusage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, argv
    return rusage.ru_utime + rusage.ru_stime, time.perf_counter() - started, rusage.ru_maxrss / 1024


def coarsen(client, source: Path, out: Path, levels: int) -> None:
    import dask.array as da
    import numcodecs
    import numpy as np
    import zarr

    x = da.from_zarr(str(source))
    group = zarr.open_group(str(out), mode="w", zarr_format=2)
    level, stores, targets = x, [], []
    for k in range(1, levels + 1):
        level = da.coarsen(np.mean, level, {1: 2, 2: 2}, trim_excess=True).round().astype(np.uint8)
        targets.append(group.create_array(str(k), shape=level.shape, chunks=(1, 1024, 1024), dtype=np.uint8,
                                          compressors=numcodecs.Blosc(cname="zstd", clevel=3)))
        stores.append(level)
    client.gather(client.compute(da.store(stores, targets, lock=False, compute=False)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="4,8192,8192")
    parser.add_argument("--photos", type=int, default=120)
    args = parser.parse_args()
    shape = tuple(int(n) for n in args.shape.split(","))
    folder = Path(tempfile.mkdtemp(prefix="poolcli-cluster-"))
    try:
        run(folder, shape, args.photos)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, shape: tuple[int, ...], photos: int) -> None:
    from distributed import Client, LocalCluster

    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--make", str(folder), "--shape",
                    ",".join(map(str, shape))], check=True)
    source = folder / "input.zarr"
    INPUTS[:] = [source]
    levels = max(1, (max(shape[1:]) // 512).bit_length() - 1)
    print(f"pyramid of {shape} uint8 ({levels} levels); batch of {photos} photos; 2 worker processes")
    rows = [("pyramid, one process", *measure_process([sys.executable, "-m", "poolcli", "pyramid", str(source),
                                                       "-o", str(folder / "one.zarr"), "--levels", str(levels)]))]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        address = cluster.scheduler_address
        rows.append(("pyramid --scheduler", *measure_cluster(client, lambda: subprocess.run(
            [sys.executable, "-m", "poolcli", "pyramid", str(source), "-o", str(folder / "two.zarr"), "--levels",
             str(levels), "--scheduler", address], check=True, stdout=subprocess.DEVNULL))))
        rows.append(("dask coarsen + store", *measure_cluster(client, lambda: coarsen(client, source,
                                                                                      folder / "dask.zarr", levels))))
        print_tasks(source, shape, levels)
        src = folder / "photos"
        from batch import build_corpus  # the 120-photo corpus of benchmarks/batch.py (1200-2400 px)

        build_corpus(src, "mixed", photos)
        INPUTS[:] = [src]
        rows.append(("batch, local", *measure_process([sys.executable, "-m", "poolcli", "batch", str(src), "-d",
                                                      str(folder / "b1"), "-m", "avg", "--quiet"])))
        rows.append(("batch --scheduler", *measure_cluster(client, lambda: subprocess.run(
            [sys.executable, "-m", "poolcli", "batch", str(src), "-d", str(folder / "b2"), "-m", "avg", "--quiet",
             "--scheduler", address], check=True))))
    print(f"\n{'run':24} {'CPU s':>8} {'wall s':>8} {'peak MB':>8}")
    for name, cpu, wall, peak in rows:
        print(f"{name:24} {cpu:8.1f} {wall:8.1f} {peak:8.0f}")
    print(f"\npyramid: cluster / one process wall {rows[1][2] / rows[0][2]:.2f}; dask coarsen / poolcli cluster "
          f"wall {rows[2][2] / rows[1][2]:.2f}; batch: cluster / local wall {rows[4][2] / rows[3][2]:.2f}")


def print_tasks(source: Path, shape: tuple[int, ...], levels: int) -> None:
    import math

    import numpy as np

    from poolcli.stream import Pyramid, open_source
    from poolcli.stream.cluster import chunk_count, lazy_input, pyramid_levels, task_count, tile_grid

    pyramid = Pyramid(shape, (1, 2), levels, "avg", dtype=np.dtype(np.uint8))
    lazy = pyramid_levels(lazy_input(source), pyramid)
    with open_source(source) as opened:
        grid = tile_grid(pyramid, opened.chunks, opened.dtype.itemsize)
    written = sum(math.prod(-(-n // max(1, t >> k if a in pyramid.spatial else t))
                            for a, (n, t) in enumerate(zip(pyramid.level_shape(k), grid.side, strict=True)))
                  for k in range(1, levels + 1))  # level 0: the input's chunk files, copied
    print(f"pyramid: {len(grid.indices)} fused tasks (one per tile of level 0) write {written} chunks of levels"
          f" 1-{levels}; the lazy-array way would take {task_count(lazy)} tasks for {chunk_count(lazy)} chunks")


if __name__ == "__main__":
    main()
