"""Object storage through the real command line: `s3://` against moto's S3 server started here
(tests/s3server.py, 127.0.0.1 only), `http://` against a local `http.server`.

Every run is a real ``python -m poolcli`` child (tests/hostile.py: a memory cap and a wall
limit) given the AWS variables every AWS tool reads (dummy credentials, AWS_ENDPOINT_URL). What
each must show: the same bits as the same work on local files, one `poolcli: error:` line and
exit 1 or 2 for a refusal, and in the bucket nothing that looks like a complete store unless the
run succeeded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile import child_env, run
from s3server import FaultProxy, HttpFolder, S3Server

from poolcli import pool

pytest.importorskip("s3fs")
pytest.importorskip("moto")


@pytest.fixture(scope="module")
def s3():
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3, monkeypatch, tmp_path):
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws of the machine's user
    return f"s3://{s3.new_bucket()}"


def image(shape=(300, 260), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def put_zarr(s3: S3Server, url: str, array: np.ndarray, chunks=(64, 64), zarr_format=2) -> None:
    import zarr

    store = zarr.storage.FsspecStore(s3.filesystem().__class__(
        endpoint_url=s3.endpoint, asynchronous=True, skip_instance_cache=True), path=url.removeprefix("s3://"))
    zarr.create_array(store, data=array, chunks=chunks, zarr_format=zarr_format)


def read_zarr(s3: S3Server, url: str) -> np.ndarray:
    import zarr

    store = zarr.storage.FsspecStore(s3.filesystem().__class__(
        endpoint_url=s3.endpoint, asynchronous=True, skip_instance_cache=True), path=url.removeprefix("s3://"),
        read_only=True)
    return np.asarray(zarr.open_array(store, mode="r")[:])


def keys(s3: S3Server, url: str) -> list[str]:
    return sorted(s3.filesystem().find(url.removeprefix("s3://")))


def one_error(result, code: int = 1) -> str:
    assert result.code == code, result
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("poolcli: error: "), result
    assert "Traceback" not in result.err_text, result
    return result.err_lines[0]


def test_info_reads_a_store_in_a_bucket(s3, bucket):
    put_zarr(s3, f"{bucket}/in.zarr", image())
    result = run("info", f"{bucket}/in.zarr", "--json")
    assert result.code == 0, result
    described = json.loads(result.out)
    assert described["format"] == "ZARR" and described["arrays"]["array"]["shape"] == [300, 260]
    assert described["input"] == f"{bucket}/in.zarr"


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_pool_streams_a_bucket_store_into_another_with_the_bits_of_pool(s3, bucket, zarr_format):
    array = image()
    put_zarr(s3, f"{bucket}/in.zarr", array, zarr_format=zarr_format)
    result = run("pool", f"{bucket}/in.zarr", "-o", f"{bucket}/out.zarr", "-k", "3", "-m", "avg", "--memory", "16MB",
                 "--chunk", "32", "--zarr-format", str(zarr_format))
    assert result.code == 0 and not result.err, result
    np.testing.assert_array_equal(read_zarr(s3, f"{bucket}/out.zarr"), pool(array, 3, mode="avg"))
    assert not any(".poolcli-partial" in key for key in keys(s3, f"{bucket}/out.zarr"))


def test_pyramid_to_a_bucket_is_read_back_by_ome_zarr_py(s3, bucket):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    array = image((256, 200))
    put_zarr(s3, f"{bucket}/in.zarr", array)
    result = run("pyramid", f"{bucket}/in.zarr", "-o", f"{bucket}/out.ome.zarr", "--min-size", "32", "--chunk", "64")
    assert result.code == 0, result
    location = parse_url(f"{bucket}/out.ome.zarr", mode="r")
    assert location is not None
    levels = next(iter(Reader(location)())).data
    assert len(levels) == 4
    for k, level in enumerate(levels):
        expected = pool(array, 2 ** k, mode="avg", dtype=np.uint8) if k else array
        np.testing.assert_array_equal(np.asarray(level), expected)


def test_an_existing_output_is_refused_without_overwrite_and_replaced_with_it(s3, bucket):
    put_zarr(s3, f"{bucket}/in.zarr", image())
    put_zarr(s3, f"{bucket}/out.zarr", np.zeros((4, 4), np.uint8))
    line = one_error(run("pool", f"{bucket}/in.zarr", "-o", f"{bucket}/out.zarr"))
    assert f"{bucket}/out.zarr exists" in line and "--overwrite" in line
    np.testing.assert_array_equal(read_zarr(s3, f"{bucket}/out.zarr"), np.zeros((4, 4), np.uint8))
    assert run("pool", f"{bucket}/in.zarr", "-o", f"{bucket}/out.zarr", "--overwrite").code == 0
    assert read_zarr(s3, f"{bucket}/out.zarr").shape == (150, 130)


@pytest.mark.parametrize("output", ["in.zarr", "in.zarr/inner.zarr"])
def test_an_input_is_never_written(s3, bucket, output):
    put_zarr(s3, f"{bucket}/in.zarr", image())
    before = keys(s3, f"{bucket}/in.zarr")
    line = one_error(run("pool", f"{bucket}/in.zarr", "-o", f"{bucket}/{output}", "--overwrite"), 2)
    assert "never" in line and f"{bucket}/{output}" in line
    assert keys(s3, f"{bucket}/in.zarr") == before


def test_a_missing_bucket_or_store_is_one_line(s3, bucket):
    line = one_error(run("info", "s3://no-such-bucket-here/in.zarr"))
    assert "s3://no-such-bucket-here/in.zarr" in line
    put_zarr(s3, f"{bucket}/in.zarr", image())
    line = one_error(run("pool", f"{bucket}/in.zarr", "-o", "s3://no-such-bucket-here/out.zarr"))
    assert "s3://no-such-bucket-here/out.zarr" in line and "bucket" in line


def test_http_is_read_and_never_written(tmp_path, s3, bucket):
    import zarr

    array = image()
    zarr.create_array(str(tmp_path / "in.zarr"), data=array, chunks=(64, 64), zarr_format=2)
    with HttpFolder(tmp_path) as server:
        result = run("pool", f"{server.url}/in.zarr", "-o", tmp_path / "out.zarr", "-k", "2")
        assert result.code == 0, result
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"))[:], pool(array, 2))
        line = one_error(run("pool", f"{server.url}/in.zarr", "-o", f"{server.url}/out.zarr"), 2)
        assert "read-only" in line
        one_error(run("pool", tmp_path / "in.zarr", "-o", f"{server.url}/new.zarr"), 2)


def test_an_unknown_scheme_is_a_usage_error(tmp_path):
    line = one_error(run("info", "ftp://host/in.zarr"), 2)
    assert "ftp://" in line and "s3://" in line


def test_gs_without_gcsfs_names_the_extra(bucket):
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401
        pytest.skip("gcsfs is installed")
    except ImportError:
        pass
    line = one_error(run("info", "gs://bucket/in.zarr"))
    assert "gcsfs" in line and "poolcli[gcs]" in line


def test_a_storage_option_secret_is_never_shown_nor_written(s3, bucket):
    """The secret goes to s3fs (moto takes any); it appears in no output, message or object."""
    secret = "TopSecretValue-8d1f"
    given = ("--storage-option", "key=testing", "--storage-option", f"secret={secret}")
    put_zarr(s3, f"{bucket}/in.zarr", image())
    runs = [
        run("pool", f"{bucket}/in.zarr", "-o", f"{bucket}/out.zarr", *given, "--json"),
        run("pyramid", f"{bucket}/in.zarr", "-o", f"{bucket}/p.zarr", "--min-size", "64", *given),
        run("info", f"{bucket}/in.zarr", *given, "--json"),
        run("pool", f"{bucket}/in.zarr", "-o", "s3://no-such-bucket-here/o.zarr", *given),
        run("pool", f"{bucket}/in.zarr", "-o", f"{bucket}/x.zarr", "--storage-option", f"{secret}"),
    ]
    assert [r.code for r in runs] == [0, 0, 0, 1, 2], runs
    for result in runs:
        assert secret.encode() not in result.out + result.err, result
    fs = s3.filesystem()
    for key in keys(s3, bucket):
        assert secret.encode() not in fs.cat_file(key), key


def test_transient_failures_are_retried(s3, bucket, monkeypatch):
    array = image()
    put_zarr(s3, f"{bucket}/in.zarr", array)
    with FaultProxy(s3.port, fail_first=3) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        result = run("pool", f"{bucket}/in.zarr", "-o", f"{bucket}/out.zarr", "-k", "2")
    assert result.code == 0, result
    assert proxy.failed == 3
    np.testing.assert_array_equal(read_zarr(s3, f"{bucket}/out.zarr"), pool(array, 2))


@pytest.mark.slow
def test_a_failure_that_persists_is_one_line_and_leaves_no_store(s3, bucket, monkeypatch):
    """Every write of one chunk fails: after the bounded tries the run stops with one line naming
    the output, and the prefix holds nothing a Zarr reader opens."""
    put_zarr(s3, f"{bucket}/in.zarr", image())
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with FaultProxy(s3.port, fail_path=r"/out\.zarr/1\.1") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        result = run("pool", f"{bucket}/in.zarr", "-o", f"{bucket}/out.zarr", "-k", "2", "--chunk", "32")
    line = one_error(result)
    assert f"{bucket}/out.zarr" in line and "2 tries" in line
    assert proxy.failed >= 2
    assert not any(key.endswith((".zarray", ".zgroup", "zarr.json")) for key in keys(s3, f"{bucket}/out.zarr"))


@pytest.mark.slow
def test_an_interrupted_pyramid_leaves_no_complete_looking_store(s3, bucket, monkeypatch):
    """A pyramid killed while it writes: the prefix may hold chunks, never root metadata; the
    next run takes the prefix over (its marker says it is an unpublished output) and publishes."""
    import signal
    import time

    from hostile import finish, start

    array = image((512, 512))
    put_zarr(s3, f"{bucket}/in.zarr", array, chunks=(128, 128))
    with FaultProxy(s3.port, fail_path=r"/out\.zarr/1/1[./]1") as proxy:  # a busy retried write (0.4: "/" keys)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        process = start("pyramid", f"{bucket}/in.zarr", "-o", f"{bucket}/out.zarr", "--chunk", "128",
                        "--min-size", "128", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while proxy.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proxy.failed, "the pyramid never reached the failing write"
        process.send_signal(signal.SIGKILL)
        finish(process)
    written = keys(s3, f"{bucket}/out.zarr")
    assert written and not any(key.endswith((".zarray", ".zgroup", "zarr.json", ".zattrs")) for key in written)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    result = run("pyramid", f"{bucket}/in.zarr", "-o", f"{bucket}/out.zarr", "--chunk", "128", "--min-size", "128",
                 timeout=60)
    assert result.code == 0, result
    np.testing.assert_array_equal(read_zarr(s3, f"{bucket}/out.zarr/2"), pool(array, 4, mode="avg", dtype=np.uint8))


def test_a_prefix_holding_other_objects_is_not_taken_over(s3, bucket):
    put_zarr(s3, f"{bucket}/in.zarr", image())
    s3.filesystem().pipe(f"{bucket.removeprefix('s3://')}/out.zarr/notes.txt", b"keep me")
    line = one_error(run("pool", f"{bucket}/in.zarr", "-o", f"{bucket}/out.zarr", "--overwrite"))
    assert "not a Zarr store" in line
    assert keys(s3, f"{bucket}/out.zarr") == [f"{bucket.removeprefix('s3://')}/out.zarr/notes.txt"]


@pytest.mark.slow
def test_wrong_credentials_are_one_line(tmp_path):
    """A second moto server that checks every request's credentials (none are known to it)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              env=child_env(INITIAL_NO_AUTH_ACTION_COUNT="0"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = __import__("time").monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert __import__("time").monotonic() < deadline, "moto did not start"
                __import__("time").sleep(0.1)
        env = child_env(AWS_ACCESS_KEY_ID="wrong", AWS_SECRET_ACCESS_KEY="wrong", AWS_DEFAULT_REGION="us-east-1",
                        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", HOME=str(tmp_path))
        line = one_error(run("info", "s3://bucket/in.zarr", env=env))
        assert "s3://bucket/in.zarr" in line and "credentials" in line
    finally:
        server.terminate()
        server.wait(10)


def put_images(s3: S3Server, prefix: str, names: list[str]) -> dict[str, np.ndarray]:
    """PNG images (and a few objects that are not inputs) under `prefix`; the images' pixels by name."""
    import io as bytes_io

    from PIL import Image

    fs, pixels = s3.filesystem(), {}
    for number, name in enumerate(names):
        data = image((40 + number, 36, 3), seed=number)
        buffer = bytes_io.BytesIO()
        Image.fromarray(data).save(buffer, format="PNG")
        fs.pipe(f"{prefix.removeprefix('s3://')}/{name}", buffer.getvalue())
        pixels[name] = data
    fs.pipe(f"{prefix.removeprefix('s3://')}/notes.txt", b"not an image")
    fs.pipe(f"{prefix.removeprefix('s3://')}/.hidden.png", b"hidden")
    return pixels


def read_png(s3: S3Server, url: str) -> np.ndarray:
    import io as bytes_io

    from PIL import Image

    return np.asarray(Image.open(bytes_io.BytesIO(s3.filesystem().cat_file(url.removeprefix("s3://")))))


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_pools_a_bucket_prefix_into_another(s3, bucket, jobs):
    pixels = put_images(s3, f"{bucket}/photos", ["a.png", "sub/b.png", "sub/deeper/c.png"])
    result = run("batch", f"{bucket}/photos", "-d", f"{bucket}/small", "-j", jobs, "-m", "max", "--quiet",
                 timeout=60)
    assert result.code == 0 and not result.err, result
    written = keys(s3, f"{bucket}/small")
    assert written == sorted(f"{bucket.removeprefix('s3://')}/small/{name}" for name in pixels)
    for name, data in pixels.items():
        np.testing.assert_array_equal(read_png(s3, f"{bucket}/small/{name}"), pool(data, 2, mode="max", axes=(0, 1)))


def test_batch_skip_existing_resumes_on_a_bucket(s3, bucket, tmp_path):
    pixels = put_images(s3, f"{bucket}/photos", ["a.png", "b.png", "c.png"])
    assert run("batch", f"{bucket}/photos", "-d", f"{bucket}/small", "-j", "1", "--quiet").code == 0
    s3.filesystem().rm(f"{bucket.removeprefix('s3://')}/small/b.png")
    result = run("batch", f"{bucket}/photos", "-d", f"{bucket}/small", "-j", "1", "--skip-existing", "--quiet",
                 "--report", tmp_path / "report.json")
    assert result.code == 0, result
    records = json.loads((tmp_path / "report.json").read_text())["files"]
    assert {Path(r["input"]).name: r["status"] for r in records} == {"a.png": "skipped", "b.png": "done",
                                                                      "c.png": "skipped"}
    np.testing.assert_array_equal(read_png(s3, f"{bucket}/small/b.png"), pool(pixels["b.png"], 2, axes=(0, 1)))


def test_batch_refuses_an_existing_object_without_overwrite(s3, bucket):
    put_images(s3, f"{bucket}/photos", ["a.png"])
    s3.filesystem().pipe(f"{bucket.removeprefix('s3://')}/small/a.png", b"old")
    result = run("batch", f"{bucket}/photos", "-d", f"{bucket}/small", "-j", "1", "--quiet")
    assert result.code == 1 and "exists" in result.err_text and "--overwrite" in result.err_text, result
    assert s3.filesystem().cat_file(f"{bucket.removeprefix('s3://')}/small/a.png") == b"old"


@pytest.fixture(scope="module")
def cluster(s3):
    """Two worker processes that know the bucket only through the AWS variables: no shared disk."""
    from distributed import LocalCluster

    with pytest.MonkeyPatch.context() as patch:
        for key, value in s3.env().items():
            patch.setenv(key, value)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as local:
            yield local


@pytest.mark.slow
def test_a_cluster_pools_and_pyramids_bucket_to_bucket(s3, bucket, cluster):
    array = image((256, 200))
    put_zarr(s3, f"{bucket}/in.zarr", array)
    address = cluster.scheduler_address
    result = run("pool", f"{bucket}/in.zarr", "-o", f"{bucket}/out.zarr", "-k", "2", "-m", "max", "--scheduler",
                 address, timeout=60)
    assert result.code == 0, result
    np.testing.assert_array_equal(read_zarr(s3, f"{bucket}/out.zarr"), pool(array, 2, mode="max"))
    result = run("pyramid", f"{bucket}/in.zarr", "-o", f"{bucket}/p.zarr", "--min-size", "32", "--scheduler", address,
                 timeout=60)
    assert result.code == 0, result
    for k in range(4):
        expected = pool(array, 2 ** k, mode="avg", dtype=np.uint8) if k else array
        np.testing.assert_array_equal(read_zarr(s3, f"{bucket}/p.zarr/{k}"), expected)


@pytest.mark.slow
def test_a_cluster_batch_over_a_bucket_prefix(s3, bucket, cluster):
    pixels = put_images(s3, f"{bucket}/photos", ["a.png", "sub/b.png"])
    result = run("batch", f"{bucket}/photos", "-d", f"{bucket}/small", "--scheduler", cluster.scheduler_address,
                 "--quiet", timeout=60)
    assert result.code == 0, result
    for name, data in pixels.items():
        np.testing.assert_array_equal(read_png(s3, f"{bucket}/small/{name}"), pool(data, 2, axes=(0, 1)))


def test_a_worker_that_cannot_reach_the_bucket_is_named(s3, bucket, cluster):
    result = run("pool", "s3://no-such-bucket-here/in.zarr", "-o", f"{bucket}/out.zarr", "--scheduler",
                 cluster.scheduler_address, timeout=60)
    line = one_error(result)
    assert "no-such-bucket-here" in line


def put_tiff(s3: S3Server, url: str, data: np.ndarray, tmp_path) -> int:
    """A tiled, zlib-compressed TIFF of `data` at `url`; its size in bytes."""
    import tifffile

    local = tmp_path / "put.tif"
    tifffile.imwrite(local, data, tile=(256, 256), compression="zlib")
    s3.filesystem().put(str(local), url.removeprefix("s3://"))
    return local.stat().st_size


def test_a_tiff_in_a_bucket_is_read_by_range_requests(s3, bucket, tmp_path):
    """A band of a tiled TIFF fetches its tiles (and the directory), not the file."""
    from poolcli.io.remote import location
    from poolcli.stream import open_source

    data = image((1024, 1024), seed=3)
    size = put_tiff(s3, f"{bucket}/big.tif", data, tmp_path)
    with FaultProxy(s3.port) as proxy:
        url = location(f"{bucket}/big.tif").with_options({"endpoint_url": proxy.endpoint})
        with open_source(url) as source:
            assert source.shape == (1024, 1024) and source.format == "TIFF"
            band = source.read((slice(0, 256), slice(None)))
    np.testing.assert_array_equal(band, data[:256])
    assert 0 < proxy.forwarded_bytes < size / 2, (proxy.forwarded_bytes, size)


def test_a_tiff_in_a_bucket_is_pooled_into_a_bucket_store(s3, bucket, tmp_path):
    data = image((600, 520), seed=4)
    put_tiff(s3, f"{bucket}/in.tif", data, tmp_path)
    result = run("pool", f"{bucket}/in.tif", "-o", f"{bucket}/out.zarr", "-k", "2", "-m", "max")
    assert result.code == 0, result
    np.testing.assert_array_equal(read_zarr(s3, f"{bucket}/out.zarr"), pool(data, 2, mode="max"))


def test_info_of_an_image_in_a_bucket_and_a_npy_object_refused(s3, bucket, tmp_path):
    pixels = put_images(s3, f"{bucket}/photos", ["a.png"])
    result = run("info", f"{bucket}/photos/a.png", "--json")
    assert result.code == 0, result
    described = json.loads(result.out)
    assert described["input"] == f"{bucket}/photos/a.png" and described["arrays"]["array"]["shape"] == [40, 36, 3]
    assert pixels
    np.save(tmp_path / "x.npy", image())
    s3.filesystem().put(str(tmp_path / "x.npy"), f"{bucket.removeprefix('s3://')}/x.npy")
    line = one_error(run("pool", f"{bucket}/x.npy", "-o", tmp_path / "out.zarr"))
    assert f"{bucket}/x.npy" in line and "Zarr" in line
    assert not (tmp_path / "out.zarr").exists()


def test_the_command_line_starts_without_the_object_storage_libraries():
    """`--help` (and every start-up) imports no fsspec, s3fs or botocore: they load on the first URL."""
    code = ("import contextlib, io, sys\nfrom poolcli.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['pool', '--help'])\n"
            "print(sorted(m for m in ('fsspec', 's3fs', 'aiobotocore', 'botocore', 'aiohttp') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_pool_writes_images_into_a_prefix_and_batch_mixes_disk_and_bucket(s3, bucket, tmp_path):
    pixels = put_images(s3, f"{bucket}/photos", ["a.png", "b.png"])
    result = run("pool", f"{bucket}/photos/a.png", f"{bucket}/photos/b.png", "-d", f"{bucket}/out", "-m", "max")
    assert result.code == 0, result
    for name in ("a", "b"):
        np.testing.assert_array_equal(read_png(s3, f"{bucket}/out/{name}_max_2.png"),
                                      pool(pixels[f"{name}.png"], 2, mode="max", axes=(0, 1)))
    assert run("batch", f"{bucket}/photos", "-d", tmp_path / "here", "-j", "1", "--quiet").code == 0
    assert sorted(p.name for p in (tmp_path / "here").iterdir()) == ["a.png", "b.png"]
    assert run("batch", tmp_path / "here", "-d", f"{bucket}/back", "-j", "1", "--quiet").code == 0
    assert len(keys(s3, f"{bucket}/back")) == 2


def test_a_tiff_over_http_is_read_by_range_requests(tmp_path):
    import tifffile

    from poolcli.io.remote import location
    from poolcli.stream import open_source

    data = image((1024, 1024), seed=5)
    (tmp_path / "site").mkdir()
    tifffile.imwrite(tmp_path / "site" / "big.tif", data, tile=(256, 256), compression="zlib")
    size = (tmp_path / "site" / "big.tif").stat().st_size
    with HttpFolder(tmp_path / "site") as server, open_source(location(f"{server.url}/big.tif")) as source:
        band = source.read((slice(512, 768), slice(None)))
        served = server.served_bytes
    np.testing.assert_array_equal(band, data[512:768])
    assert 0 < served < size / 2, (served, size)
