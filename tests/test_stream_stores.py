"""A store is one module and one registry line: a store made here in the tests (a folder of raw
`data.bin` and a JSON header, with no pyramid writer), registered by a fixture, is pooled to and
from by `pool`, described by `info`, and refused by `pyramid` in one line, through the same
command line and streaming code as .npy, Zarr and TIFF."""

import contextlib
import json
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
