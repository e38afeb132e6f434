"""The exact words of every figure: mode and window apart, the real stride, the output's shape,
the channel drawn, the real divisor, what the legend means.

Every text a figure draws is kept in ``figure.labels`` (in drawing order), so these tests
read the labels directly instead of recognising pixels.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poolcli import io, pool
from poolcli.app.figures import compare_figure, gradient_figure, side_by_side_figure
from poolcli.app.settings import PoolSettings as Settings
from poolcli.cli import main

ROUTING_LEGEND = ("windows routing gradient here:", "1", "2", "3 or more",
                  "dimmed: no window routes gradient to the pixel (dL/dx = 0)")
SERIES_LEGEND_GRAD = ("original", "dL/dx (lower panel, its own scale)")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (12, 18), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)).save(folder / "rgb.png")
    np.save(folder / "maps.npy", rng.normal(size=(8, 24, 24)).astype(np.float32))
    np.save(folder / "s.npy", np.sin(np.arange(100) / 7.0))
    np.save(folder / "m.npy", rng.normal(size=(3, 100)))
    return folder


@pytest.mark.parametrize(("settings", "modes", "windows", "expected"), [
    (Settings(), ["max", "l2"], [(2,), (2, 3)],
     ("original 12x18x1", "max k=2 s=2 -> 6x9x1", "max k=2x3 s=2x3 -> 6x6x1", "l2 k=2 s=2 -> 6x9x1",
      "l2 k=2x3 s=2x3 -> 6x6x1")),
    (Settings(stride=(1,), padding=(1,), dilation=(2,)), ["avg"], [(3,)],
     ("original 12x18x1", "avg k=3 s=1 p=1 d=2 -> 10x16x1")),
    (Settings(ceil_mode=True, padding="same"), ["max"], [(5,)],
     ("original 12x18x1", "max k=5 s=5 p=same ceil=True -> 3x4x1")),
])
def test_compare_grid_of_an_image(inputs, settings, modes, windows, expected):
    assert compare_figure(inputs / "gray.png", settings, modes, windows).labels == expected


def test_compare_grid_of_a_feature_map(inputs):
    figure = compare_figure(inputs / "maps.npy", Settings(), ["sum", "lp"], [(2, 3)], channel=3, diff=True)
    assert figure.labels == (
        "original 8x24x24, channel 3 of 8",
        "sum k=2x3 s=2x3 -> 8x12x8 (shown / 6 taps)", "value",
        "|diff| vs original", "|diff|",
        "lp k=2x3 s=2x3 power=2 -> 8x12x8 (shown / 6 taps ^ (1/2) = 2.45)", "value",
        "|diff| vs original", "|diff|",
    )


def test_compare_series(inputs):
    panels = ("sum k=8 s=8 -> 12 (shown / 8 taps)", "sum k=4 s=4 -> 25 (shown / 4 taps)",
              "lp k=8 s=8 power=2 -> 12 (shown / 8 taps ^ (1/2) = 2.83)",
              "lp k=4 s=4 power=2 -> 25 (shown / 4 taps ^ (1/2) = 2)")
    figure = compare_figure(inputs / "s.npy", Settings(), ["sum", "lp"], [(8,), (4,)])
    assert figure.labels == ("s.npy (100 samples)", *panels, "original", *panels)
    several = compare_figure(inputs / "m.npy", Settings(axes=(1,)), ["max"], [(4,)], channel=1)
    assert several.labels == ("m.npy (3x100, channel 1 of 3)", "max k=4 s=4 -> 3x25", "original",
                              "max k=4 s=4 -> 3x25")


def test_compare_montage(inputs):
    maps = np.load(inputs / "maps.npy")
    values = f"4 of 8 channels, values {maps[:4].min():.4g} .. {maps[:4].max():.4g}"
    one = ("channel 0", "channel 1", "value", "channel 2", "channel 3", values)
    figure = compare_figure(inputs / "maps.npy", Settings(), ["max"], [(2,)], montage=4)
    assert figure.labels == ("original 8x24x24", *one, "max k=2 s=2 -> 8x12x12", *one)
    each = ("channel 0", "channel 1", "2 of 8 channels, each channel on its own colour scale (the bar beside it)")
    figure = compare_figure(inputs / "maps.npy", Settings(), ["avg"], [(3,)], montage=2, scale="channel")
    assert figure.labels == ("original 8x24x24", *each, "avg k=3 s=3 -> 8x8x8", *each)


def test_side_by_side(inputs, tmp_path):
    io.save(tmp_path / "gray.png", pool(io.load(inputs / "gray.png").array, 2, axes=(0, 1)))
    assert side_by_side_figure(inputs / "gray.png", tmp_path / "gray.png", Settings()).labels == (
        "input 12x18x1", "max k=2 s=2 -> 6x9x1")
    np.save(tmp_path / "maps.npy", pool(np.load(inputs / "maps.npy"), 3, 2, mode="avg"))
    settings = Settings(mode="avg", window=(3,), stride=(2,))
    assert side_by_side_figure(inputs / "maps.npy", tmp_path / "maps.npy", settings).labels == (
        "input 8x24x24, channel 0 of 8", "avg k=3 s=2 -> 8x11x11, channel 0 of 8", "value")
    np.save(tmp_path / "s.npy", pool(np.load(inputs / "s.npy"), 2))
    assert side_by_side_figure(inputs / "s.npy", tmp_path / "s.npy", Settings()).labels == (
        "input s.npy (100 samples)", "max k=2 s=2 -> 50", "original", "max k=2 s=2 -> 50")


def test_gradient_figures(inputs):
    assert gradient_figure(inputs / "gray.png", Settings()).labels == (
        "original 12x18x1", "max k=2 s=2: dL/dx for dL/dy = 1", *ROUTING_LEGEND)
    assert gradient_figure(inputs / "rgb.png", Settings(window=(3,), stride=(2,))).labels == (
        "original 12x18x3", "max k=3 s=2: dL/dx for dL/dy = 1 (max of |dL/dx| over the 3 channels)",
        *ROUTING_LEGEND)
    assert gradient_figure(inputs / "rgb.png", Settings(mode="avg")).labels == (
        "original 12x18x3", "avg k=2 s=2: dL/dx for dL/dy = 1 (mean of dL/dx over the 3 channels)", "dL/dx")
    settings = Settings(mode="avg", window=(3,), stride=(2,))
    assert gradient_figure(inputs / "maps.npy", settings, channel=2).labels == (
        "original 8x24x24, channel 2 of 8", "avg k=3 s=2: dL/dx for dL/dy = 1", "value", "dL/dx")
    assert gradient_figure(inputs / "s.npy", Settings(window=(4,))).labels == (
        "s.npy (100 samples)", "original values", "max k=4 s=4: dL/dx for dL/dy = 1", *SERIES_LEGEND_GRAD)
    settings = Settings(axes=(1,), mode="l2", window=(5,))
    assert gradient_figure(inputs / "m.npy", settings, channel=2).labels == (
        "m.npy (3x100, channel 2 of 3)", "original values", "l2 k=5 s=5: dL/dx for dL/dy = 1",
        *SERIES_LEGEND_GRAD)


@pytest.mark.parametrize(("command", "extra", "build"), [
    ("compare", ["--modes", "l2", "--windows", "2x3"],
     lambda src: compare_figure(src, Settings(), ["l2"], [(2, 3)])),
    ("grad", ["-m", "l2", "-k", "2"], lambda src: gradient_figure(src, Settings(mode="l2", window=(2,)))),
])
def test_the_commands_draw_these_labels(inputs, tmp_path, capsys, command, extra, build):
    """`-k 2` means stride 2: the command's picture is the figure whose labels say so."""
    target = tmp_path / "figure.png"
    code = main([command, str(inputs / "gray.png"), "-o", str(target), *extra])
    assert code == 0, capsys.readouterr().err
    figure = build(inputs / "gray.png")
    assert np.array_equal(np.asarray(Image.open(target).convert("RGB")), figure.pixels())
    assert any(label.startswith(("l2 k=2x3 s=2x3 ->", "l2 k=2 s=2:")) for label in figure.labels)
