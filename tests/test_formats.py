"""The table of formats (poolcli/core/formats.py) is the one place a format is known: what the
command line accepts and batch discovers is exactly the table, and a format registered from a
test (one record plus its codec, below) flows through `pool`, `--format`, `batch`, `info`,
stdin and `is_complete` without another line of poolcli changing."""

import io as bytes_io
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from poolcli import io
from poolcli.app.settings import PoolSettings
from poolcli.batch import Batch, BatchOptions
from poolcli.cli import main
from poolcli.core import formats
from poolcli.errors import InputError, OutputError

# ------------------------------------------------------------------ a test-only format and its codec

TOY_MAGIC = b"TOY1"  # then height, width, channels as one byte each, then the uint8 pixels


def toy_read(path: Path, request: io.ReadRequest) -> io.Loaded:
    data = path.read_bytes()
    if not data.startswith(TOY_MAGIC) or len(data) < 7:
        raise InputError(f"{path}: is not a {request.format.name} file; re-export it")
    height, width, channels = data[4:7]
    pixels = np.frombuffer(data, np.uint8, offset=7)
    if pixels.size != height * width * channels:
        raise InputError(f"{path}: {request.format.name} is cut short; re-export it")
    return io.Loaded({"array": pixels.reshape(height, width, channels).copy()}, "image", "hwc",
                     request.format.name, "L" if channels == 1 else "RGB", 1, path)


def toy_writer(path: Path, request: io.WriteRequest):
    array = request.single_array(path)
    array = array[:, :, None] if array.ndim == 2 else array
    if array.dtype != np.uint8 or array.shape[2] not in request.format.uint8_channels or max(array.shape) > 255:
        raise OutputError(f"{path}: {request.format.name} holds small 8-bit gray or RGB images; save as .png")
    data = TOY_MAGIC + bytes(array.shape) + np.ascontiguousarray(array).tobytes()
    return lambda file: file.write(data)


def toy_complete(path: Path, size: int) -> bool:
    height, width, channels = path.read_bytes()[4:7]
    return size == 7 + height * width * channels


TOY = formats.Format("TOY", "image", (".toy",), ".toy", toy_read, toy_writer, toy_complete,
                     formats.begins(TOY_MAGIC), uint8_channels=(1, 3), max_side=255)


@pytest.fixture
def toy_format():
    formats.register(TOY)
    yield TOY
    formats.unregister(TOY.name)


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def photo(path: Path, channels: int = 3) -> np.ndarray:
    pixels = np.random.default_rng(5).integers(0, 256, (6, 8, channels), dtype=np.uint8)
    Image.fromarray(pixels if channels > 1 else pixels[:, :, 0]).save(path)
    return pixels


