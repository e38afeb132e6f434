"""Hostile TIFFs through every reader: `pool` in memory, `pool` streamed (block by block, as
for .zarr outputs or inputs bigger than --memory) and `pyramid` must refuse the same files with
one line naming the file, within memory and time, and pool the same pixels from the others.

The files are written by tifffile and then patched where tifffile cannot write the hostile
value (tags overwritten in place, bytes cut or scrambled). Each command is a real
``python -m poolcli`` under the memory cap and wall limit of tests/hostile.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hostile
import numpy as np
import pytest
import tifffile
from test_hostile import assert_bounded, assert_one_error_line, temporaries

from poolcli import io, pool
from poolcli.errors import InputError
from poolcli.stream import open_source, pool_to
from poolcli.stream.tiffsegments import TiffSegments

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS, wait4 and /proc")

IMAGE = (np.add.outer(np.arange(64) * 3, np.arange(64) * 5) % 251).astype(np.uint8)


def patch(path: Path, tag: str, values) -> Path:
    """Overwrite `tag` of the first page in place (as LONGs: any value tifffile cannot write)."""
    with tifffile.TiffFile(path, mode="r+b") as tiff:
        tiff.pages[0].tags[tag].overwrite(values, dtype=4)
    return path


def segment_table(path: Path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    with tifffile.TiffFile(path) as tiff:
        return tuple(tiff.pages[0].dataoffsets), tuple(tiff.pages[0].databytecounts)


def assert_same_pixels(streamed: Path, memory: Path) -> None:
    """The same values (a gray image pools to H x W streamed, H x W x 1 in memory)."""
    a, b = np.load(streamed), np.load(memory)
    assert a.dtype == b.dtype and a.size == b.size and a.shape == b.shape[: a.ndim], (a.shape, b.shape)
    np.testing.assert_array_equal(a, b.reshape(a.shape))


# ------------------------------------------------------------------ the hostile files


def lying_bytecounts(folder: Path) -> Path:
    """Tiled, uncompressed: every tile claims 10^9 bytes at offset 8 of a 4.5 KB file (the streamed
    reader once pooled the file's own directory bytes as pixels)."""
    path = folder / "lying_bytecounts.tif"
    tifffile.imwrite(path, IMAGE, tile=(16, 16))
    patch(path, "TileOffsets", [8] * 16)
    return patch(path, "TileByteCounts", [10**9] * 16)


def cut(folder: Path) -> Path:
    """zlib tiles, the file cut in the middle of tile 8."""
    path = folder / "cut.tif"
    tifffile.imwrite(path, IMAGE, tile=(16, 16), compression="zlib")
    offsets, _ = segment_table(path)
    path.write_bytes(path.read_bytes()[: offsets[8] + 3])
    return path


def garbage_lzw(folder: Path) -> Path:
    """LZW strips, the second strip's bytes random."""
    path = folder / "garbage_lzw.tif"
    tifffile.imwrite(path, IMAGE, rowsperstrip=16, compression="lzw")
    (offsets, counts), data = segment_table(path), bytearray(path.read_bytes())
    data[offsets[1]: offsets[1] + counts[1]] = np.random.default_rng(1).integers(0, 256, counts[1], np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def unknown_compression(folder: Path) -> Path:
    path = folder / "unknown_compression.tif"
    tifffile.imwrite(path, IMAGE, rowsperstrip=16)
    return patch(path, "Compression", 12345)


def missing_offsets(folder: Path) -> Path:
    """Four strips, two of them listed."""
    path = folder / "missing_offsets.tif"
    tifffile.imwrite(path, IMAGE, rowsperstrip=16)
    offsets, counts = segment_table(path)
    patch(path, "StripOffsets", list(offsets[:2]))
    return patch(path, "StripByteCounts", list(counts[:2]))


def rows_per_strip_0(folder: Path) -> Path:
    """One uncompressed strip whose RowsPerStrip is 0 (the specification and libtiff want >= 1)."""
    path = folder / "rows_per_strip_0.tif"
    tifffile.imwrite(path, IMAGE)
    return patch(path, "RowsPerStrip", 0)


def short_strip(folder: Path) -> Path:
    """Uncompressed strips, the last one holding fewer bytes than its rows need."""
    path = folder / "short_strip.tif"
    tifffile.imwrite(path, IMAGE, rowsperstrip=16)
    _, counts = segment_table(path)
    return patch(path, "StripByteCounts", [*counts[:-1], counts[-1] - 64])


def packbits_overlong(folder: Path) -> Path:
    """PackBits strips, one claiming more bytes than PackBits can make of its rows (all inside the file)."""
    path = folder / "packbits_overlong.tif"
    tifffile.imwrite(path, np.zeros((8, 64), np.uint8), rowsperstrip=8, compression="packbits")
    data = path.read_bytes()
    path.write_bytes(data + bytes(4096))
    offsets, _ = segment_table(path)
    return patch(path, "StripByteCounts", [len(data) + 4096 - offsets[0]])


def tile_bomb(folder: Path) -> Path:
    """One 32768x32768 deflate tile of zeros (1 GiB decoded) in a 1 MB file."""
    path = folder / "tile_bomb.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), tile=(16, 16), compression="zlib")
    data = hostile.deflate_zeros(1 << 30, wrapper="zlib")
    end = path.stat().st_size
    with open(path, "ab") as file:
        file.write(data)
    for tag in ("ImageWidth", "ImageLength", "TileWidth", "TileLength"):
        patch(path, tag, 32768)
    patch(path, "TileOffsets", end)
    return patch(path, "TileByteCounts", len(data))


HOSTILE = {generate.__name__: generate for generate in (
    lying_bytecounts, cut, garbage_lzw, unknown_compression, missing_offsets, rows_per_strip_0, short_strip,
    packbits_overlong)}


@pytest.fixture(scope="module")
def hostile_tiffs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiffs")
    return {name: generate(folder) for name, generate in HOSTILE.items()}


def check_refused(result: hostile.Run, path: Path, out_dir: Path, *names: str) -> str:
    assert_bounded(result)
    assert result.code == 1, result
    line = assert_one_error_line(result, str(path), *names)
    assert sorted(p.name for p in out_dir.iterdir()) == [] and temporaries(out_dir) == [], result
    return line


# ------------------------------------------------------------------ every reader refuses them alike


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_tiff_is_refused_alike_in_memory_streamed_and_by_pyramid(hostile_tiffs, tmp_path, name):
    path = hostile_tiffs[name]
    runs = {
        "in memory": ("pool", path, "-o", tmp_path / "memory" / "out.npy"),
        "streamed": ("pool", path, "-o", tmp_path / "streamed" / "out.zarr"),
        "pyramid": ("pyramid", path, "-o", tmp_path / "pyramid" / "out.zarr", "--min-size", "8"),
        "pyramid tif": ("pyramid", path, "-o", tmp_path / "pyramid tif" / "out.tif", "--min-size", "8"),
    }
    lines = {}
    for how, args in runs.items():
        args[3].parent.mkdir()
        lines[how] = check_refused(hostile.run(*args), path, args[3].parent)
    assert len(set(lines.values())) == 1 or name in ("garbage_lzw",), lines  # the table's faults: one message


def test_lying_bytecounts_name_the_tile_outside_the_file(hostile_tiffs, tmp_path):
    result = hostile.run("pool", hostile_tiffs["lying_bytecounts"], "-o", tmp_path / "out.zarr")
    assert "tile 0 lies outside the file" in check_refused(result, hostile_tiffs["lying_bytecounts"], tmp_path), result


def test_rows_per_strip_0_is_refused_as_libtiff_does(hostile_tiffs):
    with pytest.raises(InputError, match="RowsPerStrip is 0"):
        io.load(hostile_tiffs["rows_per_strip_0"])
    with pytest.raises(InputError, match="RowsPerStrip is 0"), open_source(hostile_tiffs["rows_per_strip_0"]):
        pass


def test_corrupt_segment_is_one_line_naming_file_page_and_strip(hostile_tiffs, tmp_path):
    path = hostile_tiffs["garbage_lzw"]
    line = check_refused(hostile.run("pyramid", path, "-o", tmp_path / "p.zarr", "--min-size", "8"), path, tmp_path)
    assert "page 0: strip 1 cannot be decoded" in line


# ------------------------------------------------------------------ a tile bigger than the budget


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return tile_bomb(tmp_path_factory.mktemp("bomb"))


@pytest.mark.parametrize("command", ["pool", "pyramid"])
def test_tile_bigger_than_the_budget_is_refused_from_its_size(bomb, tmp_path, command):
    assert bomb.stat().st_size < 2 * hostile.MiB
    extra = ("--min-size", "4096") if command == "pyramid" else ()
    result = hostile.run(command, bomb, "-o", tmp_path / "out.zarr", *extra)
    line = check_refused(result, bomb, tmp_path, "--memory", "tile")
    assert "1,073,741,824 bytes" in line and "--memory 8590MB or more" in line, result
    assert result.seconds < 5 and result.rss_mb < 250, result


def test_tile_bigger_than_its_page_is_refused_in_memory_and_streamed(tmp_path):
    """A 64x64 page in one 8192x8192 tile: 64 MB decoded per read of 4 KB of pixels."""
    path = tmp_path / "big_tile.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), tile=(16, 16), compression="zlib")
    data = hostile.deflate_zeros(8192 * 8192 + 1, wrapper="zlib")
    end = path.stat().st_size
    with open(path, "ab") as file:
        file.write(data)
    for tag, value in (("ImageWidth", 64), ("ImageLength", 64), ("TileWidth", 8208), ("TileLength", 8192),
                       ("TileOffsets", end), ("TileByteCounts", len(data))):
        patch(path, tag, value)
    with pytest.raises(InputError, match="more than its whole 64x64 page"):
        io.load(path)
    with pytest.raises(InputError, match="more than its whole 64x64 page"), open_source(path):
        pass


# ------------------------------------------------------------------ what is read, and how often


def test_compressed_tiles_taller_than_a_block_are_decoded_once(tmp_path, monkeypatch):
    x = np.random.default_rng(3).integers(0, 256, (600, 700), np.uint8)
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, x, tile=(128, 256), compression="zlib")
    decoded = []
    original = TiffSegments._decode
    monkeypatch.setattr(TiffSegments, "_decode", lambda self, data, i: decoded.append(i) or original(self, data, i))
    with open_source(path) as source:
        pool_to(source, tmp_path / "out.npy", dict(window=(3, 3), stride=(2, 2), mode="max", axes=(0, 1)), None,
                memory=16 * 10**6 // 8)  # bands of about 40 rows: each tile row spans several
    assert sorted(decoded) == list(range(5 * 3)), decoded
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), pool(x, 3, stride=2, mode="max"))


