"""Hostile TIFFs through every reader: `pool` in memory, `pool` streamed (block by block, as
for .zarr outputs or inputs bigger than --memory) and `pyramid` must refuse the same files with
one line naming the file, within memory and time, and pool the same pixels from the others.

The files are written by tifffile and then patched where tifffile cannot write the hostile
value (tags overwritten in place, bytes cut or scrambled). Each command is a real
``python -m poolcli`` under the memory cap and wall limit of tests/hostile.py.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import hostile
import numpy as np
import pytest
import tifffile
from PIL import Image
from test_hostile import assert_bounded, assert_one_error_line, temporaries

from poolcli import io, pool
from poolcli.core.spec import PoolSpec
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
        pool_to(source, tmp_path / "out.npy", PoolSpec((3, 3), (2, 2), mode="max", axes=(0, 1)), None,
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
        pool_to(source, tmp_path / "small.npy", PoolSpec(**keywords), None, memory=4 * 10**6)
    assert not (tmp_path / "small.npy").exists()
    with open_source(path) as source:
        pool_to(source, tmp_path / "out.npy", PoolSpec(**keywords), None, memory=16 * 10**6)
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


# ------------------------------------------------------------------ image codecs: a segment's own header


def forge(path: Path, index: int, find: bytes, at: int, value: bytes, *, crc_from: int | None = None) -> Path:
    """Overwrite bytes `at` past the first `find` in segment `index` of page 0 with `value` (and,
    for a PNG chunk, its CRC over the bytes from `crc_from` past `find`)."""
    (offsets, counts), data = segment_table(path), bytearray(path.read_bytes())
    start = data.index(find, offsets[index], offsets[index] + counts[index]) + at
    data[start: start + len(value)] = value
    if crc_from is not None:  # PNG: the chunk's CRC follows its 13 bytes of IHDR data
        body = start - at + crc_from
        data[body + 17: body + 21] = zlib.crc32(bytes(data[body: body + 17])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def jpeg_tile(folder: Path) -> Path:
    """JPEG tiles of 32x32; tile 1's SOF claims 65500x65500 (4 GB decoded from 1 KB)."""
    path = folder / "jpeg_tile.tif"
    tifffile.imwrite(path, IMAGE, tile=(32, 32), compression="jpeg")
    return forge(path, 1, b"\xff\xc0", 5, struct.pack(">HH", 65500, 65500))


def jpeg_strip(folder: Path) -> Path:
    """JPEG strips of 16 rows; strip 2's SOF claims 16000x16000 (256 MB: tifffile once cut it to the
    strip's shape and pooled it)."""
    path = folder / "jpeg_strip.tif"
    tifffile.imwrite(path, IMAGE, rowsperstrip=16, compression="jpeg")
    return forge(path, 2, b"\xff\xc0", 5, struct.pack(">HH", 16000, 16000))


def jpeg_tables_strip(folder: Path) -> Path:
    """JPEG strips as libtiff writes them (abbreviated: the tables in JPEGTables, each strip SOF and
    SOS only); the last strip's SOF claims 65500 rows."""
    path = folder / "jpeg_tables_strip.tif"
    Image.fromarray(IMAGE).save(path, compression="jpeg", strip_size=64 * 24)
    return forge(path, 2, b"\xff\xc0", 5, struct.pack(">H", 65500))


def png_tile(folder: Path) -> Path:
    """PNG tiles of 32x32; tile 3's IHDR claims 65500x65500 (its CRC made right)."""
    path = folder / "png_tile.tif"
    tifffile.imwrite(path, IMAGE, tile=(32, 32), compression="png")
    return forge(path, 3, b"IHDR", 4, struct.pack(">II", 65500, 65500), crc_from=0)


def webp_tile(folder: Path) -> Path:
    """Lossless WebP tiles of 32x32 RGB; tile 0's VP8L header claims 16384x16384 (its most)."""
    path = folder / "webp_tile.tif"
    tifffile.imwrite(path, np.stack([IMAGE] * 3, axis=-1), tile=(32, 32), compression="webp",
                     compressionargs={"lossless": True}, photometric="rgb")
    bits = 16383 | 16383 << 14 | 1 << 28  # width - 1, height - 1, alpha used, version 0
    return forge(path, 0, b"VP8L", 9, bits.to_bytes(4, "little"))


def jpeg2000_tile(folder: Path) -> Path:
    """JPEG 2000 tiles of 32x32; tile 2's SIZ claims a 65500x65500 image in one tile."""
    path = folder / "jpeg2000_tile.tif"
    tifffile.imwrite(path, IMAGE, tile=(32, 32), compression="jpeg2000")
    return forge(path, 2, b"\xff\x4f\xff\x51", 8, struct.pack(">6I", 65500, 65500, 0, 0, 65500, 65500))


