"""What a photo or dataset file carries comes through pooling (issue 26): EXIF, XMP, ICC and
resolution kept (and `--strip`), GIF transparency, 16 -> 8 bits, HWC arrays, `--json` beside an
image on stdout, PyTorch's divisor_override. Real files, real subprocesses where the terminal matters.
"""

import io as bytes_io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
GRAY = SAMPLES / "camera.png"


def poolcli(*args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "poolcli", *map(str, args)], input=stdin, capture_output=True,
                          timeout=60)


# ------------------------------------------------------------------ --json beside an image on stdout


def test_json_goes_to_stderr_when_stdout_carries_the_image():
    done = poolcli("pool", GRAY, "-o", "-", "--json", "-m", "avg")
    assert done.returncode == 0, done.stderr
    image = Image.open(bytes_io.BytesIO(done.stdout))
    image.load()  # the whole of stdout is the PNG, nothing after it
    assert done.stdout.endswith(b"IEND\xaeB`\x82")
    assert image.size == (256, 256)
    record = json.loads(done.stderr)
    assert record["status"] == "done" and record["output_shape"] == [256, 256, 1]


def test_json_of_a_failed_input_on_stdout_mode_goes_to_stderr(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    done = poolcli("pool", bad, "-o", "-", "--json")
    assert done.returncode == 1 and done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert lines[0].startswith("poolcli: error:") and json.loads(lines[1])["status"] == "failed"


# ------------------------------------------------------------------ EXIF, XMP, ICC and resolution kept

PHOTO = SAMPLES / "astronaut.jpg"
MAKE, ORIENTATION, X_RESOLUTION, Y_RESOLUTION, GPS = 0x010F, 0x0112, 0x011A, 0x011B, 0x8825
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"'
       b' xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="poolcli test"/></rdf:RDF></x:xmpmeta>')


def camera_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE] = "Canon"
    exif[ORIENTATION] = orientation
    exif[X_RESOLUTION], exif[Y_RESOLUTION], exif[0x0128] = 300.0, 300.0, 2
    exif.get_ifd(GPS)[2] = (48.0, 51.0, 29.0)  # latitude
    return exif


def photo_file(folder: Path, suffix: str, *, orientation: int = 6, size: tuple[int, int] = (96, 64),
               xmp: bool = True) -> Path:
    """A photo as cameras and editors write it: EXIF (camera, GPS, orientation), XMP, ICC, 300 dpi."""
    pixels = np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    icc = Image.open(PHOTO).info["icc_profile"]
    path = folder / f"photo{suffix}"
    options = dict(exif=camera_exif(orientation), dpi=(300, 300), icc_profile=icc)
    if xmp and suffix == ".png":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        options["pnginfo"] = info
    elif xmp:
        options["xmp"] = XMP
    Image.fromarray(pixels).save(path, **options)
    return path


def xmp_of(image: Image.Image) -> bytes | None:
    value = image.info.get("xmp", image.info.get("XML:com.adobe.xmp"))
    return value.encode() if isinstance(value, str) else value


KEEPS = {  # output suffix -> what the format has a place for
    ".jpg": {"exif", "xmp", "icc", "dpi"},
    ".png": {"exif", "xmp", "icc", "dpi"},
    ".webp": {"exif", "xmp", "icc"},
    ".tif": {"exif", "icc", "dpi"},
}


def check_kept(out: Path, keeps: set[str], dpi: tuple[float, float] = (150.0, 150.0)) -> None:
    image = Image.open(out)
    image.load()
    exif = image.getexif()
    if "exif" in keeps:
        assert exif.get(MAKE) == "Canon" and exif.get_ifd(GPS).get(2) == (48.0, 51.0, 29.0), dict(exif)
        assert exif.get(ORIENTATION, 1) == 1, "the orientation was applied: it must read 1 now"
        assert (float(exif[X_RESOLUTION]), float(exif[Y_RESOLUTION])) == pytest.approx(dpi, rel=1e-6)
    if "xmp" in keeps:
        xmp = xmp_of(image)
        assert xmp is not None and b'dc:creator="poolcli test"' in xmp and b'tiff:Orientation="1"' in xmp, xmp
    if "icc" in keeps:
        assert image.info.get("icc_profile") == Image.open(PHOTO).info["icc_profile"]
    if "dpi" in keeps:
        assert image.info["dpi"] == pytest.approx(dpi, abs=0.02)


