"""Tests of poolcli.io: reading and writing images, .npy and .npz, layouts and atomic writes.

Files are made by independent writers (Pillow, OpenCV, NumPy or PNG chunks written
by hand) wherever the test is about reading, so a reader bug cannot hide behind
the same bug in poolcli's writer.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps, JpegImagePlugin

from poolcli import io as pio
from poolcli.errors import InputError, OutputError, PoolError
from poolcli.io import arrays, images, png

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SKIMAGE_DATA = Path(__import__("skimage").__file__).parent / "data"


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


def one_line_naming(error: pytest.ExceptionInfo, path: Path) -> str:
    """The error's message, checked to be one line that names the file."""
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_by_hand(array: np.ndarray, colour_type: int, *, exif: bytes | None = None) -> bytes:
    """A PNG written chunk by chunk: 8- or 16-bit samples, no filter, optional eXIf chunk."""
    height, width = array.shape[:2]
    depth = array.dtype.itemsize * 8
    rows = array.astype(f">u{array.dtype.itemsize}").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    chunks = [png_chunk(b"IHDR", header)]
    if exif is not None:
        chunks.append(png_chunk(b"eXIf", exif))
    chunks += [png_chunk(b"IDAT", zlib.compress(raw)), png_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def folder_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- reading images


def _l(rng):
    return rng.integers(0, 256, (5, 7), dtype=np.uint8)


def _la(rng):
    return rng.integers(0, 256, (5, 7, 2), dtype=np.uint8)


def _rgb(rng):
    return rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _rgba(rng):
    return rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)


def _u16(rng):
    return rng.integers(0, 65536, (5, 7), dtype=np.uint16)


def _i32(rng):
    return rng.integers(-(2**31), 2**31 - 1, (5, 7), dtype=np.int32)


def _f32(rng):
    values = rng.normal(size=(5, 7)).astype(np.float32)
    values[0, 0], values[1, 1] = np.nan, -np.inf
    return values


@pytest.mark.parametrize(
    ("make", "suffix", "mode", "dtype"),
    [
        (_l, ".png", "L", np.uint8),
        (_l, ".tif", "L", np.uint8),
        (_l, ".bmp", "L", np.uint8),
        (_la, ".png", "LA", np.uint8),
        (_la, ".tif", "LA", np.uint8),
        (_rgb, ".png", "RGB", np.uint8),
        (_rgb, ".tif", "RGB", np.uint8),
        (_rgb, ".bmp", "RGB", np.uint8),
        (_rgb, ".webp", "RGB", np.uint8),
        (_rgba, ".png", "RGBA", np.uint8),
        (_rgba, ".tif", "RGBA", np.uint8),
        (_rgba, ".webp", "RGBA", np.uint8),
        (_u16, ".png", "I;16", np.uint16),
        (_u16, ".tif", "I;16", np.uint16),
        (_i32, ".tif", "I", np.int32),
        (_f32, ".tif", "F", np.float32),
    ],
)
def test_load_reads_pillow_files_exactly(tmp_path, rng, make, suffix, mode, dtype):
    pixels = make(rng)
    path = tmp_path / f"image{suffix}"
    options = {"lossless": True, "exact": True} if suffix == ".webp" else {}
    Image.fromarray(pixels).save(path, **options)

    loaded = pio.load(path)

    expected = pixels if pixels.ndim == 3 else pixels[:, :, np.newaxis]
    assert loaded.kind == "image" and loaded.layout == "hwc" and loaded.frames == 1
    assert loaded.source_mode == mode
    assert loaded.array.dtype == dtype and loaded.array.shape == expected.shape
    np.testing.assert_array_equal(loaded.array, expected)


def test_load_big_endian_16_bit_tiff_is_native_uint16(tmp_path, rng):
    pixels = _u16(rng)
    path = tmp_path / "big.tif"
    Image.frombytes("I;16B", pixels.shape[::-1], pixels.astype(">u2").tobytes()).save(path)

    array = pio.load(path).array

    assert array.dtype == np.dtype("uint16") and array.dtype.isnative
    np.testing.assert_array_equal(array[:, :, 0], pixels)


def test_load_bilevel_is_gray_0_or_255(tmp_path):
    bits = np.array([[1, 0, 1], [0, 0, 1]], dtype=bool)
    path = tmp_path / "bits.png"
    Image.fromarray(bits).save(path)

    loaded = pio.load(path)

    assert loaded.source_mode == "1" and loaded.array.dtype == np.uint8
    np.testing.assert_array_equal(loaded.array[:, :, 0], bits * 255)


PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
INDICES = np.array([[0, 1, 2, 0], [2, 1, 0, 1]], dtype=np.uint8)


@pytest.mark.parametrize("transparent", [None, 1])
def test_load_palette_becomes_rgb_or_rgba(tmp_path, transparent):
    image = Image.new("P", INDICES.shape[::-1])
    image.putpalette(PALETTE.ravel().tolist())
    image.putdata(INDICES.ravel().tolist())
    path = tmp_path / "palette.png"
    image.save(path, **({} if transparent is None else {"transparency": transparent}))

    loaded = pio.load(path)

    assert loaded.source_mode == "P"
    np.testing.assert_array_equal(loaded.array[:, :, :3], PALETTE[INDICES])
    if transparent is None:
        assert loaded.array.shape == (2, 4, 3)
    else:
        assert loaded.array.shape == (2, 4, 4)
        np.testing.assert_array_equal(loaded.array[:, :, 3], np.where(INDICES == 1, 0, 255))


def test_load_jpeg_rgb_and_cmyk(tmp_path, rng):
    smooth = np.repeat(np.repeat(_rgb(rng), 8, axis=0), 8, axis=1)  # 8x8 blocks survive JPEG
    rgb_path, cmyk_path = tmp_path / "photo.jpg", tmp_path / "print.jpeg"
    Image.fromarray(smooth).save(rgb_path, quality=98, subsampling=0)
    Image.fromarray(smooth).convert("CMYK").save(cmyk_path, quality=98)

    rgb, cmyk = pio.load(rgb_path), pio.load(cmyk_path)

    assert (rgb.format, rgb.source_mode, cmyk.format, cmyk.source_mode) == (
        "JPEG",
        "RGB",
        "JPEG",
        "CMYK",
    )
    for loaded in (rgb, cmyk):
        assert loaded.array.shape == smooth.shape and loaded.array.dtype == np.uint8
        error = np.abs(loaded.array.astype(int) - smooth).mean()
        assert error < 4, error


