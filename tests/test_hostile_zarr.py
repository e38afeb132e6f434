"""Hostile Zarr stores through the real command line (`pool`, `pyramid`, `info`).

Each store is made at test time (small on disk: bombs are sparse files, run-length Zstandard
frames or repeated deflate blocks) and run through a real ``python -m poolcli`` child under
tests/hostile.py's memory cap and wall limit. A bad store must give exit 1 and ONE stderr line
naming it (and the chunk's key, for a damaged chunk), within seconds and well under 300 MB,
with nothing written; a good one (chunks never written read as the fill value, files beside
the array's own) is pooled exactly as zarr reads it.

The findings of issue #22 each have a test: chunks that decode short or long (heap bytes
pooled before), links out of the store and non-regular chunk files (a FIFO hung forever),
chunks larger than the budget or than their encoding allows, a 2^31 x 2^31 store's pyramid,
and damaged metadata (chunk shapes, OME multiscales, --dataset paths).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import hostile
import numcodecs
import numpy as np
import pytest
import zarr
from hostile import GiB, MiB, run
from test_hostile import assert_bounded, assert_one_error_line, temporaries

from poolcli import pool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS, wait4 and /proc")

V2_CODECS = {"blosc": numcodecs.Blosc(cname="zstd", clevel=1), "zstd": numcodecs.Zstd(level=1),
             "zlib": numcodecs.Zlib(level=1), "gzip": numcodecs.GZip(level=1), "lz4": numcodecs.LZ4(),
             "bz2": numcodecs.BZ2(level=1), "none": None}
V3_CODECS = {"blosc": (zarr.codecs.BloscCodec(cname="zstd", clevel=1), numcodecs.Blosc(cname="zstd", clevel=1)),
             "zstd": (zarr.codecs.ZstdCodec(level=1), numcodecs.Zstd(level=1)),
             "gzip": (zarr.codecs.GzipCodec(level=1), numcodecs.GZip(level=1)), "none": (None, None)}


def numbers(shape: tuple[int, ...]) -> np.ndarray:
    return (np.arange(int(np.prod(shape))) * 7 % 251).astype(np.uint8).reshape(shape)


def make_store(path: Path, fmt: int = 2, codec: str = "zstd", shape=(32, 32), chunks=(16, 16),
               separator: str = ".", write: bool = True):
    """A uint8 Zarr array at `path` holding `numbers(shape)` (or nothing written); the array."""
    compressor = V2_CODECS[codec] if fmt == 2 else V3_CODECS[codec][0]
    encoding = {"name": "v2" if fmt == 2 else "default", "separator": separator if fmt == 2 else "/"}
    array = zarr.create_array(store=str(path), shape=shape, chunks=chunks, dtype="u1", zarr_format=fmt,
                              compressors=compressor, fill_value=0, chunk_key_encoding=encoding)
    if write:
        array[...] = numbers(shape)
    return array


def encoder(fmt: int, codec: str):
    return V2_CODECS[codec] if fmt == 2 else V3_CODECS[codec][1]


def check_refused(result, store: Path, *names: str, out: Path | None = None) -> str:
    """Exit 1, one line naming the store (and `names`), bounded, nothing written beside `out`."""
    assert_bounded(result)
    assert result.code == 1, result
    line = assert_one_error_line(result, str(store), *names)
    if out is not None:
        assert not out.exists(), f"{out} written\n{result}"
        assert temporaries(out.parent) == [], result
    return line


def pooled_as_zarr_reads(store: Path, target: Path) -> None:
    expected = pool(zarr.open_array(str(store), mode="r")[...], 2, mode="max")
    np.testing.assert_array_equal(np.load(target), expected)


# ------------------------------------------------------------------ chunks that decode to another size


CODEC_CASES = [(2, codec) for codec in V2_CODECS if codec != "none"] + [(3, c) for c in V3_CODECS if c != "none"]


@pytest.mark.parametrize("size", [100, 300])
@pytest.mark.parametrize("fmt, codec", CODEC_CASES)
def test_a_chunk_that_decodes_short_or_long_is_refused(tmp_path, fmt, codec, size):
    """A 16 x 16 chunk whose codec holds 100 (or 300) bytes: never pooled from memory nobody
    wrote; one line naming the store and the chunk."""
    store = tmp_path / "in.zarr"
    array = make_store(store, fmt, codec)
    key = array.metadata.encode_chunk_key((1, 0))
    (store / key).write_bytes(bytes(encoder(fmt, codec).encode(np.full(size, 9, np.uint8))))
    out = tmp_path / "out.npy"
    check_refused(run("pool", store, "-o", out, "-m", "max"), store, key, out=out)


@pytest.mark.parametrize("fmt", [2, 3])
def test_a_pyramid_over_a_short_chunk_is_refused_whole(tmp_path, fmt):
    """Level 0 copies chunk files as they are: the short chunk must not reach the output, and no
    level is built from garbage."""
    store = tmp_path / "in.zarr"
    array = make_store(store, fmt, shape=(64, 64))
    key = array.metadata.encode_chunk_key((2, 1))
    (store / key).write_bytes(bytes(encoder(fmt, "zstd").encode(np.full(100, 9, np.uint8))))
    out = tmp_path / "p.zarr"
    check_refused(run("pyramid", store, "-o", out, "--levels", "1", "--zarr-format", str(fmt)), store, key, out=out)


# ------------------------------------------------------------------ links, FIFOs and files that are not chunks


def test_level_0_copies_only_the_arrays_own_files_and_follows_no_link(tmp_path):
    """Files beside the array's keys (a note, a link to /etc/passwd) are not copied; level 0
    holds the metadata and chunk files only, byte for byte."""
    store = tmp_path / "in.zarr"
    make_store(store, shape=(64, 64))
    os.symlink("/etc/passwd", store / "notes.txt")
    (store / "readme.txt").write_text("not a chunk")
    (store / "9.9").write_bytes(b"outside the grid")
    out = tmp_path / "p.zarr"
    result = run("pyramid", store, "-o", out, "--levels", "1")
    assert result.code == 0 and result.err_lines == [], result
    copied = sorted(str(p.relative_to(out / "0")) for p in (out / "0").rglob("*") if not p.is_dir())
    assert copied == sorted([".zarray", ".zattrs"] + [f"{i}/{j}" for i in range(4) for j in range(4)]), copied
    assert not any(p.is_symlink() for p in out.rglob("*"))
    np.testing.assert_array_equal(zarr.open_array(str(out / "0"), mode="r")[...], numbers((64, 64)))


@pytest.mark.parametrize("command", ["pool", "pyramid"])
@pytest.mark.parametrize("where", ["chunk", "row"])
def test_a_chunk_or_chunk_row_behind_a_link_is_refused(tmp_path, command, where):
    """A chunk file, or a folder of nested chunk keys, that is a symbolic link (here to a copy of
    itself outside the store): refused, never read as zeros or followed."""
    store = tmp_path / "in.zarr"
    array = make_store(store, shape=(64, 64), separator="/")
    key = array.metadata.encode_chunk_key((1, 2))
    moved = key if where == "chunk" else key.split("/")[0]
    shutil.move(store / moved, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", store / moved)
    out = tmp_path / ("out.npy" if command == "pool" else "p.zarr")
    arguments = ("-m", "max") if command == "pool" else ("--levels", "1")
    line = check_refused(run(command, store, "-o", out, *arguments), store, out=out)
    assert "symbolic link" in line, line


@pytest.mark.parametrize("command", ["pool", "pyramid"])
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_chunk_that_is_a_fifo_or_a_folder_is_refused_at_once(tmp_path, command, kind):
    """Not a regular file: a FIFO no one writes to (which hung forever) or a folder (which was
    blamed on the output): one line naming the store and the chunk, within seconds."""
    store = tmp_path / "in.zarr"
    array = make_store(store, shape=(64, 64))
    key = array.metadata.encode_chunk_key((1, 1))
    (store / key).unlink()
    os.mkfifo(store / key) if kind == "fifo" else (store / key).mkdir()
    out = tmp_path / ("out.npy" if command == "pool" else "p.zarr")
    arguments = ("-m", "max") if command == "pool" else ("--levels", "1")
    line = check_refused(run(command, store, "-o", out, *arguments), store, key, out=out)
    assert kind.upper() in line.upper(), line


ZARR_OWN_LAYOUTS = {  # read by zarr itself, not by the chunk-file reader
    "sharded": lambda p: zarr.create_array(store=str(p), shape=(64, 64), chunks=(8, 8), shards=(32, 32), dtype="u1",
                                           zarr_format=3),
    "fortran": lambda p: zarr.create_array(store=str(p), shape=(64, 64), chunks=(32, 32), dtype="u1", zarr_format=2,
                                           order="F"),
    "lzma": lambda p: zarr.create_array(store=str(p), shape=(64, 64), chunks=(32, 32), dtype="u1", zarr_format=2,
                                        compressors=numcodecs.LZMA()),
}


@pytest.mark.parametrize("damage", ["fifo", "link", "garbage"])
@pytest.mark.parametrize("layout", list(ZARR_OWN_LAYOUTS))
def test_layouts_zarr_reads_itself_refuse_damaged_files_too(tmp_path, layout, damage):
    """Sharded, Fortran-ordered or LZMA stores (read by zarr): a shard or chunk that is a FIFO or a
    link is refused before zarr opens it (it would wait forever, or follow the link), and one
    zarr cannot decode is one line naming the store."""
    store = tmp_path / "in.zarr"
    array = ZARR_OWN_LAYOUTS[layout](store)
    array[...] = numbers((64, 64))
    key = array.metadata.encode_chunk_key((1, 0))
    data = (store / key).read_bytes()
    (store / key).unlink()
    if damage == "fifo":
        os.mkfifo(store / key)
    elif damage == "link":
        (tmp_path / "elsewhere").write_bytes(data)
        os.symlink(tmp_path / "elsewhere", store / key)
    else:
        (store / key).write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.npy"
    check_refused(run("pool", store, "-o", out, "-m", "max"), store, *((key,) if damage != "garbage" else ()), out=out)


def test_chunks_never_written_read_as_the_fill_value(tmp_path):
    """A missing chunk file, and a missing folder of nested chunk keys, are legal: the fill value,
    as zarr reads them."""
    store = tmp_path / "in.zarr"
    array = make_store(store, shape=(64, 64), separator="/")
    (store / array.metadata.encode_chunk_key((0, 3))).unlink()
    shutil.rmtree(store / "2")
    out = tmp_path / "out.npy"
    result = run("pool", store, "-o", out, "-m", "max")
    assert result.code == 0 and result.err_lines == [], result
    pooled_as_zarr_reads(store, out)


# ------------------------------------------------------------------ sizes: refused before reading or inflating


def zstd_zeros(count: int, sized: bool = True) -> bytes:
    """A Zstandard frame of `count` zero bytes, as run-length blocks of 128 KiB: about 4 bytes per
    block (32 KB for 1 GiB); stating its size (`sized`), or not (a 128 KiB window instead)."""
    head = b"\xe0" + struct.pack("<Q", count) if sized else b"\x00\x38"  # single segment, 8-byte size
    frame = bytearray(b"\x28\xb5\x2f\xfd" + head)
    block = 128 * 1024
    for start in range(0, count, block):
        size = min(block, count - start)
        last = start + size >= count
        frame += struct.pack("<I", size << 3 | 1 << 1 | last)[:3] + b"\x00"
    return bytes(frame)


def bomb_store(path: Path, chunk: int, data: bytes, compressor) -> Path:
    zarr.create_array(store=str(path), shape=(chunk, chunk), chunks=(chunk, chunk), dtype="u1", zarr_format=2,
                      compressors=compressor, fill_value=0)
    (path / "0.0").write_bytes(data)
    return path


@pytest.mark.parametrize("command", ["pool", "pyramid"])
def test_a_chunk_larger_than_the_budget_is_refused_from_its_metadata(tmp_path, command):
    """One 32768 x 32768 chunk (1 GiB) stored as 32 KB of Zstandard: refused before it is read
    (it took 1.1 GB and minutes, decoded again for every band), naming --memory."""
    store = bomb_store(tmp_path / "in.zarr", 32768, zstd_zeros(GiB), numcodecs.Zstd())
    assert (store / "0.0").stat().st_size < 40_000
    out = tmp_path / ("out.npy" if command == "pool" else "p.zarr")
    arguments = ("-m", "max") if command == "pool" else ("--levels", "1")
    line = check_refused(run(command, store, "-o", out, *arguments), store, out=out)
    assert "--memory" in line, line


@pytest.mark.parametrize("codec", ["zlib", "gzip", "zstd"])
def test_a_chunk_that_inflates_past_its_size_is_cut_at_one_byte_more(tmp_path, codec):
    """A 1024 x 1024 chunk (1 MiB) whose stream inflates to 512 MiB: the decoder is asked for one
    byte more than a chunk and refuses (zlib inflated all of it, 2.15 GB for 1 GiB)."""
    data = {"zlib": lambda: hostile.deflate_zeros(512 * MiB, wrapper="zlib"),
            "gzip": lambda: b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + hostile.deflate_zeros(512 * MiB)
            + struct.pack("<II", hostile.crc32_zeros(512 * MiB), (512 * MiB) & 0xFFFFFFFF),
            "zstd": lambda: zstd_zeros(512 * MiB, sized=False)}[codec]()
    store = bomb_store(tmp_path / "in.zarr", 1024, data, V2_CODECS[codec])
    out = tmp_path / "out.npy"
    check_refused(run("pool", store, "-o", out, "-m", "max"), store, "0.0", out=out)


def test_an_uncompressed_chunk_of_the_wrong_size_is_not_read(tmp_path):
    """An uncompressed 16 x 16 chunk whose file is 8 GiB (sparse): refused from its size (it was
    read whole into an 8 GiB buffer)."""
    store = tmp_path / "in.zarr"
    array = make_store(store, codec="none")
    key = array.metadata.encode_chunk_key((0, 1))
    os.truncate(store / key, 8 * GiB)
    out = tmp_path / "out.npy"
    line = check_refused(run("pool", store, "-o", out, "-m", "max"), store, key, out=out)
    assert "8,589,934,592 bytes" in line, line


def test_a_pyramid_of_a_huge_store_is_refused_from_sizes(tmp_path):
    """A 2^31 x 2^31 store (metadata only): refused at once from its sizes (it took 3.4 GB and
    20 s before running out of memory)."""
    store = tmp_path / "big.zarr"
    zarr.create_array(store=str(store), shape=(2**31, 2**31), chunks=(1024, 1024), dtype="u1", zarr_format=2)
    out = tmp_path / "p.zarr"
    line = check_refused(run("pyramid", store, "-o", out), store, out=out)
    assert "--memory" in line, line


# ------------------------------------------------------------------ damaged metadata


def v2_metadata(path: Path, **changes) -> Path:
    path.mkdir()
    metadata = {"zarr_format": 2, "shape": [16, 16], "chunks": [8, 8], "dtype": "|u1", "compressor": None,
                "fill_value": 0, "order": "C", "filters": None, **changes}
    (path / ".zarray").write_text(json.dumps(metadata))
    return path


def ome_group(path: Path, multiscales) -> Path:
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", shape=(16, 16), chunks=(8, 8), dtype="u1")
    group.create_group("labels")
    group.attrs["multiscales"] = multiscales
    return path


def fifo_instead(path: Path, name: str) -> Path:
    (path / name).unlink()
    os.mkfifo(path / name)
    return path


DAMAGED = {
    "zero chunks": (lambda p: v2_metadata(p, chunks=[0, 0]), ()),
    "2^40 chunks": (lambda p: v2_metadata(p, chunks=[2**40, 2**40]), ()),
    "chunks of another rank": (lambda p: v2_metadata(p, chunks=[8]), ()),
    "multiscales oops": (lambda p: ome_group(p, "oops"), ()),
    "no datasets": (lambda p: ome_group(p, [{"name": "x"}]), ()),
    "empty datasets": (lambda p: ome_group(p, [{"datasets": []}]), ()),
    "dataset path a number": (lambda p: ome_group(p, [{"datasets": [{"path": 5}]}]), ()),
    "dataset a group": (lambda p: ome_group(p, [{"datasets": [{"path": "0"}]}]), ("--dataset", "labels")),
    "dataset missing": (lambda p: ome_group(p, [{"datasets": [{"path": "0"}]}]), ("--dataset", "nope")),
    "dataset outside": (lambda p: ome_group(p, [{"datasets": [{"path": "0"}]}]), ("--dataset", "../other")),
    "metadata a FIFO": (lambda p: fifo_instead(v2_metadata(p), ".zarray"), ()),
    "dataset metadata a FIFO": (lambda p: fifo_instead(ome_group(p, [{"datasets": [{"path": "0"}]}]), "0/.zarray"),
                                ()),
}


@pytest.mark.parametrize("command", ["pool", "pyramid", "info"])
@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_metadata_is_one_line_naming_the_store(tmp_path, case, command):
    make, extra = DAMAGED[case]
    store = make(tmp_path / "in.zarr")
    out = tmp_path / ("out.npy" if command == "pool" else "p.zarr")
    arguments = {"pool": ("-o", out), "pyramid": ("-o", out, "--levels", "1"), "info": ()}[command]
    line = check_refused(run(command, store, *arguments, *extra), store, out=out)
    assert "unexpected" not in line, line
