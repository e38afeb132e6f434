"""A store is one module and one registry line: a store made here in the tests (a folder of raw
`data.bin` and a JSON header, with no pyramid writer), registered by a fixture, is pooled to and
from by `pool`, described by `info`, and refused by `pyramid` in one line, through the same
command line and streaming code as .npy, Zarr and TIFF."""

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from poolcli import pool, stream
from poolcli.cli import main
from poolcli.io import atomic_path
from poolcli.stream import Budget, Store
from poolcli.stream.sinks import Sink
from poolcli.stream.sources import Source
from poolcli.stream.stores import STORES


def read_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    header = json.loads((path / "header.json").read_text())
    return tuple(header["shape"]), np.dtype(header["dtype"])


@contextlib.contextmanager
def open_raw_source(path: Path, dataset: str | None = None) -> Iterator[Source]:
    shape, dtype = read_header(path)
    yield Source(path, np.memmap(path / "data.bin", dtype, "r", shape=shape), "array", "RAW", shape)


@contextlib.contextmanager
def open_raw_sink(target: Path, shape, dtype, *, spatial, options, overwrite, inputs) -> Iterator[Sink]:
    with atomic_path(target, overwrite=overwrite, inputs=inputs, folder=True) as folder:
        (folder / "header.json").write_text(json.dumps({"shape": list(shape), "dtype": np.dtype(dtype).str}))
        array = np.memmap(folder / "data.bin", dtype, "w+", shape=shape)
        yield Sink(array)
        array.flush()
        del array


def write_raw(path: Path, values: np.ndarray) -> None:
    path.mkdir()
    (path / "header.json").write_text(json.dumps({"shape": list(values.shape), "dtype": values.dtype.str}))
    (path / "data.bin").write_bytes(np.ascontiguousarray(values).tobytes())


def read_raw(path: Path) -> np.ndarray:
    shape, dtype = read_header(path)
    return np.fromfile(path / "data.bin", dtype).reshape(shape)


@pytest.fixture
def raw_store():
    """The test store, registered for the test and removed after it."""
    stream.register(Store("RAW", (".raws",), open_raw_source, open_raw_sink, folder=True))
    yield
    del STORES["RAW"]


@pytest.fixture
def values() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 1000, (90, 70), dtype=np.uint16)


