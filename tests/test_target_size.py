"""`--size HxW` and `--max-side N`: pooling to a size through adaptive pooling (PyTorch's exact
windows, floor(i*n/out) to ceil((i+1)*n/out)) for every mode, at the command line's boundary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_cli import PHOTO, assert_one_line_error, run

from poolcli import adaptive_pool
from poolcli.core.geometry import target_size
from poolcli.core.modes import names


def torch_adaptive(x: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """PyTorch's adaptive avg or max pooling of the last two axes, float64 on the CPU."""
    function = torch.nn.functional.adaptive_avg_pool2d if mode == "avg" else torch.nn.functional.adaptive_max_pool2d
    return function(torch.from_numpy(x[None].astype(np.float64)), size)[0].numpy()


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize(("args", "expected"), [(("--size", "7x5"), (7, 5)), (("--size", "-x9"), (14, 9)),
                                                (("--max-side", "11"), (11, 7)), (("--size", "13x-"), (13, 8))])
def test_size_and_max_side_are_torchs_adaptive_pooling(tmp_path, capsys, mode, args, expected):
    x = np.random.default_rng(0).normal(size=(2, 37, 23))
    np.save(tmp_path / "x.npy", x)
    code, _, err = run(capsys, "pool", tmp_path / "x.npy", "-o", tmp_path / "y.npy", "-m", mode, *args)
    assert code == 0, err
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (2, *expected) and y.dtype == np.float64
    if mode == "max":
        np.testing.assert_array_equal(y, torch_adaptive(x, expected, mode))
    else:  # sums in another order: float rounding
        np.testing.assert_allclose(y, torch_adaptive(x, expected, mode), rtol=1e-12, atol=1e-15)


def test_a_photo_to_its_long_side_is_torchs_mean_rounded_half_up(tmp_path, capsys):
    code, _, err = run(capsys, "pool", PHOTO, "-o", tmp_path / "small.png", "-m", "avg", "--max-side", "100")
    assert code == 0, err
    photo = np.asarray(Image.open(PHOTO)).astype(np.float64)
    small = np.asarray(Image.open(tmp_path / "small.png"))
    expected = torch_adaptive(np.moveaxis(photo, 2, 0), small.shape[:2], "avg")
    assert small.shape[:2] == target_size(photo.shape[:2], max_side=100) and max(small.shape[:2]) == 100
    assert np.array_equal(small, np.floor(np.moveaxis(expected, 0, 2) + 0.5).astype(np.uint8))


@pytest.mark.parametrize("mode", names())
def test_every_mode_pools_to_a_size(tmp_path, capsys, mode):
    x = np.random.default_rng(1).integers(0, 50, (19, 14)).astype(np.int16)
    np.save(tmp_path / "x.npy", x)
    assert run(capsys, "pool", tmp_path / "x.npy", "-o", tmp_path / "y.npy", "-m", mode, "--size", "6x-")[0] == 0
    expected = adaptive_pool(x, (6, 4), mode=mode)
    actual = np.load(tmp_path / "y.npy")
    assert actual.dtype == expected.dtype and np.array_equal(actual, expected)


def test_the_kept_side_is_rounded_half_up(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((6, 4)))
    assert run(capsys, "pool", tmp_path / "x.npy", "-o", tmp_path / "y.npy", "--size", "-x3")[0] == 0
    assert np.load(tmp_path / "y.npy").shape == (5, 3)  # 6 * 3/4 = 4.5, rounded up (Python's round gives 4)


def test_max_side_never_enlarges(tmp_path, capsys):
    x = np.random.default_rng(2).integers(0, 255, (50, 60, 3)).astype(np.uint8)
    Image.fromarray(x).save(tmp_path / "small.png")
    code, _, err = run(capsys, "pool", tmp_path / "small.png", "-o", tmp_path / "out.png", "-m", "avg",
                       "--max-side", "100")
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), x)


def test_batch_takes_max_side_and_names_outputs_by_it(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", np.arange(400.0).reshape(20, 20))
    code, _, err = run(capsys, "batch", tmp_path / "in", "-d", tmp_path / "out", "-m", "avg", "--max-side", "8")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "out" / "a.npy"), adaptive_pool(np.arange(400.0).reshape(20, 20), 8))
    assert run(capsys, "pool", tmp_path / "in" / "a.npy", "-d", tmp_path / "named", "--max-side", "8")[0] == 0
    assert [p.name for p in (tmp_path / "named").iterdir()] == ["a_max_max_8.npy"]


def test_info_and_compare_show_the_adaptive_windows(tmp_path, capsys):
    code, out, err = run(capsys, "info", PHOTO, "--json", "--size", "77x-")
    assert code == 0, err
    rows = json.loads(out)["arrays"]["array"]["axes"]
    assert [(row["window"], row["output"], row["adaptive"]) for row in rows] == [("7-8", 77, True)] * 2
    code, _, err = run(capsys, "compare", PHOTO, "-o", tmp_path / "grid.png", "--size", "77x-")
    assert code == 0, err
    from poolcli.app.figures import compare_figure
    from poolcli.app.settings import PoolSettings

    figure = compare_figure(PHOTO, PoolSettings(size=(77, None)).check(), ["avg"], [(2,)])
    assert "avg adaptive 7-8 px windows -> 77x77x3" in repr(figure.__dict__)


@pytest.mark.parametrize(("args", "words"), [
    (("--size", "10x10", "-k", "3"), ("--size chooses the windows itself", "drop --window")),
    (("--max-side", "10", "-s", "2", "--ceil-mode"), ("--max-side chooses the windows itself",
                                                       "drop --stride, --ceil-mode")),
    (("--size", "10x10", "-p", "1", "--dilation", "2"), ("drop --padding, --dilation",)),
    (("--size", "10x10", "--max-side", "5"), ("--size and --max-side both set the output size",)),
    (("--size", "ax3"), ("--size 'ax3' is not a size",)),
    (("--size", "-x-"), ("--size keeps every side",)),
    (("--size", "0x3"), ("--size sides must be >= 1",)),
    (("--max-side", "0"), ("--max-side 0 must be >= 1",)),
])
def test_size_errors_are_usage_errors(tmp_path, capsys, args, words):
    np.save(tmp_path / "x.npy", np.zeros((8, 8)))
    code, _, err = run(capsys, "pool", tmp_path / "x.npy", "-o", tmp_path / "y.npy", *args)
    assert code == 2
    assert_one_line_error(err, *words)
    assert not (tmp_path / "y.npy").exists()


def test_inputs_pooled_block_by_block_and_the_inspector_refuse_a_size(tmp_path, capsys):
    import zarr

    zarr.create_array(store=str(tmp_path / "x.zarr"), shape=(8, 8), chunks=(4, 4), dtype="f8")[:] = 1.0
    code, _, err = run(capsys, "pool", tmp_path / "x.zarr", "-o", tmp_path / "y.zarr", "--size", "3x3")
    assert code == 1
    assert_one_line_error(err, "is pooled in memory only")
    code, _, err = run(capsys, "inspect", PHOTO, "-o", tmp_path / "page.html", "--max-side", "64")
    assert code == 2
    assert_one_line_error(err, "inspect draws sliding windows", "drop --max-side")
