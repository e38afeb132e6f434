"""What the README promises about big data, checked on what comes out: refusals computed from
sizes before anything is read, pyramids whose every level (level 0 included) reads back as the
input and its poolings, OME-Zarr metadata in the stored axis order, Dask graphs whose results are
the NumPy bits whatever else the graph holds, and stores replaced without a trace."""

from __future__ import annotations

import json
import os
from pathlib import Path

import hostile
import numpy as np
import pytest
import tifffile
import zarr

from poolcli import adaptive_pool, pool, pool_backward
from poolcli.cli import main
from poolcli.core.spec import PoolSpec
from poolcli.errors import OutputError, PoolError
from poolcli.stream import Pyramid, StoreOptions, build_pyramid, open_source, pool_to
from poolcli.stream.pooling import stream_pool
from poolcli.stream.sources import Source


class Reads:
    """An array that records the size of every block read from it."""

    def __init__(self, values: np.ndarray):
        self.values, self.shape, self.dtype, self.sizes = values, values.shape, values.dtype, []

    def __getitem__(self, index):
        block = self.values[index]
        self.sizes.append(block.nbytes)
        return block


def _recorded(x: np.ndarray) -> tuple[Source, Reads]:
    reads = Reads(x)
    return Source(Path("memory"), reads, "array", "NPY", x.shape), reads


def _streamed(source: Source, keywords: dict, memory: int) -> np.ndarray:
    found = {}
    stream_pool(source, lambda index, block: found.setdefault(index[-1].start, block), PoolSpec(**keywords), None,
                memory=memory)
    return np.concatenate([found[k] for k in sorted(found)])


# ------------------------------------------------------------------ the memory budget


def test_a_budget_smaller_than_one_band_is_refused_before_anything_is_read():
    x = np.zeros((40, 1000), np.float64)  # a row: 8 KB
    source, reads = _recorded(x)
    with pytest.raises(PoolError, match="does not fit"):
        _streamed(source, dict(window=3, mode="avg"), memory=20_000)
    assert reads.sizes == []


@pytest.mark.parametrize("memory", [100_000, 400_000])
def test_every_block_read_is_a_fraction_of_the_budget(memory):
    """The block read, the next one, the engine's float64 work and the result must all fit:
    no read may take even a quarter of the budget, and the result is still the whole's."""
    x = np.random.default_rng(1).random((300, 100)).astype(np.float32)
    source, reads = _recorded(x)
    result = _streamed(source, dict(window=3, stride=2, padding=1, mode="avg"), memory=memory)
    np.testing.assert_array_equal(result, pool(x, 3, 2, padding=1, mode="avg"))
    assert len(reads.sizes) > 1 and max(reads.sizes) <= memory // 4, reads.sizes


def test_cli_refuses_a_budget_too_small_for_one_row_with_one_line(tmp_path, capsys):
    source = tmp_path / "wide.npy"
    wide = np.lib.format.open_memmap(source, mode="w+", dtype=np.float32, shape=(3, 3_000_000))  # sparse, 12 MB a row
    del wide
    code = main(["pool", str(source), "-o", str(tmp_path / "out.zarr"), "-m", "avg", "--memory", "16MB"])
    err = capsys.readouterr().err
    assert code != 0 and "--memory" in err and "does not fit" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.npy"]


# ------------------------------------------------------------------ pyramids: level 0 too


def _zarr_input(folder: Path, x: np.ndarray, zarr_format: int, chunks=(32, 32)) -> Path:
    path = folder / f"in_v{zarr_format}.zarr"
    store = zarr.create_array(store=str(path), shape=x.shape, chunks=chunks, dtype=x.dtype, zarr_format=zarr_format)
    store[:] = x
    return path


def _level_files(level: Path) -> set[str]:
    return {p.name for p in level.iterdir()}