def test_one_big_uncompressed_strip_is_read_in_pieces(tmp_path):
    """A single uncompressed strip bigger than the budget (as tifffile writes by default) streams:
    only the rows each block needs are read, and the result is the in-memory one."""
    x = np.random.default_rng(4).integers(0, 65535, (1500, 1400), np.uint16)
    path = tmp_path / "one_strip.tif"
    tifffile.imwrite(path, x)
    with tifffile.TiffFile(path) as tiff:
        assert len(tiff.pages[0].dataoffsets) == 1
    result = hostile.run("pool", path, "-o", tmp_path / "streamed.npy", "--memory", "16MB", "-m", "avg")
    assert result.code == 0 and result.err_lines == [], result
    assert result.rss_mb < 250, result
    memory = hostile.run("pool", path, "-o", tmp_path / "memory.npy", "-m", "avg")
    assert memory.code == 0, memory
    assert_same_pixels(tmp_path / "streamed.npy", tmp_path / "memory.npy")


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_short_final_strip_pools_alike_streamed_and_in_memory(tmp_path, compression):
    """RowsPerStrip 7 over 600 rows: the last strip holds 5 rows (as the specification allows)."""
    x = np.random.default_rng(5).integers(0, 256, (600, 500, 3), np.uint8)
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, x, rowsperstrip=7, compression=compression, photometric="rgb")
    streamed = hostile.run("pool", path, "-o", tmp_path / "streamed.npy", "--memory", "16MB")
    memory = hostile.run("pool", path, "-o", tmp_path / "memory.npy", "--memory", "2GB")
    assert streamed.code == 0 and memory.code == 0 and streamed.err_lines == memory.err_lines == [], streamed
    assert_same_pixels(tmp_path / "streamed.npy", tmp_path / "memory.npy")


