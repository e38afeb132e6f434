"""The big-data fast paths against independent readers and the engine: Zarr chunk files read
straight (against zarr's own reads), TIFF segments (against tifffile's whole-page read),
pyramid levels by neighbour pairs (on and off, against `pool` of level 0), bands aligned to the
input's chunks (each chunk file read once), malloc tuning and the default compression."""

import json
import sys
import time
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import tifffile
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poolcli import engine, pool
from poolcli.core.spec import PoolSpec
from poolcli.stream import Pyramid, StoreOptions, build_pyramid, open_source, pool_to, tune_malloc
from poolcli.stream.chunkfiles import ChunkFiles, chunk_files
from poolcli.stream.pyramid import Scratch, build, halve
from poolcli.stream.sources import Source

READER_DTYPES = ("u1", "<i2", ">u2", ">i4", "<f4", ">f8", "?")


@st.composite
def regions(draw, shape):
    """Slices (unit step) of `shape`, sometimes fewer than its axes."""
    picked = []
    for n in shape[:draw(st.integers(1, len(shape)))]:
        start = draw(st.integers(0, n - 1))
        picked.append(slice(start, draw(st.integers(start + 1, n))))
    return tuple(picked)


@st.composite
def zarr_cases(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 23)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, n + 3)) for n in shape)
    fmt = draw(st.sampled_from((2, 3)))
    dtype = draw(st.sampled_from(READER_DTYPES))
    codecs = ("blosc", "zstd", "gzip", "none", "delta", "lz4", "bz2") if fmt == 2 else ("blosc", "zstd", "gzip", "none")
    codec = draw(st.sampled_from(codecs))
    sparse, region, seed = draw(st.booleans()), draw(regions(shape)), draw(st.integers(0, 99))
    return shape, chunks, fmt, np.dtype(dtype), codec, sparse, region, seed


def _v2_codecs(codec: str, dtype: np.dtype) -> dict:
    compressors = {"blosc": numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE),
                   "zstd": numcodecs.Zstd(level=1), "gzip": numcodecs.GZip(level=1), "none": None,
                   "delta": numcodecs.Zlib(level=1), "lz4": numcodecs.LZ4(), "bz2": numcodecs.BZ2(level=1)}
    filters = [numcodecs.Delta(dtype=dtype.str)] if codec == "delta" and dtype.kind in "iu" else None
    return dict(compressors=compressors[codec], filters=filters)


def _v3_codecs(codec: str, seed: int) -> dict:
    compressors = {"blosc": zarr.codecs.BloscCodec(cname="lz4"), "zstd": zarr.codecs.ZstdCodec(level=1),
                   "gzip": zarr.codecs.GzipCodec(level=1), "none": None}
    endian = ("little", "big")[seed % 2]  # the chunks' byte order, whatever the array's dtype says
    return dict(compressors=compressors[codec], serializer=zarr.codecs.BytesCodec(endian=endian))


QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


