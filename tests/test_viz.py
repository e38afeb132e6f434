"""Pixels of poolcli's pictures: tiles where they belong, labels in their bands, true colours.

Pooled arrays come from plain NumPy block reductions and brute-force loops, never from
poolcli's engine, so these tests check the drawing alone.
"""

import contextlib
import io
import warnings

import numpy as np
import pytest
from PIL import Image

from poolcli.errors import PoolError
from poolcli.viz import (
    BACKGROUND,
    CHECKER,
    DIM,
    MAX_WIDTH,
    MIN_CELL,
    NAN_COLOR,
    NEGINF_COLOR,
    ORIGINAL_COLOR,
    POSINF_COLOR,
    ROUTE_COLORS,
    SERIES_COLORS,
    Cell,
    Series,
    abs_difference,
    apply_colormap,
    cell_label,
    colorbar,
    comparison_grid,
    gradient_map,
    gradient_series,
    image_range,
    montage,
    series_plot,
    series_style,
    side_by_side,
    stack,
    to_display,
    upsample_nearest,
    window_centres,
)
from poolcli.viz.colormaps import VIRIDIS

DARK = 100  # a text pixel: every channel below this on the white background


def block(array, k, reduce=np.max):
    """Non-overlapping k x k pooling of the first two axes (the rest cropped off)."""
    h, w = array.shape[0] // k * k, array.shape[1] // k * k
    blocks = array[:h, :w].reshape(h // k, k, w // k, k, *array.shape[2:])
    return reduce(blocks, axis=(1, 3))


def enlarge(array, factor):
    """Each pixel as a factor x factor square."""
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def rgb(gray):
    """A uint8 grey image as the RGB the figure shows."""
    return np.repeat(np.asarray(gray, dtype=np.uint8)[..., None], 3, axis=-1)


def crop(figure, role, row=0, col=0):
    return figure.box(role, row, col).crop(figure.pixels())


def viridis_index(pixels):
    """Index into VIRIDIS of each (…, 3) pixel; -1 where the colour is not in the table."""
    matches = (pixels[..., None, :] == VIRIDIS).all(axis=-1)
    return np.where(matches.any(axis=-1), matches.argmax(axis=-1), -1)


def brute_max_routing(image, k, s):
    """Gradient counts of max pooling k x k, stride s, by a loop over windows (no ties)."""
    counts = np.zeros(image.shape, dtype=np.int64)
    for top in range(0, image.shape[0] - k + 1, s):
        for left in range(0, image.shape[1] - k + 1, s):
            window = image[top : top + k, left : left + k]
            r, c = np.unravel_index(np.argmax(window), window.shape)
            counts[top + r, left + c] += 1
    return counts


@pytest.fixture
def photo():
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(24, 36, 3), dtype=np.uint8)


# --- upsampling ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 4), (3, 4, 3), (1, 1), (2, 5, 4)])
@pytest.mark.parametrize("factor", [1, 2, 5])
def test_upsample_divisible_repeats_blocks(shape, factor):
    pooled = np.arange(np.prod(shape)).reshape(shape)
    out = upsample_nearest(pooled, (shape[0] * factor, shape[1] * factor))
    assert out.dtype == pooled.dtype and out.shape[2:] == pooled.shape[2:]
    np.testing.assert_array_equal(out, enlarge(pooled, factor))


@pytest.mark.parametrize(
    ("pooled_shape", "size"), [((2, 2), (5, 5)), ((3, 2), (7, 9)), ((4, 1), (5, 3))]
)
def test_upsample_non_divisible_takes_floor_index(pooled_shape, size):
    pooled = np.arange(np.prod(pooled_shape)).reshape(pooled_shape)
    out = upsample_nearest(pooled, size)
    expected = [
        [
            pooled[r * pooled_shape[0] // size[0], c * pooled_shape[1] // size[1]]
            for c in range(size[1])
        ]
        for r in range(size[0])
    ]
    np.testing.assert_array_equal(out, expected)


def test_upsample_refuses_1d():
    with pytest.raises(PoolError, match="pass HW or HWC"):
        upsample_nearest(np.arange(4), (4, 4))


# --- colours of single arrays -------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[0, 257, 65535]], np.uint16), [0, 1, 255]),
        (np.array([[0.0, 0.5, 1.0]]), [0, 128, 255]),
        (np.array([[False, True, True]]), [0, 255, 255]),
        (np.array([[10, 20, 30]], np.int32), [0, 128, 255]),
    ],
)
def test_to_display_scales_images_by_their_range(array, expected):
    out = to_display(array)
    assert out.dtype == np.uint8 and out.shape == (1, 3, 3)
    np.testing.assert_array_equal(out[0], rgb(expected))


