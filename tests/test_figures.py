"""compare, grad and pool --compare: the pictures hold the pooled values where they should."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poolcli import io, pool, pool_backward, viz
from poolcli.cli import main
from poolcli.figures import compare_figure, plane_view
from poolcli.pipeline import PoolSettings

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def run(capsys, *args):
    code = main([str(a) for a in args])
    return code, capsys.readouterr()


@pytest.fixture
def small_gray(tmp_path) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path / "small.png"
    Image.fromarray(rng.integers(0, 256, (12, 18), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("mode", ["max", "min"])
def test_compare_cells_hold_the_pooled_values(small_gray, mode):
    windows = [(2,), (3,)]
    figure = compare_figure(small_gray, PoolSettings(), [mode], windows)
    pixels = figure.pixels()
    original = io.load(small_gray).array[..., 0]
    scale = int(figure.scale)
    assert scale == figure.scale and scale >= 2  # tiny inputs are enlarged by an integer factor
    shown = figure.box("original").crop(pixels)[..., 0]
    assert np.array_equal(shown, np.kron(original, np.ones((scale, scale), np.uint8)))
    for column, (window,) in enumerate(windows, start=1):
        pooled = pool(original, window, mode=mode)
        stretched = viz.upsample_nearest(pooled, original.shape)
        cell = figure.box("cell", 0, column).crop(pixels)
        assert np.array_equal(cell[..., 0], np.kron(stretched, np.ones((scale, scale), np.uint8)))
        assert np.array_equal(cell[..., 0], cell[..., 2])  # gray stays gray


def test_compare_labels_and_layout(small_gray):
    figure = compare_figure(small_gray, PoolSettings(), ["max", "avg"], [(2,), (4,)], diff=True)
    pixels = figure.pixels()
    cells = figure.roles("cell")
    assert sorted((b.row, b.col) for b in cells) == [(0, 1), (0, 2), (2, 1), (2, 2)]
    assert len(figure.roles("diff")) == 4
    labels = [b for b in figure.boxes if b.role.startswith("label")]
    assert labels and all((b.crop(pixels) < 100).any() for b in labels)  # dark text in every label band
    first, second = figure.box("cell", 0, 1), figure.box("cell", 0, 2)
    assert first.top == second.top and first.right < second.left  # windows run left to right


def test_compare_feature_channel_uses_viridis(tmp_path):
    maps = np.load(SAMPLES / "features_chw.npy")[:, :32, :32]
    source = tmp_path / "maps.npy"
    np.save(source, maps)
    figure = compare_figure(source, PoolSettings(), ["max"], [(4,)], channel=2)
    original = plane_view(maps, (1, 2), 2)
    lo, hi = viz.value_range(original)
    expected = viz.apply_colormap(viz.upsample_nearest(pool(original, 4), original.shape), lo, hi)
    cell = figure.box("cell", 0, 1).crop(figure.pixels())
    scale = int(figure.scale)
    assert np.array_equal(cell, np.kron(expected, np.ones((scale, scale, 1), np.uint8)))


def test_compare_series_and_montage_commands(tmp_path, capsys):
    code, streams = run(capsys, "compare", SAMPLES / "co2_weekly.npy", "-o", tmp_path / "s.png",
                        "--windows", "8,52", "--nan", "omit")
    assert code == 0, streams.err
    assert Image.open(tmp_path / "s.png").format == "PNG"
    code, streams = run(capsys, "compare", SAMPLES / "features_chw.npy", "-o", tmp_path / "m.png",
                        "--montage", "4", "--modes", "max", "--windows", "4")
    assert code == 0, streams.err
    montage = np.asarray(Image.open(tmp_path / "m.png"))
    assert montage.shape[0] > montage.shape[1]  # the original's montage above the pooled one


def test_compare_grid_written_by_the_command(tmp_path, capsys):
    target = tmp_path / "grid.png"
    code, streams = run(capsys, "compare", SAMPLES / "astronaut.jpg", "-o", target, "--modes", "max,avg,l2",
                        "--windows", "2,4,8", "--diff")
    assert code == 0, streams.err
    grid = Image.open(target)
    assert grid.mode == "RGB" and grid.width <= viz.MAX_WIDTH
    assert run(capsys, "compare", SAMPLES / "astronaut.jpg", "-o", target)[0] == 1  # exists
    code, streams = run(capsys, "compare", SAMPLES / "astronaut.jpg", "-o", tmp_path / "g.png", "--modes", "mean")
    assert code == 2 and "--modes" in streams.err


def test_compare_refuses_bad_requests(tmp_path, capsys):
    code, streams = run(capsys, "compare", SAMPLES / "features_chw.npy", "-o", tmp_path / "g.png", "--channel", "9")
    assert code == 1 and "--channel 9" in streams.err
    code, streams = run(capsys, "compare", SAMPLES / "camera.png", "-o", tmp_path / "g.jpg")
    assert code == 1 and ".png" in streams.err
    assert list(tmp_path.iterdir()) == []


def test_grad_writes_the_raw_gradient_and_a_routing_map(small_gray, tmp_path, capsys):
    raw = tmp_path / "g.npy"
    code, streams = run(capsys, "grad", small_gray, "-o", raw, "-k", "3", "-s", "2")
    assert code == 0, streams.err
    image = io.load(small_gray).array
    expected = pool_backward(np.ones((5, 8, 1)), image, 3, 2, axes=(0, 1))
    assert np.array_equal(np.load(raw), expected)
    picture = tmp_path / "g.png"
    assert run(capsys, "grad", small_gray, "-o", picture, "-k", "3", "-s", "2")[0] == 0
    pixels = np.asarray(Image.open(picture).convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(pixels, axis=0)}
    assert viz.ROUTE_COLORS[0] in colours  # cells that one window routes to
    assert viz.ROUTE_COLORS[1] in colours or viz.ROUTE_COLORS[2] in colours  # overlapping windows


def test_grad_weight_map_for_avg(tmp_path, capsys):
    target = tmp_path / "w.png"
    code, streams = run(capsys, "grad", SAMPLES / "features_chw.npy", "-o", target, "-m", "avg", "-k", "3",
                        "-s", "2", "--channel", "1")
    assert code == 0, streams.err
    assert Image.open(target).size[0] > 0


def test_pool_compare_side_by_side(tmp_path, capsys):
    target, side = tmp_path / "out.png", tmp_path / "side.png"
    code, streams = run(capsys, "pool", SAMPLES / "camera.png", "-o", target, "-k", "4", "--compare", side,
                        "--json")
    assert code == 0, streams.err
    assert json.loads(streams.out)["output_shape"] == [128, 128, 1]
    picture = np.asarray(Image.open(side))
    assert picture.shape[1] > picture.shape[0]  # two tiles side by side