def test_sparse_tiles_pool_alike_streamed_and_in_memory(tmp_path):
    """Tiles of no bytes (offset and count 0) are zeros in both readers, as in tifffile."""
    tiles = [np.full((16, 16), i + 1, np.uint8) if i % 3 != 1 else None for i in range(16)]
    path = tmp_path / "sparse.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(iter(tiles), shape=(64, 64), dtype=np.uint8, tile=(16, 16))
    loaded = io.load(path).arrays["array"][..., 0]
    with open_source(path) as source:
        np.testing.assert_array_equal(source.read((slice(None),)), loaded)
    np.testing.assert_array_equal(loaded, tifffile.imread(path))


def test_segment_refusal_follows_the_memory_budget(tmp_path):
    """One 1024x1024 zlib tile (1 MB decoded): refused within 4 MB (an eighth is 0.5 MB), pooled within 16 MB."""
    x = np.random.default_rng(6).integers(0, 256, (1024, 1024), np.uint8)
    path = tmp_path / "one_tile.tif"
    tifffile.imwrite(path, x, tile=(1024, 1024), compression="zlib")
    keywords = dict(window=(2, 2), mode="avg", axes=(0, 1))
    with open_source(path) as source, pytest.raises(InputError, match=r"memory 4MB .*memory 9MB or more"):
        pool_to(source, tmp_path / "small.npy", keywords, None, memory=4 * 10**6)
    assert not (tmp_path / "small.npy").exists()
    with open_source(path) as source:
        pool_to(source, tmp_path / "out.npy", keywords, None, memory=16 * 10**6)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), pool(x, 2, mode="avg"))


def test_an_oriented_tiff_is_not_streamed_unturned(tmp_path):
    """In memory the Orientation tag turns the image; the streamed reader refuses it rather than differ."""
    path = tmp_path / "turned.tif"
    tifffile.imwrite(path, IMAGE, extratags=[(274, 3, 1, 6, True)])
    assert io.load(path).arrays["array"].shape[:2] == (64, 64)
    with pytest.raises(InputError, match="Orientation tag"), open_source(path):
        pass


def test_a_stack_is_refused_and_an_image_with_reduced_pages_streams_page_0(tmp_path):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.stack([IMAGE] * 5))
    with pytest.raises(InputError, match="series of several pages"), open_source(stack):
        pass
    reduced = tmp_path / "reduced.tif"
    with tifffile.TiffWriter(reduced) as writer:
        writer.write(IMAGE, tile=(16, 16), compression="zlib")
        writer.write(IMAGE[::2, ::2], tile=(16, 16), compression="zlib", subfiletype=1)
    with open_source(reduced) as source:
        np.testing.assert_array_equal(source.read((slice(None),)), IMAGE)