@pytest.mark.parametrize(("channels", "colour_type"), [(2, 4), (3, 2), (4, 6)])
def test_load_16_bit_colour_png_keeps_full_depth(tmp_path, rng, channels, colour_type):
    pixels = rng.integers(0, 65536, (6, 5, channels), dtype=np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(png_by_hand(pixels, colour_type))

    loaded = pio.load(path)

    assert loaded.format == "PNG"
    assert loaded.source_mode == {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[channels]
    assert loaded.array.dtype == np.uint16
    np.testing.assert_array_equal(loaded.array, pixels)


@pytest.mark.parametrize("channels", [3, 4])
def test_load_16_bit_colour_tiff_keeps_full_depth(tmp_path, rng, channels):
    pixels = rng.integers(0, 65536, (6, 5, channels), dtype=np.uint16)
    path = tmp_path / "deep.tiff"
    bgr = pixels[:, :, [2, 1, 0, 3][:channels]]
    assert cv2.imwrite(str(path), bgr)

    loaded = pio.load(path)

    assert loaded.format == "TIFF" and loaded.array.dtype == np.uint16
    np.testing.assert_array_equal(loaded.array, pixels)


@pytest.mark.parametrize(("dtype", "channels"), [(np.float64, 1), (np.float64, 3), (np.float32, 4)])
def test_load_float_tiff_that_pillow_cannot_read(tmp_path, rng, dtype, channels):
    pixels = rng.normal(size=(4, 6, channels)).astype(dtype)
    path = tmp_path / "float.tif"
    assert cv2.imwrite(str(path), pixels[:, :, ::-1] if channels == 3 else pixels)
    with pytest.raises(Image.UnidentifiedImageError):  # Pillow cannot, tifffile can
        Image.open(path)

    loaded = pio.load(path)

    assert loaded.format == "TIFF" and loaded.frames == 1
    assert loaded.array.dtype == dtype
    if channels == 4:  # OpenCV writes BGRA; poolcli returns RGBA
        pixels = pixels[:, :, [2, 1, 0, 3]]
    np.testing.assert_array_equal(loaded.array, pixels)


TIFF_WRITES = {  # tifffile.imwrite keywords: the layouts and encodings a TIFF may have
    "planar": dict(planarconfig="separate"),
    "contiguous": dict(planarconfig="contig"),
    "tiled": dict(tile=(16, 16)),
    "lzw": dict(compression="lzw"),
    "deflate": dict(compression="zlib"),
    "bigtiff": dict(bigtiff=True),
    "big-endian": dict(byteorder=">"),
}


@pytest.mark.parametrize("layout", TIFF_WRITES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
def test_load_tiff_of_any_layout_and_depth_through_tifffile(tmp_path, rng, layout, dtype):
    tifffile = pytest.importorskip("tifffile")
    pages = [(rng.normal(size=(3, 20, 24)) * 1000).astype(dtype) for _ in range(3)]  # channels first
    path = tmp_path / "multi.tif"
    options = dict(TIFF_WRITES[layout])
    file_options = {key: options.pop(key) for key in ("bigtiff", "byteorder") if key in options}
    contiguous = options.pop("planarconfig", "separate") == "contig"
    with tifffile.TiffWriter(path, **file_options) as writer:
        for page in pages:
            writer.write(np.moveaxis(page, 0, -1) if contiguous else page, photometric="rgb",
                         planarconfig="contig" if contiguous else "separate", **options)

    for index in (0, 2):
        loaded = pio.load(path, page=index)
        assert loaded.format == "TIFF" and loaded.frames == 3
        assert loaded.array.dtype == np.dtype(dtype) and loaded.array.dtype.isnative
        np.testing.assert_array_equal(loaded.array, np.moveaxis(pages[index], 0, -1))
    with pytest.raises(InputError) as error:
        pio.load(path, page=3)
    assert "page 0..2" in one_line_naming(error, path)  # the keyword; the CLI shows --page


def test_load_real_planar_float64_multipage_tiff(tmp_path):
    real = SKIMAGE_DATA / "multipage_rgb.tif"  # float64 RGB, channels in separate planes, 2 pages
    tifffile = pytest.importorskip("tifffile")
    with tifffile.TiffFile(real) as tiff:
        expected = [np.moveaxis(page.asarray(), 0, -1) for page in tiff.pages]
    for index, pixels in enumerate(expected):
        loaded = pio.load(real, page=index)
        assert loaded.frames == len(expected)
        np.testing.assert_array_equal(loaded.array, pixels)


def test_load_palette_and_cmyk_tiffs_as_pillow_converts_them(tmp_path, rng):
    for mode in ("P", "CMYK", "1"):
        image = Image.fromarray(rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)).convert(mode)
        path = tmp_path / f"{mode}.tif"
        image.save(path)
        expected = np.asarray(image.convert("L" if mode == "1" else "RGB"))
        loaded = pio.load(path)
        np.testing.assert_array_equal(loaded.array.reshape(expected.shape), expected, err_msg=mode)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_load_applies_the_tiff_orientation_tag(tmp_path, rng, orientation):
    tifffile = pytest.importorskip("tifffile")
    pixels = rng.integers(0, 65535, (3, 5), dtype=np.uint16)
    path = tmp_path / "oriented.tif"
    tifffile.imwrite(path, pixels, extratags=[(274, "H", 1, orientation, True)])
    reference = Image.fromarray(pixels.astype(np.int32))
    reference.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(reference))

    np.testing.assert_array_equal(pio.load(path).array[:, :, 0], expected)


# orientation


def test_load_applies_exif_orientation_6_to_jpeg(tmp_path):
    upright = np.zeros((16, 32, 3), np.uint8)  # wide, with a white left half
    upright[:, :16] = 255
    path = tmp_path / "rotated.jpg"
    Image.fromarray(upright).save(path, exif=exif_orientation(6), quality=95)

    array = pio.load(path).array

    assert array.shape == (32, 16, 3)  # 6 = rotate 90 degrees clockwise to display
    np.testing.assert_allclose(array[:14].mean(), 255, atol=3)  # the left half is now on top
    np.testing.assert_allclose(array[18:].mean(), 0, atol=3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_load_orients_16_bit_png_as_pillow_would(tmp_path, rng, orientation):
    pixels = rng.integers(0, 65536, (3, 5, 3), dtype=np.uint16)
    path = tmp_path / "oriented.png"
    path.write_bytes(png_by_hand(pixels, 2, exif=exif_orientation(orientation)))
    index = Image.fromarray(np.arange(15, dtype=np.int32).reshape(3, 5))
    index.getexif()[0x0112] = orientation
    moved = np.asarray(ImageOps.exif_transpose(index))  # where Pillow puts each pixel

    array = pio.load(path).array

    np.testing.assert_array_equal(array, pixels.reshape(15, 3)[moved])


# frames


def test_load_first_frame_of_animated_gif_and_count(tmp_path, rng):
    frames = [PALETTE[rng.integers(0, 3, (4, 6))] for _ in range(3)]
    path = tmp_path / "anim.gif"
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=50, loop=0)

    loaded = pio.load(path)

    assert loaded.format == "GIF" and loaded.frames == 3
    np.testing.assert_array_equal(loaded.array, frames[0])


def test_load_first_page_of_multipage_tiff_and_count(tmp_path, rng):
    pages = [_l(rng) for _ in range(4)]
    path = tmp_path / "pages.tif"
    images = [Image.fromarray(page) for page in pages]
    images[0].save(path, save_all=True, append_images=images[1:])

    loaded = pio.load(path)

    assert loaded.frames == 4
    np.testing.assert_array_equal(loaded.array[:, :, 0], pages[0])


# plain 8-bit JPEG and PNG: OpenCV decodes them, with Pillow's pixels, mode and profile


def _pillow_only(monkeypatch) -> None:
    """Make io.load read every file through Pillow: the reference for the OpenCV decoders."""
    monkeypatch.setattr(images, "_load_plain", lambda *args: None)


def _saved(path: Path, image: np.ndarray | Image.Image, **options) -> Path:
    (Image.fromarray(image) if isinstance(image, np.ndarray) else image).save(path, **options)
    return path


def _decoder_cases(folder: Path) -> dict[Path, bool]:
    """Files and whether OpenCV may decode them (else Pillow must)."""
    photo = np.asarray(Image.open(SAMPLES / "astronaut.jpg"))[:301, :299]
    gray = photo.mean(axis=2).astype(np.uint8)
    icc = Image.open(SAMPLES / "astronaut.jpg").info["icc_profile"]
    rotated = exif_orientation(6)
    return {
        SAMPLES / "astronaut.jpg": True,
        SAMPLES / "camera.png": True,
        SAMPLES / "coffee_gray16.png": False,
        _saved(folder / "s444.jpg", photo, quality=92, subsampling=0): True,
        _saved(folder / "s422.jpg", photo, quality=85, subsampling=1): True,
        _saved(folder / "s420.jpg", photo, quality=75, subsampling=2): True,
        _saved(folder / "progressive.jpg", photo, quality=90, progressive=True): True,
        _saved(folder / "gray.jpg", gray, quality=90): True,
        _saved(folder / "icc.JPEG", photo, quality=90, icc_profile=icc): True,
        _saved(folder / "rotated.jpg", photo, quality=90, exif=rotated): False,
        _saved(folder / "cmyk.jpg", Image.fromarray(photo).convert("CMYK"), quality=90): False,
        _saved(folder / "rgb.png", photo): True,
        _saved(folder / "gray.png", gray): True,
        _saved(folder / "rgba.png", np.dstack([photo, gray])): True,
        _saved(folder / "icc.png", photo, icc_profile=icc): True,
        _saved(folder / "la.png", np.dstack([gray, gray[::-1]])): False,
        _saved(folder / "rotated.png", photo, exif=rotated): False,
        _saved(folder / "palette.png", Image.fromarray(photo).quantize(64)): False,
        _saved(folder / "transparent.png", photo, transparency=(0, 0, 0)): False,
        _saved(folder / "bilevel.png", Image.fromarray(gray).convert("1")): False,
        _saved(folder / "sixteen.png", Image.fromarray(gray.astype(np.uint16) * 257)): False,
    }


def test_opencv_decodes_plain_files_to_pillows_pixels_mode_and_icc(tmp_path, monkeypatch):
    cases = _decoder_cases(tmp_path)
    loaded = {path: (pio.load(path), pio.load(path, channel_order="bgr")) for path in cases}
    _pillow_only(monkeypatch)

    for path, plain in cases.items():
        data = np.fromfile(path, dtype=np.uint8)
        header = png.plain_png(path, data) if path.suffix == ".png" else images._plain_jpeg(data)
        assert (header is not None) == plain, path.name
        reference = pio.load(path)
        rgb, bgr = loaded[path]
        colour = plain and reference.array.shape[2] >= 3
        assert (rgb.channel_order, bgr.channel_order) == ("rgb", "bgr" if colour else "rgb"), path.name
        for item in (rgb, bgr):
            array = item.array[:, :, [2, 1, 0, 3][: item.array.shape[2]]] if item.channel_order == "bgr" else item.array
            assert array.dtype == reference.array.dtype and array.shape == reference.array.shape, path.name
            np.testing.assert_array_equal(array, reference.array, err_msg=path.name)
            assert (item.format, item.source_mode, item.frames) == (
                reference.format, reference.source_mode, reference.frames), path.name
            assert item.icc_profile == reference.icc_profile, path.name


@pytest.mark.parametrize("name", ["astronaut.jpg", "camera.png"])
def test_truncated_and_cut_files_are_refused_by_the_loader(tmp_path, name):
    data = (SAMPLES / name).read_bytes()
    closing = b"\xff\xd9" if name.endswith(".jpg") else b""  # a JPEG cut and closed with EOI
    for cut in (5000, len(data) // 2, len(data) - 200, len(data) - 1):
        for ending in {b"", closing} if cut < len(data) - 1 else {b""}:
            path = tmp_path / f"cut{cut}{len(ending)}{Path(name).suffix}"
            path.write_bytes(data[:cut] + ending)
            with pytest.raises(InputError) as error:
                pio.load(path)
            one_line_naming(error, path)


def test_jpeg_with_garbage_in_its_middle_is_refused(tmp_path, rng):
    data = bytearray((SAMPLES / "astronaut.jpg").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = rng.integers(0, 255, 64, dtype=np.uint8).tobytes()  # no FF: no new marker
    path = tmp_path / "garbage.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as error:
        pio.load(path)
    assert "corrupt" in one_line_naming(error, path)


def test_upright_images_are_not_transposed(tmp_path, rng, monkeypatch):
    path = tmp_path / "upright.webp"  # read by Pillow (plain JPEG and PNG are not)
    Image.fromarray(_rgb(rng)).save(path, lossless=True)
    monkeypatch.setattr(ImageOps, "exif_transpose", lambda *args, **kwargs: pytest.fail("copied an upright image"))

    assert pio.load(path).array.shape == (5, 7, 3)


# --------------------------------------------------------------------------- reading arrays


@pytest.mark.parametrize(
    ("shape", "layout"),
    [((), ""), ((9,), "l"), ((3, 4), "hw"), ((2, 3, 4), "chw"), ((1, 2, 3, 4), "nchw"),
     ((1, 2, 1, 3, 4), "ncdhw"), ((1,) * 6, "")],
)
def test_load_npy_guesses_layout_by_ndim(tmp_path, rng, shape, layout):
    values = rng.normal(size=shape).astype(np.float32)
    path = tmp_path / "values.npy"
    np.save(path, values)

    loaded = pio.load(path)

    assert (loaded.kind, loaded.format, loaded.layout, loaded.frames) == ("npy", "NPY", layout, 1)
    assert loaded.source_mode is None and list(loaded.arrays) == ["array"]
    assert not isinstance(loaded.array, np.memmap)
    np.testing.assert_array_equal(loaded.array, values)


def test_load_npy_keeps_integer_and_bool_dtypes(tmp_path):
    for dtype in (np.bool_, np.int8, np.uint16, np.int64, np.float16):
        path = tmp_path / f"{np.dtype(dtype).name}.npy"
        np.save(path, np.ones((2, 2), dtype))
        assert pio.load(path).array.dtype == dtype


def test_load_large_npy_is_memory_mapped_read_only(tmp_path, rng, monkeypatch):
    values = rng.normal(size=(3, 40, 50))
    path = tmp_path / "big.npy"
    np.save(path, values)
    monkeypatch.setattr(arrays, "MMAP_THRESHOLD_BYTES", path.stat().st_size - 1)

    array = pio.load(path).array

    assert isinstance(array, np.memmap) and not array.flags.writeable
    np.testing.assert_array_equal(array, values)


def test_load_npz_keeps_every_key_in_file_order(tmp_path, rng):
    arrays = {"zeta": rng.normal(size=(2, 3, 4)), "alpha": np.arange(5), "mid": np.eye(3)}
    path = tmp_path / "many.npz"
    np.savez(path, **arrays)

    loaded = pio.load(path)

    assert (loaded.kind, loaded.format, loaded.layout) == ("npz", "NPZ", "chw")
    assert list(loaded.arrays) == ["zeta", "alpha", "mid"]
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded.arrays[key], value)
    with pytest.raises(InputError, match="holds 3 arrays") as error:
        _ = loaded.array
    one_line_naming(error, path)


# --------------------------------------------------------------------------- read refusals


def _write(data: bytes | str):
    def make(path: Path) -> None:
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)

    return make


def _truncated_image(fmt: str):
    def make(path: Path) -> None:
        pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, format=fmt)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return make