@pytest.mark.parametrize(("given", "wanted"), [(2, 3), (3, 2), (2, 2), (3, 3)])
def test_pyramid_level_0_is_in_the_output_format_whatever_the_input_format(tmp_path, given, wanted):
    x = np.random.default_rng(2).integers(0, 256, (96, 80), dtype=np.uint8)
    source = _zarr_input(tmp_path, x, given)
    target = tmp_path / "pyr.zarr"
    assert main(["pyramid", str(source), "-o", str(target), "--levels", "2", "--zarr-format", str(wanted)]) == 0
    group = zarr.open_group(str(target), mode="r", zarr_format=wanted)
    assert group["0"].metadata.zarr_format == wanted
    np.testing.assert_array_equal(group["0"][:], x)
    np.testing.assert_array_equal(group["2"][:], pool(x, 4, mode="avg", dtype=np.uint8))
    files = _level_files(target / "0")
    assert ("zarr.json" in files) == (wanted == 3) and (".zarray" in files) == (wanted == 2), files
    if given == wanted:  # the input's chunk files, as they are, under NGFF's nested keys ("0.1" -> "0/1")
        metadata = (".zarray", ".zattrs", "zarr.json")
        for chunk in (p for p in source.rglob("*") if p.is_file() and p.name not in metadata):
            key = str(chunk.relative_to(source)).replace(".", "/")
            assert (target / "0" / key).read_bytes() == chunk.read_bytes()


def test_pyramid_default_levels_halve_until_the_longest_side_is_at_most_512(tmp_path):
    x = np.zeros((1024, 40), np.uint8)
    np.save(tmp_path / "tall.npy", x)
    assert main(["pyramid", str(tmp_path / "tall.npy"), "-o", str(tmp_path / "p.zarr"), "--levels", "1"]) == 0
    assert main(["pyramid", str(tmp_path / "tall.npy"), "-o", str(tmp_path / "q.zarr")]) == 0
    datasets = zarr.open_group(str(tmp_path / "q.zarr"), mode="r").attrs["multiscales"][0]["datasets"]
    assert [d["path"] for d in datasets] == ["0", "1"]  # 1024 -> 512, and no further
    assert main(["pyramid", str(tmp_path / "tall.npy"), "-o", str(tmp_path / "r.zarr"), "--min-size", "100"]) == 0
    datasets = zarr.open_group(str(tmp_path / "r.zarr"), mode="r").attrs["multiscales"][0]["datasets"]
    assert len(datasets) == 5  # 1024 -> 512 -> 256 -> 128 -> 64


@pytest.mark.parametrize(("suffix", "memory"), [(".zarr", 20_000), (".tif", 20_000), (".tif", 10**7)])
def test_a_pyramid_reads_its_input_once(tmp_path, suffix, memory):
    x = np.random.default_rng(14).integers(0, 256, (256, 96), dtype=np.uint8)
    source, reads = _recorded(x)
    build_pyramid(source, tmp_path / f"p{suffix}", Pyramid(x.shape, (0, 1), 3), memory=memory)
    assert sum(reads.sizes) == x.nbytes


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_scales_follow_the_stored_axes_of_an_hwc_image(tmp_path, zarr_format):
    """An H x W x C image is stored C x H x W (NGFF wants the spatial axes last): its axes, shapes
    and scale transforms must all be in that order, the channel axis never scaled."""
    x = np.random.default_rng(3).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", x)
    target = tmp_path / "rgb.zarr"
    with open_source(tmp_path / "rgb.npy") as source:
        build_pyramid(source, target, Pyramid(x.shape, (0, 1), 2, "max"), memory=10**6,
                      options=StoreOptions(zarr_format=zarr_format))
    group = zarr.open_group(str(target), mode="r")
    meta = group.attrs["multiscales"][0] if zarr_format == 2 else group.attrs["ome"]["multiscales"][0]
    version = group.attrs["multiscales"][0]["version"] if zarr_format == 2 else group.attrs["ome"]["version"]
    assert version == {2: "0.4", 3: "0.5"}[zarr_format]
    assert [(a["name"], a["type"]) for a in meta["axes"]] == [("c", "channel"), ("y", "space"), ("x", "space")]
    for k, dataset in enumerate(meta["datasets"]):
        assert dataset["path"] == str(k)
        half = (2.0 ** k - 1) / 2  # the centre of level k's first pixel, in level 0's pixels
        assert dataset["coordinateTransformations"] == [{"type": "scale", "scale": [1.0, 2.0 ** k, 2.0 ** k]},
                                                        {"type": "translation", "translation": [0.0, half, half]}]
        expected = x if k == 0 else pool(x, 2 ** k, axes=(0, 1), mode="max")
        np.testing.assert_array_equal(group[str(k)][:], expected.transpose(2, 0, 1))
    assert meta["type"] == "max" and meta["metadata"]["kwargs"]["mode"] == "max"