def avg2(pixels: np.ndarray) -> np.ndarray:
    """A brute-force 2x2 average, rounded half up (the expected output of `pool -m avg -w 2`)."""
    blocks = pixels.astype(np.float64).reshape(pixels.shape[0] // 2, 2, pixels.shape[1] // 2, 2, -1)
    return np.floor(blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint8)


# ------------------------------------------------------------------ the table is the truth


def help_names(capsys, command: str) -> list[str]:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    text = " ".join(out.replace("│", " ").split())
    return re.search(r"Output format: ([a-z0-9|]+)", text).group(1).split("|")


def test_every_format_name_the_cli_offers_is_a_record_with_a_writer_and_back(capsys):
    written = {record.written[1:] for record in formats.FORMATS.values() if record.written}
    assert set(help_names(capsys, "pool")) == written
    assert set(help_names(capsys, "batch")) == written | {"same"}


def test_every_format_name_is_written_with_its_suffix(tmp_path, capsys):
    source = tmp_path / "gray.png"
    photo(source, 1)
    for record in formats.FORMATS.values():
        if record.written is None:
            continue
        code, _, err = run(capsys, "pool", source, "--format", record.written[1:], "-d", tmp_path / "out",
                           "-m", "avg")
        assert (code, err) == (0, ""), record.name
        target = tmp_path / "out" / f"gray_avg_2{record.written}"
        assert io.load(target).format == record.name and io.is_complete(target)


def test_a_format_name_not_in_the_table_is_refused(tmp_path, capsys):
    source = tmp_path / "gray.png"
    photo(source, 1)
    code, _, err = run(capsys, "pool", source, "--format", "toy", "-d", tmp_path)
    assert code == 2 and "--format 'toy' is not known; use one of png, jpg, tiff" in err


def test_batch_discovers_exactly_the_suffixes_of_the_table(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    suffixes = formats.read_suffixes()
    for suffix in suffixes:
        (source / f"a{suffix.upper() if suffix == '.jpeg' else suffix}").write_bytes(b"x")
    for other in (".txt", ".json", ".zarr", ".html", ".jxl", ".pngx"):
        (source / f"b{other}").write_bytes(b"x")
    found = Batch(source, tmp_path / "out", PoolSettings(), BatchOptions(jobs=1)).inputs()
    assert sorted(p.name for p in found) == sorted(f"a{s.upper() if s == '.jpeg' else s}" for s in suffixes)


def test_every_signature_sniffs_its_own_format(tmp_path):
    source = tmp_path / "gray.png"
    pixels = photo(source, 1)
    for record in formats.FORMATS.values():
        if record.written:
            target = io.save(tmp_path / f"again{record.written}", pixels)
            assert formats.sniff(target.read_bytes()[:64]) is record, record.name
            assert io.sniff_suffix(target.read_bytes()[:64]) == record.written


def test_a_suffix_of_another_format_is_refused():
    with pytest.raises(ValueError, match="belong to another format"):
        formats.register(formats.Format("NOTPNG", "image", (".png",), None, toy_read))
    assert formats.by_suffix(".png").name == "PNG"


# ------------------------------------------------------------------ one record makes a format


def test_a_registered_format_is_pooled_to_and_from_by_the_cli(toy_format, tmp_path, capsys):
    source = tmp_path / "photo.png"
    pixels = photo(source)
    toy = tmp_path / "small.toy"
    code, out, err = run(capsys, "pool", source, "--format", "toy", "-o", toy, "-m", "avg")
    assert (code, err) == (0, "") and "small.toy" in out
    assert toy.read_bytes()[:7] == TOY_MAGIC + bytes((3, 4, 3))
    np.testing.assert_array_equal(io.load(toy).array, avg2(pixels))
    back = tmp_path / "back.png"
    code, _, err = run(capsys, "pool", toy, "-o", back, "-m", "max", "-k", "1")
    assert (code, err) == (0, "")
    np.testing.assert_array_equal(io.load(back).array, avg2(pixels))  # window 1: unchanged


def test_a_registered_format_is_described_by_info(toy_format, tmp_path, capsys):
    toy = io.save(tmp_path / "a.toy", np.zeros((4, 6), np.uint8))
    code, out, err = run(capsys, "info", toy)
    assert (code, err) == (0, "")
    assert out.startswith(f"{toy}  TOY (image), mode L")


def test_a_registered_format_is_discovered_and_written_by_batch(toy_format, tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    pixels = photo(source / "b.png")
    io.save(source / "a.toy", pixels)
    code, _, err = run(capsys, "batch", source, "-d", tmp_path / "out", "-m", "avg")
    assert (code, err) == (0, "")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.toy", "b.png"]
    np.testing.assert_array_equal(io.load(tmp_path / "out" / "a.toy").array, avg2(pixels))
    code, _, err = run(capsys, "batch", source, "-d", tmp_path / "all", "--format", "toy", "-m", "avg")
    assert (code, err) == (0, "")
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["a.toy", "b.toy"]


def test_a_registered_format_is_shown_by_the_inspector(toy_format, tmp_path, capsys):
    toy = io.save(tmp_path / "a.toy", photo(tmp_path / "a.png"))
    code, _, err = run(capsys, "inspect", toy, "-o", tmp_path / "page.html", "-m", "avg")
    assert (code, err) == (0, "")
    text = (tmp_path / "page.html").read_text()
    found = re.search(r'<script type="application/json" id="poolcli-data">(.*?)</script>', text, re.S)
    assert found is not None
    payload = json.loads(found.group(1))
    assert (payload["title"], payload["kind"], payload["shape"]) == ("a.toy", "image", [6, 8, 3])


def test_a_registered_format_has_its_completeness_check(toy_format, tmp_path, capsys):
    whole = io.save(tmp_path / "whole.toy", np.ones((4, 4, 3), np.uint8))
    cut = tmp_path / "cut.toy"
    cut.write_bytes(whole.read_bytes()[:-1])
    assert io.is_complete(whole) and not io.is_complete(cut)
    source = tmp_path / "src"
    source.mkdir()
    io.save(source / "a.toy", np.ones((4, 4, 3), np.uint8))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.toy").write_bytes(cut.read_bytes())
    code, out, _ = run(capsys, "batch", source, "-d", tmp_path / "out", "--skip-existing")
    assert code == 0 and io.is_complete(tmp_path / "out" / "a.toy")  # the cut output was redone


def test_a_registered_format_is_sniffed_from_stdin(toy_format, tmp_path, capsys, monkeypatch):
    data = io.save(tmp_path / "a.toy", np.full((4, 4, 1), 7, np.uint8)).read_bytes()
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=bytes_io.BytesIO(data)))
    code, _, err = run(capsys, "pool", "-", "-o", tmp_path / "out.toy", "-m", "max")
    assert (code, err) == (0, "")
    np.testing.assert_array_equal(io.load(tmp_path / "out.toy").array, np.full((2, 2, 1), 7, np.uint8))


def test_a_registered_format_refuses_what_it_cannot_hold(toy_format, tmp_path, capsys):
    source = tmp_path / "rgba.png"
    photo(source, 4)
    code, _, err = run(capsys, "pool", source, "-o", tmp_path / "out.toy")
    assert code == 1 and err.count("\n") == 1 and "TOY holds small 8-bit gray or RGB images" in err
    assert not (tmp_path / "out.toy").exists()


def test_a_read_only_format_is_read_but_not_offered(tmp_path, capsys):
    record = formats.Format("TOYRO", "image", (".toyro",), None, toy_read)
    formats.register(record)
    try:
        source = tmp_path / "a.toyro"
        source.write_bytes(TOY_MAGIC + bytes((2, 2, 1)) + bytes(4))
        assert io.load(source).format == "TOYRO"
        assert "toyro" not in formats.written_suffixes()
        with pytest.raises(OutputError, match="reads TOYRO but does not write it"):
            io.save(tmp_path / "b.toyro", np.zeros((2, 2), np.uint8))
    finally:
        formats.unregister(record.name)
