"""What one small file costs a batch besides decoding, pooling and encoding: the output checks
run once each (an input named twice is compared once), and a small PNG is inflated once, by its
decoder, not a second time by the bomb check. Counted in-process with the real functions."""

import os

import numpy as np
from PIL import Image

from poolcli import io
from poolcli.app.settings import PoolSettings
from poolcli.batch import BatchOptions
from poolcli.batch.run import Batch
from poolcli.io import atomic, png

FILES = 6


def _tree(folder):
    rng = np.random.default_rng(0)
    for i in range(FILES):
        sub = folder / f"part{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40 + i, 60, 3), dtype=np.uint8)).save(sub / f"img{i}.png")
    return folder


def test_each_output_check_resolves_the_paths_once(tmp_path, monkeypatch):
    """Per file: the target and the input resolved before writing and again after it (4), not 9."""
    calls = []
    real = os.path.realpath
    monkeypatch.setattr(atomic.os.path, "realpath", lambda path, **kw: calls.append(path) or real(path, **kw))
    summary = Batch(_tree(tmp_path / "src"), tmp_path / "out", PoolSettings(mode="avg"), BatchOptions(jobs=1)).run()
    assert summary.done == FILES
    files = [str(c) for c in calls if str(c).endswith(".png")]  # folders are resolved by the walk
    targets = [c for c in files if c.startswith(str(tmp_path / "out"))]
    assert len(targets) == 2 * FILES, files  # checked before the write and after it
    assert len(files) == 4 * FILES, files  # and the input beside it, each time once


def test_a_small_png_is_inflated_only_by_its_decoder(tmp_path, monkeypatch):
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)  # noise: ~18 KB of data
    path = tmp_path / "noise.png"
    Image.fromarray(image).save(path)
    inflaters = []
    original = png.zlib.decompressobj
    monkeypatch.setattr(png.zlib, "decompressobj", lambda *a: inflaters.append(a) or original(*a))
    assert np.array_equal(io.load(path).array, image)
    assert inflaters == []


def test_a_dataset_sized_png_is_inflated_only_by_its_decoder(tmp_path, monkeypatch):
    """A 180x180 noise PNG (~97 KB of data, a dataset's largest) is not inflated twice either."""
    image = np.random.default_rng(2).integers(0, 256, (180, 180, 3), dtype=np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(image).save(path)
    inflaters = []
    original = png.zlib.decompressobj
    monkeypatch.setattr(png.zlib, "decompressobj", lambda *a: inflaters.append(a) or original(*a))
    assert np.array_equal(io.load(path).array, image)
    assert inflaters == []


def test_a_file_is_read_whole_whatever_its_size(tmp_path):
    """The one-read path gives np.fromfile's bytes, for an empty file and a FIFO (no size) too."""
    from poolcli.io.images import _read_bytes

    for size in (0, 1, 4095, 4096, 70_001):
        path = tmp_path / f"f{size}"
        path.write_bytes(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes())
        assert np.array_equal(_read_bytes(path), np.fromfile(path, dtype=np.uint8))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:
        with open(fifo, "wb") as writer:
            writer.write(b"x" * 10_000)
        os._exit(0)
    assert _read_bytes(fifo).tobytes() == b"x" * 10_000
    os.waitpid(pid, 0)


def test_held_chatter_is_caught_per_call_and_the_rest_passed_on(capfd):
    """A batch worker keeps descriptor 2 on its sink: each quiet call still gets its own chatter
    (a nested call its outer call's too), and what is written outside them reaches stderr."""
    from poolcli.io.chatter import quiet_decoders

    with io.decoder_chatter_held():
        os.write(2, b"before\n")
        with quiet_decoders() as outer:
            os.write(2, b"Corrupt JPEG data: 12 bytes\n")
            with quiet_decoders() as inner:
                os.write(2, b"Premature end of JPEG file\n")
            os.write(2, b"more\n")
        with quiet_decoders() as clean:
            pass
        os.write(2, b"after\n")
    os.write(2, b"outside\n")
    assert inner.has("Corrupt JPEG data", "Premature end of JPEG file")
    assert outer.text == "Corrupt JPEG data: 12 bytes\nPremature end of JPEG file\nmore\n"
    assert clean.text == ""
    assert capfd.readouterr().err == "before\nafter\noutside\n"