FORGED = {generate.__name__: generate for generate in (
    jpeg_tile, jpeg_strip, jpeg_tables_strip, png_tile, webp_tile, jpeg2000_tile)}
FORGED_SEGMENT = {"jpeg_tile": "tile 1", "jpeg_strip": "strip 2", "jpeg_tables_strip": "strip 2",
                  "png_tile": "tile 3", "webp_tile": "tile 0", "jpeg2000_tile": "tile 2"}


@pytest.fixture(scope="module")
def forged_tiffs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("forged")
    return {name: generate(folder) for name, generate in FORGED.items()}


@pytest.mark.parametrize("name", list(FORGED))
def test_forged_codec_header_is_refused_before_decoding(forged_tiffs, tmp_path, name):
    """A segment whose own header claims more pixels than the segment holds (the codec would decode
    that size, whatever the tags say) is refused in memory, streamed and by `pyramid`: one line
    naming the file, page and segment, in seconds, within 250 MB."""
    path = forged_tiffs[name]
    runs = {
        "in memory": ("pool", path, "-o", tmp_path / "memory" / "out.npy"),
        "streamed": ("pool", path, "-o", tmp_path / "streamed" / "out.npy", "--memory", "16MB"),
        "streamed zarr": ("pool", path, "-o", tmp_path / "zarr" / "out.zarr"),
        "pyramid": ("pyramid", path, "-o", tmp_path / "pyramid" / "out.zarr", "--min-size", "8"),
    }
    lines = set()
    for args in runs.values():
        args[3].parent.mkdir()
        result = hostile.run(*args)
        lines.add(check_refused(result, path, args[3].parent, f"page 0: {FORGED_SEGMENT[name]}", "header claims"))
        assert result.seconds < 5 and result.rss_mb < 250, result
    assert len(lines) == 1, lines


HONEST_CODECS = ("jpeg tiles", "jpeg tile past the edges", "jpeg strips", "jpeg tables", "png", "webp", "jpeg2000")


@pytest.fixture(scope="module")
def honest_codec_tiffs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("honest")
    noise = np.random.default_rng(7).integers(0, 256, (100, 90), np.uint8)
    smooth = (np.add.outer(np.arange(100) * 3, np.arange(90) * 5) % 251).astype(np.uint8)
    paths = {name: folder / f"{name.replace(' ', '_')}.tif" for name in HONEST_CODECS}
    tifffile.imwrite(paths["jpeg tiles"], smooth, tile=(32, 48), compression="jpeg")  # edge tiles padded
    tifffile.imwrite(paths["jpeg tile past the edges"], smooth, tile=(128, 128), compression="jpeg")
    tifffile.imwrite(paths["jpeg strips"], smooth, rowsperstrip=24, compression="jpeg")  # the last: 4 rows
    Image.fromarray(smooth).save(paths["jpeg tables"], compression="jpeg", strip_size=90 * 24)  # libtiff's
    tifffile.imwrite(paths["png"], noise, tile=(32, 32), compression="png")
    tifffile.imwrite(paths["webp"], np.stack([noise] * 3, -1), tile=(32, 32), compression="webp", photometric="rgb")
    tifffile.imwrite(paths["jpeg2000"], noise, rowsperstrip=24, compression="jpeg2000")
    return paths


@pytest.mark.parametrize("name", HONEST_CODECS)
def test_honest_image_codec_tiffs_pool_tifffiles_pixels_in_memory_and_streamed(honest_codec_tiffs, tmp_path, name):
    """Tiles and strips whose headers claim their own size (or fewer rows: a short last strip) pool
    exactly tifffile's pixels, in memory and streamed."""
    path = honest_codec_tiffs[name]
    streamed = hostile.run("pool", path, "-o", tmp_path / "streamed.npy", "--memory", "16MB", "-m", "avg")
    memory = hostile.run("pool", path, "-o", tmp_path / "memory.npy", "-m", "avg")
    assert streamed.code == memory.code == 0 and streamed.err_lines == memory.err_lines == [], (streamed, memory)
    assert_same_pixels(tmp_path / "streamed.npy", tmp_path / "memory.npy")
    expected = pool(tifffile.imread(path), 2, mode="avg", axes=(0, 1))
    np.testing.assert_array_equal(np.load(tmp_path / "memory.npy").reshape(expected.shape), expected)
