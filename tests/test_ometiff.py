"""Pyramidal TIFF and OME-TIFF outputs that the next tool reads right (issue #24, the TIFF side):
the default compression every TIFF reader decodes (OpenCV, Pillow, GDAL, libvips), OME-XML with
SubIFD levels, reduced levels GDAL lists as overviews, C x H x W as a planar multi-channel TIFF,
the pixel size carried from input to every level, `--compression` honoured or refused (exit 2)
by each store's record, `pyramid` of PNG and JPEG, and `info` listing a pyramid's levels.

Real readers throughout: tifffile, OpenCV, Pillow, `gdalinfo` and `vips` (Debian's gdal-bin and
libvips-tools, which `.ci/run` installs), and real `python -m poolcli` runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import cv2
import hostile
import numpy as np
import pytest
import tifffile
from PIL import Image
from test_hostile import assert_one_error_line

from poolcli import io, pool
from poolcli.core.calibration import Calibration
from poolcli.core.spec import PoolSpec
from poolcli.errors import OutputError
from poolcli.stream import Pyramid, StoreOptions, build_pyramid, open_source, pool_to

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PER_CM = 40000  # pixels per centimeter of the calibrated input: 0.25 micrometer pixels


def cli(*args) -> hostile.Run:
    result = hostile.run(*args)
    assert not result.timed_out, result
    return result


def ok(*args) -> hostile.Run:
    result = cli(*args)
    assert result.code == 0, result
    assert result.err_lines == [], result
    return result


def photo(height: int = 600, width: int = 520) -> np.ndarray:
    rng = np.random.default_rng(24)
    ramp = np.add.outer(np.arange(height), np.arange(width))[:, :, None] // 5
    return ((ramp + rng.integers(0, 40, (height, width, 3))) % 256).astype(np.uint8)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> Path:
    """A tiled RGB TIFF at 40000 pixels per centimeter."""
    path = tmp_path_factory.mktemp("in") / "slide.tif"
    tifffile.imwrite(path, photo(), tile=(128, 128), photometric="rgb", resolution=(PER_CM, PER_CM),
                     resolutionunit="CENTIMETER")
    return path


@pytest.fixture(scope="module")
def default_pyramid(calibrated, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("out") / "slide_pyramid.tif"
    ok("pyramid", calibrated, "-o", target, "--levels", "2")
    return target


def levels_of(path: Path) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tiff:
        return [level.asarray() for level in tiff.series[0].levels]


def assert_exact_levels(path: Path, level0: np.ndarray, spatial=(0, 1)) -> None:
    """Level k is, bit for bit, the engine's avg pooling of level 0 with a 2^k window."""
    levels = levels_of(path)
    assert len(levels) >= 2
    assert levels[0].dtype == level0.dtype and np.array_equal(levels[0], level0)
    for k, level in enumerate(levels[1:], start=1):
        expected = pool(level0, 2 ** k, axes=spatial, mode="avg", dtype=level0.dtype)
        assert level.shape == expected.shape and level.dtype == expected.dtype
        assert np.array_equal(level, expected), f"level {k} differs"


def page_facts(path: Path) -> list[tuple]:
    """(compression, predictor, resolution, unit) of each level."""
    with tifffile.TiffFile(path) as tiff:
        return [(level.keyframe.compression, level.keyframe.predictor, level.keyframe.get_resolution(),
                 level.keyframe.resolutionunit) for level in tiff.series[0].levels]


# ------------------------------------------------------------------ the default pyramidal TIFF


def test_default_pyramid_is_deflate_with_the_predictor_and_every_level_exact(default_pyramid, calibrated):
    facts = page_facts(default_pyramid)
    assert [f[0] for f in facts] == [tifffile.COMPRESSION.ADOBE_DEFLATE] * 3
    assert [f[1] for f in facts] == [tifffile.PREDICTOR.HORIZONTAL] * 3
    with tifffile.TiffFile(default_pyramid) as tiff:
        assert not tiff.is_ome
        assert len(tiff.pages) == 1  # the reduced levels are sub-IFDs of page 0
    assert_exact_levels(default_pyramid, tifffile.imread(calibrated))