@pytest.mark.parametrize("source", [".jpg", ".png"])
@pytest.mark.parametrize("target", list(KEEPS))
def test_outputs_keep_exif_xmp_icc_and_the_physical_size(tmp_path, source, target):
    path = photo_file(tmp_path, source)
    out = tmp_path / f"out{target}"
    done = poolcli("pool", path, "-o", out, "-m", "avg", "-k", "2")
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (32, 48)  # turned upright (orientation 6), then halved
    check_kept(out, KEEPS[target])


def test_resolution_follows_the_stride_of_each_axis(tmp_path):
    """300 dpi pooled with strides 3 (x) and 2 (y): 100 and 150 dpi, the same inches."""
    path = photo_file(tmp_path, ".jpg", orientation=1)
    out = tmp_path / "out.png"
    done = poolcli("pool", path, "-o", out, "-m", "max", "-k", "2x3")
    assert done.returncode == 0, done.stderr
    check_kept(out, {"exif", "dpi"}, dpi=(100.0, 150.0))


@pytest.mark.parametrize("target", list(KEEPS))
def test_strip_drops_everything(tmp_path, target):
    path = photo_file(tmp_path, ".jpg")
    out = tmp_path / f"out{target}"
    done = poolcli("pool", path, "-o", out, "--strip")
    assert done.returncode == 0, done.stderr
    image = Image.open(out)
    image.load()
    assert image.getexif().get(MAKE) is None and not image.getexif().get_ifd(GPS)
    assert xmp_of(image) is None and image.info.get("icc_profile") is None
    assert image.info.get("dpi", (1, 1))[0] in (1, 72)  # a writer's default, not the photo's


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_the_fast_decoders_read_the_metadata_too(tmp_path, suffix):
    """Upright JPEG and PNG files are decoded by OpenCV once it is loaded: their metadata still comes along."""
    from poolcli import io
    from poolcli.backends import opencv

    opencv.cv2()  # loaded: OpenCV decodes every plain JPEG and PNG
    path = photo_file(tmp_path, suffix, orientation=1, xmp=False)
    if suffix == ".png":  # OpenCV takes PNGs without eXIf: resolution and profile only
        Image.open(path).save(path, dpi=(300, 300), icc_profile=Image.open(path).info["icc_profile"])
    loaded = io.load(path)
    assert loaded.metadata is not None and loaded.metadata.dpi == pytest.approx((300, 300), abs=0.01)
    assert (loaded.metadata.exif is not None) == (suffix == ".jpg")
    out = io.save(tmp_path / f"out{suffix}", loaded.array[::2, ::2], like=loaded,
                  metadata=loaded.metadata.pooled(2, 2))
    check_kept(out, {"icc", "dpi"} | ({"exif"} if suffix == ".jpg" else set()))