def test_ngff_names_the_axes_of_time_channel_and_volume(tmp_path):
    x = np.random.default_rng(4).random((2, 3, 8, 16, 12)).astype(np.float32)
    np.save(tmp_path / "tczyx.npy", x)
    with open_source(tmp_path / "tczyx.npy") as source:
        build_pyramid(source, tmp_path / "v.zarr", Pyramid(x.shape, (2, 3, 4), 1, "avg"), memory=10**6)
    meta = zarr.open_group(str(tmp_path / "v.zarr"), mode="r").attrs["multiscales"][0]
    assert [a["name"] for a in meta["axes"]] == ["t", "c", "z", "y", "x"]
    assert meta["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 1.0, 2.0, 2.0, 2.0]
    assert meta["type"] == "mean"


class Interrupting(Reads):
    """Ctrl-C while the second block is read."""

    def __getitem__(self, index):
        if self.sizes:
            raise KeyboardInterrupt
        return super().__getitem__(index)


@pytest.mark.parametrize("name", ["pyr.zarr", "pyr.tif"])
def test_an_interrupted_pyramid_leaves_nothing_and_a_rerun_starts_clean(tmp_path, name):
    x = np.random.default_rng(5).integers(0, 256, (1100, 64), dtype=np.uint8)
    source = Source(Path("memory"), Interrupting(x), "array", "NPY", x.shape)
    with pytest.raises(KeyboardInterrupt):  # the TIFF's levels go through scratch files at this budget
        build_pyramid(source, tmp_path / name, Pyramid(x.shape, (0, 1), 2), memory=20_000)
    assert list(tmp_path.iterdir()) == []
    build_pyramid(_recorded(x)[0], tmp_path / name, Pyramid(x.shape, (0, 1), 2), memory=20_000)
    level0 = zarr.open_array(str(tmp_path / name / "0"))[:] if name.endswith(".zarr") else \
        tifffile.imread(tmp_path / name)
    np.testing.assert_array_equal(level0, x)


@pytest.mark.parametrize("suffix", [".zarr", ".tif"])
def test_a_pyramids_progress_counts_every_input_byte(tmp_path, suffix):
    x = np.random.default_rng(15).integers(0, 256, (700, 96), dtype=np.uint8)
    done: list[int] = []
    build_pyramid(_recorded(x)[0], tmp_path / f"p{suffix}", Pyramid(x.shape, (0, 1), 2), memory=200_000,
                  progress=done.append)
    assert sum(done) == x.nbytes


# ------------------------------------------------------------------ outputs replaced, defaults


@pytest.mark.parametrize("command", ["pool", "pyramid"])
def test_overwrite_of_a_store_leaves_only_the_new_store(tmp_path, command):
    np.save(tmp_path / "a.npy", np.arange(64 * 64, dtype=np.float32).reshape(64, 64))
    target = tmp_path / "out.zarr"
    extra = ["--levels", "1"] if command == "pyramid" else []
    assert main([command, str(tmp_path / "a.npy"), "-o", str(target), *extra]) == 0
    (target / "stale-marker").write_text("from the first run")
    assert main([command, str(tmp_path / "a.npy"), "-o", str(target), *extra, "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "out.zarr"]  # no old store aside
    assert not (target / "stale-marker").exists()


def test_zarr_outputs_default_to_blosc_zstd_level_2_in_chunks_of_1024(tmp_path):
    x = np.random.default_rng(6).random((2100, 30)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    assert main(["pool", str(tmp_path / "a.npy"), "-o", str(tmp_path / "o.zarr"), "-k", "1"]) == 0
    meta = json.loads((tmp_path / "o.zarr" / ".zarray").read_text())
    assert meta["chunks"] == [1024, 30]
    assert meta["compressor"]["id"] == "blosc" and meta["compressor"]["cname"] == "zstd"
    assert meta["compressor"]["clevel"] == 2
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "o.zarr"))[:], x)


def test_tiff_output_of_a_stream_is_tiled_bigtiff_with_the_bits(tmp_path):
    x = np.random.default_rng(7).integers(0, 60000, (300, 200), dtype=np.uint16)
    np.save(tmp_path / "a.npy", x)
    with open_source(tmp_path / "a.npy") as source:
        pool_to(source, tmp_path / "s.tif", PoolSpec(2, mode="avg"), np.dtype(np.uint16), memory=20_000)
    with tifffile.TiffFile(tmp_path / "s.tif") as tiff:
        assert tiff.is_bigtiff and tiff.pages.first.is_tiled
        np.testing.assert_array_equal(tiff.asarray(), pool(x, 2, mode="avg", dtype=np.uint16))


# ------------------------------------------------------------------ Dask graphs


@pytest.fixture(scope="module")
def dask_array():
    da = pytest.importorskip("dask.array")
    x = np.random.default_rng(8).random((40, 36)).astype(np.float32)
    return x, da.from_array(x, chunks=(13, 11))


@pytest.mark.parametrize("options", [
    [dict(mode="max"), dict(mode="avg")],
    [dict(mode="avg"), dict(mode="avg", padding=1)],
    [dict(mode="avg", padding=1), dict(mode="avg", padding=1, count_include_pad=False)],
    [dict(mode="max"), dict(mode="max", stride=1)],
    [dict(mode="lp", p=3), dict(mode="lp", p=4)],
    [dict(mode="avg"), dict(mode="avg", dtype=np.float64)],
    [dict(mode="max", padding=1), dict(mode="max", padding=1, pad_mode="reflect")],
])
def test_two_poolings_of_one_dask_array_in_one_graph_keep_their_own_results(dask_array, options):
    import dask

    x, lazy = dask_array
    results = dask.compute(*(pool(lazy, 2, **o) for o in options))
    for o, result in zip(options, results, strict=True):
        expected = pool(x, 2, **o)
        assert result.dtype == expected.dtype
        np.testing.assert_array_equal(result, expected, err_msg=str(o))


def test_two_backward_passes_of_one_dask_array_in_one_graph(dask_array):
    import dask

    x, lazy = dask_array
    options = [dict(mode="max"), dict(mode="avg"), dict(mode="max", stride=1), dict(mode="max", padding=1)]
    grads = [np.ones(pool(x, 2, **o).shape, np.float32) for o in options]
    results = dask.compute(*(pool_backward(g, lazy, 2, **o) for g, o in zip(grads, options, strict=True)))
    for g, o, result in zip(grads, options, results, strict=True):
        np.testing.assert_array_equal(result, pool_backward(g, x, 2, **o), err_msg=str(o))


def test_dask_pooling_is_one_task_per_output_chunk_following_the_input_chunks():
    import dask.array as da

    x = np.random.default_rng(10).random((64, 48)).astype(np.float32)
    lazy = da.from_array(x, chunks=(16, 12))
    y = pool(lazy, 2, stride=2)
    layer = dict(y.__dask_graph__().layers[y.name])
    assert len(layer) == y.npartitions
    assert y.numblocks == lazy.numblocks  # one output chunk per input chunk along each axis
    np.testing.assert_array_equal(y.compute(), pool(x, 2))


# ------------------------------------------------------------------ pyramids on a cluster


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as local:
        yield local


def _input_file(folder: Path, x: np.ndarray, kind: str) -> Path:
    if kind == "npy":
        np.save(folder / "in.npy", x)
        return folder / "in.npy"
    if kind == "tif":
        tifffile.imwrite(folder / "in.tif", x, tile=(32, 32))
        return folder / "in.tif"
    return _zarr_input(folder, x, int(kind[-1]))


@pytest.mark.parametrize(("kind", "zarr_format"), [("npy", 2), ("tif", 2), ("zarr2", 3), ("zarr3", 2), ("zarr3", 3)])
def test_cluster_pyramid_writes_every_level_level_0_included(tmp_path, cluster, kind, zarr_format):
    x = np.random.default_rng(9).integers(0, 256, (140, 100), dtype=np.uint8)
    source = _input_file(tmp_path, x, kind)
    target = tmp_path / "pyr.zarr"
    assert main(["pyramid", str(source), "-o", str(target), "--levels", "2", "--zarr-format", str(zarr_format),
                 "--scheduler", cluster.scheduler_address]) == 0
    group = zarr.open_group(str(target), mode="r", zarr_format=zarr_format)
    assert group["0"].metadata.zarr_format == zarr_format
    np.testing.assert_array_equal(group["0"][:], x)
    for k in (1, 2):
        np.testing.assert_array_equal(group[str(k)][:], pool(x, 2 ** k, mode="avg", dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, "pyr.zarr"])


# ------------------------------------------------------------------ stores: permissions, guards, lp scaling


def test_a_new_store_gets_the_umasks_permissions_not_a_private_folders(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((8, 8), np.float32))
    assert main(["pool", str(tmp_path / "a.npy"), "-o", str(tmp_path / "o.zarr")]) == 0
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "o.zarr").stat().st_mode & 0o777 == 0o777 & ~mask


