"""What the README promises about whole folders and the cluster batch, checked on the files a run
leaves: a task run again never replaces a file that was there before the run, the sweep removes
poolcli's temporaries (a retried file's too) and never a user's file, `--skip-existing` redoes cut
outputs whatever the case of their suffix."""

from __future__ import annotations

import io as pyio
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poolcli import io
from poolcli.app.settings import PoolSettings
from poolcli.batch.cluster import again_safe
from poolcli.batch.options import BatchOptions, Job
from poolcli.batch.paths import sweep
from poolcli.cli import main

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (40, 30, 3), dtype=np.uint8)


def _png(path: Path) -> Path:
    Image.fromarray(IMAGE).save(path, format="PNG")
    return path


def _aged(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


# ------------------------------------------------------------------ a task run again


@pytest.mark.parametrize("old", ["target", "compare"])
def test_a_task_run_again_never_replaces_an_output_that_was_there_before(tmp_path, old):
    """The rerun rule may treat outputs as this run's only when every one of them is new: a job
    whose image is old and whose figure is new (or the reverse) is refused, and the old file stays."""
    source = _png(tmp_path / "in.png")
    job = Job(source, tmp_path / "out.png", tmp_path / "out_compare.png")
    submitted = time.time()
    for name, path in (("target", job.target), ("compare", job.compare)):
        path.write_bytes(b"someone else's" if name == old else b"cut by a dying worker")
        if name == old:
            _aged(path, 3600)
    record = again_safe(job, PoolSettings(), BatchOptions(jobs=1), submitted)
    kept = job.target if old == "target" else job.compare
    assert record.status == "failed" and "exists" in record.error, record
    assert kept.read_bytes() == b"someone else's"


def test_a_task_run_again_rewrites_both_of_its_own_outputs(tmp_path):
    source = _png(tmp_path / "in.png")
    job = Job(source, tmp_path / "out.png", tmp_path / "out_compare.png")
    submitted = time.time()
    job.target.write_bytes(b"cut")
    job.compare.write_bytes(b"cut")
    record = again_safe(job, PoolSettings(), BatchOptions(jobs=1), submitted)
    assert record.status == "done"
    assert io.is_complete(job.target) and io.is_complete(job.compare)


# ------------------------------------------------------------------ the sweep


USER_FILES = ("notes.tmp", "out.png.tmp", ".out.png.tmp", ".out.png.mine.tmp", ".out.png.backup-2024.tmp",
              ".other.png.abcd1234.tmp", ".out.png.k3_x9q0z.tmp", ".other.png.poolcli-abcd1234.tmp",
              ".out.png.poolcli-mine.tmp", ".out.png.poolcli-2024-backup.tmp")


def _users_files(folder: Path) -> None:
    for name in USER_FILES:
        (folder / name).write_text("the user's")


def test_the_sweep_removes_poolcli_temporaries_and_nothing_of_the_users(tmp_path):
    _users_files(tmp_path)
    ours = [tmp_path / (io.temporary_prefix(tmp_path / "out.png") + "k3_x9q0z.tmp"),
            tmp_path / (io.temporary_prefix(tmp_path / "out_compare.png") + "abcdefgh.scratch.tmp")]
    for path in ours:
        path.write_bytes(b"killed mid-write")
    sweep(Job(tmp_path / "in.png", tmp_path / "out.png", tmp_path / "out_compare.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(USER_FILES)


def test_the_sweep_finds_the_temporaries_of_a_name_at_the_length_limit(tmp_path):
    target = tmp_path / ("x" * 251 + ".png")
    with pytest.raises(RuntimeError), io.atomic_output(target) as file:  # a write killed midway leaves nothing ...
        file.write(b"partial")
        left = [p for p in tmp_path.iterdir()]
        raise RuntimeError
    assert left and not list(tmp_path.iterdir())
    left[0].write_bytes(b"... but a SIGKILL would have left this")
    sweep(Job(tmp_path / "in.png", target, None))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ --skip-existing


def _cut(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _npy_bytes(x: np.ndarray) -> bytes:
    buffer = pyio.BytesIO()
    np.save(buffer, x)
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["IMG.PNG", "Photo.Jpg", "SCAN.TIF", "DATA.NPY", "shot.JPEG"])
def test_skip_existing_redoes_a_cut_output_whatever_the_case_of_its_suffix(tmp_path, name):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    if name.lower().endswith(".npy"):
        (src / name).write_bytes(_npy_bytes(IMAGE.astype(np.float32)))
    else:
        Image.fromarray(IMAGE).save(src / name, format={".png": "PNG", ".tif": "TIFF"}.get(
            Path(name).suffix.lower(), "JPEG"))
    assert main(["batch", str(src), "-d", str(out), "-m", "avg", "--jobs", "1", "--quiet"]) == 0
    whole = (out / name).read_bytes()
    _cut(out / name)
    assert not io.is_complete(out / name)
    report = tmp_path / "report.json"
    assert main(["batch", str(src), "-d", str(out), "-m", "avg", "--jobs", "1", "--skip-existing", "--quiet",
                 "--report", str(report)]) == 0
    assert [r["status"] for r in json.loads(report.read_text())["files"]] == ["done"]
    assert (out / name).read_bytes() == whole


@pytest.mark.parametrize("suffix", [".PNG", ".JPG", ".TIFF", ".NPY", ".NPZ", ".GIF", ".BMP", ".WEBP"])
def test_a_cut_file_is_never_complete_whatever_the_case_of_its_suffix(tmp_path, suffix):
    saved = io.save(tmp_path / f"whole{suffix.lower()}", IMAGE if suffix not in (".NPY", ".NPZ")
                    else IMAGE.astype(np.float32))
    upper = tmp_path / f"WHOLE{suffix}"
    saved.rename(upper)
    assert io.is_complete(upper)
    whole = upper.read_bytes()
    for cut in (whole[:len(whole) // 2], whole[:-1]):
        upper.write_bytes(cut)
        assert not io.is_complete(upper), len(cut)


# ------------------------------------------------------------------ on a cluster


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as local:
        yield local


def test_a_cluster_run_sweeps_killed_writes_of_files_it_finished_and_keeps_the_users(tmp_path, cluster):
    """A killed write's temporary next to a file the run (its retry) finished is swept when the
    run ends; the user's own *.tmp files in OUT stay."""
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    for i in range(3):
        _png(src / "sub" / f"out{i}.png")
    (out / "sub").mkdir(parents=True)
    _users_files(out / "sub")
    killed = [out / "sub" / (io.temporary_prefix(out / "sub" / name) + random + ".tmp")
              for name, random in (("out0.png", "q1w2e3r4"), ("out2.png", "zx_cv9bn"))]
    for path in killed:
        path.write_bytes(b"left by a worker killed mid-write")
    assert main(["batch", str(src), "-d", str(out), "--scheduler", cluster.scheduler_address, "--quiet"]) == 0
    assert sorted(p.name for p in (out / "sub").iterdir()) == sorted([*USER_FILES, "out0.png", "out1.png",
                                                                      "out2.png"])


def test_the_scheduler_address_may_come_from_the_environment(tmp_path, cluster, monkeypatch, capsys):
    src = tmp_path / "src"
    src.mkdir()
    _png(src / "a.png")
    from poolcli.stream import cluster as on_cluster

    monkeypatch.setattr(on_cluster, "CONNECT_SECONDS", 1)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:9")  # nobody there: a failure, not a usage error
    assert main(["batch", str(src), "-d", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "--scheduler" in err and "tcp://127.0.0.1:9" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
    assert main(["batch", str(src), "-d", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "a.png").exists()


def test_a_glob_with_folders_matches_the_last_parts_of_the_path(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    for relative in ("2024/raw/a.png", "raw/2024/b.png", "c.png", "raw/d.png"):
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        _png(src / relative)
    assert main(["batch", str(src), "-d", str(out), "--glob", "raw/*.png", "--jobs", "1", "--quiet"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["2024/raw/a.png", "raw/d.png"]


@pytest.mark.parametrize("damage", ["cut compare", "no compare", "no output", "cut output", "none"])
def test_skip_existing_resumes_a_file_whose_compare_figure_is_missing_or_cut(tmp_path, damage):
    """A run killed after the output but before its --compare-dir figure (or one that left either
    cut) is resumed by --skip-existing: the file is pooled again and both are whole; a file with
    both whole is skipped."""
    src, out, figures = tmp_path / "src", tmp_path / "out", tmp_path / "cmp"
    src.mkdir()
    _png(src / "a.png")
    run = ["batch", str(src), "-d", str(out), "--compare-dir", str(figures), "--jobs", "1", "--quiet"]
    assert main(run) == 0
    whole = {path: path.read_bytes() for path in (out / "a.png", figures / "a_compare.png")}
    output, figure = out / "a.png", figures / "a_compare.png"
    {"cut compare": lambda: _cut(figure), "no compare": figure.unlink, "no output": output.unlink,
     "cut output": lambda: _cut(output), "none": lambda: None}[damage]()
    report = tmp_path / "report.json"
    assert main([*run, "--skip-existing", "--report", str(report)]) == 0
    status = json.loads(report.read_text())["files"][0]["status"]
    assert status == ("skipped" if damage == "none" else "done")
    assert {path: path.read_bytes() for path in whole} == whole
