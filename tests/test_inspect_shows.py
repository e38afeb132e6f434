"""The inspector shows what `pool` writes, in a real headless Chromium (the fixtures of test_inspect.py):
the output dtype's values with the exact value beside, colour weighted by alpha as `alpha` says, each
feature-map channel on its own colour scale (a shared one on request), 1-D series on value and sample
axes that both zoom, a layout that fills the width; and the gallery's thumbnails draw alpha over the
checkerboard that `compare` draws.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_inspect import browser, canvas_colour, hover, open_page, readout  # noqa: F401 (fixtures)

from poolcli import io, pool
from poolcli.app.settings import PoolSettings
from poolcli.cli import main
from poolcli.core.spec import PoolSpec
from poolcli.engine.alpha import pool_premultiplied
from poolcli.inspect import write_inspector
from poolcli.viz import VIRIDIS

VIEWPORT = {"width": 1400, "height": 900}


def _exact(page) -> str | None:
    return page.evaluate("() => { const e = document.querySelector('#readout [data-role=exact]');"
                         " return e ? e.textContent : null; }")


def test_an_8_bit_mean_shows_the_written_value_and_the_exact_one(tmp_path, open_page):  # noqa: F811 -- the fixture
    x = np.array([[137, 137, 10, 11], [137, 138, 12, 13]], np.uint8)
    Image.fromarray(x).save(tmp_path / "gray.png")
    page = open_page(write_inspector(tmp_path / "gray.png", tmp_path / "gray.html", PoolSettings(), ["avg"], [(2,)]))
    hover(page, 1, 0, 0)
    assert readout(page)["result"] == "137"  # what pool writes: uint8, rounded half up
    assert _exact(page) == "137.25"
    hover(page, 1, 0, 1)
    assert readout(page)["result"] == str(pool(x, 2, mode="avg", dtype=np.uint8)[0, 1]) == "12"
    assert _exact(page) == "11.5"


@pytest.mark.parametrize("alpha", ["premultiplied", "straight"])
def test_rgba_shows_what_pool_writes_for_each_alpha(tmp_path, open_page, alpha):  # noqa: F811 -- the fixture
    """A transparent red cell beside an opaque blue one: weighted by alpha (the default) the window's
    colour is the blue alone; straight, the plain mean of both."""
    x = np.zeros((2, 2, 4), np.uint8)
    x[:, 0] = [255, 0, 0, 0]  # transparent red
    x[:, 1] = [0, 0, 255, 255]  # opaque blue
    Image.fromarray(x).save(tmp_path / "rgba.png")
    settings = PoolSettings(alpha=alpha)
    page = open_page(write_inspector(tmp_path / "rgba.png", tmp_path / "rgba.html", settings, ["avg"], [(2,)]))
    spec = PoolSpec((2, 2), axes=(0, 1), mode="avg")
    written = (pool_premultiplied(x, np.dtype(np.uint8), spec)[0] if alpha == "premultiplied"
               else pool(x, 2, axes=(0, 1), mode="avg", dtype=np.uint8))[0, 0]
    shown = {}
    for channel in range(4):
        page.select_option("#channel", str(channel))
        hover(page, 1, 0, 0)
        shown[channel] = (readout(page)["result"], _exact(page))
    assert [int(shown[c][0]) for c in range(4)] == written.tolist()
    if alpha == "premultiplied":
        assert [shown[c][0] for c in range(4)] == ["0", "0", "255", "128"]
        assert [shown[c][1] for c in range(3)] == ["0", "0", "255"] and shown[3][1] == "127.5"
    else:
        assert [shown[c][0] for c in range(4)] == ["128", "0", "128", "128"]
        assert shown[0][1] == "127.5"
    note = page.text_content("header .note")
    assert ("weighted by alpha" in note) == (alpha == "premultiplied")


def test_feature_map_channels_get_their_own_colour_scale_unless_shared(tmp_path, open_page):  # noqa: F811 -- the fixture
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 6)).astype(np.float32)
    x[1] *= 0.001  # a weak channel: a flat field on a shared scale
    np.save(tmp_path / "maps.npy", x)
    page = open_page(write_inspector(tmp_path / "maps.npy", tmp_path / "maps.html", PoolSettings(), ["max"], [(2,)]))
    page.select_option("#channel", "1")
    top = [int(i) for i in np.unravel_index(np.argmax(x[1]), x[1].shape)]
    low = [int(i) for i in np.unravel_index(np.argmin(x[1]), x[1].shape)]
    assert canvas_colour(page, 0, *top) == VIRIDIS[255].tolist()  # the channel's own largest value: the top
    assert canvas_colour(page, 0, *low) == VIRIDIS[0].tolist()
    bar = page.evaluate("() => [...document.querySelectorAll('.bar .lo, .bar .hi')].slice(0, 2)"
                        ".map((e) => e.textContent)")
    assert [float(t) for t in bar] == pytest.approx([x[1].min(), x[1].max()], rel=1e-2)
    page.select_option("#scale", "shared")
    shared = np.array([canvas_colour(page, 0, *top), canvas_colour(page, 0, *low)])
    assert np.abs(shared[0] - shared[1]).max() <= 3  # one scale for both channels: channel 1 is a flat field


def test_a_series_has_axes_with_ticks_and_zooms_both_ways(tmp_path, open_page, browser):  # noqa: F811
    y = (np.sin(np.arange(200) / 9.0) * 40 + 100).astype(np.float32)
    np.save(tmp_path / "series.npy", y)
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(write_inspector(tmp_path / "series.npy", tmp_path / "series.html", PoolSettings(window=(4,)),
                                  ["max", "avg"], [(4,)]).resolve().as_uri())
        page.wait_for_function("() => window.poolInspector && window.poolInspector.ready")
        axes = page.evaluate("() => window.poolInspector.seriesAxes(0)")
        lo, hi = axes["y"]
        assert lo < y.min() and hi > y.max()  # every value on the plot
        assert len(axes["yTicks"]) >= 3 and all(lo <= t <= hi for t in axes["yTicks"])
        assert len(axes["xTicks"]) >= 3 and all(float(t).is_integer() for t in axes["xTicks"])
        assert axes["xTicks"][0] <= 0 + 50 and axes["xTicks"][-1] >= 150
        assert page.evaluate("() => [...document.querySelectorAll('.bar .ramp')].every("
                             "(e) => getComputedStyle(e).display === 'none')")  # no colour bar that colours nothing
        frame = axes["frame"]
        box = page.evaluate("() => document.querySelector('#panels canvas').getBoundingClientRect().toJSON()")
        page.mouse.move(box["x"] + frame["x0"] + frame["w"] / 2, box["y"] + frame["y0"] + frame["h"] / 2)
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(100)
        zoomed = page.evaluate("() => window.poolInspector.seriesAxes(0)")
        assert zoomed["x"][1] - zoomed["x"][0] < 0.7 * (axes["x"][1] - axes["x"][0])
        assert zoomed["y"][1] - zoomed["y"][0] < 0.7 * (hi - lo)  # the line keeps its shape: values zoom too
        panel = page.evaluate("() => window.poolInspector.seriesAxes(1)")
        assert panel["y"][1] - panel["y"][0] < 0.7 * (hi - lo)  # every view on the same zoom
    finally:
        page.close()


@pytest.mark.parametrize(("name", "modes"), [("maps.npy", ["max", "avg", "l2"]), ("rgb.png", ["avg"])])
def test_the_panels_fill_the_width_at_1400_px(tmp_path, browser, name, modes):  # noqa: F811
    rng = np.random.default_rng(4)
    if name.endswith(".npy"):
        np.save(tmp_path / name, rng.standard_normal((3, 30, 30)))
    else:
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), np.uint8)).save(tmp_path / name)
    target = write_inspector(tmp_path / name, tmp_path / "page.html", PoolSettings(), modes, [(2,)])
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(target.resolve().as_uri())
        page.wait_for_function("() => window.poolInspector && window.poolInspector.ready")
        boxes = page.evaluate("""() => ({
          figures: [...document.querySelectorAll('#panels figure')].map((f) => f.getBoundingClientRect().toJSON()),
          side: document.querySelector('#side').getBoundingClientRect().toJSON(),
          width: document.documentElement.clientWidth})""")
        right = max(f["right"] for f in boxes["figures"])
        assert boxes["side"]["left"] - right <= 14  # the gap between panels and readout, no empty strip
        assert boxes["width"] - boxes["side"]["right"] <= 14
        assert min(f["width"] for f in boxes["figures"]) >= 300
        page.screenshot(path=str(tmp_path / "layout.png"))
    finally:
        page.close()


def test_read_no_gradient_has_a_legend_style_of_its_own(tmp_path, open_page):  # noqa: F811 -- the fixture
    np.save(tmp_path / "map.npy", np.arange(36, dtype=np.float32).reshape(6, 6))
    page = open_page(write_inspector(tmp_path / "map.npy", tmp_path / "map.html", PoolSettings(), ["max"], [(2,)]))
    styles = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.legend i')].map((i) => {
      const s = getComputedStyle(i);
      return [i.className, [s.borderTopColor, s.borderTopStyle].join(' ')];
    }))""")
    assert "read" in styles and styles["read"] != styles["overhang"]
    assert "read, no gradient" in page.text_content(".legend")
    hover(page, 0, 0, 0)  # cell (0, 0) is read by output (0, 0), whose winner is (1, 1): no gradient
    colours = page.evaluate("""() => {  // the pixels along the top edge of output (0, 0), where its box is drawn
      const canvas = document.querySelectorAll('#panels canvas')[1], rect = canvas.getBoundingClientRect();
      const p = window.poolInspector.cellCentre(1, 0, 0), q = window.poolInspector.cellCentre(1, 1, 1);
      const dpr = window.devicePixelRatio || 1, half = (q.x - p.x) / 2;
      const y = Math.round((p.y - rect.top - half) * dpr), x0 = Math.round((p.x - rect.left - half) * dpr);
      const data = canvas.getContext('2d').getImageData(x0, y, Math.round(2 * half * dpr), 4).data;
      const found = [];
      for (let i = 0; i < data.length; i += 4) found.push([data[i], data[i + 1], data[i + 2]]);
      return found;
    }""")
    legend = page.evaluate("() => getComputedStyle(document.querySelector('.legend i.read')).borderTopColor")
    read = np.array([int(c) for c in legend[4:-1].split(",")])
    nearest = min(np.abs(np.array(colours) - read).max(axis=1))
    assert nearest <= 12, (legend, colours)  # the output that reads the cell is drawn in the legend's style