def test_every_reader_decodes_the_default_pyramid(default_pyramid, calibrated, tmp_path):
    """OpenCV and Pillow decode level 0; GDAL lists the reduced levels as overviews and libvips
    reads each sub-IFD (where gdal-bin and libvips-tools are installed, as `.ci/run` does)."""
    expected = tifffile.imread(calibrated)
    decoded = cv2.imread(str(default_pyramid), cv2.IMREAD_UNCHANGED)
    assert decoded is not None, "OpenCV cannot decode the default pyramidal TIFF"
    assert np.array_equal(decoded[:, :, ::-1], expected)
    with Image.open(default_pyramid) as image:
        assert np.array_equal(np.asarray(image), expected)
    if shutil.which("gdalinfo"):
        report = subprocess.run(["gdalinfo", str(default_pyramid)], capture_output=True, text=True, check=True).stdout
        assert "Size is 520, 600" in report and "COMPRESSION=DEFLATE" in report
        assert "Overviews: 260x300, 130x150" in report
    if shutil.which("vips"):
        for index, (width, height) in enumerate([(260, 300), (130, 150)]):
            out = tmp_path / f"level{index + 1}.png"
            subprocess.run(["vips", "copy", f"{default_pyramid}[subifd={index}]", str(out)], check=True,
                           capture_output=True)
            with Image.open(out) as image:
                assert image.size == (width, height)
                assert np.array_equal(np.asarray(image), pool(expected, 2 ** (index + 1), axes=(0, 1), mode="avg",
                                                              dtype=np.uint8))


def test_resolution_of_level_k_is_the_inputs_divided_by_2_to_the_k(default_pyramid):
    facts = page_facts(default_pyramid)
    assert [f[2] for f in facts] == [(PER_CM, PER_CM), (PER_CM / 2, PER_CM / 2), (PER_CM / 4, PER_CM / 4)]
    assert [f[3] for f in facts] == [tifffile.RESUNIT.CENTIMETER] * 3


# ------------------------------------------------------------------ OME-TIFF


def ome_pixels(path: Path) -> ElementTree.Element:
    with tifffile.TiffFile(path) as tiff:
        assert tiff.is_ome, f"{path} is no OME-TIFF"
        root = ElementTree.fromstring(tiff.ome_metadata)
    return next(element for element in root.iter() if element.tag.endswith("}Pixels"))


@pytest.mark.parametrize("name, flags", [("slide.ome.tif", ()), ("slide.tif", ("--ome",))])
def test_ome_tiff_pyramid_with_sub_ifd_levels_and_physical_size(calibrated, tmp_path, name, flags):
    target = tmp_path / name
    ok("pyramid", calibrated, "-o", target, "--levels", "2", *flags)
    with tifffile.TiffFile(target) as tiff:
        assert tiff.is_ome
        assert [level.shape for level in tiff.series[0].levels] == [(600, 520, 3), (300, 260, 3), (150, 130, 3)]
    pixels = ome_pixels(target)
    assert pixels.attrib["DimensionOrder"] == "XYCZT"
    assert float(pixels.attrib["PhysicalSizeX"]) == 1 / PER_CM and pixels.attrib["PhysicalSizeXUnit"] == "cm"
    assert float(pixels.attrib["PhysicalSizeY"]) == 1 / PER_CM and pixels.attrib["PhysicalSizeYUnit"] == "cm"
    channels = [c for c in pixels if c.tag.endswith("}Channel")]
    assert [c.attrib.get("Name") for c in channels] == ["RGB"]
    assert [f[2] for f in page_facts(target)] == [(PER_CM, PER_CM), (PER_CM / 2, PER_CM / 2),
                                                  (PER_CM / 4, PER_CM / 4)]
    assert_exact_levels(target, tifffile.imread(calibrated))