def _npy(values, *, allow_pickle=False):
    def make(path: Path) -> None:
        np.save(path, values, allow_pickle=allow_pickle)

    return make


def _npz(**arrays):
    def make(path: Path) -> None:
        np.savez(path, **arrays)

    return make


def _truncated_npy(path: Path) -> None:
    np.save(path, np.arange(1000.0))
    path.write_bytes(path.read_bytes()[:300])


def _folder(path: Path) -> None:
    path.mkdir()


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("missing.png", None, "no such file"),
        ("folder.png", _folder, "is a folder"),
        ("empty.png", _write(b""), "empty"),
        ("text.png", _write("this is not a picture\n"), "not an image"),
        ("text.jpg", _write("this is not a picture\n"), "not an image"),
        ("text.tif", _write("this is not a picture\n"), "not a TIFF"),
        ("cut.png", _truncated_image("PNG"), "truncated"),
        ("cut.jpg", _truncated_image("JPEG"), "truncated"),
        ("notes.txt", _write("1 2 3\n"), "unknown extension"),
        ("noext", _write("1 2 3\n"), "unknown extension"),
        ("text.npy", _write("1 2 3\n"), "cannot read"),
        ("cut.npy", _truncated_npy, "truncated"),
        ("objects.npy", _npy(np.array([{"a": 1}, None]), allow_pickle=True), "pickle"),
        ("strings.npy", _npy(np.array(["a", "bc"])), "dtype <U2"),
        ("complex.npy", _npy(np.ones(3, np.complex64)), "complex64"),
        ("dates.npy", _npy(np.array(["2024-01-01"], "datetime64[D]")), "datetime64"),
        ("records.npy", _npy(np.zeros(2, [("x", "f4"), ("y", "i4")])), "each field"),
        ("objects.npz", _npz(ok=np.ones(2), bad=np.array([None, 1], dtype=object)), "pickle"),
        ("complex.npz", _npz(ok=np.ones(2), bad=np.ones(2, complex)), "'bad'"),
        ("empty.npz", _npz(), "holds no arrays"),
        ("text.npz", _write("1 2 3\n"), "not a .npz"),
    ],
)
def test_load_refuses_unreadable_files_with_one_line(tmp_path, name, make, reason):
    path = tmp_path / name
    if make is not None:
        make(path)

    with pytest.raises(InputError) as error:
        pio.load(path)

    assert reason in one_line_naming(error, path)


