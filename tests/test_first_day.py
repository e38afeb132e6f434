"""What a new user meets first, at the command line: names, normalisation and its warnings,
alpha, pages, stdin/stdout, help. Each test failed on the first version."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poolcli import io, pool
from poolcli.cli import main

ROOT = Path(__file__).resolve().parent.parent
GRAY = ROOT / "samples" / "camera.png"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_output_names_separate_mode_and_window(tmp_path, capsys):
    code, _, err = run(capsys, "pool", GRAY, "-d", tmp_path, "-m", "l2", "-k", "2x3")
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["camera_l2_2x3.png"]


def test_normalize_minmax_stretches_integer_results(tmp_path, capsys):
    plain, stretched = tmp_path / "plain.png", tmp_path / "stretched.png"
    assert run(capsys, "pool", GRAY, "-o", plain, "-m", "sum")[0] == 0
    code, _, err = run(capsys, "pool", GRAY, "-o", stretched, "-m", "sum", "--normalize", "minmax")
    assert code == 0 and "warning" not in err
    sums = pool(io.load(GRAY).array, 2, mode="sum", axes=(0, 1)).astype(np.float64)
    expected = np.floor((sums - sums.min()) * (255.0 / (sums.max() - sums.min())) + 0.5)
    assert np.array_equal(io.load(stretched).array, expected.astype(np.uint8))
    assert not np.array_equal(io.load(plain).array, io.load(stretched).array)


@pytest.mark.parametrize("mode, saturates", [("sum", True), ("lp", True), ("l2", False), ("avg", False)])
def test_a_result_clipped_to_the_image_format_is_warned_about(tmp_path, capsys, mode, saturates):
    code, _, err = run(capsys, "pool", GRAY, "-o", tmp_path / "out.png", "-m", mode)
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("poolcli: warning:")]
    assert len(warnings) == int(saturates), err
    if saturates:
        assert "clipped to 0..255" in warnings[0] and "--normalize minmax" in warnings[0]


def test_batch_warns_about_clipped_results_too(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(GRAY, src / "camera.png")
    code, _, err = run(capsys, "batch", src, "-d", tmp_path / "out", "-m", "sum", "--jobs", 1)
    assert code == 0 and err.count("poolcli: warning:") == 1 and "camera.png" in err


def _rgba_edge() -> np.ndarray:
    """A red square on a fully transparent black background: RGB is meaningless where alpha = 0."""
    image = np.zeros((4, 4, 4), np.uint8)
    image[:, :2] = (255, 0, 0, 255)
    return image


def test_averaging_rgba_weights_colour_by_alpha(tmp_path, capsys):
    source, target = tmp_path / "edge.png", tmp_path / "out.png"
    Image.fromarray(_rgba_edge()).save(source)
    code, _, err = run(capsys, "pool", source, "-o", target, "-m", "avg", "-k", "1x4", "-s", "1x4")
    assert code == 0, err
    pixels = io.load(target).array
    assert pixels[:, 0].tolist() == [[255, 0, 0, 128]] * 4  # red stays red, half covered


def test_straight_alpha_keeps_per_channel_averages(tmp_path, capsys):
    source, target = tmp_path / "edge.png", tmp_path / "out.png"
    Image.fromarray(_rgba_edge()).save(source)
    code, _, err = run(capsys, "pool", source, "-o", target, "-m", "avg", "-k", "1x4", "-s", "1x4",
                       "--alpha", "straight")
    assert code == 0, err
    assert io.load(target).array[:, 0].tolist() == [[128, 0, 0, 128]] * 4


def test_premultiplied_average_is_the_alpha_weighted_mean_as_pillow_gives(tmp_path, capsys):
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (32, 48, 4), dtype=np.uint8)
    pixels[..., 3] = rng.choice([0, 40, 128, 255], size=(32, 48))
    source, target = tmp_path / "rgba.png", tmp_path / "out.png"
    Image.fromarray(pixels).save(source)
    assert run(capsys, "pool", source, "-o", target, "-m", "avg")[0] == 0
    ours = io.load(target).array.astype(int)

    blocks = pixels.astype(np.float64).reshape(16, 2, 24, 2, 4).transpose(0, 2, 1, 3, 4).reshape(16, 24, 4, 4)
    alpha = blocks[..., 3]
    weighted = (blocks[..., :3] * alpha[..., None]).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        colour = np.where(alpha.sum(axis=2)[..., None] > 0, weighted / alpha.sum(axis=2)[..., None], 0)
    expected = np.floor(np.concatenate([colour, alpha.mean(axis=2)[..., None]], axis=-1) + 0.5)
    assert np.array_equal(ours, expected.astype(int))

    pillow = np.asarray(Image.fromarray(pixels).convert("RGBa").reduce(2).convert("RGBA")).astype(int)
    opaque = pillow[..., 3] >= 128  # where Pillow's 8-bit premultiplied colours keep their precision
    assert np.array_equal(ours[..., 3], pillow[..., 3])
    assert np.abs(ours[opaque][:, :3] - pillow[opaque][:, :3]).max() <= 3


def test_stdin_to_stdout(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "poolcli", "pool", "-", "-o", "-", "-m", "avg"]
    done = subprocess.run(command, input=GRAY.read_bytes(), capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stderr == b""
    (tmp_path / "out.png").write_bytes(done.stdout)
    expected = pool(io.load(GRAY).array, 2, mode="avg", axes=(0, 1), dtype=np.uint8)
    assert np.array_equal(io.load(tmp_path / "out.png").array, expected)
    done = subprocess.run([*command, "--format", "npy"], input=GRAY.read_bytes(), capture_output=True, timeout=60)
    (tmp_path / "out.npy").write_bytes(done.stdout)
    assert np.array_equal(np.load(tmp_path / "out.npy"), pool(io.load(GRAY).array, 2, mode="avg", axes=(0, 1)))
    done = subprocess.run(command, input=b"no image here", capture_output=True, timeout=60)
    assert done.returncode == 2 and done.stdout == b"" and b"stdin" in done.stderr


def test_stdout_without_an_extension_to_go_by_needs_format(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", type("In", (), {"buffer": __import__("io").BytesIO(GRAY.read_bytes())})())
    code, out, err = run(capsys, "pool", "-", GRAY, "-d", tmp_path)
    assert code == 0 and (tmp_path / "stdin_max_2.png").exists()


def test_help_fits_80_columns_and_names_no_python_types(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    for command in ([], ["pool"], ["info"], ["compare"], ["grad"], ["batch"]):
        code, out, err = run(capsys, *command, "--help")
        assert code == 0 and err == ""
        assert max(len(line) for line in out.splitlines()) <= 80, command
        for oddity in ("<bool>", "<str>", "<path>", "list[Path]", "{INPUT", "…"):
            assert oddity not in out, (command, oddity)
    assert "poolcli[gpu]" in run(capsys, "pool", "--help")[1]
    assert "Usage: poolcli pool [OPTIONS] INPUT..." in run(capsys, "pool", "--help")[1]


def test_no_arguments_prints_help_and_succeeds(capsys):
    code, out, err = run(capsys)
    assert code == 0 and "Usage: poolcli" in out and err == ""
    code, out, _ = run(capsys, "-V")
    assert code == 0 and out.startswith("poolcli ")


def test_batch_starts_workers_only_where_they_pay_off(tmp_path, capsys, monkeypatch):
    from poolcli import batch

    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        shutil.copy(GRAY, src / name)
    started = []
    from poolcli.batch import run as batch_run

    real_pool = batch_run.WorkerPool
    monkeypatch.setattr(batch_run, "WorkerPool", lambda jobs, *rest: started.append(jobs) or real_pool(jobs, *rest))
    monkeypatch.setattr(batch, "default_jobs", lambda: 2)
    assert run(capsys, "batch", src, "-d", tmp_path / "small")[0] == 0
    assert started == []  # 3 small files: pooled in this process
    assert run(capsys, "batch", src, "-d", tmp_path / "asked", "--jobs", 2)[0] == 0
    assert started == [2]  # --jobs given: as asked
    monkeypatch.setattr(batch_run, "PARALLEL_BYTES", 1)
    assert run(capsys, "batch", src, "-d", tmp_path / "big")[0] == 0
    assert started == [2, 2]  # enough input to pay for the workers


def test_an_output_named_like_a_folder_suggests_d(tmp_path, capsys):
    code, _, err = run(capsys, "pool", GRAY, "-o", f"{tmp_path}/missing/")
    assert code == 2 and "use -d" in err and not (tmp_path / "missing").exists()