def _new_array(folder: Path, case: tuple):
    """An empty Zarr array of a `zarr_cases` case at `folder`, and its fill value."""
    shape, chunks, fmt, dtype, codec, _, _, seed = case
    codecs = _v2_codecs(codec, dtype) if fmt == 2 else _v3_codecs(codec, seed)
    separator = "/." [seed // 2 % 2]  # nested chunk keys (0/1/2, c/0/1/2) or flat ones (0.1.2, c.0.1.2)
    codecs["chunk_key_encoding"] = {"name": "v2" if fmt == 2 else "default", "separator": separator}
    fill = True if dtype.kind == "b" else 3
    return zarr.create_array(store=str(folder), shape=shape, chunks=chunks, dtype=dtype, zarr_format=fmt,
                             fill_value=fill, **codecs), fill


@settings(max_examples=150, deadline=None, suppress_health_check=QUIET)
@given(zarr_cases())
def test_chunk_files_read_what_zarr_reads(tmp_path_factory, case):
    """Random shapes, chunkings (edge chunks, chunks past the shape), dtypes of either byte order,
    codecs and filters, Zarr v2 and v3, a fill value and chunks never written: the same values."""
    shape, chunks, fmt, dtype, codec, sparse, region, seed = case
    folder = tmp_path_factory.mktemp("z") / "a.zarr"
    array, _ = _new_array(folder, case)
    rng = np.random.default_rng(seed)
    x = (rng.random(shape) * 250).astype(dtype) if dtype.kind != "b" else rng.random(shape) < 0.5
    if sparse:  # only the first half along axis 0: the other chunks stay unwritten (the fill value)
        array[: max(1, shape[0] // 2)] = x[: max(1, shape[0] // 2)]
    else:
        array[...] = x
    reader = chunk_files(zarr.open_array(str(folder), mode="r"), folder)
    assert isinstance(reader, ChunkFiles)
    expected = zarr.open_array(str(folder), mode="r")[region]
    got = reader[region]
    assert got.shape == expected.shape and got.dtype.newbyteorder("=") == expected.dtype.newbyteorder("=")
    np.testing.assert_array_equal(got, expected)


def test_layouts_zarr_reads_itself_still_read_right(tmp_path):
    """Sharded v3 and Fortran-ordered v2 arrays are left to zarr (no chunk-file reader), with the same result."""
    x = np.arange(30 * 20, dtype=np.uint16).reshape(30, 20)
    sharded = zarr.create_array(store=str(tmp_path / "s.zarr"), shape=x.shape, chunks=(5, 5), shards=(10, 10),
                                dtype=x.dtype, zarr_format=3)
    sharded[...] = x
    fortran = zarr.create_array(store=str(tmp_path / "f.zarr"), shape=x.shape, chunks=(7, 6), dtype=x.dtype,
                                zarr_format=2, order="F")
    fortran[...] = x
    for name in ("s.zarr", "f.zarr"):
        assert chunk_files(zarr.open_array(str(tmp_path / name), mode="r"), tmp_path / name) is None
        with open_source(tmp_path / name) as source:
            assert not isinstance(source.array, ChunkFiles)
            np.testing.assert_array_equal(source.read((slice(3, 29), slice(1, 19))), x[3:29, 1:19])


@st.composite
def tiff_cases(draw):
    h, w = draw(st.integers(1, 70)), draw(st.integers(1, 70))
    layout = draw(st.sampled_from(("YX", "YXS", "SYX")))
    tiled = draw(st.booleans())
    dtype = draw(st.sampled_from(("u1", "<u2", ">i2", "<f4")))
    compression = draw(st.sampled_from((None, "zlib", "lzw", "packbits")))
    predictor = compression in ("zlib", "lzw") and np.dtype(dtype).kind in "iu" and draw(st.booleans())
    strip = draw(st.integers(1, 9))
    return h, w, layout, tiled, strip, np.dtype(dtype), compression, predictor, draw(st.integers(0, 99))


@settings(max_examples=120, deadline=None, suppress_health_check=QUIET)
@given(tiff_cases(), st.data())
def test_tiff_segments_read_what_tifffile_reads(tmp_path_factory, case, data):
    """Tiled and striped, grey, interleaved and planar colour, compressed or not, with predictors
    and either byte order: any region equals the same region of tifffile's whole-page read."""
    h, w, layout, tiled, rows_per_strip, dtype, compression, predictor, seed = case
    shape = {"YX": (h, w), "YXS": (h, w, 3), "SYX": (3, h, w)}[layout]
    x = (np.random.default_rng(seed).random(shape) * 200).astype(dtype)
    path = tmp_path_factory.mktemp("t") / "x.tif"
    layout_keywords = dict(tile=(16, 32)) if tiled else dict(rowsperstrip=rows_per_strip)
    tifffile.imwrite(path, x, compression=compression, predictor=predictor or None, byteorder=dtype.byteorder
                     if dtype.byteorder in "<>" else "<", photometric="rgb" if layout != "YX" else "minisblack",
                     planarconfig="separate" if layout == "SYX" else None, **layout_keywords)
    whole = tifffile.imread(path)
    with open_source(path) as source:
        stored = source.array
        region = data.draw(regions(stored.shape))
        np.testing.assert_array_equal(stored[region], whole[region])
        viewed = source.read((slice(0, source.shape[0]),))  # SYX seen as YXS, as pool reads images
        np.testing.assert_array_equal(viewed, np.moveaxis(whole, 0, -1) if layout == "SYX" else whole)


def test_tiff_segments_read_empty_tiles_as_zeros(tmp_path):
    """Tiles with no bytes in the file (an offset and a count of 0) are zeros, as tifffile reads them."""
    tiles = [np.full((16, 16), i + 1, np.uint8) if i % 3 != 1 else None for i in range(16)]
    with tifffile.TiffWriter(tmp_path / "sparse.tif") as writer:
        writer.write(iter(tiles), shape=(64, 64), dtype=np.uint8, tile=(16, 16))
    assert 0 in tifffile.TiffFile(tmp_path / "sparse.tif").pages[0].databytecounts
    with open_source(tmp_path / "sparse.tif") as source:
        np.testing.assert_array_equal(source.read((slice(5, 60), slice(3, 50))),
                                      tifffile.imread(tmp_path / "sparse.tif")[5:60, 3:50])


@pytest.mark.parametrize("pairwise", [True, False])
@pytest.mark.parametrize("mode", ["avg", "sum", "max", "min"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.bool_])
def test_levels_by_pairs_on_and_off_equal_pooling_level_0(pairwise, mode, dtype):
    """The twin of the pairwise-levels fast path: the same random volumes with it on and off,
    each level equal to `pool(level0, 2**k)` (odd sides, three spatial axes too)."""
    rng = np.random.default_rng(7)
    for shape, spatial in (((45, 37), (0, 1)), ((2, 33, 70), (1, 2)), ((19, 22, 17), (0, 1, 2))):
        x = rng.integers(-3, 250, shape).astype(dtype) if dtype != np.bool_ else rng.random(shape) < 0.5
        pyramid = Pyramid(shape, spatial, 3 if len(spatial) == 2 else 2, mode)
        outs = [np.zeros(pyramid.level_shape(k), pyramid.level_dtype(x.dtype, k)) for k in range(pyramid.levels + 1)]

        def write(k, index, block, outs=outs):
            outs[k][index] = block

        with engine.fast_paths(pairwise_levels=pairwise):
            for _ in build(Source(Path("memory"), x, "array", "NPY", x.shape), pyramid, write, 4000):
                pass
        for k in range(1, pyramid.levels + 1):
            np.testing.assert_array_equal(outs[k], pool(x, 2 ** k, axes=spatial, mode=mode), err_msg=f"level {k}")


def test_halve_keeps_its_scratch_inside():
    """The steps before the last reuse scratch buffers; the result is always a new array."""
    scratch = Scratch()
    x = np.arange(8 * 6, dtype=np.uint8).reshape(8, 6)
    first = halve(x, (0, 1), np.add, np.dtype(np.uint16), scratch)
    second = halve(x + 1, (0, 1), np.add, np.dtype(np.uint16), scratch)
    assert not np.shares_memory(first, second) and len(scratch.buffers) == 1
    np.testing.assert_array_equal(first, pool(x, 2, mode="sum", dtype=np.uint16))
    np.testing.assert_array_equal(second, pool(x + 1, 2, mode="sum", dtype=np.uint16))


def test_each_chunk_file_is_read_once_by_a_pyramid(tmp_path, monkeypatch):
    """Bands follow the input's chunk rows where the memory holds them: no chunk decoded twice."""
    x = np.random.default_rng(1).integers(0, 256, (3, 96, 80), dtype=np.uint8)
    store = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=x.shape, chunks=(1, 24, 32), dtype=x.dtype,
                              zarr_format=3)
    store[...] = x
    reads = []
    original = ChunkFiles.chunk
    monkeypatch.setattr(ChunkFiles, "chunk",
                        lambda self, coords, into=None: reads.append(coords) or original(self, coords, into))
    with open_source(tmp_path / "x.zarr") as source:
        assert isinstance(source.array, ChunkFiles)
        build_pyramid(source, tmp_path / "p.zarr", Pyramid(x.shape, (1, 2), 3), memory=200_000)
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 3 * 4 * 3
    level = zarr.open_array(str(tmp_path / "p.zarr" / "3"), mode="r")[:]
    np.testing.assert_array_equal(level, pool(x, 8, axes=(1, 2), mode="avg"))


def test_zarr_outputs_default_to_blosc_zstd_clevel_2(tmp_path):
    x = np.zeros((64, 64), np.uint8)
    source = tmp_path / "x.npy"
    np.save(source, x)
    with open_source(source) as opened:
        build_pyramid(opened, tmp_path / "p.zarr", Pyramid(x.shape, (0, 1), 1))
    compressor = zarr.open_array(str(tmp_path / "p.zarr" / "1"), mode="r").metadata.compressor
    assert (compressor.cname, compressor.clevel) == ("zstd", 2)
    assert StoreOptions(compression="zlib").chosen_level == 3 and StoreOptions(level=7).chosen_level == 7


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_malloc_tuning_is_taken_by_glibc():
    assert tune_malloc() is True


@settings(max_examples=120, deadline=None, suppress_health_check=QUIET)
@given(zarr_cases())
def test_chunk_files_write_what_zarr_reads_back(tmp_path_factory, case):
    """Whole chunks written straight to their files (edge chunks padded with the fill value),
    for every layout the reader takes: zarr reads back exactly what was written, the fill value
    elsewhere; a region that cuts a chunk is refused."""
    shape, chunks, fmt, dtype, codec, _, region, seed = case
    folder = tmp_path_factory.mktemp("w") / "a.zarr"
    array, fill = _new_array(folder, case)
    files = chunk_files(array, folder)
    region = region + tuple(slice(0, n) for n in shape[len(region):])
    region = tuple(slice(s.start // c * c, min(n, -(-s.stop // c) * c)) for s, c, n in zip(region, chunks, shape))
    rng = np.random.default_rng(seed)
    part = rng.random(tuple(s.stop - s.start for s in region)) * 250
    part = part.astype(dtype) if dtype.kind != "b" else part < 125
    assert files.aligned(region)
    files[region] = part
    expected = np.full(shape, fill, dtype=dtype)
    expected[region] = part
    np.testing.assert_array_equal(zarr.open_array(str(folder), mode="r")[...], expected)
    for cut in (tuple(slice(s.start + 1, s.stop) if c > 1 and s.stop - s.start > 1 else s
                      for s, c in zip(region, chunks)),  # starting inside a chunk
                tuple(slice(s.start, s.stop - 1) if (s.stop - 1) % c and s.stop - s.start > 1 else s
                      for s, c in zip(region, chunks))):  # ending inside one (not at the array's end)
        if cut != region:
            assert not files.aligned(cut)
            with pytest.raises(ValueError, match="whole chunks"):
                files[cut] = expected[cut]


@pytest.mark.parametrize("fmt", [2, 3])
def test_outputs_with_chunk_files_on_and_off_are_the_same(tmp_path, fmt):
    """The twin of the chunk-files fast path for outputs: a pyramid and a streamed pool written
    with it on and off decode to the same arrays, with the same metadata."""
    x = np.random.default_rng(5).integers(0, 256, (2, 150, 97), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    results = []
    for on in (True, False):
        with engine.fast_paths(chunk_files=on), open_source(tmp_path / "x.npy") as source:
            options = StoreOptions(chunk=32, zarr_format=fmt)
            build_pyramid(source, tmp_path / f"p{on}.zarr", Pyramid(x.shape, (1, 2), 3), memory=60_000, options=options)
            pool_to(source, tmp_path / f"o{on}.zarr", PoolSpec(3, 2, mode="avg", axes=(1, 2)), None,
                    memory=60_000, options=options)
        group = zarr.open_group(str(tmp_path / f"p{on}.zarr"), mode="r")
        results.append(([group[str(k)][...] for k in range(4)], zarr.open_array(str(tmp_path / f"o{on}.zarr"))[...],
                        dict(group.attrs)))
    (levels_on, pooled_on, attrs_on), (levels_off, pooled_off, attrs_off) = results
    for on, off in zip(levels_on, levels_off):
        np.testing.assert_array_equal(on, off)
    np.testing.assert_array_equal(pooled_on, pooled_off)
    np.testing.assert_array_equal(pooled_on, pool(x, 3, 2, mode="avg", axes=(1, 2)))
    assert attrs_on == attrs_off


@pytest.mark.parametrize("fmt", [2, 3])
def test_a_zarr_inputs_level_0_is_its_chunk_files_copied(tmp_path, fmt):
    """Same Zarr format in and out: level 0 is the input's files byte for byte (nested chunk
    keys and unwritten chunks included), the levels below exact."""
    x = np.random.default_rng(2).integers(0, 256, (2, 64, 48), dtype=np.uint8)
    source = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=x.shape, chunks=(1, 16, 16), dtype=x.dtype,
                               zarr_format=fmt, fill_value=0)
    source[:, :48] = x[:, :48]  # the last chunk row never written
    x[:, 48:] = 0
    with open_source(tmp_path / "x.zarr") as opened:
        build_pyramid(opened, tmp_path / "p.zarr", Pyramid(x.shape, (1, 2), 2, dtype=x.dtype),
                      options=StoreOptions(zarr_format=fmt))
    files = sorted(p.relative_to(tmp_path / "x.zarr") for p in (tmp_path / "x.zarr").rglob("*") if p.is_file())
    metadata = (".zarray", "zarr.json")  # rewritten with NGFF's nested keys ("0.1.2" -> "0/1/2") and axis names
    nested = {name: name if name.name in (*metadata, ".zattrs") else Path(str(name).replace(".", "/"))
              for name in files}
    level0 = tmp_path / "p.zarr" / "0"
    assert sorted(p.relative_to(level0) for p in level0.rglob("*") if p.is_file()) == sorted(nested.values())
    for name in files:
        given, copied = (tmp_path / "x.zarr" / name).read_bytes(), (level0 / nested[name]).read_bytes()
        if name.name in metadata:
            given, copied = json.loads(given), json.loads(copied)
            assert copied.get("dimension_separator", "/") == "/" and copied.pop("dimension_names", None) in (
                None, ["c", "y", "x"])
            for key in ("dimension_separator", "chunk_key_encoding"):
                given.pop(key, None), copied.pop(key, None)
        assert copied == given
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "p.zarr" / "2"))[...],
                                  pool(x, 4, axes=(1, 2), mode="avg", dtype=np.uint8))


def test_an_interrupted_pyramid_stops_its_copy_and_leaves_nothing(tmp_path, monkeypatch):
    """Ctrl-C while level 0 is being copied on its thread: the copy stops between two files, and
    neither the store nor its temporary folder is left."""
    import poolcli.stream.stores.zarr as stores

    x = np.random.default_rng(0).integers(1, 256, (8, 64, 64), dtype=np.uint8)
    zarr.create_array(store=str(tmp_path / "x.zarr"), shape=x.shape, chunks=(1, 8, 8), dtype=x.dtype,
                      zarr_format=2)[...] = x
    assert len(list((tmp_path / "x.zarr").iterdir())) == 8 * 64 + 2  # the chunks, .zarray and .zattrs
    copied = []
    original = stores.shutil.copyfileobj
    monkeypatch.setattr(stores.shutil, "copyfileobj",
                        lambda a, b: copied.append(a) or time.sleep(0.002) or original(a, b))

    def stop(done):
        raise KeyboardInterrupt

    with open_source(tmp_path / "x.zarr") as opened, pytest.raises(KeyboardInterrupt):
        build_pyramid(opened, tmp_path / "p.zarr", Pyramid(x.shape, (1, 2), 1), memory=20_000, progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zarr"]
    assert len(copied) < 8 * 64  # stopped long before copying every chunk file (a second's worth)