def test_load_refuses_image_above_max_pixels_before_decoding(tmp_path, rng, monkeypatch):
    path = tmp_path / "ten.png"
    Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(path)
    assert pio.load(path, max_pixels=100).array.shape == (10, 10, 1)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded a refused image"))

    with pytest.raises(InputError) as error:
        pio.load(path, max_pixels=99)

    message = one_line_naming(error, path)
    assert "10x10 = 100 pixels" in message and "limit of 99" in message
    assert "max_pixels" in message  # the keyword; the CLI shows --max-pixels


def test_load_refuses_header_declared_bomb_without_pillow_errors(tmp_path):
    path = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b""))
    limit_before = Image.MAX_IMAGE_PIXELS

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning would fail here
        with pytest.raises(InputError) as error:
            pio.load(path)

    message = one_line_naming(error, path)
    assert "10,000,000,000 pixels" in message and f"{pio.DEFAULT_MAX_PIXELS:,}" in message
    assert limit_before == Image.MAX_IMAGE_PIXELS


def test_max_pixels_none_lifts_the_limit_and_zero_is_refused(tmp_path, rng):
    path = tmp_path / "small.png"
    Image.fromarray(_rgb(rng)).save(path)

    assert pio.load(path, max_pixels=None).array.shape == (5, 7, 3)
    with pytest.raises(PoolError, match="max_pixels 0"):
        pio.load(path, max_pixels=0)


