"""A Dask distributed cluster: `batch --scheduler` pools every file there (one task per file) with
the bytes a local batch writes, the same summary, report, --skip-existing and exit codes; a worker
killed mid-run costs nothing (its tasks run again elsewhere). Real worker processes, loopback only."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster
from PIL import Image

from poolcli.cli import main
from poolcli.errors import PoolError
from poolcli.stream.cluster import check_shared

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def _inputs(folder: Path, count: int) -> Path:
    """`count` small images and arrays in two subfolders."""
    rng = np.random.default_rng(0)
    for i in range(count):
        sub = folder / f"part{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 3 == 0:
            np.save(sub / f"a{i:03d}.npy", rng.random((3, 40, 30)).astype(np.float32))
        else:
            Image.fromarray(rng.integers(0, 256, (60, 50, 3), dtype=np.uint8)).save(sub / f"i{i:03d}.png")
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local:
        yield local


def test_batch_on_a_cluster_writes_what_a_local_batch_writes(tmp_path, cluster, capsys):
    src = _inputs(tmp_path / "src", 24)
    assert main(["batch", str(src), "-d", str(tmp_path / "here"), "-m", "avg", "--jobs", "1"]) == 0
    report = tmp_path / "report.json"
    code = main(["batch", str(src), "-d", str(tmp_path / "there"), "-m", "avg", "--scheduler",
                 cluster.scheduler_address, "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0 and "24" in out
    assert _files(tmp_path / "there") == _files(tmp_path / "here")
    records = json.loads(report.read_text())["files"]
    assert len(records) == 24 and all(r["status"] == "done" for r in records)
    again = main(["batch", str(src), "-d", str(tmp_path / "there"), "--scheduler", cluster.scheduler_address,
                  "--skip-existing", "--report", str(tmp_path / "again.json")])
    assert again == 0
    assert all(r["status"] == "skipped" for r in json.loads((tmp_path / "again.json").read_text())["files"])


def test_a_bad_file_fails_alone_on_the_cluster(tmp_path, cluster, capsys):
    src = _inputs(tmp_path / "src", 4)
    (src / "part0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    code = main(["batch", str(src), "-d", str(tmp_path / "out"), "--scheduler", cluster.scheduler_address])
    captured = capsys.readouterr()
    assert code == 1 and "broken.png" in captured.err
    assert len(list((tmp_path / "out").rglob("*.*"))) == 4


def test_a_task_that_fails_for_good_fails_its_file_only(tmp_path, cluster, capsys, monkeypatch):
    """A task the cluster cannot run (here `int` in place of the pooling, so every call raises on
    the worker) fails its file with the worker's reason; the others carry on; exit code 1."""
    from poolcli.batch.cluster import ClusterPool

    src = _inputs(tmp_path / "src", 3)
    monkeypatch.setattr(ClusterPool, "task", staticmethod(int))
    code = main(["batch", str(src), "-d", str(tmp_path / "out"), "--scheduler", cluster.scheduler_address])
    err = capsys.readouterr().err
    assert code == 1 and err.count("the cluster could not pool it (int() ") == 3, err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.*"))


def test_no_scheduler_at_the_address_is_one_line(tmp_path, capsys):
    src = _inputs(tmp_path / "src", 1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["batch", str(src), "-d", str(tmp_path / "out"), "--scheduler", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 1 and "--scheduler" in err and "dask scheduler" in err and len(err.strip().splitlines()) == 1


def test_workers_must_see_the_folders(tmp_path, cluster):
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        check_shared(client, tmp_path, tmp_path)  # they do
        with pytest.raises(PoolError, match="does not see the input folder"):
            check_shared(client, tmp_path / "gone", tmp_path)


def test_pool_and_pyramid_of_a_big_array_on_the_cluster(tmp_path, cluster, capsys, monkeypatch):
    """The workers read the Zarr chunks and write the output store: the bits of pooling in memory.
    Tiles of 1 x 64 x 256 (chunks doubled up to 16 KB), the last one cut by the edge; level 0 is
    the input's chunk files, copied by the tiles that hold their first element."""
    import zarr

    from poolcli import pool
    from poolcli.stream import cluster as on_cluster

    monkeypatch.setattr(on_cluster, "TILE_BYTES", 16 << 10)

    x = np.random.default_rng(4).integers(0, 256, (2, 300, 260), dtype=np.uint8)
    store = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=x.shape, chunks=(1, 64, 64), dtype=x.dtype,
                              zarr_format=2)
    store[:] = x
    address = cluster.scheduler_address
    assert main(["pool", str(tmp_path / "in.zarr"), "-o", str(tmp_path / "pooled.zarr"), "-m", "l2", "-k", "3",
                 "-s", "2", "--scheduler", address, "--chunk", "64"]) == 0
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "pooled.zarr"))[:], pool(x, 3, 2, mode="l2"))
    assert main(["pyramid", str(tmp_path / "in.zarr"), "-o", str(tmp_path / "pyr.zarr"), "--levels", "3",
                 "--scheduler", address, "--chunk", "64"]) == 0
    group = zarr.open_group(str(tmp_path / "pyr.zarr"), mode="r")
    assert group.attrs["multiscales"][0]["axes"][0]["name"] == "c"
    assert group["1"].chunks == (1, 32, 128)  # a tile's part of level 1
    files = sorted(p.name for p in (tmp_path / "in.zarr").iterdir() if p.name not in (".zarray", ".zattrs"))
    level0 = tmp_path / "pyr.zarr" / "0"  # the chunk files as they are, under NGFF's nested keys ("0.1.2" -> "0/1/2")
    copied = [p for p in level0.rglob("*") if p.is_file() and p.name not in (".zarray", ".zattrs")]
    assert sorted(str(p.relative_to(level0)) for p in copied) == sorted(name.replace(".", "/") for name in files)
    for name in files:
        assert (level0 / name.replace(".", "/")).read_bytes() == (tmp_path / "in.zarr" / name).read_bytes()
    for k in range(1, 4):
        np.testing.assert_array_equal(group[str(k)][:], pool(x, 2 ** k, mode="avg", axes=(1, 2), dtype=np.uint8))
    capsys.readouterr()
    assert main(["pool", str(tmp_path / "in.zarr"), "-o", str(tmp_path / "p.npy"), "--scheduler", address]) == 1
    assert "use a .zarr output" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["max", "median", "sum"])
