"""`poolcli batch` at its boundary: which files it reads and writes, what it reports, how it
stops. The pixels are checked against the engine on the loaded input (io's decoders and
encoders are tested in test_io.py), the signals with real SIGINT/SIGTERM sent to a running
subprocess."""

import csv
import io as bytes_io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from multiprocessing import connection
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poolcli import batch, io, pool
from poolcli.app.settings import PoolSettings
from poolcli.batch import workers
from poolcli.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
PHOTO = SAMPLES / "astronaut.jpg"  # RGB JPEG with an sRGB ICC profile
GRAY = SAMPLES / "camera.png"
GRAY16 = SAMPLES / "coffee_gray16.png"
FEATURES = SAMPLES / "features_chw.npy"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(["batch", *(str(a) for a in args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files_under(folder: Path) -> list[str]:
    """Every file and link below `folder`, hidden ones included, as sorted relative paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def pooled(path: Path, mode="avg", k=2, dtype=np.uint8) -> np.ndarray:
    return pool(io.load(path).array, k, mode=mode, axes=(0, 1), dtype=dtype)


@pytest.fixture
def tree(tmp_path) -> Path:
    """SRC with good files at three depths and bad ones beside them."""
    src = tmp_path / "src"
    (src / "sub" / "deep").mkdir(parents=True)
    shutil.copy(PHOTO, src / "photo.jpg")
    shutil.copy(GRAY, src / "sub" / "camera.png")
    shutil.copy(GRAY16, src / "sub" / "deep" / "coffee16.png")
    shutil.copy(FEATURES, src / "sub" / "deep" / "features.npy")
    (src / "notes.jpg").write_text("this is text, not a JPEG\n")
    (src / "sub" / "truncated.png").write_bytes(GRAY.read_bytes()[:4000])
    (src / "sub" / "truncated.jpg").write_bytes(PHOTO.read_bytes()[:20000])
    np.save(src / "sub" / "deep" / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (src / "README.txt").write_text("not an input")
    return src


GOOD = ["photo.jpg", "sub/camera.png", "sub/deep/coffee16.png", "sub/deep/features.npy"]
BAD = ["notes.jpg", "sub/deep/pickled.npy", "sub/truncated.jpg", "sub/truncated.png"]


# ------------------------------------------------------------------ one bad file never stops the batch


@pytest.mark.parametrize("jobs", [1, 2])
def test_nested_tree_good_files_mirrored_bad_ones_reported(tree, tmp_path, capsys, jobs):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, tree, "-d", out, "-m", "avg", "-k", "2", "--jobs", jobs)
    assert code == 1
    assert files_under(out) == GOOD
    lines = error_lines(err)
    assert len(lines) == len(BAD), err
    for name in BAD:
        assert sum(str(tree / name) in line for line in lines) == 1, (name, err)
    assert all(line.startswith("poolcli: error:") for line in lines)
    assert "Traceback" not in err
    assert "pickle" in next(line for line in lines if "pickled.npy" in line)
    assert "truncated" in next(line for line in lines if "truncated.png" in line)
    # plain lines (not a terminal), then the summary with every failure and its reason
    assert stdout.count(f"/{len(GOOD) + len(BAD)}] done ") == len(GOOD)
    assert "failed" in stdout
    for name in BAD:
        assert str(tree / name) in stdout
    # the pixels are the engine's on the loaded input; 16-bit and arrays keep theirs
    assert np.array_equal(io.load(out / "sub" / "camera.png").array, pooled(tree / "sub" / "camera.png"))
    gray16 = io.load(out / "sub" / "deep" / "coffee16.png").array
    assert gray16.dtype == np.uint16
    assert np.array_equal(gray16, pooled(tree / "sub" / "deep" / "coffee16.png", dtype=np.uint16))
    features = np.load(out / "sub" / "deep" / "features.npy")
    assert np.array_equal(features, pool(np.load(FEATURES), 2, mode="avg"))


def test_all_good_exits_0_and_counts(tree, tmp_path, capsys):
    for name in BAD:
        (tree / name).unlink()
    code, stdout, err = run(capsys, tree, "-d", tmp_path / "out", "--jobs", 2)
    assert code == 0, err
    assert err == ""
    assert files_under(tmp_path / "out") == GOOD


def test_a_terminal_gets_a_progress_bar_with_rate_and_eta(tree, tmp_path, capsys, monkeypatch):
    from rich.console import Console

    from poolcli.cli import batch_display, terminal

    screen = bytes_io.StringIO()
    terminal_screen = Console(file=screen, force_terminal=True, width=120)
    monkeypatch.setattr(batch_display, "console", lambda stderr=False: terminal_screen if stderr else
                        terminal.console(stderr=False))
    code, stdout, _ = run(capsys, tree, "-d", tmp_path / "out", "--jobs", 2)
    assert code == 1
    drawn = screen.getvalue()
    assert "files/s" in drawn and "ETA" in drawn and f"{len(GOOD) + len(BAD)}/{len(GOOD) + len(BAD)}" in drawn
    assert "notes.jpg" in drawn  # failures are printed above the bar
    assert "] done " not in stdout  # no plain per-file lines, only the summary
    assert "failures:" in stdout


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_png_output_pixels_equal_the_engine_on_the_decoded_input(tmp_path, capsys, mode):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(PHOTO, src / "photo.jpg")
    shutil.copy(GRAY, src / "camera.png")
    rgba = np.dstack([np.asarray(Image.open(PHOTO)), np.arange(512 * 512, dtype=np.uint32).reshape(512, 512) % 251])
    Image.fromarray(rgba.astype(np.uint8), "RGBA").save(src / "rgba.png")
    code, _, err = run(capsys, src, "-d", tmp_path / "out", "-m", mode, "-k", "3", "--format", "png",
                       "--alpha", "straight")  # every channel on its own, as the engine pools it
    assert code == 0, err
    for name in ("photo", "camera", "rgba"):
        source = next(src.glob(name + ".*"))
        written = io.load(tmp_path / "out" / f"{name}.png").array
        expected = pooled(source, mode=mode, k=3)
        assert written.dtype == expected.dtype and written.shape == expected.shape
        assert np.array_equal(written, expected), name


def test_jpeg_output_keeps_icc_and_follows_quality(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(PHOTO, src / "photo.jpg")
    sizes = {}
    for quality in (60, 95):
        out = tmp_path / f"q{quality}"
        code, _, err = run(capsys, src, "-d", out, "-m", "avg", "--quality", quality)
        assert code == 0, err
        with Image.open(out / "photo.jpg") as written, Image.open(PHOTO) as original:
            assert written.info.get("icc_profile") == original.info["icc_profile"]
            assert written.size == (256, 256)
            difference = np.abs(np.asarray(written, np.int16) - pooled(PHOTO).astype(np.int16))
        assert difference.mean() < (6 if quality == 60 else 2.5)
        sizes[quality] = (out / "photo.jpg").stat().st_size
    assert sizes[60] < sizes[95]


@pytest.mark.parametrize("quality", [None, 70])
def test_batch_and_pool_write_the_same_bytes(tmp_path, capsys, quality):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(PHOTO, src / "photo.jpg")
    shutil.copy(GRAY, src / "camera.png")
    shutil.copy(GRAY16, src / "coffee16.png")
    rgba = np.dstack([np.asarray(Image.open(PHOTO)), np.arange(512 * 512, dtype=np.uint32).reshape(512, 512) % 251])
    Image.fromarray(rgba.astype(np.uint8), "RGBA").save(src / "rgba.png")
    names = sorted(p.name for p in src.iterdir())
    chosen = [] if quality is None else ["--quality", quality]
    code, _, err = run(capsys, src, "-d", tmp_path / "batch", "-m", "avg", *chosen)
    assert code == 0, err
    (tmp_path / "pool").mkdir()
    code = main(["pool", *(str(src / name) for name in names), "-d", str(tmp_path / "pool"), "-m", "avg",
                 *map(str, chosen)])
    assert code == 0, capsys.readouterr().err
    for name in names:
        stem, suffix = name.rsplit(".", 1)
        pooled_alone = tmp_path / "pool" / f"{stem}_avg_2.{suffix}"
        assert (tmp_path / "batch" / name).read_bytes() == pooled_alone.read_bytes(), name


def test_batch_respects_max_pixels(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(PHOTO, src / "photo.jpg")
    code, _, err = run(capsys, src, "-d", tmp_path / "out", "--max-pixels", 1000)
    assert code == 1
    assert "exceeds the limit" in err and "photo.jpg" in err


# ------------------------------------------------------------------ what is an input


def test_hidden_files_and_symlinks_leading_out_are_skipped(tmp_path, capsys):
    src, outside = tmp_path / "src", tmp_path / "outside"
    (src / ".hidden").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(GRAY, src / "camera.png")
    shutil.copy(GRAY, src / ".dot.png")
    shutil.copy(GRAY, src / ".hidden" / "camera.png")
    shutil.copy(PHOTO, outside / "secret.jpg")
    (src / "escape.jpg").symlink_to(outside / "secret.jpg")
    (src / "linked_dir").symlink_to(outside, target_is_directory=True)
    (src / "alias.png").symlink_to(src / "camera.png")  # a link inside SRC is an input
    (src / "dangling.png").symlink_to(tmp_path / "missing.png")
    (src / "loop.png").symlink_to(src / "loop.png")
    (src / "loop_dir").symlink_to(src, target_is_directory=True)
    code, _, err = run(capsys, src, "-d", tmp_path / "out")
    assert code == 0, err
    assert files_under(tmp_path / "out") == ["alias.png", "camera.png"]


def test_glob_patterns_and_no_recursive(tree, tmp_path, capsys):
    code, _, err = run(capsys, tree, "-d", tmp_path / "pngs", "--glob", "*.PNG")
    assert files_under(tmp_path / "pngs") == ["sub/camera.png", "sub/deep/coffee16.png"]
    assert "truncated.png" in err and code == 1
    code, _, err = run(capsys, tree, "-d", tmp_path / "deep", "--glob", "deep/*.npy", "--glob", "photo.*")
    assert files_under(tmp_path / "deep") == ["photo.jpg", "sub/deep/features.npy"]
    assert "pickled.npy" in err and code == 1
    code, _, err = run(capsys, tree, "-d", tmp_path / "top", "--no-recursive")
    assert files_under(tmp_path / "top") == ["photo.jpg"]
    assert "notes.jpg" in err and "sub" not in err and code == 1


def test_out_inside_src_is_never_read_back(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(GRAY, src / "camera.png")
    shutil.copy(PHOTO, src / "photo.jpg")
    for _ in range(2):
        code, _, err = run(capsys, src, "-d", src / "small", "--skip-existing")
        assert code == 0, err
    assert files_under(src) == ["camera.png", "photo.jpg", "small/camera.png", "small/photo.jpg"]


def test_no_write_outside_out_through_a_symlink_in_out(tmp_path, capsys):
    src, out, elsewhere = tmp_path / "src", tmp_path / "out", tmp_path / "elsewhere"
    (src / "sub").mkdir(parents=True)
    out.mkdir()
    elsewhere.mkdir()
    shutil.copy(GRAY, src / "camera.png")
    shutil.copy(GRAY, src / "sub" / "camera.png")
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    before = files_under(tmp_path)
    code, _, err = run(capsys, src, "-d", out)
    assert code == 1
    assert "leads outside" in err and str(src / "sub" / "camera.png") in err
    assert files_under(elsewhere) == []
    assert files_under(tmp_path) == sorted([*before, "out/camera.png"])


def test_src_inside_out_never_gets_outputs(tmp_path, capsys):
    out = tmp_path / "out"
    src = out / "src"
    (src / "src").mkdir(parents=True)
    shutil.copy(GRAY, src / "src" / "camera.png")  # would be written to out/src/camera.png, inside SRC
    code, _, err = run(capsys, src, "-d", out)
    assert code == 1 and "inside SRC" in err
    assert files_under(out) == ["src/src/camera.png"]


def test_outputs_that_collide_are_refused(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(PHOTO, src / "a.jpg")
    shutil.copy(GRAY, src / "a.png")
    code, _, err = run(capsys, src, "-d", tmp_path / "out", "--format", "png")
    assert code == 1 and "also the output of" in err
    assert files_under(tmp_path / "out") == ["a.png"]


# ------------------------------------------------------------------ formats and the report


@pytest.mark.parametrize("fmt, suffix", [("png", ".png"), ("npy", ".npy"), ("tiff", ".tiff")])
def test_format_sets_every_suffix(tmp_path, capsys, fmt, suffix):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    shutil.copy(PHOTO, src / "photo.jpg")
    shutil.copy(GRAY, src / "sub" / "camera.png")
    code, _, err = run(capsys, src, "-d", tmp_path / "out", "-m", "avg", "--format", fmt)
    assert code == 0, err
    assert files_under(tmp_path / "out") == [f"photo{suffix}", f"sub/camera{suffix}"]
    written = io.load(tmp_path / "out" / f"photo{suffix}").array
    if fmt == "npy":  # an array output gets SPEC's natural dtype: avg of uint8 is float64
        assert written.dtype == np.float64
        assert np.array_equal(written, pooled(PHOTO, dtype=None))
    else:
        assert np.array_equal(written, pooled(PHOTO))


@pytest.mark.parametrize("kind", [".json", ".csv"])
def test_report_holds_every_file(tree, tmp_path, capsys, kind):
    report = tmp_path / f"report{kind}"
    code, _, _ = run(capsys, tree, "-d", tmp_path / "out", "-m", "max", "--report", report, "--jobs", 2)
    assert code == 1
    if kind == ".json":
        data = json.loads(report.read_text())
        rows = data["files"]
        assert data["parameters"]["mode"] == "max"
        assert data["summary"]["done"] == len(GOOD) and data["summary"]["failed"] == len(BAD)
        assert data["summary"]["interrupted"] is False
        photo = next(r for r in rows if r["input"].endswith("photo.jpg"))
        assert photo["input_shape"] == [512, 512, 3] and photo["output_shape"] == [256, 256, 3]
    else:
        with open(report, newline="") as file:
            rows = list(csv.DictReader(file))
        photo = next(r for r in rows if r["input"].endswith("photo.jpg"))
        assert photo["input_shape"] == "512x512x3" and photo["output_shape"] == "256x256x3"
    assert len(rows) == len(GOOD) + len(BAD)
    by_name = {Path(r["input"]).relative_to(tree).as_posix(): r for r in rows}
    assert sorted(by_name) == sorted(GOOD + BAD)
    for name in GOOD:
        assert by_name[name]["status"] == "done" and not by_name[name]["error"]
        assert int(by_name[name]["output_bytes"]) == (tmp_path / "out" / name).stat().st_size
    for name in BAD:
        assert by_name[name]["status"] == "failed" and str(tree / name) in by_name[name]["error"]
    assert photo["dtype"] == "uint8" and photo["output"] == str(tmp_path / "out" / "photo.jpg")


def test_compare_dir_gets_a_side_by_side_per_file(tmp_path, capsys):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    shutil.copy(GRAY, src / "sub" / "camera.png")
    code, _, err = run(capsys, src, "-d", tmp_path / "out", "--compare-dir", tmp_path / "cmp")
    assert code == 0, err
    assert files_under(tmp_path / "cmp") == ["sub/camera_compare.png"]
    with Image.open(tmp_path / "cmp" / "sub" / "camera_compare.png") as figure:
        assert figure.width > 512


# ------------------------------------------------------------------ existing outputs, resume


def test_existing_outputs_fail_skip_or_get_replaced(tree, tmp_path, capsys):
    for name in BAD:
        (tree / name).unlink()
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    old = (out / "sub" / "camera.png")
    shutil.copy(GRAY, old)  # a complete file, not poolcli's output
    code, _, err = run(capsys, tree, "-d", out)
    assert code == 1 and "exists; pass --overwrite" in err and old.read_bytes() == GRAY.read_bytes()
    code, stdout, err = run(capsys, tree, "-d", out, "--skip-existing")
    assert code == 0, err
    assert stdout.count("skipped") >= len(GOOD)  # each line and the table's header
    assert old.read_bytes() == GRAY.read_bytes()
    code, _, err = run(capsys, tree, "-d", out, "--overwrite")
    assert code == 0, err
    assert np.array_equal(io.load(old).array, pooled(tree / "sub" / "camera.png", mode="max"))


@pytest.mark.parametrize("jobs", [1, 2])
def test_skip_existing_with_format_checks_the_real_targets(tree, tmp_path, capsys, jobs):
    """--format renames every output (photo.jpg -> photo.npy): a second run must look for
    those names, find them all and skip every file."""
    for name in BAD:
        (tree / name).unlink()
    out = tmp_path / "out"
    code, _, err = run(capsys, tree, "-d", out, "--format", "npy", "--jobs", jobs)
    assert code == 0, err
    renamed = sorted(Path(name).with_suffix(".npy").as_posix() for name in GOOD)
    assert files_under(out) == renamed
    before = {name: (out / name).read_bytes() for name in renamed}
    code, stdout, err = run(capsys, tree, "-d", out, "--format", "npy", "--skip-existing", "--jobs", jobs)
    assert code == 0, err
    assert err == ""
    for name in GOOD:
        assert f"skipped {tree / name} (output exists)" in stdout, (name, stdout)
    assert {name: (out / name).read_bytes() for name in files_under(out)} == before


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_skip_existing_redoes_empty_or_truncated_outputs(tree, tmp_path, capsys, damage):
    for name in BAD:
        (tree / name).unlink()
    out = tmp_path / "out"
    code, _, err = run(capsys, tree, "-d", out)
    assert code == 0, err
    whole = {name: (out / name).read_bytes() for name in files_under(out)}
    for name, data in whole.items():  # as a crash of some other tool would leave them
        (out / name).write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    code, stdout, err = run(capsys, tree, "-d", out, "--skip-existing")
    assert code == 0, err
    assert "skipped" not in stdout.split("poolcli batch")[0]  # no per-file line says skipped
    assert {name: (out / name).read_bytes() for name in files_under(out)} == whole


# ------------------------------------------------------------------ real signals


SLOW_WRITES = textwrap.dedent("""
    import contextlib, os, sys, time
    from poolcli.batch import workers
    from poolcli.io import writing
    original = writing.atomic_output

    @contextlib.contextmanager
    def slow(path, **keywords):
        with original(path, **keywords) as file:
            yield file
            file.flush()
            time.sleep(float(os.environ["WRITE_SECONDS"]))  # the temporary file exists meanwhile

    writing.atomic_output = slow
    if os.environ.get("IGNORE_TERM"):  # a worker deaf to SIGTERM: the parent must kill it and sweep
        workers._worker_stop = lambda signum, frame: None
    from poolcli.cli import main
    raise SystemExit(main(sys.argv[1:]))
""")


def _copies(folder: Path, count: int) -> Path:
    """`count` real photos (two formats) in two subfolders: cheap copies of the samples."""
    for i in range(count):
        sub = folder / f"part{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy(PHOTO if i % 3 else GRAY, sub / f"img{i:03d}{'.jpg' if i % 3 else '.png'}")
    return folder


def _start(args: list, **env) -> subprocess.Popen:
    return subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, **{k: str(v) for k, v in env.items()}})


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the batch never got going"
        time.sleep(0.005)


def _stop(process: subprocess.Popen, signum: int) -> tuple[float, str, str]:
    sent = time.monotonic()
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=10)
    return time.monotonic() - sent, stdout, stderr


def _assert_clean(out: Path) -> list[Path]:
    """No hidden, temporary or partial file: every output decodes completely."""
    assert not [p for p in out.rglob(".*")], files_under(out)
    outputs = [p for p in out.rglob("*") if p.is_file()]
    for path in outputs:
        with Image.open(path) as image:
            image.load()
    return outputs


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_real_signal_stops_cleanly_and_skip_existing_resumes(tmp_path, signum):
    src, out, report = _copies(tmp_path / "src", 90), tmp_path / "out", tmp_path / "report.json"
    command = [sys.executable, "-m", "poolcli", "batch", src, "-d", out, "-m", "avg", "--jobs", 2]
    process = _start([*command, "--report", report], WRITE_SECONDS=0)
    _wait_for(lambda: sum(not p.name.startswith(".") for p in out.rglob("*.*")) >= 3, process)
    seconds, stdout, stderr = _stop(process, signum)
    assert process.returncode == 128 + signum, stderr  # as a shell reports a process the signal ended
    assert seconds < 2.0
    assert "interrupted after" in stderr and "--skip-existing" in stderr
    assert "(interrupted)" in stdout
    first = _assert_clean(out)
    assert 3 <= len(first) < 90, "the batch finished before the signal: give it more files"
    data = json.loads(report.read_text())
    assert data["summary"]["interrupted"] is True
    assert {row["output"] for row in data["files"] if row["status"] == "done"} <= {str(p) for p in first}

    done = subprocess.run([*map(str, command), "--skip-existing", "--quiet"], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert len(_assert_clean(out)) == 90
    assert files_under(out) == files_under(src)


@pytest.mark.parametrize("jobs, deaf", [(1, False), (2, False), (2, True)],
                         ids=["in-process", "worker-cleans", "worker-killed-then-swept"])
def test_signal_during_a_write_leaves_no_temporary_file(tmp_path, jobs, deaf):
    src, out = _copies(tmp_path / "src", 6), tmp_path / "out"
    process = _start([sys.executable, "-c", SLOW_WRITES, "batch", src, "-d", out, "--jobs", jobs],
                     WRITE_SECONDS=30, **({"IGNORE_TERM": 1} if deaf else {}))
    _wait_for(lambda: any(p.name.endswith(".tmp") for p in out.rglob(".*")), process)
    seconds, _, stderr = _stop(process, signal.SIGINT)
    assert process.returncode == 130, stderr
    assert seconds < 2.0
    assert files_under(out) == []


# ------------------------------------------------------------------ workers, memory, usage


def test_a_worker_that_dies_fails_only_its_file(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.png", "crash.png", "z.png"):
        shutil.copy(GRAY, src / name)
    real = batch.process_file

    def crashing(job, settings, options):
        if job.source.name == "crash.png":
            os.kill(os.getpid(), signal.SIGKILL)
        return real(job, settings, options)

    monkeypatch.setattr(workers, "process_file", crashing)  # the forked workers inherit it
    runner = batch.Batch(src, tmp_path / "out", PoolSettings(), batch.BatchOptions(jobs=2))
    summary = runner.run()
    assert (summary.done, summary.failed) == (2, 1)
    assert "worker process died (signal 9)" in summary.failures[0].error
    assert files_under(tmp_path / "out") == ["a.png", "z.png"]


def test_inputs_are_found_lazily_and_few_are_in_flight(tmp_path, monkeypatch):
    src = tmp_path / "src"
    for folder in ("a", "b"):
        (src / folder).mkdir(parents=True)
        for i in range(1500):
            (src / folder / f"{i:05d}.npy").touch()  # empty: each fails at once
    runner = batch.Batch(src, tmp_path / "out", PoolSettings(), batch.BatchOptions(jobs=2))
    # The walk reads a folder when it gets there: what changes in b/ while a/ is walked shows.
    walk = runner.inputs()
    assert next(walk) == Path("a/00000.npy")
    (src / "b" / "00000.npy").unlink()
    (src / "b" / "late.npy").touch()
    rest = list(walk)
    assert len(rest) == 2999 and rest[-1] == Path("b/late.npy") and Path("b/00000.npy") not in rest
    # The run takes the next input only when a worker has room for it.
    walked = []
    walk_inputs = runner.inputs

    def counted_inputs():
        walked.append(0)
        for path in walk_inputs():
            walked[-1] += 1
            yield path

    monkeypatch.setattr(runner, "inputs", counted_inputs)
    sent, ahead, most = [], [], []
    send = workers._Worker.send

    def counting(worker, job):
        send(worker, job)
        sent.append(job)
        ahead.append(walked[-1] - len(sent))  # inputs found but not yet handed to a worker
        most.append(len(worker.jobs))

    monkeypatch.setattr(workers._Worker, "send", counting)
    summary = runner.run()
    assert summary.failed == 3000 and "is empty" in summary.failures[0].error
    assert len(sent) == 3000 and max(ahead) == 0
    assert max(most) <= batch.IN_FLIGHT_PER_WORKER


@pytest.mark.parametrize("args, words", [
    (["{missing}", "-d", "{out}"], ["SRC", "does not exist"]),
    (["{src}", "-d", "{file}"], ["--out-dir", "is a file"]),
    (["{src}", "-d", "{out}", "--jobs", "0"], ["--jobs 0"]),
    (["{src}", "-d", "{src}"], ["SRC itself"]),
    (["{src}", "-d", "{out}", "--skip-existing", "--overwrite"], ["--skip-existing", "--overwrite"]),
    (["{src}", "-d", "{out}", "--report", "{out}.txt"], ["--report", ".json or .csv"]),
    (["{src}", "-d", "{out}", "--format", "psd"], ["--format 'psd'"]),
    (["{src}", "-d", "{out}", "--quality", "0"], ["--quality", "1<=x<=100"]),
    (["{src}", "-d", "{out}", "-k", "0"], ["--window"]),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, args, words):
    (tmp_path / "src").mkdir()
    (tmp_path / "file").write_text("x")
    names = {"missing": tmp_path / "missing", "out": tmp_path / "out", "file": tmp_path / "file",
             "src": tmp_path / "src"}
    code, _, err = run(capsys, *(a.format(**names) for a in args))
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("poolcli: error:"), err
    for word in words:
        assert word in lines[0], (word, err)


AFTER_LOADS = textwrap.dedent("""
    import sys
    from pathlib import Path
    from poolcli import batch, io
    from poolcli.app.settings import PoolSettings
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    for path in sorted(src.iterdir()):  # this process decodes and encodes before it forks workers
        for order in io.CHANNEL_ORDERS:
            loaded = io.load(path, channel_order=order)
            io.save(out.parent / f"{order}_{path.name}", loaded.array, like=loaded, channel_order=order,
                    overwrite=True)
    summary = batch.Batch(src, out, PoolSettings(), batch.BatchOptions(jobs=2)).run()
    raise SystemExit(summary.done != 3)
""")


def test_a_process_that_loaded_images_can_still_start_workers(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(PHOTO, src / "photo.jpg")
    shutil.copy(GRAY, src / "camera.png")
    rgba = np.dstack([np.asarray(Image.open(PHOTO)), np.full((512, 512), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "rgba.png")
    done = subprocess.run([sys.executable, "-c", AFTER_LOADS, src, tmp_path / "out"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr


def test_workers_send_back_small_records_not_arrays(tmp_path, monkeypatch):
    """The bytes that come back through a worker's pipe for a 16 MB input: one small record."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("big.npy", "bigger.npy"):
        np.save(src / name, np.zeros((4, 1000, 1000), np.float32))
    received = []

    def measured_recv(conn):
        data = conn.recv_bytes()  # what Connection.recv reads, then unpickles
        received.append(len(data))
        return pickle.loads(data)

    runner = batch.Batch(src, tmp_path / "out", PoolSettings(mode="avg"), batch.BatchOptions(jobs=2))
    records = []
    with monkeypatch.context() as patch:
        patch.setattr(connection.Connection, "recv", measured_recv)
        summary = runner.run(on_result=lambda record, _: records.append(record))
    assert summary.done == 2 and [r.output_shape for r in records] == [[4, 500, 500]] * 2
    assert len(received) == 2 and max(received) < 2000, received


# ------------------------------------------------------------------ the gallery's pictures


def test_gallery_pictures_come_from_the_arrays_pooled_each_input_decoded_once(tmp_path, capsys, monkeypatch):
    """batch --html-report --inspect: each input is decoded once (its output never read back), and the
    thumbnails made from the arrays in memory are those of the files: colour in RGB order (a JPEG is
    decoded in OpenCV's BGR order and pooled so), a float map in viridis."""
    from poolcli.inspect.gallery import thumbnail

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(src / "colour.jpg")
    Image.fromarray(rng.integers(0, 256, (30, 20, 4), dtype=np.uint8)).save(src / "sub" / "alpha.png")
    np.save(src / "sub" / "map.npy", rng.random((3, 16, 12)).astype(np.float32))
    real_load, loads = io.load, []

    def counted(path, **keywords):
        loads.append(Path(path).name)
        return real_load(path, **keywords)

    monkeypatch.setattr(io, "load", counted)
    code, _, err = run(capsys, src, "-d", tmp_path / "out", "-j", "1", "--quiet", "-m", "avg", "-f", "npy",
                       "--html-report", tmp_path / "g.html", "--inspect")  # .npy outputs: the bits pooled
    assert code == 0 and err == "", err
    assert sorted(loads) == ["alpha.png", "colour.jpg", "map.npy"]
    folder = tmp_path / "g_files"
    assert len(list(folder.iterdir())) == 9  # per input: two thumbnails and a page
    for number, name in enumerate(["colour.jpg", "sub/alpha.png", "sub/map.npy"]):
        for side, path in (("in", src / name), ("out", tmp_path / "out" / Path(name).with_suffix(".npy"))):
            loaded = real_load(path)
            wanted = thumbnail(next(iter(loaded.arrays.values())), loaded.kind)
            assert np.array_equal(real_load(folder / f"thumb_{number}_{side}.png").array, wanted), (name, side)
        assert (folder / f"inspect_{number}.html").stat().st_size > 0
