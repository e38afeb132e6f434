"""Data safety and limits at the boundary of every command, in-process (fast).

What is written where (never an input, never inside SRC, never over a file without
--overwrite), how a run goes on after one input fails, and the limits on what an input may
cost. The subprocess corpus with memory limits and real signals is in test_hostile.py.
"""

import contextlib
import errno
import os
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poolcli import io
from poolcli.app import memory
from poolcli.cli import main
from poolcli.errors import InputError, OutputError
from poolcli.io import atomic

ROOT = Path(__file__).resolve().parent.parent
GRAY = ROOT / "samples" / "camera.png"
PHOTO = ROOT / "samples" / "astronaut.jpg"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("poolcli: error:") and "Traceback" not in err, err
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ where poolcli writes


def test_compare_figure_never_replaces_an_input(tmp_path, capsys):
    source, other = tmp_path / "in.png", tmp_path / "other.png"
    shutil.copy(GRAY, source)
    shutil.copy(PHOTO, other)
    before = snapshot(tmp_path)
    code, _, err = run(capsys, "pool", source, "-o", tmp_path / "out.png", "--compare", source, "--overwrite")
    assert code == 2 and "never overwrites an input" in one_error_line(err)
    code, _, err = run(capsys, "pool", source, other, "-d", tmp_path, "--compare", other, "--overwrite")
    assert code == 2 and "--compare" in one_error_line(err)
    assert snapshot(tmp_path) == before


def test_compare_folder_gives_one_figure_per_input(tmp_path, capsys):
    figures = tmp_path / "figures"
    figures.mkdir()
    code, _, err = run(capsys, "pool", GRAY, PHOTO, "-d", tmp_path, "--compare", figures)
    assert code == 0, err
    assert sorted(p.name for p in figures.iterdir()) == ["astronaut_compare.png", "camera_compare.png"]