@pytest.mark.parametrize("kind", ["float64 tiff", "16-bit png"])
def test_opencv_path_checks_the_size_before_decoding(tmp_path, rng, monkeypatch, kind):
    if kind == "float64 tiff":
        path = tmp_path / "float.tif"
        assert cv2.imwrite(str(path), rng.normal(size=(10, 20)))
    else:
        path = tmp_path / "deep.png"
        path.write_bytes(png_by_hand(rng.integers(0, 65536, (10, 20, 3), dtype=np.uint16), 2))
    monkeypatch.setattr(cv2, "imdecode", lambda *args: pytest.fail("OpenCV decoded a bomb"))

    with pytest.raises(InputError, match="20x10 = 200 pixels") as error:
        pio.load(path, max_pixels=199)

    one_line_naming(error, path)


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize(
    ("dtype", "channels", "suffix"),
    [(np.uint8, c, s) for c in (1, 2, 3, 4) for s in (".png", ".tif", ".webp")]
    + [(np.uint8, c, s) for c in (1, 3) for s in (".bmp",)]
    + [(np.uint16, c, s) for c in (1, 3, 4) for s in (".png", ".tiff")]
    + [(np.float32, c, ".tif") for c in (1, 3, 4)]
    + [(np.float64, c, ".tif") for c in (1, 3)]
    + [(np.int32, 1, ".tif"), (np.bool_, 1, ".png")],
)
def test_save_then_load_round_trips_exactly(tmp_path, rng, dtype, channels, suffix):
    if np.dtype(dtype).kind == "f":
        pixels = rng.normal(size=(6, 5, channels)).astype(dtype)
    elif dtype == np.bool_:
        pixels = rng.integers(0, 2, (6, 5, channels)).astype(bool)
    else:
        info = np.iinfo(dtype)
        pixels = rng.integers(info.min, info.max, (6, 5, channels), dtype=dtype, endpoint=True)
    path = tmp_path / f"out{suffix}"

    assert pio.save(path, pixels) == path
    array = pio.load(path).array

    expected = pixels.astype(np.uint8) * 255 if dtype == np.bool_ else pixels
    if suffix == ".webp" and channels < 3:  # WebP stores gray as RGB
        expected = expected[:, :, [0, 0, 0, 1][: channels + 2]]
    assert array.dtype == expected.dtype
    np.testing.assert_array_equal(array, expected)


def test_save_2d_array_as_gray_and_1_channel_gif(tmp_path, rng):
    pixels = _l(rng)
    png, gif = tmp_path / "gray.png", tmp_path / "gray.gif"

    pio.save(png, pixels)
    pio.save(gif, pixels)

    np.testing.assert_array_equal(pio.load(png).array[:, :, 0], pixels)
    np.testing.assert_array_equal(pio.load(gif).array, np.repeat(pixels[:, :, None], 3, 2))


@pytest.mark.parametrize("channels", [3, 4])
def test_save_colour_gif_through_a_palette(tmp_path, channels):
    """Colour GIFs are quantised: few colours come back exactly, many come back close."""
    few = np.zeros((6, 8, channels), np.uint8)
    few[:3, :, 0], few[:, :4, 1] = 200, 90
    if channels == 4:
        few[..., 3] = 255
    path = tmp_path / "few.gif"
    pio.save(path, few)
    assert np.array_equal(pio.load(path).array[..., :3], few[..., :3])
    many = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    pio.save(tmp_path / "many.gif", many)
    back = pio.load(tmp_path / "many.gif").array
    assert back.shape[:2] == (32, 32) and np.abs(back[..., :3].astype(int) - many).mean() < 40


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint32, np.int64])
def test_save_integers_that_fit_as_int32_tiff(tmp_path, dtype):
    pixels = np.array([[0, 1], [100, 127]], dtype=dtype)
    path = tmp_path / "ints.tif"

    pio.save(path, pixels)

    loaded = pio.load(path)
    assert loaded.source_mode == "I" and loaded.array.dtype == np.int32
    np.testing.assert_array_equal(loaded.array[:, :, 0], pixels)


@pytest.mark.parametrize("quality", [None, 60])
@pytest.mark.parametrize("channels", [1, 3])
def test_save_jpeg_is_pillows_default_encoding_at_quality_90(tmp_path, rng, quality, channels):
    pixels = rng.integers(0, 256, (48, 40, channels), dtype=np.uint8).squeeze()
    ours, reference = tmp_path / "ours.jpg", tmp_path / "reference.jpg"

    pio.save(ours, pixels, **({} if quality is None else {"quality": quality}))
    Image.fromarray(pixels).save(reference, quality=quality or 90)  # Pillow's default: 4:2:0

    assert pio.JPEG_QUALITY == 90
    with Image.open(ours) as written, Image.open(reference) as expected:
        assert written.mode == expected.mode
        assert written.quantization == expected.quantization
        if channels == 3:
            assert JpegImagePlugin.get_sampling(written) == JpegImagePlugin.get_sampling(expected) == 2
        difference = np.abs(np.asarray(written, np.int16) - np.asarray(expected, np.int16))
    assert difference.max() <= 1