def test_a_store_is_built_where_cluster_workers_of_other_users_can_reach_it(tmp_path):
    """The hidden scratch folder a store is built in takes the umask's permissions, not mkdtemp's
    private 0700 (workers of a cluster, other users, write the store's chunks through it)."""
    from poolcli import io

    mask = os.umask(0o022)
    os.umask(mask)
    with io.atomic_path(tmp_path / "o.zarr", folder=True) as store:
        scratch = store.parent
        assert scratch != tmp_path and scratch.name.startswith(".o.zarr.poolcli-")
        assert scratch.stat().st_mode & 0o777 == 0o777 & ~mask


def test_a_store_that_appears_during_the_run_is_not_replaced(tmp_path):
    x = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)
    target = tmp_path / "out.zarr"

    def someone_else(done):
        target.mkdir(exist_ok=True)
        (target / "theirs").write_text("someone else's")

    with pytest.raises(OutputError, match="exists"):
        pool_to(_recorded(x)[0], target, PoolSpec(2, mode="max"), None, memory=8000, progress=someone_else)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]
    assert [p.name for p in target.iterdir()] == ["theirs"]


def test_overwrite_never_replaces_a_store_that_holds_the_input(tmp_path, capsys):
    store = tmp_path / "out.zarr"
    store.mkdir()
    np.save(store / "a.npy", np.ones((16, 16), np.float32))
    code = main(["pool", str(store / "a.npy"), "-o", str(store), "--overwrite"])
    err = capsys.readouterr().err
    assert code != 0 and "input" in err and len(err.strip().splitlines()) == 1, err
    assert [p.name for p in store.iterdir()] == ["a.npy"]