def test_pool_streams_into_a_registered_store(tmp_path, raw_store, values):
    np.save(tmp_path / "in.npy", values)
    assert main(["pool", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.raws"), "-m", "avg", "-k", "3",
                 "--memory", "16MB"]) == 0
    np.testing.assert_array_equal(read_raw(tmp_path / "out.raws"), pool(values, 3, mode="avg"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.raws"]  # nothing temporary left


def test_pool_streams_from_a_registered_store_into_zarr_and_tiff(tmp_path, raw_store, values):
    import tifffile
    import zarr

    write_raw(tmp_path / "in.raws", values)
    for name in ("out.zarr", "out.tif", "out.npy"):
        assert main(["pool", str(tmp_path / "in.raws"), "-o", str(tmp_path / name), "-k", "2"]) == 0, name
    expected = pool(values, 2)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"))[...], expected)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_info_describes_a_registered_store(tmp_path, raw_store, values, capsys):
    write_raw(tmp_path / "in.raws", values)
    assert main(["info", str(tmp_path / "in.raws"), "-k", "4", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["format"] == "RAW"
    assert described["arrays"]["array"]["shape"] == [90, 70]
    assert described["arrays"]["array"]["output_shape"] == [22, 17]


def test_pyramid_refuses_a_store_without_a_pyramid_writer_in_one_line(tmp_path, raw_store, values, capsys):
    np.save(tmp_path / "in.npy", values)
    assert main(["pyramid", str(tmp_path / "in.npy"), "-o", str(tmp_path / "p.raws")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("poolcli: error: ") and "p.raws" in err
    assert "a pyramid has several levels" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


def test_pyramid_writes_from_a_registered_store(tmp_path, raw_store, values):
    import zarr

    write_raw(tmp_path / "in.raws", values)
    assert main(["pyramid", str(tmp_path / "in.raws"), "-o", str(tmp_path / "p.zarr"), "--levels", "2"]) == 0
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "p.zarr" / "2"))[...],
                                  pool(values, 4, mode="avg", dtype=np.uint16))


def test_an_unregistered_suffix_is_still_refused(tmp_path, values):
    """Without the fixture, the same store is no store: one line, exit 1, nothing written."""
    write_raw(tmp_path / "in.raws", values)
    assert main(["pool", str(tmp_path / "in.raws"), "-o", str(tmp_path / "out.npy")]) == 1
    assert not (tmp_path / "out.npy").exists()


def test_the_budget_splits_memory_in_named_shares():
    budget = Budget(1000)
    assert (budget.bands, budget.gathering, budget.codecs) == (500, 250, 250)
    assert budget.bands + budget.gathering + budget.codecs == budget.memory
    assert budget.level_room(3) == 1000 // (4 * 4) and budget.segment == 125
    assert budget.pooling(direct=True) == 1000 and budget.pooling(direct=False) == 1000 - 2 * (1000 // 6)


# ---------------------------------------------------------- a store kept as one file, in a batch

RAWF_HEADER = 64  # bytes: a JSON header padded with spaces, then the array's bytes


def rawf_header(shape, dtype) -> bytes:
    return json.dumps({"shape": list(shape), "dtype": np.dtype(dtype).str}).encode().ljust(RAWF_HEADER)


@contextlib.contextmanager
def open_rawf_source(path: Path, dataset: str | None = None) -> Iterator[Source]:
    header = json.loads(path.read_bytes()[:RAWF_HEADER])
    shape = tuple(header["shape"])
    yield Source(path, np.memmap(path, np.dtype(header["dtype"]), "r", RAWF_HEADER, shape), "array", "RAWF", shape)


@contextlib.contextmanager
def open_rawf_sink(target: Path, shape, dtype, *, spatial, options, overwrite, inputs) -> Iterator[Sink]:
    with atomic_path(target, overwrite=overwrite, inputs=inputs) as temporary:
        temporary.write_bytes(rawf_header(shape, dtype))
        array = np.memmap(temporary, dtype, "r+", RAWF_HEADER, shape)
        yield Sink(array)
        array.flush()
        del array


def write_rawf(path: Path, values: np.ndarray) -> None:
    path.write_bytes(rawf_header(values.shape, values.dtype) + np.ascontiguousarray(values).tobytes())


def read_rawf(path: Path) -> np.ndarray:
    header = json.loads(path.read_bytes()[:RAWF_HEADER])
    return np.fromfile(path, np.dtype(header["dtype"]), offset=RAWF_HEADER).reshape(header["shape"])


@pytest.fixture
def rawf_store():
    """A store kept as one file (suffix .rawf, which no image or array format reads)."""
    stream.register(Store("RAWF", (".rawf",), open_rawf_source, open_rawf_sink))
    yield
    del STORES["RAWF"]


def test_batch_discovers_and_pools_a_registered_file_store(tmp_path, rawf_store, values, capsys):
    source = tmp_path / "src"
    source.mkdir()
    write_rawf(source / "a.rawf", values)
    np.save(source / "b.npy", values)
    (source / "c.rawx").write_bytes(b"not a store")
    assert main(["batch", str(source), "-d", str(tmp_path / "out"), "-m", "avg", "-k", "3"]) == 0
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.rawf", "b.npy"]
    expected = pool(values, 3, mode="avg")
    np.testing.assert_array_equal(read_rawf(tmp_path / "out" / "a.rawf"), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "b.npy"), expected)


def test_a_registered_file_store_is_streamed_whatever_its_size(tmp_path, rawf_store, values):
    """No image or array format reads .rawf, so even a small one goes block by block, and into .npy."""
    write_rawf(tmp_path / "in.rawf", values)
    assert main(["pool", str(tmp_path / "in.rawf"), "-o", str(tmp_path / "out.npy"), "-m", "max", "-k", "2"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), pool(values, 2, mode="max"))


def test_store_messages_name_the_registered_stores(tmp_path, rawf_store, values, capsys):
    """The refusal lists the stores that write pyramids, from the table (not the new one, which writes none)."""
    np.save(tmp_path / "in.npy", values)
    assert main(["pyramid", str(tmp_path / "in.npy"), "-o", str(tmp_path / "p.rawf")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "p.rawf" in err
    proposed = err.split("; write ", 1)[1]
    assert ".zarr" in proposed and ".tif" in proposed and ".rawf" not in proposed and ".npy" not in proposed


def test_the_inspector_and_compare_show_a_registered_store(tmp_path, raw_store, values, capsys):
    write_raw(tmp_path / "in.raws", values)
    assert main(["inspect", str(tmp_path / "in.raws"), "-o", str(tmp_path / "page.html"), "-m", "max"]) == 0
    text = (tmp_path / "page.html").read_text()
    found = re.search(r'<script type="application/json" id="poolcli-data">(.*?)</script>', text, re.S)
    assert found is not None
    payload = json.loads(found.group(1))
    assert (payload["title"], payload["shape"], payload["dtype"]) == ("in.raws", [90, 70], "uint16")
    assert main(["compare", str(tmp_path / "in.raws"), "-o", str(tmp_path / "grid.png"), "--modes", "max,avg"]) == 0
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().err == ""


def test_the_inspector_refuses_a_store_too_big_to_show_whole(tmp_path, raw_store, values, capsys):
    write_raw(tmp_path / "in.raws", values)
    assert main(["inspect", str(tmp_path / "in.raws"), "-o", str(tmp_path / "page.html"), "--max-pixels", "250"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in.raws" in err and "--max-pixels 3150" in err
    assert not (tmp_path / "page.html").exists()