def test_two_inputs_that_would_write_one_output_are_refused_up_front(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(GRAY, tmp_path / folder / "x.png")
    out = tmp_path / "od"
    out.mkdir()
    code, _, err = run(capsys, "pool", tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "-d", out)
    line = one_error_line(err)
    assert code == 2 and str(tmp_path / "a" / "x.png") in line and str(tmp_path / "b" / "x.png") in line
    assert list(out.iterdir()) == []


def test_batch_never_writes_figures_or_report_into_src(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(GRAY, src / "camera.png")
    before = snapshot(src)
    for extra in (["--compare-dir", src], ["--report", src / "report.json"]):
        code, _, err = run(capsys, "batch", src, "-d", tmp_path / "out", "--overwrite", *extra)
        assert code == 2 and "SRC" in one_error_line(err), extra
    assert snapshot(src) == before


def test_report_is_never_replaced_without_overwrite(tmp_path, capsys):
    src, report = tmp_path / "src", tmp_path / "report.json"
    src.mkdir()
    shutil.copy(GRAY, src / "camera.png")
    report.write_text("mine")
    code, _, err = run(capsys, "batch", src, "-d", tmp_path / "out", "--report", report)
    assert code == 2 and "--overwrite" in one_error_line(err)
    assert report.read_text() == "mine"
    code, _, err = run(capsys, "batch", src, "-d", tmp_path / "out", "--report", report, "--overwrite")
    assert code == 0, err
    assert '"summary"' in report.read_text()


def test_replaced_output_drops_setuid_and_setgid_bits(tmp_path, capsys):
    target = tmp_path / "out.png"
    shutil.copy(GRAY, target)
    os.chmod(target, 0o6755)
    code, _, err = run(capsys, "pool", GRAY, "-o", target, "--overwrite")
    assert code == 0, err
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_names_at_the_file_system_limit_are_written(tmp_path, capsys):
    name = "n" * (255 - len(".png")) + ".png"
    code, _, err = run(capsys, "pool", GRAY, "-o", tmp_path / name)
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == [name]


# ------------------------------------------------------------------ the run goes on


def test_an_unexpected_error_fails_its_input_only(tmp_path, capsys, monkeypatch):
    real_load = io.load

    def load(path, **keywords):
        if Path(path).name == "camera.png":
            raise RuntimeError("decoder\nexploded")
        return real_load(path, **keywords)

    monkeypatch.setattr(memory.io, "load", load)
    code, out, err = run(capsys, "pool", GRAY, PHOTO, "-d", tmp_path)
    line = one_error_line(err)
    assert code == 1 and "camera.png" in line and "RuntimeError" in line
    assert (tmp_path / "astronaut_max_2.jpg").exists() and "astronaut" in out


def test_out_of_memory_names_the_input_and_the_fix(tmp_path, capsys, monkeypatch):
    def pool_arrays(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(memory, "pool_arrays", pool_arrays)
    code, _, err = run(capsys, "pool", GRAY, "-d", tmp_path)
    line = one_error_line(err)
    assert code == 1 and "not enough memory" in line and "(512, 512, 1) uint8" in line


def test_an_output_made_by_someone_else_during_the_write_is_left_alone(tmp_path, capsys, monkeypatch):
    """The target is free when pool starts and appears while the pixels are written (another
    program, another poolcli): one error line, their file untouched, no temporary left."""
    target = tmp_path / "out.png"
    real_fsync = os.fsync

    def fsync_while_another_program_writes(descriptor):
        if not target.exists():
            target.write_bytes(b"another program's file")
        real_fsync(descriptor)

    monkeypatch.setattr(atomic.os, "fsync", fsync_while_another_program_writes)
    code, _, err = run(capsys, "pool", GRAY, "-o", target)
    line = one_error_line(err)
    assert code == 1 and str(target) in line and "exists" in line and "--overwrite" in line
    assert snapshot(tmp_path) == {"out.png": b"another program's file"}


def test_full_disk_says_no_space_left(tmp_path, capsys, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    code, _, err = run(capsys, "pool", GRAY, "-o", tmp_path / "out.png")
    assert code == 1 and "No space left on device" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_full_disk_for_the_report_keeps_the_run_and_its_summary(tmp_path, capsys, monkeypatch):
    src, report = tmp_path / "src", tmp_path / "report.csv"
    src.mkdir()
    shutil.copy(GRAY, src / "camera.png")
    real_output = io.atomic_output

    class FullDisk:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    @contextlib.contextmanager
    def atomic_output(path, **keywords):
        with real_output(path, **keywords) as file:
            yield FullDisk(file) if Path(path).suffix == ".csv" else file

    monkeypatch.setattr(io, "atomic_output", atomic_output)
    code, out, err = run(capsys, "batch", src, "-d", tmp_path / "out", "--jobs", 1, "--report", report)
    assert code == 1 and "--report" in one_error_line(err) and "No space left on device" in err
    assert (tmp_path / "out" / "camera.png").exists()
    assert "poolcli batch" in out  # the summary table
    assert not report.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_file_names_are_printed_escaped_on_one_line(tmp_path, capsys):
    name = os.fsdecode(b"bad\nname\x1b[31m\xe9.png")
    source = tmp_path / name
    source.write_bytes(b"not an image")
    code, _, err = run(capsys, "pool", source, "-d", tmp_path)
    line = one_error_line(err)
    assert code == 1 and "bad\\nname\\x1b[31m\\xe9.png" in line and "\x1b" not in err


def test_csv_report_keeps_names_that_are_not_utf8(tmp_path, capsys):
    src, report = tmp_path / "src", tmp_path / "report.csv"
    src.mkdir()
    raw = b"caf\xe9.png"
    shutil.copy(GRAY, os.path.join(os.fsencode(src), raw))
    code, _, err = run(capsys, "batch", src, "-d", tmp_path / "out", "--report", report)
    assert code == 0, err
    assert raw in report.read_bytes()


def test_jobs_are_capped(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(GRAY, src / "camera.png")
    code, _, err = run(capsys, "batch", src, "-d", tmp_path / "out", "--jobs", 100000)
    assert code == 0 and "using" in err


# ------------------------------------------------------------------ limits


def test_huge_1d_window_that_the_api_pools_is_not_refused_up_front(tmp_path, capsys):
    series = tmp_path / "series.npy"
    np.save(series, np.arange(3_000_000, dtype=np.float32))
    code, _, err = run(capsys, "pool", series, "-o", tmp_path / "out.npy", "-k", "1100000")  # > 2**20
    assert code == 0, err
    assert np.load(tmp_path / "out.npy").tolist() == [1_099_999, 2_199_999]


@pytest.mark.parametrize("suffix, side", [(".webp", 16384), (".gif", 65536), (".jpg", 65501)])
def test_outputs_wider_than_the_format_allows_are_refused(tmp_path, suffix, side):
    with pytest.raises(OutputError) as error:
        io.save(tmp_path / f"wide{suffix}", np.zeros((1, side), np.uint8))
    assert "pixels a side" in str(error.value) and "wide" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def _bomb_npz(path: Path, inflated: int, compression=zipfile.ZIP_DEFLATED) -> Path:
    """An .npz whose one member inflates to `inflated` bytes of zeros, written in pieces."""
    header = {"descr": "|u1", "fortran_order": False, "shape": (inflated,)}
    with zipfile.ZipFile(path, "w", compression) as archive, archive.open("x.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_2_0(member, header)
        zeros = bytes(1 << 20)
        for start in range(0, inflated, len(zeros)):
            member.write(zeros[: min(len(zeros), inflated - start)])
    return path


def test_npz_that_inflates_past_the_budget_is_refused_before_inflating(tmp_path):
    bomb = _bomb_npz(tmp_path / "bomb.npz", 64 << 20)
    with pytest.raises(InputError) as error:
        io.load(bomb, max_bytes=32 << 20)
    assert "decompression-bomb" in str(error.value) and "max_bytes" in str(error.value)  # the keyword
    assert io.load(bomb, max_bytes=64 << 20).array.shape == (64 << 20,)
    with pytest.raises(InputError):
        io.load(bomb, max_pixels=8 << 20)  # the default budget: 4 bytes per allowed pixel


def test_max_decoded_option_reaches_the_loader(tmp_path, capsys):
    bomb = _bomb_npz(tmp_path / "bomb.npz", 8 << 20, zipfile.ZIP_LZMA)
    code, _, err = run(capsys, "info", bomb, "--max-decoded", "4MB")
    assert code == 1 and "bomb.npz" in one_error_line(err)
    code, _, err = run(capsys, "info", bomb, "--max-decoded", "8MiB")
    assert code == 0, err


def test_npy_whose_header_promises_more_than_the_file_holds_is_refused(tmp_path):
    path = tmp_path / "liar.npy"
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
        file.write(bytes(64))
    with pytest.raises(InputError) as error:
        io.load(path)
    assert "promises" in str(error.value)


def test_sixteen_bit_outputs_keep_the_icc_profile(tmp_path):
    icc = Image.open(PHOTO).info["icc_profile"]
    image = np.random.default_rng(3).integers(0, 65535, (6, 5, 3), dtype=np.uint16)
    like = io.Loaded({"array": image}, "image", "hwc", "PNG", "RGB;16", 1, Path("in.png"), icc)
    for suffix in (".png", ".tiff"):
        written = io.load(io.save(tmp_path / f"out{suffix}", image, like=like))
        assert written.icc_profile == icc and np.array_equal(written.array, image), suffix


def test_is_complete_knows_every_output_format(tmp_path):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
    for suffix in (".png", ".jpg", ".tiff", ".bmp", ".gif", ".webp", ".npy", ".npz"):
        whole = io.save(tmp_path / f"whole{suffix}", image)
        data = whole.read_bytes()
        assert io.is_complete(whole), suffix
        for cut in (0, len(data) // 2, len(data) - 1):
            broken = tmp_path / f"cut{cut}{suffix}"
            broken.write_bytes(data[:cut])
            assert not io.is_complete(broken), (suffix, cut)