def test_to_display_composites_alpha_over_checker():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:8, :, 3] = 255  # top half opaque red-ish, bottom half transparent
    out = to_display(rgba)
    np.testing.assert_array_equal(out[:8], np.broadcast_to([200, 0, 0], (8, 16, 3)))
    assert out[8, 0].tolist() == [CHECKER[1]] * 3 and out[8, 8].tolist() == [CHECKER[0]] * 3


def test_to_display_grey_alpha_and_nan():
    la = np.zeros((1, 2, 2))
    la[0, 0] = [1.0, 1.0]  # opaque white
    la[0, 1] = [np.nan, 1.0]
    out = to_display(la)
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == list(NAN_COLOR)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.zeros(2, np.uint8), (0.0, 255.0)),
        (np.zeros(2, np.uint16), (0.0, 65535.0)),
        (np.array([0.1, 0.7]), (0.0, 1.0)),
        (np.array([-2.0, np.nan, 5.0]), (-2.0, 5.0)),
        (np.array([True]), (0.0, 1.0)),
    ],
)
def test_image_range(array, expected):
    assert image_range(array) == expected


def test_colormap_ends_nan_and_constant():
    out = apply_colormap(np.array([-5.0, 0.0, 0.5, 1.0, 7.0, np.nan, np.inf]), 0.0, 1.0)
    assert viridis_index(out[:5]).tolist() == [0, 0, 128, 255, 255]
    assert out[5].tolist() == list(NAN_COLOR) and out[6].tolist() == list(POSINF_COLOR)
    assert viridis_index(apply_colormap(np.full(3, 4.0), 4.0, 4.0)).tolist() == [0, 0, 0]


def test_colormap_resolves_a_narrow_range_of_large_values():
    values = 1e6 + np.array([0.0, 1e-3, 4e-3])
    assert viridis_index(apply_colormap(values, values[0], values[2])).tolist() == [0, 64, 255]


def test_viridis_table_is_viridis():
    assert VIRIDIS.shape == (256, 3)
    # Published end and middle colours of matplotlib's viridis.
    assert [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in VIRIDIS[[0, 128, 255]]] == [
        "#440154",
        "#21918c",
        "#fde725",
    ]
    luma = VIRIDIS.astype(float) @ [0.299, 0.587, 0.114]
    # Perceptual: brightness rises steadily (8-bit rounding aside, so every 4th entry).
    assert (np.diff(luma[::4]) > 0).all() and (np.diff(luma) > -0.5).all()


def test_abs_difference_refuses_other_channels():
    with pytest.raises(PoolError, match="axes=\\(0, 1\\)"):
        abs_difference(np.zeros((4, 4, 3)), np.zeros((2, 2)))


def test_abs_difference_means_channels():
    original = np.zeros((4, 4, 3))
    original[0, 0] = [3, 6, 9]
    diff = abs_difference(original, np.zeros((2, 2, 3)))
    assert diff.dtype == np.float32 and diff.shape == (4, 4)
    assert diff[0, 0] == 6 and diff.sum() == 6


# --- comparison grid ----------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "factor"), [((5, 5), 52), ((24, 36, 3), 11), ((300, 200), 2)])
def test_original_tile_is_the_enlarged_original(shape, factor):
    image = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    figure = comparison_grid(image, [[Cell("max", block(image, 2))]])
    expected = enlarge(image if image.ndim == 3 else rgb(image), factor)
    assert figure.scale == factor
    np.testing.assert_array_equal(crop(figure, "original"), expected)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_cell_tile_repeats_pooled_when_divisible(photo, k):
    pooled = block(photo, k)
    figure = comparison_grid(photo, [[Cell(f"max k={k}", pooled)]])
    np.testing.assert_array_equal(crop(figure, "cell", 0, 1), enlarge(pooled, k * figure.scale))


def test_cell_tile_uses_nearest_mapping_when_not_divisible():
    image = np.random.default_rng(2).integers(0, 256, size=(7, 9), dtype=np.uint8)
    pooled = np.random.default_rng(3).integers(0, 256, size=(3, 4), dtype=np.uint8)
    figure = comparison_grid(image, [[Cell("odd", pooled)]])
    rows = np.arange(7) * 3 // 7
    cols = np.arange(9) * 4 // 9
    shown = pooled[rows[:, None], cols[None, :]]
    np.testing.assert_array_equal(crop(figure, "cell", 0, 1), enlarge(rgb(shown), figure.scale))