@pytest.mark.parametrize(
    ("dtype", "channels"), [(np.uint8, 1), (np.uint8, 2), (np.uint8, 3), (np.uint8, 4), (np.uint16, 1), (np.uint16, 3)]
)
def test_save_png_at_zlib_level_1(tmp_path, rng, dtype, channels):
    pixels = rng.integers(0, np.iinfo(dtype).max, (9, 11, channels), dtype=dtype, endpoint=True)
    path = tmp_path / "fast.png"

    pio.save(path, pixels)

    data = path.read_bytes()
    idat = data.index(b"IDAT") + 4
    assert data[idat] & 0x0F == 8 and data[idat + 1] >> 6 == 0  # deflate, FLEVEL 0: the fastest
    np.testing.assert_array_equal(pio.load(path).array, pixels)


@pytest.mark.parametrize("quality", [0, 101])
def test_save_refuses_quality_out_of_range(tmp_path, quality):
    path = tmp_path / "x.jpg"

    with pytest.raises(OutputError, match=f"quality {quality} is out of range; use 1..100") as error:
        pio.save(path, np.zeros((2, 2), np.uint8), quality=quality)

    one_line_naming(error, path)
    assert folder_names(tmp_path) == []


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_save_arrays_round_trip(tmp_path, rng, suffix):
    values = rng.normal(size=(2, 3, 4)).astype(np.float32)
    path = tmp_path / f"values{suffix}"

    pio.save(path, values)

    np.testing.assert_array_equal(pio.load(path).array, values)


def test_save_npz_writes_every_key_even_awkward_ones(tmp_path, rng):
    arrays = {"file": rng.normal(size=(3, 4)), "allow_pickle": np.arange(3), "b": np.eye(2)}
    path = tmp_path / "pooled.npz"

    pio.save(path, key_arrays=arrays)

    with np.load(path) as archive:
        assert archive.files == ["file", "allow_pickle", "b"]
        for key, value in arrays.items():
            np.testing.assert_array_equal(archive[key], value)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".webp"])
def test_save_keeps_the_icc_profile_of_like(tmp_path, suffix):
    photo = pio.load(SAMPLES / "astronaut.jpg")
    assert photo.icc_profile is not None
    colour, gray = tmp_path / f"colour{suffix}", tmp_path / f"gray{suffix}"

    pio.save(colour, photo.array[::4, ::4], like=photo)
    pio.save(gray, photo.array[::4, ::4, :1], like=photo)  # an RGB profile cannot describe gray

    with Image.open(colour) as written:  # Pillow reads what poolcli wrote
        assert written.info.get("icc_profile") == photo.icc_profile
    assert pio.load(colour).icc_profile == photo.icc_profile
    assert pio.load(gray).icc_profile is None


@pytest.mark.parametrize(
    ("suffix", "channels"),
    [(s, 3) for s in (".png", ".jpg", ".tif", ".webp", ".bmp", ".npy", ".npz")]
    + [(s, 4) for s in (".png", ".tif", ".webp", ".npy", ".npz")],
)
def test_bgr_arrays_are_written_as_their_rgb_twins(tmp_path, rng, suffix, channels):
    rgb = rng.integers(0, 256, (6, 5, channels), dtype=np.uint8)
    bgr = rgb[:, :, [2, 1, 0, 3][:channels]]

    pio.save(tmp_path / f"rgb{suffix}", rgb)
    pio.save(tmp_path / f"bgr{suffix}", bgr, channel_order="bgr")

    assert (tmp_path / f"bgr{suffix}").read_bytes() == (tmp_path / f"rgb{suffix}").read_bytes()


def test_load_bgr_then_save_bgr_round_trips(tmp_path, rng):
    pixels = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    source, copy = tmp_path / "rgba.png", tmp_path / "copy.png"
    Image.fromarray(pixels).save(source)

    loaded = pio.load(source, channel_order="bgr")
    pio.save(copy, loaded.array, like=loaded, channel_order=loaded.channel_order)

    assert loaded.channel_order == "bgr"
    np.testing.assert_array_equal(loaded.array, pixels[:, :, [2, 1, 0, 3]])
    np.testing.assert_array_equal(pio.load(copy).array, pixels)


def test_unknown_channel_order_is_refused(tmp_path):
    path = tmp_path / "x.png"
    with pytest.raises(PoolError, match="channel_order 'rbg' is unknown"):
        pio.load(SAMPLES / "camera.png", channel_order="rbg")
    with pytest.raises(OutputError, match="channel_order 'rbg' is unknown") as error:
        pio.save(path, np.zeros((2, 2, 3), np.uint8), channel_order="rbg")
    one_line_naming(error, path)


# normalize


def test_normalize_minmax_maps_finite_range_to_uint8(tmp_path):
    values = np.array([[-2.0, -1.0, 0.0, 2.0], [np.nan, np.inf, -np.inf, 1.0]], np.float32)
    path = tmp_path / "scaled.png"

    pio.save(path, values, normalize="minmax")

    expected = [[0, 64, 128, 255], [0, 255, 0, 191]]  # (v + 2) * 255 / 4, rounded half up
    np.testing.assert_array_equal(pio.load(path).array[:, :, 0], expected)


def test_normalize_lets_16_bit_go_to_jpeg(tmp_path):
    deep = np.repeat(np.array([[0, 65535], [32768, 65535]], np.uint16), 8, axis=1)
    path = tmp_path / "deep.jpg"

    pio.save(path, deep, normalize="minmax")

    np.testing.assert_allclose(pio.load(path).array[:, ::8, 0], [[0, 255], [128, 255]], atol=2)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint64, np.int64, np.float32, np.bool_])
