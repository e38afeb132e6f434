"""compare, grad and pool --compare: the pictures hold the pooled values where they should."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from poolcli import io, pool, pool_backward, viz
from poolcli.app.figures import compare_figure, gradient_figure, plane_view, side_by_side_figure
from poolcli.app.settings import PoolSettings
from poolcli.cli import main
from poolcli.errors import PoolError

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


BLOCK_REDUCERS = {  # non-overlapping k x k windows of (h, k, w, k, c) blocks, by plain NumPy
    "max": lambda b: b.max(axis=(1, 3)),
    "min": lambda b: b.min(axis=(1, 3)),
    "avg": lambda b: b.mean(axis=(1, 3)),
    "l2": lambda b: np.sqrt((b**2).mean(axis=(1, 3))),
    "median": lambda b: np.median(b, axis=(1, 3)),
}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", list(BLOCK_REDUCERS))
def test_compare_cells_hold_the_pooled_values(tmp_path, mode, channels):
    """Each cell shows its windows' values, each filling its k x k window (to the nearest grey level)."""
    pixels_in = np.random.default_rng(3).integers(0, 256, (12, 18, channels), dtype=np.uint8)
    source = tmp_path / "small.png"
    Image.fromarray(pixels_in.squeeze(axis=2) if channels == 1 else pixels_in).save(source)
    windows = [(2,), (3,)]
    figure = compare_figure(source, PoolSettings(), [mode], windows)
    pixels = figure.pixels()
    scale = int(figure.scale)
    assert scale == figure.scale and scale >= 2  # tiny inputs are enlarged by an integer factor
    shown = figure.box("original").crop(pixels)[..., :channels]
    assert np.array_equal(shown, enlarge(pixels_in, scale))
    for column, (k,) in enumerate(windows, start=1):
        blocks = pixels_in.astype(np.float64).reshape(12 // k, k, 18 // k, k, channels)
        expected = enlarge(BLOCK_REDUCERS[mode](blocks), k * scale)
        cell = figure.box("cell", 0, column).crop(pixels).astype(np.float64)
        assert cell.shape == (12 * scale, 18 * scale, 3)
        assert np.abs(cell[..., :channels] - expected).max() <= 0.5, (mode, k)
        if channels == 1:
            assert (cell == cell[..., :1]).all()  # gray stays gray
    assert figure.labels == (f"original 12x18x{channels}",
                             *(f"{mode} k={k} s={k} -> {12 // k}x{18 // k}x{channels}" for (k,) in windows))


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


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def enlarge(array, factor):
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def block_pool_1d(x, k, reduce):
    """Non-overlapping 1-D pooling by a reshape (the tail that fills no window dropped)."""
    n = x.size // k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN
        return reduce(x[: n * k].reshape(n, k), axis=1)


def assert_points_drawn(figure, row, positions, values, colour):
    """Each finite (position, value) of a series is drawn in `colour` at its pixel (±1)."""
    pixels = figure.pixels()
    columns, rows = figure.plot(row).to_pixel(positions, values)
    finite = np.isfinite(values)
    assert finite.sum() > 0
    for c, r in zip(columns[finite], rows[finite], strict=True):
        c, r = round(c), round(r)
        assert (pixels[r - 1 : r + 2, c - 1 : c + 2] == colour).all(axis=2).any(), (row, c, r)


def test_compare_series_and_montage_commands(tmp_path, capsys):
    code, streams = run(capsys, "compare", SAMPLES / "co2_weekly.npy", "-o", tmp_path / "s.png",
                        "--windows", "8,52", "--nan", "omit")
    assert code == 0, streams.err
    figure = compare_figure(SAMPLES / "co2_weekly.npy", PoolSettings(nan_policy="omit"), ["max", "avg"], [(8,), (52,)])
    assert np.array_equal(read_png(tmp_path / "s.png"), figure.pixels())  # the command drew this figure
    co2 = np.load(SAMPLES / "co2_weekly.npy")
    panels = [("max", 8, np.nanmax), ("max", 52, np.nanmax), ("avg", 8, np.nanmean), ("avg", 52, np.nanmean)]
    assert len(figure.plots) == len(panels)  # one panel each: no series hides under another
    for row, (mode, k, reduce) in enumerate(panels):
        expected = block_pool_1d(co2, k, reduce)
        centres = np.arange(expected.size) * k + (k - 1) / 2
        assert_points_drawn(figure, row, centres, expected, viz.SERIES_COLORS[row])
        assert figure.labels[1 + row] == f"{mode} k={k} s={k} nan=omit -> {expected.size}"
    assert figure.labels[0] == "co2_weekly.npy (2284 samples)"  # a 1-D series has no channel

    code, streams = run(capsys, "compare", SAMPLES / "features_chw.npy", "-o", tmp_path / "m.png",
                        "--montage", "4", "--modes", "max", "--windows", "4")
    assert code == 0, streams.err
    figure = compare_figure(SAMPLES / "features_chw.npy", PoolSettings(), ["max"], [(4,)], montage=4)
    assert np.array_equal(read_png(tmp_path / "m.png"), figure.pixels())
    maps = np.load(SAMPLES / "features_chw.npy")
    pooled = maps.reshape(8, 32, 4, 32, 4).max(axis=(2, 4))
    lo, hi = float(maps[:4].min()), float(maps[:4].max())  # max pooling stays inside the original's range
    pixels, f = figure.pixels(), int(figure.scale)
    for c in range(4):
        shown = figure.box("channel", c // 2, c % 2).crop(pixels)  # the original's montage: rows 0-1
        assert np.array_equal(shown, enlarge(viz.apply_colormap(maps[c], lo, hi), f))
        cell = figure.box("channel", 2 + c // 2, c % 2).crop(pixels)  # the pooled montage below: rows 2-3
        expected = viz.apply_colormap(viz.upsample_nearest(pooled[c], (128, 128)), lo, hi)
        assert np.array_equal(cell, enlarge(expected, f))
    assert figure.box("title", 1, 0).top > figure.box("channel", 1, 0).bottom
    assert figure.labels[0] == "original 8x128x128" and "max k=4 s=4 -> 8x32x32" in figure.labels
    assert f"4 of 8 channels, values {lo:.4g} .. {hi:.4g}" in figure.labels


def test_compare_grid_written_by_the_command(tmp_path, capsys):
    target = tmp_path / "grid.png"
    code, streams = run(capsys, "compare", SAMPLES / "astronaut.jpg", "-o", target, "--modes", "max,avg,l2",
                        "--windows", "2,4,8", "--diff")
    assert code == 0, streams.err
    with Image.open(target) as grid:
        assert grid.mode == "RGB" and grid.width <= viz.MAX_WIDTH
    figure = compare_figure(SAMPLES / "astronaut.jpg", PoolSettings(), ["max", "avg", "l2"], [(2,), (4,), (8,)],
                            diff=True)
    assert np.array_equal(read_png(target), figure.pixels())  # the command drew this figure
    cells = [f"{mode} k={k} s={k} -> {512 // k}x{512 // k}x3" for mode in ("max", "avg", "l2") for k in (2, 4, 8)]
    assert [label for label in figure.labels if " k=" in label] == cells
    assert sorted((b.row, b.col) for b in figure.roles("diff")) == [(r, c) for r in (1, 3, 5) for c in (1, 2, 3)]
    assert run(capsys, "compare", SAMPLES / "astronaut.jpg", "-o", target)[0] == 1  # exists
    code, streams = run(capsys, "compare", SAMPLES / "astronaut.jpg", "-o", tmp_path / "g.png", "--modes", "mean")
    assert code == 2 and "--modes" in streams.err


def test_compare_refuses_bad_requests(tmp_path, capsys):
    code, streams = run(capsys, "compare", SAMPLES / "features_chw.npy", "-o", tmp_path / "g.png", "--channel", "9")
    assert code == 1 and "--channel 9" in streams.err
    code, streams = run(capsys, "compare", SAMPLES / "camera.png", "-o", tmp_path / "g.jpg")
    assert code == 1 and ".png" in streams.err
    assert list(tmp_path.iterdir()) == []


def torch_max_pool_gradient(plane: np.ndarray, k: int, s: int) -> np.ndarray:
    """dL/dx of PyTorch's max_pool2d for dL/dy = 1: how many windows pick each pixel."""
    x = torch.tensor(plane, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.max_pool2d(x[None, None], k, s).sum().backward()
    return x.grad.numpy()


def test_grad_writes_the_raw_gradient_and_a_routing_map(small_gray, tmp_path, capsys):
    raw = tmp_path / "g.npy"
    code, streams = run(capsys, "grad", small_gray, "-o", raw, "-k", "3", "-s", "2")
    assert code == 0, streams.err
    image = io.load(small_gray).array
    counts = torch_max_pool_gradient(image[..., 0], 3, 2)
    assert counts.max() >= 2  # overlapping windows share some pixels
    written = np.load(raw)
    assert written.dtype == np.float64 and written.shape == (12, 18, 1)
    assert np.array_equal(written[..., 0], counts)
    picture = tmp_path / "g.png"
    assert run(capsys, "grad", small_gray, "-o", picture, "-k", "3", "-s", "2")[0] == 0
    figure = gradient_figure(small_gray, PoolSettings(window=(3,), stride=(2,)))
    assert np.array_equal(read_png(picture), figure.pixels())
    f = int(figure.scale)
    assert f == figure.scale
    tile = figure.box("gradient", 0, 1).crop(figure.pixels())
    assert tile.shape == (12 * f, 18 * f, 3)
    shown = tile[::f, ::f]
    for n, colour in enumerate(viz.ROUTE_COLORS, start=1):  # 1, 2, 3 or more windows
        painted = (shown == colour).all(axis=2)
        assert np.array_equal(painted, counts == n if n < 3 else counts >= n), n
    dimmed, below = shown[counts == 0].astype(np.float64), image[..., 0][counts == 0, None]
    assert (dimmed == dimmed[:, :1]).all() and np.abs(dimmed - below * viz.DIM).max() <= 0.5 + 1e-6  # grey, dimmed


def test_grad_of_an_even_median_paints_both_middle_cells(small_gray):
    """A 2x2 median averages its two middle cells: each gets dL/dx = 1/2, and is painted as
    reached by one window, not dimmed as if no gradient came."""
    figure = gradient_figure(small_gray, PoolSettings(mode="median", window=(2,)))
    image = io.load(small_gray).array[..., 0]
    grad = pool_backward(np.ones((6, 9, 1)), image[..., None], 2, mode="median", axes=(0, 1))[..., 0]
    windows = grad.reshape(6, 2, 9, 2).transpose(0, 2, 1, 3).reshape(6, 9, 4)
    assert ((windows == 0.5).sum(axis=2) == 2).all() and ((windows == 0).sum(axis=2) == 2).all()
    f = int(figure.scale)
    shown = figure.box("gradient", 0, 1).crop(figure.pixels())[::f, ::f]
    painted = (shown == viz.ROUTE_COLORS[0]).all(axis=2)
    assert np.array_equal(painted, grad == 0.5)


def test_grad_weight_map_for_avg(tmp_path, capsys):
    target = tmp_path / "w.png"
    code, streams = run(capsys, "grad", SAMPLES / "features_chw.npy", "-o", target, "-m", "avg", "-k", "3",
                        "-s", "2", "--channel", "1")
    assert code == 0, streams.err
    figure = gradient_figure(SAMPLES / "features_chw.npy", PoolSettings(mode="avg", window=(3,), stride=(2,)),
                             channel=1)
    assert np.array_equal(read_png(target), figure.pixels())
    maps = np.load(SAMPLES / "features_chw.npy")
    grad = pool_backward(np.ones((8, 63, 63)), maps, 3, 2, mode="avg")[1]
    # Independently: each pixel's weight is (windows covering its row) x (windows covering its column) / 9.
    starts = np.arange(63) * 2
    cover = ((np.arange(128)[:, None] >= starts) & (np.arange(128)[:, None] < starts + 3)).sum(axis=1)
    assert np.allclose(grad, np.outer(cover, cover) / 9)
    f = int(figure.scale)
    tile = figure.box("gradient", 0, 1).crop(figure.pixels())
    assert np.array_equal(tile, enlarge(viz.apply_colormap(grad, 0.0, 4 / 9), f))
    original = figure.box("original").crop(figure.pixels())
    assert np.array_equal(original, enlarge(viz.apply_colormap(maps[1], maps[1].min(), maps[1].max()), f))
    assert figure.labels == ("original 8x128x128, channel 1 of 8", "avg k=3 s=2: dL/dx for dL/dy = 1",
                             "value", "dL/dx")


def test_pool_compare_side_by_side(tmp_path, capsys):
    target, side = tmp_path / "out.png", tmp_path / "side.png"
    code, streams = run(capsys, "pool", SAMPLES / "camera.png", "-o", target, "-k", "4", "--compare", side,
                        "--json")
    assert code == 0, streams.err
    assert json.loads(streams.out)["output_shape"] == [128, 128, 1]
    figure = side_by_side_figure(SAMPLES / "camera.png", target, PoolSettings(window=(4,)))
    assert np.array_equal(read_png(side), figure.pixels())
    camera = io.load(SAMPLES / "camera.png").array[..., 0]
    pooled = camera.reshape(128, 4, 128, 4).max(axis=(1, 3))
    f = figure.scale
    original, cell = figure.box("original").crop(figure.pixels()), figure.box("cell", 0, 1).crop(figure.pixels())
    assert np.array_equal(original[..., 0], enlarge(camera, f))
    assert np.array_equal(cell[..., 0], enlarge(pooled, 4 * f))  # each pooled value fills its 4x4 window
    assert (cell == cell[..., :1]).all()  # grey stays grey
    assert original.shape == cell.shape and figure.box("original").right < figure.box("cell", 0, 1).left
    assert figure.labels == ("input 512x512x1", "max k=4 s=4 -> 128x128x1")


def test_pool_compare_of_a_series_overlays_the_pooled_line(tmp_path):
    x = np.sin(np.arange(120) / 6.0)
    source, output = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(source, x)
    np.save(output, pool(x, 4, mode="avg"))
    figure = side_by_side_figure(source, output, PoolSettings(mode="avg", window=(4,)))
    assert figure.labels == ("input x.npy (120 samples)", "avg k=4 s=4 -> 30", "original", "avg k=4 s=4 -> 30")
    expected = x.reshape(30, 4).mean(axis=1)
    assert_points_drawn(figure, 0, np.arange(30) * 4 + 1.5, expected, viz.SERIES_COLORS[0])
    plot = figure.box("plot").crop(figure.pixels())
    pooled_px = (plot == viz.SERIES_COLORS[0]).all(axis=2).sum()
    original_px = (plot == viz.ORIGINAL_COLOR).all(axis=2).sum()
    assert pooled_px > 2 * original_px > 2 * 300  # both lines show; the pooled one (with markers) is heavier


def test_grad_of_a_series_draws_the_gradient_on_its_own_axis(tmp_path):
    x = 300 + np.sin(np.arange(64) / 4.0)
    source = tmp_path / "x.npy"
    np.save(source, x)
    figure = gradient_figure(source, PoolSettings(mode="max", window=(8,)))
    data, gradient = figure.plot(0), figure.plot(1)
    assert data.y_range[0] > 290 and gradient.y_range == pytest.approx((-0.05, 1.05))
    assert gradient.top > data.top + data.height
    routed = np.zeros(64)
    routed[np.arange(8) * 8 + x.reshape(8, 8).argmax(axis=1)] = 1
    assert_points_drawn(figure, 1, np.arange(64), routed, viz.SERIES_COLORS[0])
    assert figure.labels[:3] == ("x.npy (64 samples)", "original values", "max k=8 s=8: dL/dx for dL/dy = 1")


def test_sum_and_lp_are_shown_divided_by_the_taps_they_use(tmp_path):
    x = np.arange(1.0, 65.0)
    source = tmp_path / "x.npy"
    np.save(source, x)
    figure = compare_figure(source, PoolSettings(), ["sum", "lp"], [(8,)])
    assert figure.labels[1:3] == ("sum k=8 s=8 -> 8 (shown / 8 taps)",
                                  "lp k=8 s=8 power=2 -> 8 (shown / 8 taps ^ (1/2) = 2.83)")
    sums = x.reshape(8, 8).sum(axis=1)
    norms = np.sqrt((x.reshape(8, 8) ** 2).sum(axis=1))
    centres = np.arange(8) * 8 + 3.5
    assert_points_drawn(figure, 0, centres, sums / 8, viz.SERIES_COLORS[0])  # 1-D: 8 taps, not 64
    assert_points_drawn(figure, 1, centres, norms / np.sqrt(8), viz.SERIES_COLORS[1])


# ------------------------------------------------------------------ NaN and infinities


@pytest.fixture
def special_maps(tmp_path):
    """(path, maps): (3, 12, 12) float32 with NaN, +inf and -inf in 2x2 blocks of channel 0."""
    maps = np.random.default_rng(11).uniform(-1, 1, size=(3, 12, 12)).astype(np.float32)
    maps[0, 0:2, 0:2] = np.nan
    maps[0, 4:6, 0:2] = np.inf
    maps[0, 8:10, 0:2] = -np.inf
    maps[0, 11, 11], maps[0, 11, 10] = 5.0, -5.0  # the finite extremes
    path = tmp_path / "special.npy"
    np.save(path, maps)
    return path, maps


SPECIALS = ((0, 0, viz.NAN_COLOR), (4, 0, viz.POSINF_COLOR), (8, 0, viz.NEGINF_COLOR))
LEGEND = ("NaN", "+inf", "-inf")


def test_map_figures_colour_nan_and_infinities_without_warnings(special_maps, tmp_path):
    path, maps = special_maps
    top, bottom = viz.VIRIDIS[255].tolist(), viz.VIRIDIS[0].tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = compare_figure(path, PoolSettings(), ["max", "avg"], [(2,)], diff=True)
        np.save(tmp_path / "pooled.npy", pool(maps, 2, mode="avg"))
        side = side_by_side_figure(path, tmp_path / "pooled.npy", PoolSettings(mode="avg", window=(2,)))
        routed = gradient_figure(path, PoolSettings(mode="max", window=(2,)))
        weights = gradient_figure(path, PoolSettings(mode="l2", window=(2,)))
        tiles = compare_figure(path, PoolSettings(), ["max"], [(2,)], montage=2, scale="channel")
    for figure, role in ((grid, "original"), (side, "original"), (routed, "original"), (weights, "original"),
                         (tiles, "channel")):
        f = int(figure.scale)
        shown = figure.box(role).crop(figure.pixels())[::f, ::f]
        for r, c, colour in SPECIALS:
            assert shown[r, c].tolist() == list(colour), (figure.labels[0], r, c)
        assert shown[11, 11].tolist() == top and shown[11, 10].tolist() == bottom  # finite values make the scale
        assert all(name in figure.labels for name in LEGEND), figure.labels
    f = int(grid.scale)
    for col in (1,):
        for row in (0, 2):  # max and avg cells: a pooled window holding NaN or an infinity shows it
            cell = grid.box("cell", row, col).crop(grid.pixels())[::f, ::f]
            for r, c, colour in SPECIALS:
                assert cell[r, c].tolist() == list(colour)
    cell = side.box("cell", 0, 1).crop(side.pixels())[:: int(side.scale), :: int(side.scale)]
    assert [cell[r, c].tolist() for r, c, _ in SPECIALS] == [list(colour) for *_, colour in SPECIALS]


def test_series_figures_break_at_nan_without_warnings(tmp_path):
    x = np.linspace(0.0, 10.0, 200)
    x[100] = np.nan
    x[40], x[160] = np.inf, -np.inf
    source = tmp_path / "x.npy"
    np.save(source, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figures = [compare_figure(source, PoolSettings(), ["max", "avg"], [(4,)]),
                   gradient_figure(source, PoolSettings(mode="l2", window=(4,)))]
        np.save(tmp_path / "y.npy", pool(x, 4))
        figures.append(side_by_side_figure(source, tmp_path / "y.npy", PoolSettings(window=(4,))))
    for figure, rows in zip(figures, ((0, 1), (0,), (0,)), strict=True):
        assert [label.split(" ")[0] for label in figure.labels[-3:]] == list(LEGEND)
        for row in rows:
            axes = figure.plot(row)
            assert axes.y_range == pytest.approx((-0.5, 10.5))  # finite values, padded 5 %: no infinity
            pixels = figure.pixels()
            column = round(axes.to_pixel(100, 5.0)[0])
            strip = pixels[axes.top : axes.top + axes.height - 10, column]
            blank = (strip == viz.BACKGROUND).all(axis=1) | (strip == viz.GRID_LINE).all(axis=1)
            assert blank.all(), (figure.labels[row + 1], np.flatnonzero(~blank))  # a gap: no line, no drop
            bottom = axes.top + axes.height - 1
            assert (pixels[bottom - 5 : bottom + 1, column] == viz.NAN_COLOR).all()  # ticked on the axis


def test_compare_montage_scale_option_is_checked(special_maps):
    with pytest.raises(PoolError, match="scale"):
        compare_figure(special_maps[0], PoolSettings(), ["max"], [(2,)], montage=2, scale="each")