def test_float_cells_use_the_originals_scale(photo):
    pooled = block(photo, 2, np.mean)  # float64 in 0..255, shown as uint8 values
    figure = comparison_grid(photo, [[Cell("avg", pooled)]])
    expected = enlarge(np.rint(pooled).astype(np.uint8), 2 * figure.scale)
    np.testing.assert_array_equal(crop(figure, "cell", 0, 1), expected)


def test_rows_and_columns_sit_in_order(photo):
    rows = [
        [Cell(f"{m} k={k}", block(photo, k, f)) for k in (2, 3)]
        for m, f in (("max", np.max), ("min", np.min))
    ]
    figure = comparison_grid(photo, rows)
    cells = figure.roles("cell")
    assert [(b.row, b.col) for b in cells] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert cells[0].left < cells[1].left and cells[0].top < cells[2].top
    assert cells[0].left == cells[2].left and cells[0].size == figure.box("original").size
    np.testing.assert_array_equal(
        crop(figure, "cell", 1, 2), enlarge(block(photo, 3, np.min), 3 * figure.scale)
    )


def test_labels_hold_dark_text_and_tiles_do_not():
    image = np.full((16, 16), 200, np.uint8)
    figure = comparison_grid(
        image, [[Cell(cell_label("max", 2, 2, (8, 8)), block(image, 2))]], diff=True
    )
    pixels = figure.pixels()
    for box in figure.roles("label"):
        band = box.crop(pixels)
        assert (band < DARK).all(axis=2).sum() > 20, box  # text is there
        assert (band == BACKGROUND).all(axis=2).mean() > 0.5, box  # on a light band
    for role in ("original", "cell"):
        assert (crop(figure, role, 0, role == "cell") == 200).all()


def test_nothing_is_drawn_outside_the_boxes(photo):
    long_label = "a label long enough that it must wrap onto several lines of the band"
    figure = comparison_grid(photo, [[Cell(long_label, block(photo, 2))]], diff=True)
    pixels = figure.pixels()
    outside = np.ones(pixels.shape[:2], bool)
    for box in figure.boxes:
        outside[box.top : box.bottom, box.left : box.right] = False
    assert (pixels[outside] == BACKGROUND).all()
    label = figure.box("label", 0, 1)
    assert label.size[1] >= 3 * 12  # wrapped onto 3 or more lines