def test_ome_tiff_input_keeps_its_physical_size_in_micrometers(tmp_path):
    source = tmp_path / "cells.ome.tif"
    plane = (np.arange(512 * 384, dtype=np.uint32).reshape(512, 384) % 4096).astype(np.uint16)
    tifffile.imwrite(source, plane, ome=True, metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    with open_source(source) as data:
        assert data.calibration == Calibration(("y", "x"), (0.5, 0.5), (0.0, 0.0), ("micrometer", "micrometer"))
    target = tmp_path / "cells_pyramid.ome.tif"
    ok("pyramid", source, "-o", target, "--levels", "1")
    pixels = ome_pixels(target)
    assert (pixels.attrib["PhysicalSizeX"], pixels.attrib["PhysicalSizeXUnit"]) == ("0.5", "µm")
    assert [f[2] for f in page_facts(target)] == [(20000, 20000), (10000, 10000)]  # per centimeter
    assert_exact_levels(target, plane)


def test_channels_first_array_is_a_planar_multichannel_tiff(tmp_path):
    source = tmp_path / "chw.npy"
    array = np.random.default_rng(3).integers(0, 60000, (3, 300, 280)).astype(np.uint16)
    np.save(source, array)
    plain, ome = tmp_path / "chw.tif", tmp_path / "chw.ome.tif"
    ok("pyramid", source, "-o", plain, "--levels", "2")
    ok("pyramid", source, "-o", ome, "--levels", "2")
    with tifffile.TiffFile(plain) as tiff:
        page = tiff.pages[0]
        assert page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and page.samplesperpixel == 3
    for target in (plain, ome):
        assert_exact_levels(target, array, spatial=(1, 2))
    names = [c.attrib["Name"] for c in ome_pixels(ome) if c.tag.endswith("}Channel")]
    assert names == ["Channel 0", "Channel 1", "Channel 2"]
    if shutil.which("gdalinfo"):
        report = subprocess.run(["gdalinfo", str(plain)], capture_output=True, text=True, check=True).stdout
        assert report.count("Overviews: 140x150, 70x75") == 3 and "Band 3" in report


# ------------------------------------------------------------------ calibration


def test_tiff_source_reads_resolution_as_calibration(calibrated):
    with open_source(calibrated) as data:
        assert data.calibration == Calibration(("y", "x", "c"), (1 / PER_CM, 1 / PER_CM, 1.0), (0.0,) * 3,
                                               ("centimeter", "centimeter", ""))


def test_pooled_tiff_keeps_resolution_divided_by_the_factor(calibrated, tmp_path):
    in_memory, streamed = tmp_path / "half.tif", tmp_path / "quarter.tif"
    ok("pool", calibrated, "-o", in_memory, "-m", "avg")
    ok("pool", calibrated, "-o", streamed, "-m", "avg", "-k", "4", "--memory", "16MB")
    assert page_facts(in_memory)[0][2:] == ((PER_CM / 2, PER_CM / 2), tifffile.RESUNIT.CENTIMETER)
    assert page_facts(streamed)[0][2:] == ((PER_CM / 4, PER_CM / 4), tifffile.RESUNIT.CENTIMETER)
    expected = pool(tifffile.imread(calibrated), 4, axes=(0, 1), mode="avg", dtype=np.uint8)
    assert np.array_equal(tifffile.imread(streamed), expected)
    half = pool(tifffile.imread(calibrated), 2, axes=(0, 1), mode="avg", dtype=np.uint8)
    for target, pixels in ((streamed, expected), (in_memory, half)):  # default TIFFs every reader decodes
        assert np.array_equal(cv2.imread(str(target), cv2.IMREAD_UNCHANGED)[:, :, ::-1], pixels)
        with Image.open(target) as image:
            assert np.array_equal(np.asarray(image), pixels)


def test_writer_records_the_calibration_it_is_given(tmp_path):
    source = tmp_path / "plane.npy"
    np.save(source, np.arange(256 * 256, dtype=np.uint16).reshape(256, 256))
    calibration = Calibration(("y", "x"), (0.5, 0.25), (0.0, 0.0), ("micrometer", "micrometer"))
    options = StoreOptions(calibration=calibration)
    with open_source(source) as data:
        build_pyramid(data, tmp_path / "p.ome.tif", Pyramid(data.shape, (0, 1), 1), options=options)
        pool_to(data, tmp_path / "pooled.tif", PoolSpec(window=2, axes=(0, 1)), None, options=options)
    pixels = ome_pixels(tmp_path / "p.ome.tif")
    assert (float(pixels.attrib["PhysicalSizeX"]), float(pixels.attrib["PhysicalSizeY"])) == (0.25, 0.5)
    assert [f[2] for f in page_facts(tmp_path / "p.ome.tif")] == [(40000, 20000), (20000, 10000)]
    assert page_facts(tmp_path / "pooled.tif")[0][2] == (40000, 20000)  # as given: the writer pools nothing


# ------------------------------------------------------------------ --compression, each store's record


@pytest.mark.parametrize("compression, code", [("zlib", tifffile.COMPRESSION.ADOBE_DEFLATE),
                                                ("zstd", tifffile.COMPRESSION.ZSTD),
                                                ("none", tifffile.COMPRESSION.NONE)])
def test_compression_is_honoured_by_every_tiff_path(calibrated, tmp_path, compression, code):
    in_memory, streamed, pyramid = tmp_path / "a.tif", tmp_path / "b.tif", tmp_path / "c.tif"
    ok("pool", calibrated, "-o", in_memory, "--compression", compression)
    ok("pool", calibrated, "-o", streamed, "--compression", compression, "-k", "4", "--memory", "16MB")
    ok("pyramid", calibrated, "-o", pyramid, "--levels", "1", "--compression", compression)
    for target in (in_memory, streamed, pyramid):
        assert {f[0] for f in page_facts(target)} == {code}, target
    assert_exact_levels(pyramid, tifffile.imread(calibrated))


@pytest.mark.parametrize("command, output, flags, names", [
    ("pyramid", "out.tif", ("--compression", "lz4"), ("out.tif", "lz4", "zlib, zstd, none")),
    ("pool", "out.tif", ("--compression", "lz4"), ("out.tif", "lz4")),
    ("pool", "out.png", ("--compression", "zlib"), ("out.png", "--compression")),
    ("pool", "out.jpg", ("--compression", "zstd"), ("out.jpg", "--compression")),
    ("pool", "out.npy", ("--compression", "zstd"), ("out.npy", "--compression")),
    ("pyramid", "out.zarr", ("--compression", "brotli"), ("out.zarr", "brotli")),
    ("pool", "out.png", ("--ome",), ("out.png", "--ome")),
    ("pyramid", "out.zarr", ("--ome",), ("out.zarr", "--ome")),
])
def test_store_options_an_output_cannot_take_are_refused_with_exit_2(calibrated, tmp_path, command, output, flags,
                                                                     names):
    result = cli(command, calibrated, "-o", tmp_path / output, *flags)
    assert result.code == 2, result
    assert_one_error_line(result, *names)
    assert list(tmp_path.iterdir()) == []


def test_pooled_in_memory_ome_tiff(calibrated, tmp_path):
    """`pool -o x.ome.tif` (pooled in memory) is an OME-TIFF with the pooled pixel size."""
    target = tmp_path / "half.ome.tif"
    ok("pool", calibrated, "-o", target, "-m", "avg", "--compression", "zlib")
    pixels = ome_pixels(target)
    assert float(pixels.attrib["PhysicalSizeX"]) == 2 / PER_CM and pixels.attrib["PhysicalSizeXUnit"] == "cm"
    assert page_facts(target)[0][:1] + page_facts(target)[0][2:] == (
        tifffile.COMPRESSION.ADOBE_DEFLATE, (PER_CM / 2, PER_CM / 2), tifffile.RESUNIT.CENTIMETER)
    assert np.array_equal(tifffile.imread(target), pool(tifffile.imread(calibrated), 2, axes=(0, 1), mode="avg",
                                                        dtype=np.uint8))


def test_library_refuses_a_compression_the_store_lacks(calibrated, tmp_path):
    with open_source(calibrated) as data, pytest.raises(OutputError, match="lz4"):
        pool_to(data, tmp_path / "out.tif", PoolSpec(window=2, axes=(0, 1)), None,
                options=StoreOptions(compression="lz4"))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ images, info


@pytest.mark.parametrize("sample, target", [("astronaut.jpg", "astronaut.tif"),
                                            ("coffee_gray16.png", "coffee.ome.tif"),
                                            ("camera.png", "camera.zarr")])
def test_pyramid_of_png_and_jpeg(tmp_path, sample, target):
    ok("pyramid", SAMPLES / sample, "-o", tmp_path / target, "--levels", "1")
    level0 = io.load(SAMPLES / sample).array
    if target.endswith(".zarr"):  # a gray image: its one channel, whichever axis holds it
        import zarr

        group = zarr.open_group(str(tmp_path / target), mode="r")
        assert np.array_equal(np.asarray(group["1"]).squeeze(),
                              pool(level0, 2, axes=(0, 1), mode="avg", dtype=level0.dtype).squeeze())
        return
    squeezed = level0.shape[2] == 1 and ".ome." in target  # OME-XML has no axis of one sample
    assert_exact_levels(tmp_path / target, level0[..., 0] if squeezed else level0)


def test_pyramid_of_an_image_larger_than_memory_is_refused(tmp_path):
    result = cli("pyramid", SAMPLES / "astronaut.jpg", "-o", tmp_path / "a.tif", "--memory", "1MB")
    assert result.code == 2, result  # --memory below the floor is usage
    source = tmp_path / "wide.png"
    Image.fromarray(np.zeros((3000, 3000, 3), np.uint8)).save(source)
    result = cli("pyramid", source, "-o", tmp_path / "wide.tif", "--memory", "16MB")
    assert result.code == 1, result
    assert_one_error_line(result, "wide.png", "--memory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.png"]


def test_info_lists_the_levels_of_a_pyramidal_tiff(default_pyramid, calibrated):
    description = json.loads(ok("info", default_pyramid, "--json").out)
    levels = description["levels"]
    assert [level["shape"] for level in levels] == [[600, 520, 3], [300, 260, 3], [150, 130, 3]]
    assert [level["compression"] for level in levels] == ["adobe_deflate"] * 3
    assert [level["pixel_size"] for level in levels] == [[1 / PER_CM] * 2, [2 / PER_CM] * 2, [4 / PER_CM] * 2]
    assert {level["unit"] for level in levels} == {"centimeter"}
    text = ok("info", default_pyramid).out.decode()
    assert "pyramid: 3 levels" in text and "150x130x3" in text
    assert json.loads(ok("info", calibrated, "--json").out)["levels"] == []


def test_lying_resolution_and_physical_size_are_no_calibration_and_no_failure(tmp_path):
    """Resolution tags of 0 or absurd size, a malformed OME PhysicalSize: read as no calibration (or
    a clamped one), never a crash; the pyramid and the pooled TIFF are still written."""
    plane = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)
    zero, huge, bad_ome = tmp_path / "zero.tif", tmp_path / "huge.tif", tmp_path / "bad.ome.tif"
    tifffile.imwrite(zero, plane, resolution=((0, 1), (0, 1)), resolutionunit="CENTIMETER")
    tifffile.imwrite(huge, plane, resolution=((2 ** 32 - 1, 1), (1, 2 ** 32 - 1)), resolutionunit="INCH")
    tifffile.imwrite(bad_ome, plane, ome=True, metadata={"axes": "YX", "PhysicalSizeX": "abc", "PhysicalSizeY": -1})
    for source in (zero, bad_ome):
        with open_source(source) as data:
            assert data.calibration is None
        assert io.load(source).calibration is None
    with open_source(huge) as data:
        assert data.calibration is not None and data.calibration.units[:2] == ("inch", "inch")
    for source in (zero, huge, bad_ome):
        ok("pyramid", source, "-o", tmp_path / f"{source.stem}_pyramid.tif", "--levels", "1")
        ok("pool", source, "-o", tmp_path / f"{source.stem}_pooled.tif")
        assert_exact_levels(tmp_path / f"{source.stem}_pyramid.tif", plane)
    x_resolution, y_resolution = page_facts(tmp_path / "huge_pyramid.tif")[1][2]
    assert 0 < x_resolution < 2 ** 32 and 0 < y_resolution < 2 ** 32