def test_gallery_thumbnails_draw_alpha_over_the_checkerboard(tmp_path):
    """A transparent red border: over the checkerboard in both thumbnails, never red nor black."""
    x = np.zeros((64, 64, 4), np.uint8)
    x[...] = [255, 0, 0, 0]
    x[16:48, 16:48] = [0, 0, 255, 255]
    (tmp_path / "src").mkdir()
    Image.fromarray(x).save(tmp_path / "src" / "a.png")
    try:
        main(["batch", str(tmp_path / "src"), "-d", str(tmp_path / "out"), "-m", "avg", "--jobs", "1",
              "--html-report", str(tmp_path / "g.html")])
    except SystemExit as stop:
        assert stop.code == 0
    for side in ("in", "out"):
        thumb = np.asarray(io.load(tmp_path / "g_files" / f"thumb_0_{side}.png").array)
        corner, centre = thumb[0, 0].tolist(), thumb[thumb.shape[0] // 2, thumb.shape[1] // 2].tolist()
        assert corner in ([255, 255, 255], [204, 204, 204]), (side, corner)
        assert centre == [0, 0, 255], (side, centre)
        greys = {tuple(p) for p in thumb[: thumb.shape[0] // 5].reshape(-1, 3).tolist()}
        assert greys == {(255, 255, 255), (204, 204, 204)}, (side, greys)  # the checkerboard's two greys