def test_pyramid_tiles_on_the_cluster_for_every_route(tmp_path, cluster, mode):
    """Tiles that end mid-window at the edges, an .npy input, the extreme, direct and sums routes."""
    import zarr

    from poolcli import pool

    x = np.random.default_rng(5).integers(0, 200, (1100, 1037), dtype=np.uint16)
    np.save(tmp_path / "in.npy", x)
    assert main(["pyramid", str(tmp_path / "in.npy"), "-o", str(tmp_path / "p.zarr"), "-m", mode, "--levels", "4",
                 "--scheduler", cluster.scheduler_address]) == 0
    group = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")
    for k in range(1, 5):
        expected = pool(x, 2 ** k, mode=mode, dtype=None if mode == "sum" else np.uint16)
        np.testing.assert_array_equal(group[str(k)][:], expected, err_msg=f"level {k}")


def test_a_task_run_again_rewrites_what_its_first_run_wrote(tmp_path):
    """A worker that dies after writing a file, before its result reaches the scheduler: the task
    runs again and must write the file again, while a file that was there before the run stays refused."""
    import time

    from poolcli.app.settings import PoolSettings
    from poolcli.batch.cluster import again_safe
    from poolcli.batch.options import BatchOptions, Job

    src = _inputs(tmp_path / "src", 2)
    source = next(src.rglob("*.png"))
    target = tmp_path / "out.png"
    submitted = time.time()
    target.write_bytes(b"cut short by a dying worker")  # written after the job was submitted
    record = again_safe(Job(source, target, None), PoolSettings(), BatchOptions(jobs=1), submitted)
    assert record.status == "done" and target.read_bytes()[:4] == b"\x89PNG"
    old = tmp_path / "old.png"
    old.write_bytes(b"someone else's")
    os.utime(old, (submitted - 3600, submitted - 3600))
    record = again_safe(Job(source, old, None), PoolSettings(), BatchOptions(jobs=1), submitted)
    assert record.status == "failed" and "exists" in record.error and old.read_bytes() == b"someone else's"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _dask(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.mark.slow
def test_end_to_end_with_dask_processes_and_a_worker_killed_mid_run(tmp_path):
    """`dask scheduler` and two `dask worker` processes; one worker is killed while the batch runs:
    every file is still written once, byte for byte as locally, and the summary says so."""
    src = tmp_path / "src"
    for i in range(40):
        (src / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLES / "camera.png", src / f"d{i % 4}" / f"c{i:02d}.png")
    assert main(["batch", str(src), "-d", str(tmp_path / "here"), "-m", "median", "-k", "3", "--jobs", "1"]) == 0
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [_dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0")]
    try:
        time.sleep(2)
        workers = [_dask("worker", address, "--nthreads", "1", "--no-dashboard") for _ in range(2)]
        processes += workers
        with Client(address, set_as_default=False, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        run = subprocess.Popen([sys.executable, "-m", "poolcli", "batch", str(src), "-d", str(tmp_path / "there"),
                                "-m", "median", "-k", "3", "--scheduler", address, "--report",
                                str(tmp_path / "report.json")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(list((tmp_path / "there").rglob("*.png"))) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(workers[0].pid, signal.SIGKILL)  # mid-run: its tasks go to the other worker
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, err
        assert _files(tmp_path / "there") == _files(tmp_path / "here")  # nothing lost, no temporary left
        records = json.loads((tmp_path / "report.json").read_text())["files"]
        assert sorted(r["input"] for r in records) == sorted(str(p) for p in src.rglob("*.png"))  # each once
        assert all(r["status"] == "done" for r in records)
    finally:
        for process in processes:
            with __import__("contextlib").suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