def test_map_grid_has_a_colorbar_with_the_viridis_ramp_in_order():
    fmap = np.linspace(-3.0, 5.0, 64).reshape(8, 8)
    figure = comparison_grid(fmap, [[Cell("max", block(fmap, 2))]], kind="map")
    bar = crop(figure, "colorbar", 0, 2)
    index = viridis_index(bar[:, bar.shape[1] // 2])
    assert (index >= 0).all() and index[0] == 255 and index[-1] == 0
    assert (np.diff(index) <= 0).all()  # top to bottom: high to low, never back up
    assert (bar == bar[:, :1]).all()  # every column of the ramp alike
    ticks = crop(figure, "colorbar-ticks", 0, 2)
    assert (ticks < DARK).all(axis=2).any()
    # The original tile is the map through the same scale.
    expected = enlarge(apply_colormap(fmap, -3.0, 5.0), figure.scale)
    np.testing.assert_array_equal(crop(figure, "original"), expected)


@pytest.mark.parametrize("shape", [(1, 1), (5, 5), (3, 7), (2, 2, 3)])
def test_tiny_inputs_are_enlarged_to_min_cell(shape):
    image = np.zeros(shape, np.uint8)
    figure = comparison_grid(image, [[Cell("same", image)]])
    width, height = figure.box("original").size
    assert isinstance(figure.scale, int) and min(width, height) >= MIN_CELL
    assert (width, height) == (shape[1] * figure.scale, shape[0] * figure.scale)


@pytest.mark.parametrize("shape", [(4000, 6000), (6000, 40)])
def test_huge_inputs_are_shrunk_to_max_width(shape):
    image = np.zeros(shape, np.uint8)
    image[: shape[0] // 2] = 255
    figure = comparison_grid(image, [[Cell("max k=4", block(image, 4))]])
    width, height = figure.box("original").size
    assert figure.image.width <= MAX_WIDTH and height <= MAX_WIDTH and figure.scale < 1
    assert width == int(shape[1] * figure.scale) or width == 1
    tile = crop(figure, "cell", 0, 1)
    assert tile[0, 0].tolist() == [255] * 3 and tile[-1, -1].tolist() == [0] * 3


def test_diff_is_zero_coloured_where_pooled_equals_original():
    image = enlarge(np.array([[10, 50], [90, 130]], np.uint8), 4)  # constant 4x4 blocks
    image[0, 0] = 250  # one block is no longer constant
    pooled = block(image, 4)
    figure = comparison_grid(image, [[Cell("max k=4", pooled)]], diff=True)
    heat = crop(figure, "diff", 1, 1)
    f = figure.scale
    index = viridis_index(heat)
    assert (index[4 * f :, :] == 0).all() and (index[:, 4 * f :] == 0).all()
    assert (index[: 4 * f, : 4 * f] > 0).any()
    assert (index[f : 2 * f, : 4 * f] == 255).all()  # 250 - 10: the largest difference
    assert figure.box("colorbar", 1, 2).size[1] == heat.shape[0]


def test_diff_scale_is_shared_by_the_grid():
    image = np.zeros((4, 4), np.uint8)
    image[0, 0] = 200
    rows = [[Cell("max", block(image, 2)), Cell("avg", block(image, 2, np.mean))]]
    figure = comparison_grid(image, rows, diff=True)
    max_diff = viridis_index(crop(figure, "diff", 1, 1)).max()
    avg_diff = viridis_index(crop(figure, "diff", 1, 2)).max()
    assert max_diff == 255 and 0 < avg_diff < 255  # avg's largest |diff| (150) is below 200


def test_side_by_side_shows_input_and_stretched_output(photo):
    pooled = block(photo, 3)
    figure = side_by_side(photo, pooled, labels=("in.png", "out.png"))
    f = figure.scale
    np.testing.assert_array_equal(crop(figure, "original"), enlarge(photo, f))
    np.testing.assert_array_equal(crop(figure, "cell", 0, 1), enlarge(pooled, 3 * f))
    assert len(figure.roles("label")) == 2


def test_png_round_trip_keeps_every_pixel(photo):
    figure = comparison_grid(photo, [[Cell("max", block(photo, 2))]], diff=True)
    buffer = io.BytesIO()
    figure.image.save(buffer, format="PNG")
    reread = Image.open(io.BytesIO(buffer.getvalue()))
    assert reread.mode == "RGB" and reread.format == "PNG"
    np.testing.assert_array_equal(np.asarray(reread), figure.pixels())


@pytest.mark.parametrize(
    ("original", "cell", "kind", "match"),
    [
        (np.zeros((4, 4, 5)), np.zeros((2, 2, 5)), "image", "1-4 channels"),
        (np.zeros((2, 4, 4)), np.zeros((2, 2, 2)), "map", "one channel"),
        (np.zeros((4, 4, 3)), np.zeros((2, 2)), "image", "axes=\\(0, 1\\)"),
        (np.zeros((4, 4)), np.zeros((2, 2)), "photo", "'image' or 'map'"),
        (np.zeros((4, 4), complex), np.zeros((2, 2)), "image", "real numbers"),
        (np.zeros((0, 4)), np.zeros((2, 2)), "image", "empty"),
    ],
)
def test_undrawable_inputs_raise_pool_error(original, cell, kind, match):
    with pytest.raises(PoolError, match=match):
        comparison_grid(original, [[Cell("c", cell)]], kind=kind)


def test_cell_label():
    assert cell_label("l2", (2, 3), 1, (5, 4), d=2) == "l2 k=2x3 s=1 d=2 -> 5x4"


# --- montage, colour bar, series ----------------------------------------------------------


def test_montage_tiles_channels_on_a_shared_scale():
    maps = np.random.default_rng(4).normal(size=(6, 5, 5))
    maps[2, 0, 0] = np.nan
    figure = montage(maps, channels=4)
    tiles = figure.roles("channel")
    assert [(b.row, b.col) for b in tiles] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    lo, hi = np.nanmin(maps[:4]), np.nanmax(maps[:4])
    for box, channel in zip(tiles, range(4), strict=True):
        expected = enlarge(apply_colormap(maps[channel], lo, hi), figure.scale)
        np.testing.assert_array_equal(box.crop(figure.pixels()), expected)
    assert crop(figure, "channel", 1, 0)[0, 0].tolist() == list(NAN_COLOR)
    legend = crop(figure, "legend")
    assert (legend == NAN_COLOR).all(axis=2).any() and (legend < DARK).all(axis=2).any()
    assert figure.box("colorbar", 0, 2).size[1] == tiles[0].size[1]


def test_montage_takes_a_list_of_channels_and_refuses_bad_ones():
    maps = np.arange(3 * 4 * 4, dtype=float).reshape(3, 4, 4)
    figure = montage(maps, channels=[np.int64(2), 0])
    assert len(montage(maps, channels=np.int64(2)).roles("channel")) == 2
    left = crop(figure, "channel", 0, 0)
    assert viridis_index(left[-1, -1]) == 255  # channel 2 holds the largest value
    with pytest.raises(PoolError, match="0..2"):
        montage(maps, channels=[3])
    with pytest.raises(PoolError, match="CHW"):
        montage(np.zeros((1, 2, 3, 4)))


def test_standalone_colorbar():
    figure = colorbar(-1.0, 1.0, 200, title="weights")
    ramp = crop(figure, "colorbar")
    assert ramp.shape[0] == 200
    assert viridis_index(ramp[[0, -1], 0]).tolist() == [255, 0]
    assert (crop(figure, "colorbar-title") < DARK).all(axis=2).any()


def test_window_centres():
    np.testing.assert_array_equal(window_centres(3, 3, 1, pad_lo=1, dilation=2), [1.0, 2.0, 3.0])


def test_series_plot_draws_both_lines_and_the_legend():
    x = np.sin(np.arange(64) / 5.0)
    pooled = x.reshape(16, 4).max(axis=1)
    figure = series_plot(x, [Series("max k=4", pooled, window_centres(16, 4))], title="max")
    plot = crop(figure, "plot")
    for colour in (ORIGINAL_COLOR, SERIES_COLORS[0]):
        assert (plot == colour).all(axis=2).sum() > 200, colour
    assert not (plot == SERIES_COLORS[1]).all(axis=2).any()
    legend = crop(figure, "legend")
    assert all((legend == colour).all(axis=2).any() for colour in (ORIGINAL_COLOR, SERIES_COLORS[0]))


def test_series_plot_handles_nan_and_refuses_bad_input():
    x = np.array([1.0, np.nan, 3.0, 4.0])
    figure = series_plot(x, [Series("avg", np.array([2.0, 3.5]), np.array([0.5, 2.5]))])
    assert (crop(figure, "plot") == ORIGINAL_COLOR).all(axis=2).any()
    with pytest.raises(PoolError, match="1-D"):
        series_plot(np.zeros((2, 2)), [])
    with pytest.raises(PoolError, match="one position per value"):
        series_plot(x, [Series("avg", np.zeros(2), np.zeros(3))])


# --- gradient maps ------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "k", "s"), [((3, 3), 2, 1), ((5, 6), 3, 1), ((6, 6), 3, 2)])
def test_gradient_map_colours_routing_counts(shape, k, s):
    image = (
        np.random.default_rng(sum(shape))
        .permutation(np.prod(shape))
        .reshape(shape)
        .astype(np.uint8)
    )
    counts = brute_max_routing(image, k, s)
    figure = gradient_map(image, counts, mode="max")
    tile = crop(figure, "gradient", 0, 1)[:: figure.scale, :: figure.scale]
    for (r, c), n in np.ndenumerate(counts):
        expected = ROUTE_COLORS[min(n, 3) - 1] if n else [round(image[r, c] * DIM)] * 3
        assert tile[r, c].tolist() == list(expected), (r, c, n)
    np.testing.assert_array_equal(crop(figure, "original"), enlarge(rgb(image), figure.scale))
    legend = crop(figure, "legend")
    assert all((legend == colour).all(axis=2).any() for colour in ROUTE_COLORS)


def test_gradient_map_known_routing():
    # max k=2 s=1 on a 3x3: windows pick 9 (twice), 5 and 8.
    image = np.array([[1, 2, 3], [9, 4, 5], [6, 7, 8]], np.uint8)
    counts = np.array([[0, 0, 0], [2, 0, 1], [0, 0, 1]])
    assert (brute_max_routing(image, 2, 1) == counts).all()
    figure = gradient_map(np.dstack([image] * 3), np.dstack([counts] * 3), mode="max")
    f = figure.scale
    tile = crop(figure, "gradient", 0, 1)
    assert tile[f, 0].tolist() == list(ROUTE_COLORS[1]) and tile[f, 2 * f].tolist() == list(
        ROUTE_COLORS[0]
    )


def test_gradient_map_shows_weights_through_viridis():
    # avg k=2 s=1 on 3x3: each pixel's weight is (windows covering it) / 4.
    weights = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4
    figure = gradient_map(np.zeros((3, 3)), weights, mode="avg")
    expected = enlarge(apply_colormap(weights, 0.25, 1.0), figure.scale)
    np.testing.assert_array_equal(crop(figure, "gradient", 0, 1), expected)
    ramp = crop(figure, "colorbar", 0, 2)
    assert viridis_index(ramp[[0, -1], 0]).tolist() == [255, 0]


def test_gradient_map_refuses_a_gradient_of_another_size():
    with pytest.raises(PoolError, match="height and width"):
        gradient_map(np.zeros((4, 4)), np.zeros((2, 2)), mode="max")


# --- NaN and infinities: their own colours, never an end of the scale ------------------------


@contextlib.contextmanager
def warnings_as_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def with_specials(shape=(6, 8)):
    """A float map with NaN at (0, 0), +inf at (0, 1), -inf at (0, 2), finite 1..-1 elsewhere."""
    values = np.linspace(-1.0, 1.0, np.prod(shape)).reshape(shape)
    values[0, :3] = [np.nan, np.inf, -np.inf]
    return values


@pytest.mark.parametrize("kind", ["image", "map"])
def test_nan_and_infinities_have_their_own_colours_on_a_finite_scale(kind):
    values = with_specials()
    pooled = values[::2, ::2]  # "pooling" that keeps NaN at (0, 0) and -inf at (0, 1)
    with warnings_as_errors():
        figure = comparison_grid(values, [[Cell("every other", pooled)]], kind=kind, diff=True)
    f = figure.scale
    original = crop(figure, "original")[::f, ::f]
    assert original[0, 0].tolist() == list(NAN_COLOR)
    assert original[0, 1].tolist() == list(POSINF_COLOR)
    assert original[0, 2].tolist() == list(NEGINF_COLOR)
    top, bottom = ([255] * 3, [0] * 3) if kind == "image" else (VIRIDIS[255].tolist(), VIRIDIS[0].tolist())
    assert original[-1, -1].tolist() == top  # the finite max is the top of the scale ...
    assert original[0, 3].tolist() == bottom  # ... and the finite min its bottom: the infinities took no part
    if kind == "map":
        assert (viridis_index(original[0, :3]) == -1).all()
    cell = crop(figure, "cell", 0, 1)[::f, ::f]
    assert cell[0, 0].tolist() == list(NAN_COLOR) and cell[0, 2].tolist() == list(NEGINF_COLOR)
    heat = crop(figure, "diff", 1, 1)[::f, ::f]
    assert heat[0, 0].tolist() == list(NAN_COLOR)  # NaN - anything
    assert figure.labels[-3:] == ("NaN", "+inf", "-inf")
    legend = crop(figure, "legend")
    for colour in (NAN_COLOR, POSINF_COLOR, NEGINF_COLOR):
        assert (legend == colour).all(axis=2).sum() >= 100, colour  # a swatch, not a stray pixel


def test_special_colours_are_not_viridis_grey_or_routing_colours():
    for colour in (NAN_COLOR, POSINF_COLOR, NEGINF_COLOR):
        assert np.abs(VIRIDIS.astype(int) - colour).sum(axis=1).min() > 100
        assert max(colour) - min(colour) > 100  # far from any grey
        assert colour not in ROUTE_COLORS and colour not in SERIES_COLORS
    assert len({NAN_COLOR, POSINF_COLOR, NEGINF_COLOR}) == 3


def test_rgb_pixel_with_a_special_channel_takes_its_colour():
    image = np.full((2, 3, 3), 0.5)
    image[0, 0, 1] = np.nan
    image[0, 1, 2] = np.inf
    image[0, 2, 0] = -np.inf
    image[1, 0] = [np.inf, np.nan, 0.2]  # NaN wins
    with warnings_as_errors():
        out = to_display(image)
    assert out[0].tolist() == [list(NAN_COLOR), list(POSINF_COLOR), list(NEGINF_COLOR)]
    assert out[1, 0].tolist() == list(NAN_COLOR) and out[1, 1].tolist() == [128] * 3


def test_constant_range_keeps_specials():
    out = apply_colormap(np.array([2.0, np.inf, -np.inf, np.nan]), 2.0, 2.0)
    assert out.tolist() == [VIRIDIS[0].tolist(), list(POSINF_COLOR), list(NEGINF_COLOR), list(NAN_COLOR)]


def test_gradient_map_shows_specials_of_image_and_gradient():
    image = with_specials()
    grad = np.zeros(image.shape)
    grad[2, 2] = 1.0
    grad[3, 3] = np.nan
    with warnings_as_errors():
        figure = gradient_map(image, grad, mode="max", kind="map")
    f = figure.scale
    original = crop(figure, "original")[::f, ::f]
    overlay = crop(figure, "gradient", 0, 1)[::f, ::f]
    assert original[0, :3].tolist() == [list(NAN_COLOR), list(POSINF_COLOR), list(NEGINF_COLOR)]
    dimmed = [[round(v * DIM) for v in colour] for colour in (NAN_COLOR, POSINF_COLOR, NEGINF_COLOR)]
    assert overlay[0, :3].tolist() == dimmed  # the image's specials, dimmed like the rest
    assert overlay[2, 2].tolist() == list(ROUTE_COLORS[0]) and overlay[3, 3].tolist() == list(NAN_COLOR)
    assert figure.labels[-3:] == ("NaN", "+inf", "-inf")


# --- series: NaN gaps, infinities at the edges, panels, width -----------------------------


def line_columns(figure, colour, row=0):
    """Columns of plot ``row``'s data area where ``colour`` is drawn (above the NaN ticks)."""
    axes = figure.plot(row)
    area = figure.pixels()[axes.top : axes.top + axes.height - 10, axes.left : axes.left + axes.width]
    return np.flatnonzero((area == colour).all(axis=2).any(axis=0)) + axes.left


def test_series_nan_is_a_gap_and_infinities_sit_at_the_edges():
    x = np.full(100, 5.0)
    x[::2] = 6.0
    x[50] = np.nan
    x[20] = np.inf
    x[80] = -np.inf
    with warnings_as_errors():
        figure = series_plot(x, [])
    axes = figure.plot(0)
    assert axes.y_range == pytest.approx((4.95, 6.05))  # finite values only, padded 5 %
    pixels = figure.pixels()
    drawn = line_columns(figure, ORIGINAL_COLOR)
    for index in (50, 20, 80):
        column = round(axes.to_pixel(index, 5.0)[0])
        assert column not in drawn  # a break in the line, no drop to any value
        assert round(axes.to_pixel(index - 2, 5.0)[0]) in drawn
    nan_x = round(axes.to_pixel(50, 5.0)[0])
    bottom = axes.top + axes.height - 1
    assert (pixels[bottom - 5 : bottom + 1, nan_x] == NAN_COLOR).all()  # ticked on the x axis
    inf_x = round(axes.to_pixel(20, 5.0)[0])
    assert (pixels[axes.top : axes.top + 9, inf_x] == POSINF_COLOR).all(axis=1).any()
    neg_x = round(axes.to_pixel(80, 5.0)[0])
    assert (pixels[bottom - 8 : bottom + 1, neg_x] == NEGINF_COLOR).all(axis=1).any()
    assert figure.labels[-3:] == (
        "NaN (gap in the line, ticked on the x axis)",
        "+inf (triangle at the top edge)",
        "-inf (triangle at the bottom edge)",
    )


def test_identical_pooled_series_each_have_a_visible_panel():
    x = np.sin(np.arange(64) / 5.0)
    pooled = x.reshape(16, 4).max(axis=1)
    centres = window_centres(16, 4)
    figure = series_plot(x, [Series("max", pooled, centres), Series("median", pooled.copy(), centres)])
    assert [(p.row, p.col) for p in figure.plots] == [(0, 0), (1, 0)]
    assert figure.plot(0).y_range == figure.plot(1).y_range  # one scale for every panel
    pixels = figure.pixels()
    for row, colour in enumerate(SERIES_COLORS[:2]):
        axes = figure.plot(row)
        columns, rows = axes.to_pixel(centres, pooled)
        hits = [(pixels[round(r) - 1 : round(r) + 2, round(c) - 1 : round(c) + 2] == colour).all(axis=2).any()
                for c, r in zip(columns, rows, strict=True)]
        assert all(hits), row  # every pooled value is drawn, in this series' own colour
    assert SERIES_COLORS[0] != SERIES_COLORS[1]


@pytest.mark.parametrize(("length", "count"), [(100_000, 2), (500, 12)])
def test_series_figures_stay_within_max_width(length, count):
    x = np.cumsum(np.random.default_rng(5).normal(size=length))
    x[length // 3] = 1e3  # one spike: the envelope of a long series keeps it
    series = []
    for i in range(count):
        k = 2 + i
        n = length // k
        series.append(Series(f"max k={k}", x[: n * k].reshape(n, k).max(axis=1), window_centres(n, k)))
    with warnings_as_errors():
        figure = series_plot(x, series)
    assert figure.image.width <= MAX_WIDTH and len(figure.plots) == count
    axes = figure.plot(0)
    column, row = axes.to_pixel(length // 3, 1e3)
    assert row == pytest.approx(axes.top + 0.05 / 1.1 * (axes.height - 1), abs=1)  # the spike is the top
    pixels = figure.pixels()
    assert (pixels[round(row) - 1 : round(row) + 2, round(column) - 1 : round(column) + 2]
            == SERIES_COLORS[0]).all(axis=2).any()
    assert len({series_style(i) for i in range(count)}) == count  # colour and marker: no two alike


def test_gradient_series_has_its_own_scale():
    x = 300 + np.arange(40.0)
    grad = np.tile([0.25, 0.25, 0.25, 0.25], 10)
    grad[-1] = 0.0
    figure = gradient_series(x, grad, label="avg k=4 s=4: dL/dx")
    data, weights = figure.plot(0), figure.plot(1)
    assert data.y_range[0] > 290 and weights.y_range == pytest.approx((-0.0125, 0.2625))
    assert weights.top > data.top + data.height  # the panel below
    pixels = figure.pixels()
    column, row = weights.to_pixel(10, 0.25)
    assert (pixels[round(row) - 1 : round(row) + 2, round(column)] == SERIES_COLORS[0]).all(axis=1).any()
    assert figure.labels == ("original values", "avg k=4 s=4: dL/dx", "original",
                             "dL/dx (lower panel, its own scale)")


# --- where colour bars and texts go -------------------------------------------------------


def test_each_colour_bar_sits_beside_its_tile():
    fmap = np.linspace(-3.0, 5.0, 64).reshape(8, 8)
    weights = np.full((8, 8), 0.25)
    figure = gradient_map(fmap, weights, mode="avg", kind="map")
    original, gradient = figure.box("original"), figure.box("gradient", 0, 1)
    value_bar, grad_bar = figure.box("colorbar", 0, 1), figure.box("colorbar", 0, 2)
    assert original.right < value_bar.left and figure.box("colorbar-ticks", 0, 1).right < gradient.left
    assert gradient.right < grad_bar.left
    assert figure.labels == ("original 8x8", "avg: gradient weight per input pixel", "value", "dL/dx")
    rows = [[Cell("max", block(fmap, 2))], [Cell("min", block(fmap, 2, np.min))]]
    grid = comparison_grid(fmap, rows, kind="map", diff=True)
    for row, role in enumerate(("cell", "diff", "cell", "diff")):  # every row has its scale beside it
        tile, bar = grid.box(role, row, 1), grid.box("colorbar", row, 2)
        assert bar.top == tile.top and bar.bottom == tile.bottom and tile.right < bar.left
    assert [grid.box("colorbar-title", row, 2) for row in range(4)] and grid.labels.count("|diff|") == 2


def test_montage_per_channel_scales():
    maps = np.stack([np.linspace(0, 1, 16), np.linspace(-100, 100, 16), np.linspace(5, 6, 16)]).reshape(3, 4, 4)
    figure = montage(maps, channels=3, scale="channel")
    f = figure.scale
    for c in range(3):
        box = figure.box("channel", c // 2, c % 2)
        expected = enlarge(apply_colormap(maps[c], maps[c].min(), maps[c].max()), f)
        np.testing.assert_array_equal(box.crop(figure.pixels()), expected)
        bar = figure.box("colorbar", c // 2, c % 2 + 1)
        assert bar.top == box.top and box.right < bar.left
        assert all(bar.right <= other.left for other in figure.roles("channel") if other.left > box.left)
    assert figure.labels == ("channel 0", "channel 1", "channel 2",
                             "3 of 3 channels, each channel on its own colour scale (the bar beside it)")
    with pytest.raises(PoolError, match="'shared' or 'channel'"):
        montage(maps, scale="each")


def test_gradient_map_legend_explains_dimmed_pixels_and_channels():
    image = np.random.default_rng(8).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    counts = np.zeros((6, 6, 3))
    counts[1, 1, 0] = 1
    routed = gradient_map(image, counts, mode="max", label="max k=2 s=2: dL/dx")
    assert routed.labels == (
        "original 6x6x3",
        "max k=2 s=2: dL/dx (max of |dL/dx| over the 3 channels)",
        "windows routing gradient here:", "1", "2", "3 or more",
        "dimmed: no window routes gradient to the pixel (dL/dx = 0)",
    )
    weights = gradient_map(image, np.full((6, 6, 3), 0.25), mode="avg", label="avg k=2 s=2: dL/dx")
    assert weights.labels == ("original 6x6x3", "avg k=2 s=2: dL/dx (mean of dL/dx over the 3 channels)", "dL/dx")


def test_labels_record_every_text_drawn():
    image = np.zeros((4, 6), np.uint8)
    rows = [[Cell(cell_label("max", 2, 2, (2, 3)), block(image, 2))], [Cell("l2 k=2 s=2 -> 2x3", block(image, 2))]]
    figure = comparison_grid(image, rows, diff=True)
    assert figure.labels == (
        "original 4x6", "max k=2 s=2 -> 2x3", "|diff| vs original", "|diff|",
        "l2 k=2 s=2 -> 2x3", "|diff| vs original", "|diff|",
    )
    both = stack([("top", figure), ("bottom", figure)])
    assert both.labels == ("top", *figure.labels, "bottom", *figure.labels)
    assert both.box("cell", 4, 1).top > both.box("title", 1, 0).bottom > both.box("cell", 2, 1).bottom