def test_normalize_stretches_every_dtype_and_leaves_arrays_alone(tmp_path, rng, dtype):
    pixels = rng.integers(*((0, 2) if dtype == np.bool_ else (10, 20)), (4, 5, 3)).astype(dtype)
    image, array = tmp_path / "pixels.png", tmp_path / "values.npy"

    pio.save(image, pixels, normalize="minmax")
    pio.save(array, pixels, normalize="minmax")

    values = pixels.astype(np.float64)
    low, high = values.min(), values.max()
    expected = np.floor((values - low) * (255.0 / (high - low)) + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(pio.load(image).array, expected)  # 0..255, whatever the dtype
    np.testing.assert_array_equal(pio.load(array).array, pixels)  # arrays keep their values


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.full((2, 2), 7.5), np.zeros((2, 2))),
        (np.full((2, 2), np.nan), np.zeros((2, 2))),
        (np.array([[0, 1000], [65535, 30000]], np.uint16), [[0, 4], [255, 117]]),
    ],
)
def test_minmax_to_uint8_edge_cases(values, expected):
    result = pio.minmax_to_uint8(values)

    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


# --------------------------------------------------------------------------- write refusals


@pytest.mark.parametrize(
    ("name", "array", "reason"),
    [
        ("deep.jpg", np.zeros((4, 4), np.uint16), "dtype uint8"),
        ("deep.bmp", np.zeros((4, 4, 3), np.uint16), "8-bit"),
        ("float.png", np.zeros((4, 4), np.float32), ".tiff"),
        ("float.jpg", np.zeros((4, 4, 3), np.float64), "normalize minmax"),
        ("alpha.jpg", np.zeros((4, 4, 4), np.uint8), "channel"),
        ("gray_alpha.bmp", np.zeros((4, 4, 2), np.uint8), "channel"),
        ("deep_la.png", np.zeros((4, 4, 2), np.uint16), ".npy"),
        ("wide.tif", np.array([[2**40]], np.int64), ".npy"),
        ("features.png", np.zeros((8, 5, 5, 2), np.float32), "not an image"),
        ("five.png", np.zeros((5, 5, 5), np.uint8), "not an image"),
        ("result.xyz", np.zeros((4, 4), np.uint8), "unknown extension"),
        ("objects.npy", np.array([None, 1], dtype=object), "Python objects"),
    ],
)
def test_save_refuses_what_the_format_cannot_hold(tmp_path, name, array, reason):
    path = tmp_path / name

    with pytest.raises(OutputError) as error:
        pio.save(path, array)

    assert reason in one_line_naming(error, path)
    assert folder_names(tmp_path) == []


@pytest.mark.parametrize("name", ["x.png", "x.npy"])
def test_save_refuses_unknown_normalize(tmp_path, name):
    path = tmp_path / name

    with pytest.raises(OutputError, match="normalize 'zscore'") as error:
        pio.save(path, np.zeros((2, 2)), normalize="zscore")

    one_line_naming(error, path)
    assert folder_names(tmp_path) == []


def test_save_never_overwrites_without_permission(tmp_path):
    path = tmp_path / "out.npy"
    path.write_bytes(b"precious")

    with pytest.raises(OutputError) as error:
        pio.save(path, np.ones(3))

    assert one_line_naming(error, path) == f"{path} exists; pass overwrite to replace it"
    assert path.read_bytes() == b"precious"
    pio.save(path, np.ones(3), overwrite=True)
    np.testing.assert_array_equal(np.load(path), np.ones(3))
    assert folder_names(tmp_path) == ["out.npy"]


def test_save_never_overwrites_an_input_even_with_overwrite(tmp_path, monkeypatch):
    original = tmp_path / "photo.png"
    Image.new("L", (3, 3), 9).save(original)
    link = tmp_path / "link.png"
    link.symlink_to(original)
    hard = tmp_path / "hard.png"
    os.link(original, hard)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    before = original.read_bytes()

    for target, inputs in [
        (original, [original]),
        (Path("..") / "photo.png", [original]),  # the same file, spelt relatively
        (link, [original]),  # a symlink to an input
        (hard, [original]),  # a hard link to an input
        (original, [str(link)]),
    ]:
        with pytest.raises(OutputError, match="is one of the inputs") as error:
            pio.save(target, np.zeros((3, 3), np.uint8), overwrite=True, inputs=inputs)
        one_line_naming(error, target)

    assert original.read_bytes() == before
    assert folder_names(tmp_path) == ["hard.png", "link.png", "photo.png", "sub"]


def test_symlink_loops_are_paths_like_any_other(tmp_path):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    out = tmp_path / "out.png"

    pio.save(out, np.zeros((2, 2), np.uint8), inputs=[loop])  # Path.resolve would raise here
    with pytest.raises(OutputError, match="is one of the inputs"):
        pio.check_output(loop, overwrite=True, inputs=[loop])
    with pytest.raises(OutputError, match="exists; pass overwrite"):
        pio.check_output(loop, inputs=[out])


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("missing/out.png", "does not exist"),
        ("a_file.txt/out.png", "is not a folder"),
        ("shots.png", "is a folder"),
    ],
)
def test_save_refuses_bad_targets(tmp_path, target, reason):
    (tmp_path / "a_file.txt").write_text("x")
    (tmp_path / "shots.png").mkdir()
    path = tmp_path / target

    with pytest.raises(OutputError) as error:
        pio.save(path, np.zeros((2, 2), np.uint8), overwrite=True)

    assert reason in one_line_naming(error, path)
    assert folder_names(tmp_path) == ["a_file.txt", "shots.png"]