def test_batch_keeps_the_metadata(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    photo_file(source, ".jpg")
    done = poolcli("batch", source, "-d", tmp_path / "out", "-m", "avg", "--jobs", "1", "--quiet")
    assert done.returncode == 0, done.stderr
    check_kept(tmp_path / "out" / "photo.jpg", KEEPS[".jpg"])


# ------------------------------------------------------------------ GIF transparency


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_rgba_to_gif_keeps_transparent_pixels_transparent(tmp_path, mode):
    """A red square in a transparent border: the border stays transparent, the square red."""
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (255, 0, 0, 255)
    rgba[:8, :, :3] = (0, 0, 255)  # colour under alpha 0: never shown, never opaque
    source = tmp_path / "sprite.png"
    Image.fromarray(rgba).save(source)
    out = tmp_path / "sprite.gif"
    done = poolcli("pool", source, "-o", out, "-m", mode, "-k", "2")
    assert done.returncode == 0, done.stderr
    written = np.asarray(Image.open(out).convert("RGBA"))
    assert written.shape == (16, 16, 4)
    border = np.ones((16, 16), bool)
    border[4:12, 4:12] = False
    assert (written[border, 3] == 0).all(), "transparent pixels came out opaque"
    assert (written[4:12, 4:12] == (255, 0, 0, 255)).all()


# ------------------------------------------------------------------ 16 to 8 bits

GRAY16 = SAMPLES / "coffee_gray16.png"


def rounded_half_up(values: np.ndarray) -> np.ndarray:
    return np.floor(values + 0.5)


@pytest.mark.parametrize("mode", ["avg", "max", "median"])
def test_dtype_uint8_scales_16_bit_images(tmp_path, mode):
    """v * 255 / 65535 of the exact pooled value, rounded half up once: not a clip to 255."""
    from poolcli import io, pool

    out = tmp_path / "small.png"
    done = poolcli("pool", GRAY16, "-o", out, "-m", mode, "--dtype", "uint8")
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    written = io.load(out).array
    source = io.load(GRAY16).array
    assert source.dtype == np.uint16 and source.max() > 255
    exact = pool(source, 2, mode=mode, axes=(0, 1)).astype(np.float64)
    assert written.dtype == np.uint8
    np.testing.assert_array_equal(written, rounded_half_up(exact * 255 / 65535))
    assert (written == 255).mean() < 0.05


def test_16_bit_colour_to_jpeg_is_a_usable_image(tmp_path):
    rows, cols = np.mgrid[0:40, 0:60]
    rgb16 = np.stack([rows * 1600, cols * 1100, 65535 - rows * cols * 27], axis=-1).astype(np.uint16)  # smooth
    import cv2

    source = tmp_path / "deep.png"
    cv2.imwrite(str(source), rgb16[:, :, ::-1])
    done = poolcli("pool", source, "-o", tmp_path / "small.jpg", "-m", "avg", "--dtype", "uint8")
    assert done.returncode == 0, done.stderr
    written = np.asarray(Image.open(tmp_path / "small.jpg")).astype(float)
    expected = rgb16.reshape(20, 2, 30, 2, 3).mean(axis=(1, 3)) / 257
    assert np.abs(written - expected).mean() < 3  # JPEG's loss only; a clip would be ~127 off


def test_the_jpeg_hint_for_16_bits_names_the_scaling(tmp_path):
    done = poolcli("pool", GRAY16, "-o", tmp_path / "out.jpg")
    assert done.returncode == 1
    assert b"--dtype uint8 (scales 16 to 8 bits)" in done.stderr and done.stderr.count(b"\n") == 1


def test_the_hint_for_floats_names_only_normalize(tmp_path):
    source = tmp_path / "float.tif"
    import tifffile

    tifffile.imwrite(source, np.random.default_rng(0).random((8, 8), dtype=np.float32))
    done = poolcli("pool", source, "-o", tmp_path / "out.jpg", "-m", "avg")
    assert done.returncode == 1 and b"--normalize minmax" in done.stderr
    assert b"--dtype" not in done.stderr  # a float cast to uint8 makes a black picture


def test_arrays_keep_the_plain_cast(tmp_path):
    """The scaling is for images written as images; .npy to .npy keeps dtype='s round-and-clip."""
    source = tmp_path / "deep.npy"
    np.save(source, np.array([[100, 300], [70000 % 65536, 65535]], np.uint16))
    done = poolcli("pool", source, "-o", tmp_path / "out.npy", "--dtype", "uint8", "-k", "1")
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "out.npy").tolist() == [[100, 255], [255, 255]]


