"""Hostile inputs and hostile situations through the real command line.

Every run is a real ``python -m poolcli`` child under a 1.5 GiB address-space cap and a 20 s
wall limit (tests/hostile.py). What each run must show: the documented exit code (0 a file
that can be pooled, 1 a bad input, 2 bad usage, 128+n signal n), stderr empty on success and
otherwise exactly ONE line, ``poolcli: error: ...`` naming the file, with no traceback and no
decoder chatter; a refusal within seconds and well under 300 MB; no input changed and no
temporary file (``.<name>.<random>.tmp``) left behind.

Run alone: ``python -m pytest -q -p no:cacheprovider tests/test_hostile.py tests/test_fuzz_loaders.py``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io as bytes_io
import json
import math
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import hostile
import numpy as np
import pytest
from hostile import MiB, Run, run
from PIL import Image

from poolcli import io, pool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS, wait4 and /proc")

REFUSAL_MB = 300  # peak resident memory of any run on the corpus (the real content of every file is tiny)
REFUSAL_SECONDS = 8.0  # a refusal (or a tiny success) takes well under a second; this is for a busy machine
OK, BAD, EITHER = {0}, {1}, {0, 1}

# name -> (generator, exit codes allowed for `pool` and `info`). EITHER: a file that can honestly be pooled
# (ignoring a bomb in metadata, or the first of many pages) or refused; what it must never do is spend
# memory, time or stderr lines on it.
CORPUS = {
    "iccp_bomb": (hostile.png_iccp_bomb, EITHER),
    "ztxt_bomb": (hostile.png_ztxt_bomb, EITHER),
    "itxt_bomb": (hostile.png_itxt_bomb, EITHER),
    "png_huge_dimensions": (hostile.png_huge_dimensions, BAD),
    "idat_bomb": (hostile.png_idat_bomb, EITHER),
    "png_truncated": (hostile.png_truncated, BAD),
    "zero_byte_png": (hostile.zero_byte_png, BAD),
    "npz_bomb_deflate": (hostile.npz_bomb_deflate, BAD),
    "npz_bomb_bzip2": (hostile.npz_bomb_bzip2, BAD),
    "npz_bomb_lzma": (hostile.npz_bomb_lzma, BAD),
    "npz_bomb_under_cap": (hostile.npz_bomb_under_cap, BAD),
    "npz_shape_lie": (hostile.npz_shape_lie, BAD),
    "npz_shape_lie_deflated": (hostile.npz_shape_lie_deflated, BAD),
    "npy_shape_lie": (hostile.npy_shape_lie, BAD),
    "npy_shape_overflow": (hostile.npy_shape_overflow, BAD),
    "npy_negative_shape": (hostile.npy_negative_shape, BAD),
    "npz_shape_overflow": (hostile.npz_shape_overflow, BAD),
    "npy_pickle": (hostile.npy_pickle, BAD),
    "npy_big_endian": (hostile.npy_big_endian, OK),
    "npy_extremes": (hostile.npy_extremes, OK),
    "tiff_many_pages": (hostile.tiff_many_pages, EITHER),
    "tiff_ifd_loop": (hostile.tiff_ifd_loop, EITHER),
    "tiff_ifd_loop_float64": (hostile.tiff_ifd_loop_float64, EITHER),
    "jpeg_many_scans": (hostile.jpeg_many_scans, BAD),
    "jpeg_cut_with_eoi": (hostile.jpeg_cut_with_eoi, BAD),
    "jpeg_garbage_middle": (hostile.jpeg_garbage_middle, EITHER),
    "gif_huge_screen": (hostile.gif_huge_screen, BAD),
    "gif_many_frames": (hostile.gif_many_frames, EITHER),
    "webp_huge_canvas": (hostile.webp_huge_canvas, BAD),
}


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_state(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder`` (hidden ones included): relative path -> (sha256, mode)."""
    return {os.fsdecode(p.relative_to(folder)): (digest(p), p.lstat().st_mode)
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


def temporaries(folder: Path) -> list[str]:
    return sorted(os.fsdecode(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.startswith(".") and p.name.endswith(".tmp"))


def assert_one_error_line(result: Run, *names: str) -> str:
    """stderr is exactly one ``poolcli: error:`` line that contains each of ``names``."""
    assert "Traceback" not in result.err_text, result
    lines = result.err_lines
    assert len(lines) == 1, f"stderr must be exactly one line, not {len(lines)}\n{result}"
    assert lines[0].startswith("poolcli: error:"), f"stderr is not poolcli's error line\n{result}"
    assert result.err.endswith(b"\n") and result.err.count(b"\n") == 1, result
    for name in names:
        assert name in lines[0], f"the error line does not name {name!r}\n{result}"
    return lines[0]


def assert_bounded(result: Run, seconds: float = REFUSAL_SECONDS, mb: float = REFUSAL_MB) -> None:
    assert not result.timed_out, f"still running after {hostile.WALL_SECONDS:.0f} s: killed\n{result}"
    assert result.rss_mb < mb, f"peak memory {result.rss_mb:.0f} MB, more than {mb} MB\n{result}"
    assert result.seconds < seconds, f"took {result.seconds:.1f} s, more than {seconds} s\n{result}"


# ------------------------------------------------------------------ the corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Every hostile file in one folder (nothing else in it): name -> (path, sha256)."""
    folder = tmp_path_factory.mktemp("corpus")
    files = {}
    for name, (generate, _) in CORPUS.items():
        path = generate(folder)
        files[name] = (path, digest(path))
    return files


def check_corpus_run(result: Run, path: Path, allowed: set[int], out_dir: Path | None = None) -> None:
    assert_bounded(result)
    assert result.code in allowed, f"exit {result.code}, expected one of {sorted(allowed)}\n{result}"
    if result.code == 0:  # nothing, or one warning of poolcli's own (e.g. "only the first page is pooled")
        lines = result.err_lines
        assert lines == [] or (len(lines) == 1 and lines[0].startswith("poolcli: warning:")
                               and str(path) in lines[0]), f"stderr of a success (decoder chatter?)\n{result}"
    else:
        assert_one_error_line(result, str(path))
    if out_dir is not None:
        assert temporaries(out_dir) == [], result
        written = sorted(p.name for p in out_dir.iterdir())
        assert (written != []) == (result.code == 0), f"outputs {written} after exit {result.code}\n{result}"


@pytest.mark.parametrize("name", list(CORPUS))
def test_pool_on_hostile_file(corpus, tmp_path, name):
    path, before = corpus[name]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run("pool", path, "-d", out_dir)
    check_corpus_run(result, path, CORPUS[name][1], out_dir)
    assert digest(path) == before, "the input changed"
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(p.name for p, _ in corpus.values())


@pytest.mark.parametrize("name", list(CORPUS))
def test_info_on_hostile_file(corpus, name):
    path, before = corpus[name]
    result = run("info", path)
    check_corpus_run(result, path, CORPUS[name][1])
    assert digest(path) == before, "the input changed"


@pytest.mark.slow
def test_batch_on_the_corpus(corpus, tmp_path):
    """One worker per core over every hostile file: each bad file one line, the rest done."""
    source = next(iter(corpus.values()))[0].parent
    before = tree_state(source)
    out_dir, report = tmp_path / "out", tmp_path / "report.json"
    result = run("batch", source, "-d", out_dir, "-j", "2", "--report", report, "--quiet", timeout=120)
    assert not result.timed_out, result
    assert result.code == 1, result
    assert result.rss_mb < REFUSAL_MB, result
    assert "Traceback" not in result.err_text, result
    records = {Path(r["input"]).name: r for r in json.loads(report.read_text())["files"]}
    assert len(records) == len(CORPUS), sorted(records)
    names = {name: path.name for name, (path, _) in corpus.items()}
    for name, (_, allowed) in CORPUS.items():
        status = records[names[name]]["status"]
        assert {"done": 0, "failed": 1}[status] in allowed, (name, records[names[name]])
        if status == "failed":
            error = records[names[name]]["error"]
            assert "\n" not in error and str(corpus[name][0]) in error, (name, error)
    failed = sorted(n for n, r in records.items() if r["status"] == "failed")
    lines = result.err_lines
    assert len(lines) == len(failed), f"{len(failed)} failures but {len(lines)} stderr lines\n{result}"
    for line in lines:
        assert line.startswith("poolcli: error:"), f"chatter on stderr: {line!r}\n{result}"
        assert sum(f"{source}/{n}" in line for n in failed) == 1, line
    assert temporaries(out_dir) == []
    assert tree_state(source) == before


# ------------------------------------------------------------------ valid but unusual arrays


@pytest.mark.parametrize("dtype, mode", [(">f4", "avg"), (">i2", "max"), (">u2", "avg"), (">f8", "median")])
def test_big_endian_npy_pools_like_native(tmp_path, dtype, mode):
    path = hostile.npy_big_endian(tmp_path, dtype)
    target = tmp_path / "out.npy"
    result = run("pool", path, "-o", target, "-m", mode, "-k", "3")
    assert result.code == 0 and result.err == b"", result
    native = np.load(path).astype(np.dtype(dtype).newbyteorder("="))
    windows = native[:, :33, :36].reshape(4, 11, 3, 12, 3).transpose(0, 1, 3, 2, 4).reshape(4, 11, 12, 9)
    expected = {"avg": np.mean, "max": np.max, "median": np.median}[mode](windows.astype(np.float64), axis=-1)
    written = np.load(target)
    assert written.shape == (4, 11, 12)
    np.testing.assert_allclose(written.astype(np.float64), expected, rtol=1e-6, atol=1e-6)


def _exact_reference(array: np.ndarray, mode: str) -> np.ndarray:
    """2x2 pooling of an integer array with Python integers: exact, then rounded as SPEC says."""
    from fractions import Fraction

    out = np.empty((array.shape[0], array.shape[1] // 2, array.shape[2] // 2), dtype=object)
    for index in np.ndindex(out.shape):
        c, i, j = index
        cells = sorted(int(v) for v in array[c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].ravel())
        if mode == "avg":
            out[index] = Fraction(sum(cells), 4)
        elif mode == "l2":
            out[index] = (sum(Fraction(v) ** 2 for v in cells) / 4)
        elif mode == "max":
            out[index] = cells[-1]
        else:  # median of four: the mean of the middle two, rounded half up for an integer output
            out[index] = math.floor(Fraction(cells[1] + cells[2], 2) + Fraction(1, 2))
    return out


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
@pytest.mark.parametrize("mode", ["avg", "l2", "max", "median"])
def test_extreme_integers_do_not_overflow(tmp_path, dtype, mode):
    path = hostile.npy_extremes(tmp_path, dtype)
    target = tmp_path / "out.npy"
    result = run("pool", path, "-o", target, "-m", mode)
    assert result.code == 0 and result.err == b"", result
    array, written = np.load(path), np.load(target)
    expected = _exact_reference(array, mode)
    assert written.shape == expected.shape
    scale = float(np.abs(array.astype(np.float64)).max())
    for index in np.ndindex(expected.shape):
        want, got = expected[index], written[index]
        if mode in ("max", "median"):
            assert written.dtype == array.dtype, written.dtype
            assert int(got) == int(want), f"{mode} {dtype} at {index}: {got} != {want}"
        else:
            value = float(want) ** 0.5 if mode == "l2" else float(want)
            assert abs(float(got) - value) <= 1e-12 * scale, f"{mode} {dtype} at {index}: {got} != {value}"


# ------------------------------------------------------------------ file names


WEIRD_NAMES = {"newline": (hostile.NAME_NEWLINE, "line.png"), "escape": (hostile.NAME_ESCAPE, "red"),
               "non_utf8": (hostile.NAME_NON_UTF8, "caf")}


@pytest.mark.parametrize("which", list(WEIRD_NAMES))
def test_error_about_a_weird_name_stays_one_clean_line(tmp_path, which):
    name, fragment = WEIRD_NAMES[which]
    path = hostile.named(tmp_path, name, hostile.small_png_bytes()[:200])  # cut short: unreadable
    result = run("info", path)
    assert result.code == 1, result
    assert b"\x1b" not in result.err and b"\r" not in result.err, f"raw control bytes on stderr\n{result}"
    assert_one_error_line(result, fragment)


@pytest.mark.parametrize("which", list(WEIRD_NAMES))
def test_pool_of_a_weird_name_succeeds_and_prints_one_clean_line(tmp_path, which):
    name, fragment = WEIRD_NAMES[which]
    folder = tmp_path / "in"
    folder.mkdir()
    path = hostile.named(folder, name, hostile.small_png_bytes())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run("pool", path, "-d", out_dir)
    assert result.code == 0 and result.err == b"", result
    assert b"\x1b" not in result.out, f"raw escape sequence on stdout\n{result}"
    assert len(result.out.rstrip(b"\n").split(b"\n")) == 1, f"one input, one stdout line\n{result}"
    assert fragment.encode() in result.out, result
    written = list(out_dir.iterdir())
    assert len(written) == 1 and io.load(written[0]).array.shape == (8, 8, 3)


def test_zero_byte_png_is_refused_in_one_line(tmp_path):
    path = hostile.zero_byte_png(tmp_path)
    result = run("pool", path, "-o", tmp_path / "out.png")
    assert result.code == 1, result
    assert_one_error_line(result, str(path))
    assert not (tmp_path / "out.png").exists()


# ------------------------------------------------------------------ data safety


def _png(path: Path, seed: int = 0, size: int = 16) -> Path:
    Image.fromarray(hostile.noise((size, size, 3), seed)).save(path)
    return path


def test_compare_must_not_replace_an_input(tmp_path):
    first, other = _png(tmp_path / "in.png", 1), _png(tmp_path / "other.png", 2)
    before = digest(other)
    out_dir = tmp_path / "od"
    out_dir.mkdir()
    result = run("pool", first, other, "-d", out_dir, "--compare", other, "--overwrite")
    assert digest(other) == before, f"--compare replaced the input other.png\n{result}"
    assert result.code in (1, 2), result
    assert_one_error_line(result, str(other))
    assert temporaries(tmp_path) == []


def test_batch_compare_dir_inside_source_is_refused(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    _png(source / "a.png", 1)
    _png(source / "b.png", 2)
    before = tree_state(source)
    result = run("batch", source, "-d", tmp_path / "out", "--compare-dir", source, "--overwrite", "-j", "1")
    assert result.code == 2, result
    assert_one_error_line(result, "--compare-dir")
    assert tree_state(source) == before, "SRC changed"


def test_two_inputs_with_one_output_name_are_refused_up_front(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = _png(tmp_path / "a" / "x.png", 1), _png(tmp_path / "b" / "x.png", 2)
    out_dir = tmp_path / "od"
    out_dir.mkdir()
    result = run("pool", first, second, "-d", out_dir)
    assert result.code == 2, result
    assert_one_error_line(result, str(first), str(second))
    assert list(out_dir.iterdir()) == [], "something was written before the refusal"


def test_existing_report_needs_overwrite(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    _png(source / "a.png")
    report = tmp_path / "report.json"
    report.write_bytes(b"keep me")
    result = run("batch", source, "-d", tmp_path / "out", "--report", report, "-j", "1")
    assert report.read_bytes() == b"keep me", f"the existing report was replaced\n{result}"
    assert result.code == 2, result
    assert_one_error_line(result, str(report))
    again = run("batch", source, "-d", tmp_path / "out2", "--report", report, "--overwrite", "-j", "1")
    assert again.code == 0, again
    assert json.loads(report.read_text())["summary"]["done"] == 1


def test_replaced_output_drops_setuid_and_setgid(tmp_path):
    source = _png(tmp_path / "in.png")
    target = tmp_path / "out.png"
    _png(target, 9, 4)
    os.chmod(target, 0o6755)
    assert stat.S_IMODE(target.stat().st_mode) & 0o6000, "this file system ignores setuid bits"
    result = run("pool", source, "-o", target, "--overwrite")
    assert result.code == 0, result
    mode = stat.S_IMODE(target.stat().st_mode)
    assert not mode & (stat.S_ISUID | stat.S_ISGID), f"the new output kept mode {oct(mode)}"
    assert io.load(target).array.shape == (8, 8, 3)


def test_skip_existing_redoes_empty_and_truncated_outputs(tmp_path):
    source, out_dir = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    out_dir.mkdir()
    for index, name in enumerate(("empty.png", "cut.png", "good.png")):
        _png(source / name, index, 32)
    (out_dir / "empty.png").write_bytes(b"")
    complete = run("pool", source / "cut.png", "-o", out_dir / "cut.png")
    assert complete.code == 0, complete
    data = (out_dir / "cut.png").read_bytes()
    (out_dir / "cut.png").write_bytes(data[: len(data) // 2])
    good = run("pool", source / "good.png", "-o", out_dir / "good.png")
    assert good.code == 0, good
    good_before = (out_dir / "good.png").stat().st_mtime_ns, digest(out_dir / "good.png")
    result = run("batch", source, "-d", out_dir, "--skip-existing", "-j", "1")
    assert result.code == 0, result
    for name in ("empty.png", "cut.png"):
        expected = pool(io.load(source / name).array, 2, axes=(0, 1))
        try:
            written = io.load(out_dir / name).array
        except io.InputError as error:
            pytest.fail(f"{name}: a zero-byte or cut output was counted as done: {error}\n{result}")
        assert np.array_equal(written, expected), name
    assert ((out_dir / "good.png").stat().st_mtime_ns, digest(out_dir / "good.png")) == good_before


def test_csv_report_with_a_non_utf8_name(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    hostile.named(source, hostile.NAME_NON_UTF8, hostile.small_png_bytes(1))
    _png(source / "plain.png")
    report = tmp_path / "report.csv"
    result = run("batch", source, "-d", tmp_path / "out", "--report", report, "-j", "1")
    assert result.code == 0, result
    assert "Traceback" not in result.err_text, result
    rows = list(csv.DictReader(bytes_io.StringIO(report.read_bytes().decode("utf-8", "surrogateescape"))))
    assert len(rows) == 2, rows
    assert {row["status"] for row in rows} == {"done"}, rows
    assert any("caf" in row["input"] for row in rows), rows


def test_batch_output_into_head_ends_cleanly(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for index in range(60):
        _png(source / f"f{index:02d}.png", index, 8)
    command = " ".join(shlex.quote(os.fsdecode(a)) for a in
                       (sys.executable, "-m", "poolcli", "batch", source, "-d", tmp_path / "out", "-j", "1"))
    started = time.monotonic()
    completed = subprocess.run(["bash", "-c", f"{command} | head -1"], capture_output=True,
                               timeout=60, env=hostile.child_env(), start_new_session=True)
    assert time.monotonic() - started < 40
    assert len(completed.stdout.splitlines()) == 1, completed
    stderr = completed.stderr.decode(errors="replace")
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "Exception ignored" not in stderr, stderr
    assert len([line for line in stderr.splitlines() if line.strip()]) <= 1, stderr
    assert temporaries(tmp_path / "out") == []


# ------------------------------------------------------------------ bad parameters


HUGE = "9223372036854775808"  # 2**63: one more than int64 holds


def test_stride_beyond_int64_is_a_usage_error(tmp_path):
    source = _png(tmp_path / "in.png")
    result = run("pool", source, "-o", tmp_path / "out.png", "--stride", HUGE)
    assert result.code == 2, result
    assert_one_error_line(result, "--stride")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("option", ["--window", "--dilation", "--padding"])
def test_other_integers_beyond_int64_are_refused_by_name(tmp_path, option):
    """A usage error naming the option (2), or a refusal of this input naming the file (1); never a crash."""
    source = _png(tmp_path / "in.png")
    result = run("pool", source, "-o", tmp_path / "out.png", option, HUGE)
    assert result.code in (1, 2), result
    line = assert_one_error_line(result, option if result.code == 2 else str(source))
    assert "unexpected" not in line, result
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("power", ["1e308", "1000"])
def test_lp_with_an_enormous_power_is_the_maximum(tmp_path, power):
    """The p-norm tends to the maximum as p grows; x**p must not overflow (8-bit values) to inf."""
    image = hostile.noise((256, 256), 7)
    source = tmp_path / "gray.png"
    Image.fromarray(image).save(source)
    target = tmp_path / "out.png"
    result = run("pool", source, "-o", target, "-m", "lp", "--power", power)
    assert_bounded(result, seconds=10, mb=1000)
    assert result.code in (0, 2), result
    if result.code == 2:
        assert_one_error_line(result, "--power")
        return
    written = io.load(target).array[..., 0].astype(int)
    expected = image.reshape(128, 2, 128, 2).max(axis=(1, 3)).astype(int)
    assert np.abs(written - expected).max() <= 1, f"lp with p = {power} should be the window maximum\n{result}"
    assert result.err == b"", result


def test_lp_with_an_enormous_power_on_small_floats(tmp_path):
    """Values below 1: x**p must not underflow to 0 either."""
    values = np.random.default_rng(9).random((3, 16, 16)) * 0.9
    source = tmp_path / "small.npy"
    np.save(source, values)
    target = tmp_path / "out.npy"
    result = run("pool", source, "-o", target, "-m", "lp", "--power", "1e308")
    assert_bounded(result, seconds=10, mb=1000)
    assert result.code in (0, 2), result
    if result.code == 2:
        assert_one_error_line(result, "--power")
        return
    expected = values.reshape(3, 8, 2, 8, 2).max(axis=(2, 4))
    np.testing.assert_allclose(np.load(target), expected, rtol=1e-9)


@pytest.mark.slow
def test_median_with_a_big_window_fits_the_memory_cap(tmp_path):
    """10201-cell windows at every pixel: an unfolded window view (200*200*10201 cells) would not fit."""
    image = hostile.noise((200, 200), 8)
    source = tmp_path / "gray.png"
    Image.fromarray(image).save(source)
    target = tmp_path / "out.png"
    result = run("pool", source, "-o", target, "-m", "median", "-k", "101", "-s", "1", "-p", "50", timeout=60)
    assert not result.timed_out, result
    assert result.code == 0, result
    assert result.err == b"", result
    written = io.load(target).array[..., 0]
    assert written.shape == (200, 200)
    for y, x in ((100, 100), (0, 0), (199, 24)):  # every window has an odd count of real cells here
        window = image[max(y - 50, 0):y + 51, max(x - 50, 0):x + 51]
        assert written[y, x] == np.median(window), (y, x)


# ------------------------------------------------------------------ signals


def _mapped_or_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` memory-mapped or open: it is past start-up and reading it."""
    target = str(path)
    try:
        if target in Path(f"/proc/{pid}/maps").read_text():
            return True
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
    except OSError:
        pass
    return False


@pytest.fixture(scope="module")
def big_npy(tmp_path_factory) -> Path:
    """A (4200, 4200) float32 map (70 MB: memory-mapped when loaded); lp with a 81x81 window at stride 1
    takes seconds on it."""
    path = tmp_path_factory.mktemp("big") / "big.npy"
    np.save(path, np.random.default_rng(0).random((4200, 4200), dtype=np.float32))
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"])
def test_signal_mid_run_exits_128_plus_signal_and_leaves_nothing(tmp_path, big_npy, signum):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with open(tmp_path / "stderr", "w+b") as err:
        process = hostile.start("pool", big_npy, "-d", out_dir, "-m", "lp", "--power", "2.5", "-k", "81", "-s",
                                "1", memory=None, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 15
        while not _mapped_or_open(process.pid, big_npy) and time.monotonic() < deadline:
            if process.poll() is not None:
                break
            time.sleep(0.005)
        time.sleep(0.05)  # into the pooling
        still_running = process.poll() is None
        if still_running:
            os.kill(process.pid, signum)
        code, _, timed_out, _ = hostile.finish(process, 20)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    assert still_running, f"the run ended (exit {code}) before the signal; make it longer: {stderr!r}"
    assert not timed_out, "the signal did not stop the run within 20 s"
    assert code == 128 + signum, f"exit {code}, expected {128 + signum}; stderr {stderr!r}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("poolcli:") and "Traceback" not in stderr, stderr
    assert list(out_dir.iterdir()) == [], "a partial or temporary output was left"


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time), None once the process is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


@pytest.mark.slow
def test_batch_workers_exit_when_the_parent_is_killed(tmp_path, big_npy):
    source = tmp_path / "src"
    source.mkdir()
    for index in range(6):
        os.link(big_npy, source / f"map{index}.npy")  # hard links: the same 70 MB, six inputs
    process = hostile.start("batch", source, "-d", tmp_path / "out", "-j", "2", "--quiet", "-m", "lp",
                            "--power", "2.5", "-k", "121", "-s", "1", memory=None, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    workers: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 15
        while len(workers) < 2 and time.monotonic() < deadline and process.poll() is None:
            for child in _children(process.pid):
                started = _start_time(child)
                if started is not None:
                    workers.setdefault(child, started)
            time.sleep(0.02)
        assert len(workers) >= 2, f"no two workers appeared: {workers}"
        time.sleep(1.0)  # both are busy with a file now
        os.kill(process.pid, signal.SIGKILL)
        hostile.finish(process, 10)
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline and any(_start_time(p) == s for p, s in workers.items()):
            time.sleep(0.05)
        alive = [p for p, s in workers.items() if _start_time(p) == s]
        assert alive == [], f"workers {alive} still run 4 s after their parent was SIGKILLed"
    finally:
        for pid, started in workers.items():  # the workers this test started, checked by start time
            if _start_time(pid) == started:
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def test_corpus_generators_are_small(corpus):
    for name, (path, _) in corpus.items():
        limit = 20 * MiB if name == "tiff_many_pages" else 3 * MiB
        assert path.stat().st_size < limit, (name, path.stat().st_size)


@pytest.mark.parametrize("command", [("pool", "-o", "out.zarr"), ("pool", "-o", "out.npy"), ("pyramid", "-o", "p.zarr"),
                                     ("info",)])
@pytest.mark.parametrize("generate", [hostile.npy_shape_overflow, hostile.npy_negative_shape])
def test_impossible_npy_shapes_are_one_line_on_every_path(tmp_path, command, generate):
    """A header no array can have is refused by the one header check, before NumPy (whose memmap
    warns of the overflow) or the streaming reader meets it: one line, nothing written."""
    path = generate(tmp_path)
    name, *rest = command
    result = run(name, path, *(str(tmp_path / part) if "." in part else part for part in rest))
    assert result.code == 1, result
    assert_one_error_line(result, str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