def _late(factor: float, shape=(64, 12)) -> np.ndarray:
    """Ordinary magnitudes first, then values `factor` times larger (1e60: their 8th power leaves
    the float64 range), and an inf, which no scaling may count."""
    x = np.random.default_rng(11).uniform(0.5, 1.5, shape)
    x[-5:] *= factor
    x[-1, -1] = np.inf
    return x


@pytest.mark.parametrize("factor", [1.0, 1e60])
def test_streamed_lp_scales_on_the_whole_inputs_magnitudes(factor):
    x = _late(factor)
    keywords = dict(window=2, mode="lp", p=8)
    np.testing.assert_array_equal(_streamed(_recorded(x)[0], keywords, memory=4000), pool(x, **keywords))


@pytest.mark.parametrize("factor", [1.0, 1e60])
def test_dask_lp_scales_on_the_whole_arrays_finite_magnitudes(factor):
    import dask.array as da

    x = _late(factor)
    y = pool(da.from_array(x, chunks=(8, 6)), 2, mode="lp", p=8)
    np.testing.assert_array_equal(y.compute(), pool(x, 2, mode="lp", p=8))


@pytest.mark.parametrize("kind", ["npy", "tif"])
def test_cluster_pool_of_every_input_kind_is_the_bits_of_pooling_in_memory(tmp_path, cluster, kind):
    x = np.random.default_rng(12).integers(0, 60000, (150, 1100), dtype=np.uint16)  # wider than one read chunk
    source = _input_file(tmp_path, x, kind)
    target = tmp_path / "pooled.zarr"
    assert main(["pool", str(source), "-o", str(target), "-m", "avg", "-k", "3", "-s", "2", "--padding", "1",
                 "--scheduler", cluster.scheduler_address]) == 0
    np.testing.assert_array_equal(zarr.open_array(str(target), mode="r")[:], pool(x, 3, 2, padding=1, mode="avg"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, "pooled.zarr"])