def test_save_reports_a_folder_it_cannot_write_in(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    path = tmp_path / "out.png"

    with pytest.raises(OutputError, match="Permission denied") as error:
        pio.save(path, np.zeros((2, 2), np.uint8))

    one_line_naming(error, path)


# --------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch, failure):
    path = tmp_path / "out.npy"
    np.save(path, np.zeros(2))
    before = path.read_bytes()
    real_write = np.lib.format.write_array

    def write_half_then_fail(file, array, **kwargs):
        real_write(file, array[: len(array) // 2], **kwargs)
        assert [p.name for p in tmp_path.glob(".out.npy.*.tmp")]  # the temporary is in place
        raise failure

    monkeypatch.setattr(np.lib.format, "write_array", write_half_then_fail)
    expected = KeyboardInterrupt if failure is KeyboardInterrupt else OutputError

    with pytest.raises(expected) as error:
        pio.save(path, np.arange(1000.0), overwrite=True)

    if expected is OutputError:
        assert "No space left on device" in one_line_naming(error, path)
    assert folder_names(tmp_path) == ["out.npy"]
    assert path.read_bytes() == before


def test_atomic_output_publishes_only_on_success(tmp_path):
    path = tmp_path / "data.bin"

    with pytest.raises(KeyboardInterrupt), pio.atomic_output(path) as file:
        file.write(b"partial")
        raise KeyboardInterrupt
    assert folder_names(tmp_path) == []

    with pio.atomic_output(path) as file:
        file.write(b"whole")
        assert not path.exists()  # nothing is visible until the block ends
    assert path.read_bytes() == b"whole"
    assert folder_names(tmp_path) == ["data.bin"]


@pytest.mark.parametrize("appears", ["file", "symlink"])
def test_a_file_that_appears_at_the_target_during_the_write_is_kept(tmp_path, appears):
    """Another program creates the target while the data is being written: the rename must not
    replace it; the write fails with one line and leaves no temporary file."""
    path, elsewhere = tmp_path / "out.bin", tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(b"the link's target")

    with pytest.raises(OutputError) as error, pio.atomic_output(path) as file:
        file.write(b"ours")
        if appears == "file":
            path.write_bytes(b"theirs")
        else:
            path.symlink_to(elsewhere)

    assert "exists" in one_line_naming(error, path)
    if appears == "file":
        assert path.read_bytes() == b"theirs"
    else:
        assert path.is_symlink() and path.read_bytes() == b"the link's target"
    assert folder_names(tmp_path) == ["elsewhere.bin", "out.bin"]  # no temporary left behind

    with pio.atomic_output(path, overwrite=True) as file:  # with overwrite, replacing it is what was asked
        file.write(b"ours")
    assert path.read_bytes() == b"ours" and not path.is_symlink()


def test_new_files_get_the_usual_permissions(tmp_path):
    path = tmp_path / "out.png"
    mask = os.umask(0o022)
    os.umask(mask)

    pio.save(path, np.zeros((2, 2), np.uint8))

    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize(
    ("layout", "ndim", "axes"),
    [("hwc", 3, (0, 1)), ("chw", 3, (1, 2)), ("NCHW", 4, (2, 3)), ("ncdhw", 5, (2, 3, 4)),
     ("nlc", 3, (1,)), ("l", 1, (0,)), ("hw", 2, (0, 1)), ("nnchw", 5, (3, 4))],
)
def test_pooled_axes_for_layout(layout, ndim, axes):
    assert pio.pooled_axes_for_layout(layout, ndim) == axes


@pytest.mark.parametrize(
    ("layout", "ndim", "reason"),
    [("hwc", 4, "names 3 axes but the array has 4"), ("hqc", 3, "unknown letters 'q'"),
     ("hhw", 3, "repeats 'h'"), ("hyw", 3, "repeats 'hy'"), ("nc", 2, "no axis to pool"), ("", 1, "names 0 axes")],
)
def test_pooled_axes_for_layout_refusals(layout, ndim, reason):
    with pytest.raises(PoolError) as error:
        pio.pooled_axes_for_layout(layout, ndim)

    message = str(error.value)
    assert reason in message and "layout" in message and "\n" not in message


# --------------------------------------------------------------------------- description


def test_info_counts_nan_and_infinities_without_warnings(tmp_path, capsys):
    import json
    import warnings

    from poolcli.cli import main

    path = tmp_path / "gaps.npz"
    np.savez(path, a=np.array([np.nan, 2.0, -1.0, np.inf, -np.inf, np.inf]), b=np.array([[3, 9]], np.uint8),
             c=np.full(4, np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["info", str(path), "-k", "1", "--json"]) == 0
        arrays = json.loads(capsys.readouterr().out)["arrays"]
        assert main(["info", str(path), "-k", "1"]) == 0
        text = capsys.readouterr().out
    assert (arrays["a"]["min"], arrays["a"]["max"]) == (-1.0, 2.0)
    assert {key: arrays["a"][key] for key in ("nan", "posinf", "neginf")} == {"nan": 1, "posinf": 2, "neginf": 1}
    assert (arrays["b"]["min"], arrays["b"]["nan"]) == (3.0, 0)
    assert (arrays["c"]["min"], arrays["c"]["nan"]) == (None, 4)
    assert "range -1 .. 2, 1 NaN, 2 +inf, 1 -inf" in text and "range n/a, 4 NaN" in text


# --------------------------------------------------------------------------- samples


@pytest.mark.parametrize(
    ("name", "shape", "dtype", "kind", "layout"),
    [
        ("astronaut.jpg", (512, 512, 3), np.uint8, "image", "hwc"),
        ("camera.png", (512, 512, 1), np.uint8, "image", "hwc"),
        ("coffee_gray16.png", (200, 300, 1), np.uint16, "image", "hwc"),
        ("features_chw.npy", (8, 128, 128), np.float32, "npy", "chw"),
        ("co2_weekly.npy", (2284,), np.float64, "npy", "l"),
    ],
)
def test_samples_load_as_documented(name, shape, dtype, kind, layout):
    loaded = pio.load(SAMPLES / name)

    assert (loaded.kind, loaded.layout) == (kind, layout)
    assert loaded.array.shape == shape and loaded.array.dtype == dtype
    assert name in (SAMPLES / "README.md").read_text()


def test_samples_are_real_and_small():
    gray16 = pio.load(SAMPLES / "coffee_gray16.png").array
    co2 = pio.load(SAMPLES / "co2_weekly.npy").array

    assert len(np.unique(gray16)) > 256 * 16  # more levels than any 8-bit image has
    assert np.isnan(co2).sum() == 59 and 313 <= np.nanmin(co2) < np.nanmax(co2) < 375
    total = sum(p.stat().st_size for p in SAMPLES.iterdir() if p.is_file())
    assert total < 1.5 * 2**20


def test_samples_can_be_copied_and_reloaded(tmp_path):
    copy = tmp_path / "camera copy.png"  # a space in the name
    shutil.copy(SAMPLES / "camera.png", copy)

    np.testing.assert_array_equal(pio.load(copy).array, pio.load(SAMPLES / "camera.png").array)
