"""`--nodata` at the command line's boundary, and nodata in files: a TIFF's GDAL_NODATA read and
written (gdalinfo reads it back), a Zarr array's fill value and "nodata" attribute, a pyramid of
a georaster that needs no flag, streamed outputs equal to in-memory ones, the refusals."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import tifffile
import zarr
from test_cli import assert_one_line_error, run

from poolcli import pool

GDAL_NODATA = 42113
needs_gdal = pytest.mark.skipif(shutil.which("gdalinfo") is None, reason="gdalinfo (gdal-bin) is not installed")


def georaster(path, nodata="-9999", dtype=np.int16):
    """A 40 x 36 raster with a corner of nodata and a few scattered nodata cells."""
    x = (np.arange(40 * 36).reshape(40, 36) % 97).astype(dtype)
    x[:9, :7] = -9999 if nodata in ("-9999", None) else int(nodata)
    x[20::7, 3::5] = x[0, 0]
    tifffile.imwrite(path, x, extratags=[] if nodata is None else [(GDAL_NODATA, "s", 0, nodata, True)])
    return x


def tag(path, page=0) -> str | None:
    with tifffile.TiffFile(path) as tiff:
        pages = [tiff.pages[0], *(tiff.pages[0].pages or [])] if page else [tiff.pages[page]]
        return pages[page].tags.valueof(GDAL_NODATA)


def gdal_nodata(path) -> list[str]:
    info = subprocess.run(["gdalinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return [line.split("=", 1)[1] for line in info.splitlines() if "NoData Value=" in line]


@needs_gdal
def test_a_georasters_nodata_is_read_used_and_written(tmp_path, capsys):
    x = georaster(tmp_path / "dem.tif")
    code, _, err = run(capsys, "pool", tmp_path / "dem.tif", "-o", tmp_path / "small.tif", "-m", "avg")
    assert code == 0, err
    written = tifffile.imread(tmp_path / "small.tif")
    assert np.array_equal(written, pool(x, 2, mode="avg", nodata=-9999, dtype=np.int16))
    assert written[0, 0] == -9999 and tag(tmp_path / "small.tif") == "-9999"
    assert gdal_nodata(tmp_path / "small.tif") == ["-9999"]


def test_none_ignores_what_the_input_declares_and_a_number_overrides_it(tmp_path, capsys):
    x = georaster(tmp_path / "dem.tif")
    source = tmp_path / "dem.tif"
    assert run(capsys, "pool", source, "-o", tmp_path / "plain.tif", "-m", "min", "--nodata", "none")[0] == 0
    assert np.array_equal(tifffile.imread(tmp_path / "plain.tif"), pool(x, 2, mode="min"))
    assert tag(tmp_path / "plain.tif") is None
    assert run(capsys, "pool", tmp_path / "dem.tif", "-o", tmp_path / "zero.tif", "-m", "min", "--nodata", "0")[0] == 0
    assert np.array_equal(tifffile.imread(tmp_path / "zero.tif"), pool(x, 2, mode="min", nodata=0))
    assert tag(tmp_path / "zero.tif") == "0"


def test_a_declared_nodata_the_dtype_cannot_hold_marks_no_cell(tmp_path, capsys):
    x = (np.arange(64).reshape(8, 8) % 200).astype(np.uint8)
    tifffile.imwrite(tmp_path / "u8.tif", x, extratags=[(GDAL_NODATA, "s", 0, "-9999", True)])
    assert run(capsys, "pool", tmp_path / "u8.tif", "-o", tmp_path / "out.npy", "-m", "max")[0] == 0
    assert np.array_equal(np.load(tmp_path / "out.npy"), pool(x[..., None], 2, axes=(0, 1)))


@needs_gdal
@pytest.mark.parametrize("mode", ["avg", "max"])
def test_a_pyramid_of_a_georaster_needs_no_flag(tmp_path, capsys, mode):
    x = georaster(tmp_path / "dem.tif")
    code, _, err = run(capsys, "pyramid", tmp_path / "dem.tif", "-o", tmp_path / "pyr.tif", "--levels", "2",
                       "-m", mode, "--memory", "16MB")
    assert code == 0, err
    with tifffile.TiffFile(tmp_path / "pyr.tif") as tiff:
        levels = [tiff.pages[0].asarray(), *(page.asarray() for page in tiff.pages[0].pages)]
        tags = [tiff.pages[0].tags.valueof(GDAL_NODATA), *(p.tags.valueof(GDAL_NODATA) for p in tiff.pages[0].pages)]
    for k, level in enumerate(levels[1:], start=1):
        assert np.array_equal(level, pool(x, 2**k, mode=mode, nodata=-9999, dtype=np.int16)), k
    assert tags == ["-9999"] * 3
    assert gdal_nodata(tmp_path / "pyr.tif")[0] == "-9999"
    info = subprocess.run(["gdalinfo", str(tmp_path / "pyr.tif")], capture_output=True, text=True).stdout
    assert "Overviews: 18x20, 9x10" in info


def test_a_zarr_records_its_nodata_and_a_fill_value_counts_only_when_asked(tmp_path, capsys):
    x = georaster(tmp_path / "dem.tif")
    code, _, err = run(capsys, "pool", tmp_path / "dem.tif", "-o", tmp_path / "small.zarr", "-m", "avg",
                       "--dtype", "float32")
    assert code == 0, err
    stored = zarr.open_array(str(tmp_path / "small.zarr"), mode="r")
    assert stored.fill_value == -9999 and stored.attrs["nodata"] == -9999
    assert np.array_equal(stored[:], pool(x, 2, mode="avg", nodata=-9999, dtype=np.float32))
    # read back: its "nodata" attribute is used without a flag
    assert run(capsys, "pool", tmp_path / "small.zarr", "-o", tmp_path / "again.npy", "-m", "max")[0] == 0
    assert np.array_equal(np.load(tmp_path / "again.npy"), pool(stored[:], 2, nodata=-9999))
    # a plain Zarr's fill value is no nodata unless --nodata fill says so
    plain = zarr.create_array(store=str(tmp_path / "plain.zarr"), shape=x.shape, chunks=(8, 8), dtype=x.dtype,
                              fill_value=-9999)
    plain[:] = x
    assert run(capsys, "pool", tmp_path / "plain.zarr", "-o", tmp_path / "a.npy", "-m", "min")[0] == 0
    assert run(capsys, "pool", tmp_path / "plain.zarr", "-o", tmp_path / "b.npy", "-m", "min",
               "--nodata", "fill")[0] == 0
    assert np.array_equal(np.load(tmp_path / "a.npy"), pool(x, 2, mode="min"))
    assert np.array_equal(np.load(tmp_path / "b.npy"), pool(x, 2, mode="min", nodata=-9999))


def test_an_ome_zarr_pyramid_records_nodata_in_every_level(tmp_path, capsys):
    x = georaster(tmp_path / "dem.tif")
    code, _, err = run(capsys, "pyramid", tmp_path / "dem.tif", "-o", tmp_path / "pyr.zarr", "--levels", "2",
                       "-m", "avg", "--dtype", "float32")
    assert code == 0, err
    group = zarr.open_group(str(tmp_path / "pyr.zarr"), mode="r")
    for k in (1, 2):
        assert group[str(k)].fill_value == -9999 and group[str(k)].attrs["nodata"] == -9999
        assert np.array_equal(group[str(k)][:], pool(x, 2**k, mode="avg", nodata=-9999, dtype=np.float32))
    assert group.attrs["multiscales"][0]["metadata"]["kwargs"]["nodata"] == -9999


@pytest.mark.parametrize("mode", ["avg", "median", "max", "l2"])
def test_streamed_outputs_are_the_in_memory_bits(tmp_path, capsys, mode):
    x = np.random.default_rng(5).integers(0, 9, (720, 700)).astype(np.uint16)  # 1 MB: streamed within 16MB
    tifffile.imwrite(tmp_path / "big.tif", x, tile=(64, 64), extratags=[(GDAL_NODATA, "s", 0, "3", True)])
    args = ("-m", mode, "-k", "3", "-s", "2", "--dtype", "float64")
    assert run(capsys, "pool", tmp_path / "big.tif", "-o", tmp_path / "memory.tif", *args)[0] == 0
    code, _, err = run(capsys, "pool", tmp_path / "big.tif", "-o", tmp_path / "streamed.tif", *args,
                       "--memory", "16MB")
    assert code == 0, err
    streamed, memory = tifffile.imread(tmp_path / "streamed.tif"), tifffile.imread(tmp_path / "memory.tif")
    assert streamed.tobytes() == memory.tobytes()
    assert tag(tmp_path / "streamed.tif") == tag(tmp_path / "memory.tif") == "3"
    assert np.array_equal(memory, pool(x, 3, 2, mode=mode, nodata=3, dtype=np.float64))
    with tifffile.TiffFile(tmp_path / "streamed.tif") as tiff:
        assert tiff.pages[0].is_tiled  # the streaming sink's tiled BigTIFF, not the in-memory writer's


def test_batch_takes_nodata(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    x = np.arange(36.0).reshape(6, 6)
    x[:2, :2] = -1
    np.save(tmp_path / "in" / "a.npy", x)
    code, _, err = run(capsys, "batch", tmp_path / "in", "-d", tmp_path / "out", "-m", "avg", "--nodata", "-1")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "out" / "a.npy"), pool(x, 2, mode="avg", nodata=-1))


@pytest.mark.parametrize(("args", "code", "words"), [
    (("--nodata", "abc"), 2, ("--nodata 'abc' is not a number",)),
    (("--nodata", "70000"), 1, ("--nodata 70000 cannot be held by the input's dtype int16",)),
    (("--nodata", "0.5"), 1, ("--nodata 0.5 cannot be held",)),
])
def test_bad_nodata_is_one_line(tmp_path, capsys, args, code, words):
    np.save(tmp_path / "a.npy", np.zeros((4, 4), np.int16))
    found, out, err = run(capsys, "pool", tmp_path / "a.npy", "-o", tmp_path / "b.npy", *args)
    assert found == code
    assert_one_line_error(err, *words)
    assert not (tmp_path / "b.npy").exists()


def test_info_says_which_nodata_pooling_skips(tmp_path, capsys):
    georaster(tmp_path / "dem.tif")
    for args, expected in (((), -9999), (("--nodata", "none"), None), (("--nodata", "nan"), None)):
        code, out, err = run(capsys, "info", tmp_path / "dem.tif", "--json", *args)
        if args[-1:] == ("nan",):  # NaN is no int16
            assert code == 1 and "--nodata nan cannot be held" in err
            continue
        assert code == 0, err
        assert json.loads(out)["arrays"]["array"]["nodata"] == expected
    code, out, err = run(capsys, "info", tmp_path / "dem.tif")
    assert code == 0 and "  nodata -9999  -> output (20, 18, 1)" in out, (out, err)


@pytest.mark.parametrize(("text", "expected"), [("abc", None), ("", None), ("1e999", None), ("9" * 5000, None),
                                                ("  -9999  ", -9999), ("nan", None), ("-9999.0", -9999)])
def test_any_gdal_nodata_text_is_a_number_or_nothing(tmp_path, capsys, text, expected):
    """A tag a hostile or careless writer filled: a number the dtype holds is used, anything else is
    no nodata, never a failure or a traceback."""
    x = georaster(tmp_path / "dem.tif", nodata=None)
    with tifffile.TiffWriter(tmp_path / "odd.tif") as tiff:
        tiff.write(x, extratags=[(GDAL_NODATA, "s", 0, text or " ", True)])
    code, out, err = run(capsys, "info", tmp_path / "odd.tif", "--json")
    assert code == 0, err
    assert json.loads(out)["arrays"]["array"]["nodata"] == expected
    assert run(capsys, "pool", tmp_path / "odd.tif", "-o", tmp_path / "out.npy", "-m", "avg")[0] == 0
    assert np.array_equal(np.load(tmp_path / "out.npy")[..., 0], pool(x, 2, mode="avg", nodata=expected))


@pytest.mark.parametrize("attribute", [[1], {"a": 1}, True, 10**30, "junk", None])
def test_a_zarr_nodata_attribute_that_is_no_number_the_dtype_holds_is_none(tmp_path, capsys, attribute):
    x = np.arange(64, dtype=np.int16).reshape(8, 8)
    array = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=x.shape, chunks=(4, 4), dtype=x.dtype,
                              attributes={"nodata": attribute})
    array[:] = x
    code, _, err = run(capsys, "pool", tmp_path / "x.zarr", "-o", tmp_path / "y.npy", "-m", "avg")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "y.npy"), pool(x, 2, mode="avg"))


def test_a_bool_zarrs_fill_value_is_its_nodata_when_asked(tmp_path, capsys):
    x = np.eye(8, dtype=bool)
    zarr.create_array(store=str(tmp_path / "x.zarr"), shape=x.shape, chunks=(4, 4), dtype=bool, fill_value=False)[:] = x
    code, _, err = run(capsys, "pool", tmp_path / "x.zarr", "-o", tmp_path / "y.npy", "-m", "min", "--nodata", "fill")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "y.npy"), pool(x, 2, mode="min", nodata=0))


def test_a_huge_gdal_nodata_tag_costs_nothing_in_a_real_process(tmp_path):
    """A forged 8 MB GDAL_NODATA tag: a real `python -m poolcli` under the hostile tests' memory cap
    and wall limit reads it as no nodata, pools, and leaves only its output."""
    from hostile import run as run_child

    x = np.arange(64, dtype=np.int16).reshape(8, 8)
    tifffile.imwrite(tmp_path / "forged.tif", x, extratags=[(GDAL_NODATA, "s", 0, "9" * (8 << 20), True)])
    done = run_child("pool", tmp_path / "forged.tif", "-o", tmp_path / "out.tif", "-m", "avg", cwd=tmp_path)
    assert done.code == 0 and not done.timed_out, done.err
    assert done.err == b""
    assert np.array_equal(tifffile.imread(tmp_path / "out.tif"), pool(x, 2, mode="avg", dtype=np.int16))
    assert tag(tmp_path / "out.tif") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forged.tif", "out.tif"]


def test_nodata_errors_are_one_line_in_a_real_process(tmp_path):
    from hostile import run as run_child

    np.save(tmp_path / "a.npy", np.zeros((4, 4), np.uint8))
    for args, code, words in ((("--nodata", "-1"), 1, "--nodata -1 cannot be held by the input's dtype uint8"),
                              (("--size", "3x3", "-k", "3"), 2, "--size chooses the windows itself")):
        done = run_child("pool", tmp_path / "a.npy", "-o", tmp_path / "b.npy", *args, cwd=tmp_path)
        lines = done.err.decode().splitlines()
        assert done.code == code and len(lines) == 1 and lines[0].startswith("poolcli: error:"), done.err
        assert words in lines[0] and "Traceback" not in lines[0]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