@pytest.mark.parametrize("scheduler", [False, True])
def test_pyramid_of_a_group_dataset_and_of_an_hwc_image(tmp_path, cluster, scheduler):
    """Level 0 is the named array of a group (its chunk files, where they can be copied), and an
    H x W x C input's levels are stored C x H x W, locally and on the cluster alike."""
    rng = np.random.default_rng(13)
    a, b = rng.integers(0, 256, (2, 96, 64), dtype=np.uint8)
    group = zarr.open_group(str(tmp_path / "group.zarr"), mode="w", zarr_format=2)
    group.create_array("a", data=a, chunks=(32, 32))
    group.create_array("b", data=b, chunks=(32, 32))
    rgb = rng.integers(0, 256, (96, 64, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb", tile=(32, 32))
    extra = ["--scheduler", cluster.scheduler_address] if scheduler else []
    assert main(["pyramid", str(tmp_path / "group.zarr"), "-o", str(tmp_path / "b.zarr"), "--dataset", "b",
                 "--levels", "2", *extra]) == 0
    assert main(["pyramid", str(tmp_path / "rgb.tif"), "-o", str(tmp_path / "rgb.zarr"), "--levels", "2",
                 *extra]) == 0
    levels = zarr.open_group(str(tmp_path / "b.zarr"), mode="r")
    colours = zarr.open_group(str(tmp_path / "rgb.zarr"), mode="r")
    for k in range(3):
        expected = b if k == 0 else pool(b, 2 ** k, mode="avg", dtype=np.uint8)
        np.testing.assert_array_equal(levels[str(k)][:], expected)
        expected = rgb if k == 0 else pool(rgb, 2 ** k, axes=(0, 1), mode="avg", dtype=np.uint8)
        np.testing.assert_array_equal(colours[str(k)][:], expected.transpose(2, 0, 1))


def test_a_dask_array_of_unknown_chunk_sizes_is_a_clear_pool_error():
    import dask.array as da

    x = np.random.default_rng(16).random((20, 12))
    lazy = da.from_array(x, chunks=5)
    unknown = lazy[lazy[:, 0] > -1]  # boolean indexing: the row counts are not known before computing
    grads = da.ones((10, 6), chunks=3)
    for attempt in (lambda: pool(unknown, 2), lambda: adaptive_pool(unknown, 3),
                    lambda: pool_backward(np.ones((10, 6)), unknown, 2),
                    lambda: pool_backward(grads[grads[:, 0] > 0], lazy, 2)):
        with pytest.raises(PoolError, match=r"compute_chunk_sizes\(\)"):
            attempt()
    np.testing.assert_array_equal(pool(unknown.compute_chunk_sizes(), 2).compute(), pool(x, 2))


# ------------------------------------------------------------------ batch --memory


def _sparse_npy(path: Path, rows: int, columns: int = 4000) -> Path:
    """A float32 .npy whose data is a hole in the file (zeros): big to read, small on disk."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, columns))
    array[-1, -3:] = (1.0, 2.0, 3.0)
    array.flush()
    del array
    return path


def test_batch_memory_pools_a_big_npy_as_pool_does_bit_for_bit(tmp_path):
    """A .npy over batch's --memory is streamed like pool's: the same bytes, in memory or streamed."""
    src = tmp_path / "src"
    src.mkdir()
    source = _sparse_npy(src / "big.npy", 1500)  # 24 MB: more than a 16MB budget holds
    ramp = src / "ramp.npy"
    np.save(ramp, np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7))
    options = ["-m", "avg", "-k", "3", "--memory", "16MB"]
    assert main(["batch", str(src), "-d", str(tmp_path / "out"), "-j", "1", "--quiet", *options]) == 0
    assert main(["pool", str(source), "-o", str(tmp_path / "pooled.npy"), *options]) == 0
    assert main(["pool", str(ramp), "-o", str(tmp_path / "ramp.npy"), *options]) == 0
    assert (tmp_path / "out" / "big.npy").read_bytes() == (tmp_path / "pooled.npy").read_bytes()
    assert (tmp_path / "out" / "ramp.npy").read_bytes() == (tmp_path / "ramp.npy").read_bytes()
    whole = pool(np.load(source), window=3, mode="avg")
    assert np.array_equal(np.load(tmp_path / "out" / "big.npy"), whole)


def test_batch_refuses_a_memory_budget_too_small_to_pool_in(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    assert main(["batch", str(tmp_path / "src"), "-d", str(tmp_path / "out"), "--memory", "1MB"]) == 2
    err = capsys.readouterr().err
    assert "--memory 1MB is too small" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_batch_memory_keeps_a_big_npy_within_the_budget(tmp_path):
    """A 160 MB .npy among small files, batch --memory 64MB: the run's peak (RSS of the child; --jobs 1
    pools in it, so its peak is the file's) stays within the budget above a batch of small files."""
    src, small = tmp_path / "src", tmp_path / "small"
    src.mkdir()
    small.mkdir()
    _sparse_npy(src / "big.npy", 10_000)
    for folder in (src, small):
        for index in range(3):
            np.save(folder / f"small{index}.npy", np.ones((64, 64), np.float32))
    arguments = ("-m", "avg", "-k", "3", "-j", "1", "--quiet", "--memory", "64MB")
    run = hostile.run("batch", src, "-d", tmp_path / "out", *arguments, memory=None, timeout=120)
    assert run.code == 0, run
    baseline = hostile.run("batch", small, "-d", tmp_path / "out-small", *arguments, memory=None)
    assert baseline.code == 0, baseline
    assert run.rss_mb - baseline.rss_mb < 64, (run.rss_mb, baseline.rss_mb)
    assert np.load(tmp_path / "out" / "big.npy", mmap_mode="r").shape == (3333, 1333)