# ------------------------------------------------------------------ (H, W, C) arrays


def photo_npy(folder: Path) -> Path:
    path = folder / "photo.npy"
    np.save(path, np.random.default_rng(3).integers(0, 256, (64, 48, 3), dtype=np.uint8))
    return path


def test_pooling_colour_as_width_is_warned_about_with_the_fix(tmp_path):
    source = photo_npy(tmp_path)
    done = poolcli("pool", source, "-o", tmp_path / "out.npy")
    assert done.returncode == 0
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poolcli: warning:") and str(source) in lines[0], lines
    assert "(64, 48, 3)" in lines[0] and "--layout hwc" in lines[0]
    fixed = poolcli("pool", source, "-o", tmp_path / "fixed.npy", "--layout", "hwc", "--overwrite")
    assert fixed.returncode == 0 and fixed.stderr == b"", fixed.stderr
    assert np.load(tmp_path / "fixed.npy").shape == (32, 24, 3)


@pytest.mark.parametrize("shape", [(16, 32, 32), (8, 16, 10, 10), (64, 48)])
def test_feature_maps_pool_without_a_warning(tmp_path, shape):
    source = tmp_path / "maps.npy"
    np.save(source, np.zeros(shape, np.float32))
    done = poolcli("pool", source, "-o", tmp_path / "out.npy")
    assert done.returncode == 0 and done.stderr == b"", done.stderr


def test_info_says_which_layout_it_assumes_and_why(tmp_path):
    source = photo_npy(tmp_path)
    record = json.loads(poolcli("info", source, "--json").stdout)["arrays"]["array"]
    assert (record["layout"], record["layout_reason"]) == ("chw", "guessed from its 3 axes")
    assert "--layout hwc" in record["layout_warning"]
    given = json.loads(poolcli("info", source, "--json", "--layout", "hwc").stdout)["arrays"]["array"]
    assert (given["layout"], given["layout_reason"], given["layout_warning"]) == ("hwc", "given", None)
    assert given["output_shape"] == [32, 24, 3]
    text = poolcli("info", source)
    assert "layout chw (guessed from its 3 axes)" in text.stdout.decode()
    assert text.stderr.decode().startswith("poolcli: warning:") and b"--layout hwc" in text.stderr
    image = json.loads(poolcli("info", GRAY, "--json").stdout)["arrays"]["array"]
    assert image["layout"] == "hwc" and image["layout_warning"] is None


# ------------------------------------------------------------------ metadata nobody checked


def jpeg_with_exif(folder: Path, name: str, exif: bytes) -> Path:
    buffer = bytes_io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    segment = b"\xff\xe1" + (2 + 6 + len(exif)).to_bytes(2, "big") + b"Exif\0\0" + exif
    path = folder / f"{name}.jpg"
    path.write_bytes(data[:20] + segment + data[20:])
    return path


BROKEN_EXIF = {
    "too_many_entries": b"MM\0*\0\0\0\x08\xff\xff\x01\x12\0\x03\0\0\0\x01\0\x06\0\0",
    "ifd_past_the_end": b"II*\0\xff\xff\xff\xff",
    "not_tiff": b"garbage" * 10,
    "resolution_past_the_end": b"MM\0*\0\0\0\x08\0\x01\x01\x1a\0\x05\0\0\0\x01\xff\xff\xff\xf0\0\0\0\0",
}


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
@pytest.mark.parametrize("name", list(BROKEN_EXIF))
def test_broken_exif_is_carried_or_dropped_quietly(tmp_path, name, suffix):
    """EXIF that Pillow cannot parse never prints a library warning, whatever the output format."""
    source = jpeg_with_exif(tmp_path, name, BROKEN_EXIF[name])
    done = poolcli("pool", source, "-o", tmp_path / f"out{suffix}")
    assert done.returncode == 0 and done.stderr == b"", done.stderr
