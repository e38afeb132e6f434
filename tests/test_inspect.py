"""The inspector page and the batch gallery, in a real headless Chromium (Debian's `chromium`, driven
by Playwright; `.ci/run` installs both). A missing browser fails these tests, it never skips them.

Each page is opened from a file:// URL, the probe is moved with the real mouse (or the arrow
keys), and what the page shows is compared with an independent account: the window's taps from
the geometry of docs/semantics.md written out here, the values from the array, the result and
the winner from `poolcli.pool(..., return_indices=True)`, the routing from `pool_backward`.
"""

from __future__ import annotations

import base64
import math
import os
import shutil
import zlib
from dataclasses import replace
from pathlib import Path

import hypothesis
import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st
from typer.testing import CliRunner

from poolcli import PoolError, pool, pool_backward
from poolcli.app.settings import PoolSettings
from poolcli.cli import app
from poolcli.engine import pool_with
from poolcli.inspect import build_payload, write_inspector

CHROMIUM = os.environ.get("POOLCLI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
READY = "() => window.poolInspector && window.poolInspector.ready"  # a function: the pages' CSP forbids eval


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright: pip install -e '.[test]'")
    if CHROMIUM is None:
        pytest.fail("the browser tests need Chromium: apt-get install chromium (.ci/run installs it),"
                    " or point POOLCLI_CHROMIUM at a Chromium binary")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser):
    """Open a file in a fresh page; at the end, every page must have logged no error."""
    opened = []

    def opener(path: Path, ready: str = READY):
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.resolve().as_uri())
        page.wait_for_function(ready, timeout=30000)
        opened.append((page, errors))
        return page

    yield opener
    for page, errors in opened:
        page.close()
        assert errors == [], f"console errors on {page.url}: {errors}"


# ------------------------------------------------------------------ an independent account of a window


def axis_taps(n: int, o: int, k: int, s: int, d: int, lo: int, hi: int) -> list[tuple[int, str]]:
    """(position, kind) of the k taps of window o: 'in' the input, zero 'pad', or ceil 'overhang'."""
    taps = []
    for j in range(k):
        q = o * s - lo + j * d
        taps.append((q, "in" if 0 <= q < n else ("overhang" if q >= n + hi else "pad")))
    return taps


def expected_window(shape2d, out, geometry):
    """The taps (y, x, kind) of output `out` in row-major window order, and the divisor of avg/l2
    (taps inside the padded input, per axis, multiplied)."""
    rows = axis_taps(shape2d[0], out[0], *geometry[0])
    cols = axis_taps(shape2d[1], out[1], *geometry[1])
    taps = []
    for y, ky in rows:
        for x, kx in cols:
            kinds = {ky, kx}
            taps.append((y, x, "overhang" if "overhang" in kinds else "pad" if "pad" in kinds else "in"))
    divisor = sum(kind != "overhang" for _, kind in rows) * sum(kind != "overhang" for _, kind in cols)
    return taps, divisor


def hover(page, view: int, y: int, x: int) -> None:
    """Move the real mouse onto cell (y, x) of view `view` (0: the input, i + 1: panel i)."""
    point = page.evaluate("([v, y, x]) => window.poolInspector.cellCentre(v, y, x)", [view, y, x])
    page.mouse.move(point["x"], point["y"])


def readout(page) -> dict:
    return page.evaluate("""() => {
      const one = (sel) => { const e = document.querySelector('#readout ' + sel); return e ? e.textContent : null; };
      const divisor = document.querySelector('#readout [data-role=divisor]');
      return {
        rows: [...document.querySelectorAll('#readout tr[data-tap]')].map((r) => ({
          y: +r.dataset.y, x: +r.dataset.x, kind: r.dataset.kind, value: r.children[2].textContent,
          winner: r.dataset.winner === '1'})),
        result: one('[data-role=result]'), sum: one('[data-role=sum]'),
        divisor: divisor ? +divisor.dataset.value : null,
        probe: window.poolInspector.state.probe && {kind: window.poolInspector.state.probe.kind,
          panel: window.poolInspector.state.probe.panel, oy: window.poolInspector.state.probe.oy,
          ox: window.poolInspector.state.probe.ox},
        outline: window.poolInspector.state.outline,
        winners: window.poolInspector.state.winners.map((w) => [w.sy, w.sx]),
      };
    }""")


def same_number(text: str, value) -> bool:
    """The page's text reads back as exactly `value` (in `value`'s dtype; NaN as NaN)."""
    value = np.asarray(value)
    if text == "NaN":
        return bool(np.isnan(value))
    parsed = {"+inf": np.inf, "-inf": -np.inf}.get(text)
    parsed = float(text) if parsed is None else parsed
    return bool(np.asarray(parsed).astype(value.dtype) == value) and math.isclose(parsed, float(value), rel_tol=1e-6)


GEOMETRIES = {
    "pad1-stride2": dict(window=(3,), stride=(2,), padding=(1,)),
    "dilated": dict(window=(2,), stride=(1,), padding=(1,), dilation=(2,)),
    "ceil-dilated": dict(window=(3,), stride=(2,), padding=(2,), dilation=(2,), ceil_mode=True),
    "uneven": dict(window=(3, 2), stride=(2, 3), padding=(1, 0), dilation=(1, 2)),
}


def keywords(settings: PoolSettings, mode: str) -> dict:
    return dict(window=settings.window * (2 // len(settings.window)),
                stride=None if settings.stride is None else settings.stride * (2 // len(settings.stride)),
                padding=settings.padding * (2 // len(settings.padding)),
                dilation=settings.dilation * (2 // len(settings.dilation)), ceil_mode=settings.ceil_mode,
                mode=mode, axes=(1, 2))


@pytest.mark.parametrize("name", GEOMETRIES)
def test_probe_shows_the_engine_window_result_and_winner(tmp_path, open_page, name):
    """Every output of max, avg and l2: the outlined taps, their values, the divisor, the result and the
    winner are the engine's, for padding, stride, dilation and ceil mode."""
    rng = np.random.default_rng(len(name))
    x = rng.normal(size=(2, 9, 11)).astype(np.float32)
    np.save(tmp_path / "map.npy", x)
    settings = PoolSettings(**GEOMETRIES[name])
    modes = ["max", "avg", "l2"]
    page = open_page(write_inspector(tmp_path / "map.npy", tmp_path / "map.html", settings, modes, [settings.window]))
    checked = 0
    for index, mode in enumerate(modes):
        kw = keywords(settings, mode)
        if mode == "max":
            y, idx = pool(x, return_indices=True, **kw)
        else:
            y, idx = pool(x, **kw), None
        k, s, p, d = kw["window"], kw["stride"] or kw["window"], kw["padding"], kw["dilation"]
        geometry = [(k[a], s[a], d[a], p[a], p[a]) for a in range(2)]
        for oy in range(y.shape[1]):
            for ox in range(y.shape[2]):
                hover(page, index + 1, oy, ox)
                shown = readout(page)
                assert shown["probe"] == {"kind": "output", "panel": index, "oy": oy, "ox": ox}
                taps, divisor = expected_window(x.shape[1:], (oy, ox), geometry)
                assert [(t["y"], t["x"], t["kind"]) for t in shown["outline"]] == taps
                assert [(r["y"], r["x"], r["kind"]) for r in shown["rows"]] == taps
                for row in shown["rows"]:
                    if row["kind"] == "in":
                        assert same_number(row["value"], x[0, row["y"], row["x"]]), row
                assert same_number(shown["result"], y[0, oy, ox]), (mode, oy, ox, shown["result"])
                if mode == "max":
                    winner = divmod(int(idx[0, oy, ox]), x.shape[2])
                    assert shown["winners"] == [list(winner)]
                    assert [(r["y"], r["x"]) for r in shown["rows"] if r["winner"]] == [winner]
                    real = [x[0, ty, tx] for ty, tx, kind in taps if kind == "in"]
                    assert x[0][winner] == max(real)
                else:
                    assert shown["divisor"] == divisor
                    real = np.array([x[0, ty, tx] for ty, tx, kind in taps if kind == "in"], np.float64)
                    total = real.sum() if mode == "avg" else (real ** 2).sum()
                    assert math.isclose(float(shown["sum"]), total, rel_tol=1e-12, abs_tol=1e-12)
                checked += 1
    assert checked > 30


def test_median_sum_and_lp_readouts(tmp_path, open_page):
    """median marks its middle cell (the mean of two for an even count of real taps); sum and lp show
    the engine's result beside the sum the page adds up."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(1, 7, 8)).astype(np.float32)
    np.save(tmp_path / "map.npy", x)
    settings = PoolSettings(window=(3,), stride=(2,), padding=(1,), p=3.0)
    page = open_page(write_inspector(tmp_path / "map.npy", tmp_path / "map.html", settings, ["median", "sum", "lp"],
                                     [(3,)]))
    kw = dict(window=3, stride=2, padding=1, axes=(1, 2))
    median, total, norm = (pool(x, mode=m, p=3.0, **kw)[0] for m in ("median", "sum", "lp"))
    counts = set()
    for oy in range(median.shape[0]):
        for ox in range(median.shape[1]):
            hover(page, 1, oy, ox)
            shown = readout(page)
            assert same_number(shown["result"], median[oy, ox])
            real = [r for r in shown["rows"] if r["kind"] == "in"]
            marked = [x[0, y, c] for y, c in shown["winners"]]
            assert len(marked) == (1 if len(real) % 2 else 2)
            assert math.isclose(float(np.mean(np.float64(marked))), float(median[oy, ox]), rel_tol=1e-6)
            counts.add(len(real))
            hover(page, 2, oy, ox)
            shown = readout(page)
            assert same_number(shown["result"], total[oy, ox])
            assert math.isclose(float(shown["sum"]), float(total[oy, ox]), rel_tol=1e-5, abs_tol=1e-5)
            hover(page, 3, oy, ox)
            shown = readout(page)
            assert same_number(shown["result"], norm[oy, ox])
            assert math.isclose(float(shown["sum"]) ** (1 / 3), float(norm[oy, ox]), rel_tol=1e-5)
    assert {4, 6, 9} <= counts  # corners, edges and inner windows: even and odd counts


def test_routing_highlight_is_pool_backward(tmp_path, open_page):
    """Hovering an input cell: the outputs that read it (by geometry) and, for max and min, the ones that
    route their gradient to it (the engine's indices) and the gradient pool_backward gives it."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 8, 9)).astype(np.float32)
    np.save(tmp_path / "map.npy", x)
    settings = PoolSettings(window=(3,), stride=(2,), padding=(1,))
    page = open_page(write_inspector(tmp_path / "map.npy", tmp_path / "map.html", settings, ["max", "min", "avg"],
                                     [(3,)]))
    page.select_option("#channel", "1")
    hover(page, 0, 4, 4)  # the real mouse once, then every cell through the page's own probe
    assert page.evaluate("window.poolInspector.state.probe.kind") == "input"
    routed_total = {}
    for mode_index, mode in enumerate(["max", "min", "avg"]):
        kw = keywords(settings, mode)
        grad = pool_backward(np.ones(pool(x, **kw).shape), x, **kw)
        indices = pool(x, return_indices=True, **kw)[1] if mode != "avg" else None
        geometry = [(3, 2, 1, 1, 1)] * 2
        out = pool(x, **kw).shape[1:]
        routed_total[mode] = 0
        for cy in range(x.shape[1]):
            for cx in range(x.shape[2]):
                info = page.evaluate("([y, x]) => { window.poolInspector.probeInput(y, x);"
                                     " return window.poolInspector.state.routing; }", [cy, cx])[mode_index]
                fed = sorted((oy, ox) for oy in range(out[0]) for ox in range(out[1])
                             if (cy, cx, "in") in expected_window(x.shape[1:], (oy, ox), geometry)[0])
                assert sorted(map(tuple, info["fed"])) == fed
                if indices is None:
                    assert info["routed"] == [] and not info["routes"]
                    continue
                routed = sorted(map(tuple, np.argwhere(indices[1] == cy * x.shape[2] + cx).tolist()))
                assert sorted(map(tuple, info["routed"])) == routed
                assert info["grad"] == grad[1, cy, cx] == len(routed)
                routed_total[mode] += len(routed)
        if indices is not None:
            assert routed_total[mode] == out[0] * out[1]  # every output routes to exactly one cell
    text = page.text_content("#readout")
    assert "gradient dL/dx" in text


def test_arrow_keys_move_the_probe(tmp_path, open_page):
    x = np.arange(7 * 8, dtype=np.uint8).reshape(7, 8)
    from PIL import Image

    Image.fromarray(x).save(tmp_path / "ramp.png")
    page = open_page(write_inspector(tmp_path / "ramp.png", tmp_path / "ramp.html", PoolSettings(), ["max"], [(2,)]))
    hover(page, 1, 0, 1)
    page.focus("#panels figure:nth-child(2) canvas")
    for key in ("ArrowRight", "ArrowDown", "ArrowDown", "ArrowDown"):  # the last one stops at the edge
        page.keyboard.press(key)
    shown = readout(page)
    assert shown["probe"] == {"kind": "output", "panel": 0, "oy": 2, "ox": 2}
    y = pool(x, 2)
    assert same_number(shown["result"], y[2, 2])
    page.focus("#panels figure:nth-child(1) canvas")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("window.poolInspector.state.probe.kind") == "input"


def test_edge_padding_taps_show_the_cells_they_copy(tmp_path, open_page):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 250, size=(6, 7, 3), dtype=np.uint8)
    from PIL import Image

    Image.fromarray(x).save(tmp_path / "rgb.png")
    settings = PoolSettings(window=(3,), stride=(2,), padding=(1,), pad_mode="edge")
    page = open_page(write_inspector(tmp_path / "rgb.png", tmp_path / "rgb.html", settings, ["max", "avg"], [(3,)]))
    page.select_option("#channel", "2")
    kw = dict(window=3, stride=2, padding=1, pad_mode="edge", axes=(0, 1))
    y, idx = pool(x, return_indices=True, **kw)
    padded = np.pad(x[..., 2], 1, mode="edge")
    for oy, ox in [(0, 0), (0, 3), (2, 3), (1, 2)]:
        hover(page, 1, oy, ox)
        shown = readout(page)
        for row in shown["rows"]:
            assert row["kind"] == ("in" if 0 <= row["y"] < 6 and 0 <= row["x"] < 7 else "copy")
            assert int(row["value"]) == padded[row["y"] + 1, row["x"] + 1]
        assert int(shown["result"]) == y[oy, ox, 2]
        assert shown["winners"] == [list(divmod(int(idx[oy, ox, 2]), 7))]
        hover(page, 2, oy, ox)
        shown = readout(page)
        assert shown["divisor"] == 9
        assert int(shown["result"]) == pool(x, mode="avg", dtype=np.uint8, **kw)[oy, ox, 2]  # what pool writes


def canvas_colour(page, view: int, y: int, x: int) -> list[int]:
    return page.evaluate("""([v, y, x]) => {
      const canvas = document.querySelectorAll('#panels canvas')[v], rect = canvas.getBoundingClientRect();
      const p = window.poolInspector.cellCentre(v, y, x), next = window.poolInspector.cellCentre(v, y + 1, x + 1);
      const dpr = window.devicePixelRatio || 1, size = next.x - p.x;  // off the centre: its value is printed there
      const data = canvas.getContext('2d').getImageData(Math.round((p.x - 0.3 * size - rect.left) * dpr),
        Math.round((p.y - 0.3 * size - rect.top) * dpr), 1, 1).data;
      return [data[0], data[1], data[2]];
    }""", [view, y, x])


def test_feature_map_specials_channel_selector_and_colour_bar(tmp_path, open_page):
    x = np.linspace(-1, 1, 3 * 6 * 6, dtype=np.float32).reshape(3, 6, 6)
    x[1, 0, 0], x[1, 2, 3], x[1, 5, 5] = np.nan, np.inf, -np.inf
    np.save(tmp_path / "map.npy", x)
    page = open_page(write_inspector(tmp_path / "map.npy", tmp_path / "map.html", PoolSettings(), ["max"], [(2,)]))
    assert page.evaluate("[...document.querySelectorAll('#channel option')].map((o) => o.textContent)") == \
        ["channel 0", "channel 1", "channel 2"]
    page.select_option("#channel", "1")
    colours = {name: canvas_colour(page, 0, *cell) for name, cell in
               {"nan": (0, 0), "posinf": (2, 3), "neginf": (5, 5), "finite": (3, 3)}.items()}
    assert colours["nan"] == [255, 0, 255] and colours["posinf"] == [255, 128, 0] and colours["neginf"] == [0, 90, 255]
    assert len({tuple(c) for c in colours.values()}) == 4
    hover(page, 0, 0, 0)
    assert page.text_content("#panels figure:nth-child(1) .bar .value") == "NaN"
    hover(page, 1, 0, 0)
    assert readout(page)["result"] == "NaN"
    assert page.text_content("#panels figure:nth-child(2) .bar .value") == "NaN"
    hover(page, 1, 1, 1)
    assert readout(page)["result"] == "+inf"
    hover(page, 0, 3, 3)
    bar = page.text_content("#panels figure:nth-child(1) .bar .value")
    assert same_number(bar, x[1, 3, 3])


def test_series_windows_are_bands_on_a_line_plot(tmp_path, open_page):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 40))
    np.save(tmp_path / "series.npy", x)
    settings = PoolSettings(window=(4,), stride=(3,), padding=(1,), dilation=(1,), axes=(-1,))
    page = open_page(write_inspector(tmp_path / "series.npy", tmp_path / "series.html", settings, ["max", "l2"],
                                     [(4,)]))
    y, idx = pool(x, 4, 3, padding=1, axes=(-1,), return_indices=True)
    l2 = pool(x, 4, 3, padding=1, axes=(-1,), mode="l2")
    for o in (0, 5, y.shape[1] - 1):
        hover(page, 1, 0, o)
        shown = readout(page)
        assert shown["probe"]["ox"] == o
        assert [t["x"] for t in shown["outline"]] == [o * 3 - 1 + j for j in range(4)]
        assert same_number(shown["result"], y[0, o])
        assert shown["winners"] == [[0, int(idx[0, o])]]
        hover(page, 2, 0, o)
        assert same_number(readout(page)["result"], l2[0, o])


def test_large_input_holds_an_exact_region_and_a_preview(tmp_path, open_page):
    rng = np.random.default_rng(11)
    x = rng.integers(0, 255, size=(1300, 1400), dtype=np.uint8)
    from PIL import Image

    Image.fromarray(x).save(tmp_path / "big.png")
    settings = PoolSettings(window=(3,), stride=(2,), padding=(1,))
    payload = build_payload(tmp_path / "big.png", settings, ["max", "avg"], [(3,)])
    assert payload["overview"] is not None and payload["requested"] == dict(y=394, x=444, h=512, w=512)
    page = open_page(write_inspector(tmp_path / "big.png", tmp_path / "big.html", settings, ["max", "avg"], [(3,)]))
    assert (tmp_path / "big.html").stat().st_size < 3_000_000
    y, idx = pool(x, 3, 2, padding=1, return_indices=True)
    page.evaluate("window.poolInspector.zoomTo(24, 650, 700)")
    for oy, ox in [(325, 350), (327, 351)]:
        hover(page, 1, oy, ox)
        shown = readout(page)
        assert shown["probe"]["oy"] == oy and shown["probe"]["ox"] == ox
        assert int(shown["result"]) == y[oy, ox]
        assert shown["winners"] == [list(divmod(int(idx[oy, ox]), 1400))]
        for row in shown["rows"]:
            assert int(row["value"]) == x[row["y"], row["x"]]
    page.evaluate("window.poolInspector.probeInput(5, 5)")
    assert page.text_content("#readout [data-role=value]") == "outside the exact region"


def decoded(entry: dict) -> np.ndarray:
    """An array as `encode` sent it (zlib-compressed byte planes, little-endian, in base64)."""
    dtype = np.dtype(entry["dtype"]).newbyteorder("<")
    planes = np.frombuffer(zlib.decompress(base64.b64decode(entry["data"])), np.uint8)
    return planes.reshape(dtype.itemsize, -1).T.copy().view(dtype).reshape(entry["shape"])


def preview_codes(means: np.ndarray, shown: list[float]) -> np.ndarray:
    """A preview's codes: 0..250 over the range shown, 251 NaN, 252 +inf, 253 -inf."""
    lo, hi = shown
    with np.errstate(all="ignore"):
        codes = np.round(np.clip((means - lo) / ((hi - lo) or 1.0), 0, 1) * 250)
    codes = np.where(np.isnan(means), 251, np.where(means == np.inf, 252, np.where(means == -np.inf, 253, codes)))
    return codes.astype(np.uint8)


BANDED = [  # (shape, settings, modes, region): a region away from the edges, or at one, and previews of steps > 1
    ((2, 1100, 40), PoolSettings(window=(3,), stride=(2,), padding=(1,), pad_mode="reflect", ceil_mode=True),
     ["max", "avg", "l2"], (500, 3, 40, 30)),
    ((2, 1100, 40), PoolSettings(window=(4, 3), stride=(3, 2), padding=(2, 1), pad_mode="edge",
                                 count_include_pad=False, dilation=(1, 2)),
     ["min", "avg", "median"], (1040, 0, 60, 40)),
    ((1100, 36), PoolSettings(window=(2,), p=3.0), ["lp", "avg"], (0, 0, 30, 36)),
    ((6000,), PoolSettings(window=(5,), stride=(3,), padding=(2,), count_include_pad=False, ceil_mode=True),
     ["max", "avg", "lp"], (0, 2990, 1, 700)),
    ((6000,), PoolSettings(window=(5,), stride=(1,), padding=(2,), count_include_pad=False),
     ["avg"], (0, 5000, 1, 997)),  # outputs of the region read the high padding, the last one is not drawn
]


@pytest.mark.parametrize(("shape", "settings", "modes", "region"), BANDED)
def test_large_input_pooled_band_by_band_is_pooled_whole(tmp_path, shape, settings, modes, region):
    """Many bands of a few hundred bytes give the payload of one band (the whole input at once): every
    value, winner, divisor, pad source and preview; and each is that of `pool` of the whole input (the
    divisors and pad sources those of its plan, the previews block means of the whole)."""
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32) * 50
    x.reshape(-1)[::97] = np.nan
    x.reshape(-1)[1234] = 3e15  # lp scales its p-norm, judged on the whole input
    payload = banded_is_whole(tmp_path / "x.npy", x, settings, modes, region, band_bytes=700)
    assert payload["overview"] is not None and max(payload["overview"]["step"]) > 1
    assert payload["range"] == [float(np.nanmin(x)), float(np.nanmax(x))]  # of the whole, not of the region
    assert_preview(payload["overview"], x, tuple(payload["pooledAxes"]), payload["range"])
    for mode, panel in zip(modes, payload["panels"]):
        assert_panel_is_the_whole(panel, x, replace(settings, mode=mode), tuple(payload["pooledAxes"]))
        assert panel["overview"]["range"] == (panel["range"] if panel["grows"] else payload["range"])


@hypothesis.settings(max_examples=80, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@hypothesis.given(st.data())
def test_any_series_region_pooled_band_by_band_is_pooled_whole(tmp_path, data):
    """Random geometries, pads, modes and regions of a short series, one band per output."""
    n = data.draw(st.integers(1, 60))
    window, stride, dilation = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    chosen = PoolSettings(window=(window,), stride=(stride,), dilation=(dilation,),
                          padding=(data.draw(st.integers(0, window)),), ceil_mode=data.draw(st.booleans()),
                          count_include_pad=data.draw(st.booleans()), p=3.0,
                          pad_mode=data.draw(st.sampled_from(["zeros", "edge", "reflect"])),
                          mode=data.draw(st.sampled_from(["max", "min", "avg", "sum", "lp", "median"])))
    start = data.draw(st.integers(0, n - 1))
    region = (0, start, 1, data.draw(st.integers(1, n - start)))
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    try:
        pool_with(chosen.pool_spec(1, 1, (0,)), x)
    except PoolError:
        return
    payload = banded_is_whole(tmp_path / "x.npy", x, chosen, [chosen.mode], region, band_bytes=1)
    assert_panel_is_the_whole(payload["panels"][0], x, chosen, (0,))


def banded_is_whole(path: Path, x: np.ndarray, settings: PoolSettings, modes: list[str], region, band_bytes: int):
    """The payload of `x` pooled in bands of `band_bytes`, checked equal to that of one band."""
    np.save(path, x)
    banded = build_payload(path, settings, modes, [settings.window], region=region, band_bytes=band_bytes)
    assert banded == build_payload(path, settings, modes, [settings.window], region=region, band_bytes=2**40)
    return banded


def assert_preview(entry: dict | None, plane: np.ndarray, axes: tuple[int, ...], shown: list[float]) -> None:
    """A preview is the block means of the whole plane (at most 512 a side) as codes on the range shown."""
    if entry is None:
        return
    size = tuple(plane.shape[a] for a in axes) if len(axes) == 2 else (1, plane.shape[-1])
    step = math.ceil(max(size) / 512)
    steps = (step, step) if size[0] > 1 else (1, step)
    means = pool(plane.reshape((-1, *size)), steps, axes=(1, 2), mode="avg", ceil_mode=True, count_include_pad=False)
    assert entry["step"] == list(steps) and entry["range"] == shown
    np.testing.assert_array_equal(decoded(entry["data"]), preview_codes(means, shown))


def assert_panel_is_the_whole(panel: dict, x: np.ndarray, settings: PoolSettings, axes: tuple[int, ...]) -> None:
    """A panel's values, winners and preview are `pool` of the whole input; its divisors and pad sources
    those of the whole input's plan."""
    from poolcli.core.geometry import with_materialised_padding
    from poolcli.engine.divisors import divisor_counts

    spec = settings.pool_spec(len(axes), x.ndim, axes)
    picks = settings.mode in ("max", "min")
    y, idx = pool_with(spec.but(return_indices=True), x) if picks else (pool_with(spec, x), None)
    r = panel["region"]
    cut = (slice(None),) * (x.ndim - 2) + (slice(r["y"], r["y"] + r["h"]),) if len(axes) == 2 else ()
    cut += (slice(r["x"], r["x"] + r["w"]),)
    values = decoded(panel["values"])
    assert values.dtype == y.dtype
    np.testing.assert_array_equal(values.reshape(y[cut].shape), y[cut])
    if idx is not None:
        np.testing.assert_array_equal(decoded(panel["indices"]).reshape(idx[cut].shape), idx[cut])
    assert_preview(panel["overview"], y, axes, panel["overview"]["range"] if panel["overview"] else [])
    plan = spec.plan(x.shape)
    padded = with_materialised_padding(plan) if plan.pad_mode != "zeros" else plan
    counts = divisor_counts(padded)
    for a, (g, shown) in enumerate(zip(padded.sliding, panel["axes"])):
        if shown["divisors"] is not None:
            first = shown["divisorFrom"]
            assert shown["divisors"] == counts[a][first:first + len(shown["divisors"])].astype(int).tolist()
        original = plan.sliding[a]
        pads = (None, None) if g.source_map is None else (g.source_map[:original.pad_lo].tolist(),
                                                           g.source_map[original.pad_lo + original.size:].tolist())
        assert (shown["padBefore"], shown["padAfter"]) == pads


def test_a_region_larger_than_a_page_holds_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((40, 50), np.float32))
    with pytest.raises(PoolError, match="region 0,0,40,50 holds 2,000 cells; a page holds at most 1,000 exactly"):
        build_payload(tmp_path / "x.npy", PoolSettings(), ["max"], [(2,)], region=(0, 0, 99, 99), exact_pixels=1000)
    assert build_payload(tmp_path / "x.npy", PoolSettings(), ["max"], [(2,)], region=(0, 0, 20, 50),
                         exact_pixels=1000)["requested"] == dict(y=0, x=0, h=20, w=50)


# ------------------------------------------------------------------ the command line


def test_inspect_command_writes_one_offline_page_under_5mb(tmp_path):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    target = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "astronaut.png"), "-o", str(target),
                                      "--modes", "max,avg,l2", "--windows", "2,4"])
    assert result.exit_code == 0, result.output
    assert "3 modes x 2 windows" in result.output
    text = target.read_text()
    assert target.stat().st_size < 5_000_000
    assert "http://" not in text and "https://" not in text and "<script src" not in text and "<link" not in text


@pytest.mark.parametrize(("arguments", "code", "message"), [
    (["-o", "{tmp}/page.png"], 1, "the inspector writes an HTML page; name the output e.g. report.html"),
    (["-o", "{tmp}/page.html", "--region", "1,2,3"], 2, "--region '1,2,3' needs four numbers Y,X,H,W"),
    (["-o", "{tmp}/page.html", "--region", "50,0,4,4"], 1, "--region 50,0,4,4 is outside the 6x7 input"),
    (["-o", "{tmp}/page.html", "--region", "0,0,2000,2000"], 2,
     "--region 0,0,2000,2000 holds 4,000,000 cells; a page holds at most 1,048,576 exactly (e.g. 1024x1024)"),
    (["-o", "{tmp}/page.html", "-m", "avg", "--modes", "max"], 2, "-m/--mode and --modes both choose the modes"),
    (["-o", "{tmp}/page.html", "--modes", "mean"], 2, "--modes 'mean' is not known"),
    (["-o", "{tmp}/page.html", "--channel", "9"], 1, "--channel 9 is out of range"),
    (["-o", "{tmp}/exists.html"], 1, "exists.html exists; pass --overwrite to replace it"),
    (["-o", "{tmp}/page.html", "-k", "2,2,2"], 1, "the inspector shows 1-D or 2-D pooling, not 3-D"),
])
def test_inspect_command_errors_are_one_line(tmp_path, arguments, code, message):
    np.save(tmp_path / "map.npy", np.zeros((2, 6, 7), np.float32))
    (tmp_path / "exists.html").write_text("keep")
    argv = ["inspect", str(tmp_path / "map.npy")] + [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert result.output.count("\n") == 1
    assert (tmp_path / "exists.html").read_text() == "keep"
    assert not (tmp_path / "page.html").exists()


def test_inspect_command_missing_input(tmp_path):
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "nope.png"), "-o", str(tmp_path / "p.html")])
    assert result.exit_code == 1 and "nope.png: no such file" in result.output and "Traceback" not in result.output


# ------------------------------------------------------------------ the batch gallery


def test_batch_gallery_of_a_few_hundred_files(tmp_path, open_page):
    from PIL import Image

    source, out = tmp_path / "src", tmp_path / "out"
    rng = np.random.default_rng(2)
    for folder in range(3):
        (source / f"f{folder}").mkdir(parents=True)
        for i in range(100):
            Image.fromarray(rng.integers(0, 255, (12, 14, 3), dtype=np.uint8)).save(source / f"f{folder}/{i:03d}.png")
    np.save(source / "f0" / "map.npy", rng.normal(size=(3, 8, 8)))
    broken = ["f1/broken.png", "f2/empty.png"]
    (source / broken[0]).write_bytes(b"not an image")
    (source / broken[1]).write_bytes(b"")
    gallery = tmp_path / "gallery.html"
    result = CliRunner().invoke(app, ["batch", str(source), "-d", str(out), "-j", "2", "--quiet",
                                      "--html-report", str(gallery), "--inspect"])
    assert result.exit_code == 1, result.output  # two files failed
    page = open_page(gallery, ready="() => window.poolGallery && window.poolGallery.ready")
    summary = page.text_content("#summary")
    assert "303 files: 301 done, 0 skipped, 2 failed" in summary
    assert page.evaluate("window.poolGallery.count") == 303
    assert page.evaluate("window.poolGallery.pages") == math.ceil(303 / 60)
    cards = page.locator("article.card")
    assert cards.count() == 60
    failed = page.locator("article.card.failed")
    assert failed.count() == 2  # failures come first
    assert sorted(failed.locator(".name").all_text_contents()) == broken
    for text in failed.locator(".error").all_text_contents():
        assert "check that the file is an image" in text or "empty" in text, text
    page.wait_for_function("() => [...document.querySelectorAll('article.card.done img')].slice(0, 4)"
                           ".every((img) => img.complete && img.naturalWidth > 0)", timeout=10000)
    page.click("#next")
    assert "page 2 of 6" in page.text_content("#page")
    page.select_option("#status", "failed")
    assert page.locator("article.card").count() == 2
    page.select_option("#status", "")
    page.fill("#find", "f2/099")
    assert page.locator("article.card").count() == 1
    link = page.locator("article.card a.inspect").get_attribute("href")
    inspector = open_page(gallery.parent / link)
    assert inspector.evaluate("window.poolInspector.state.probe.kind") == "output"
    assert (out / "f2" / "099.png").exists()


def test_batch_gallery_options_are_checked_before_the_run(tmp_path):
    from PIL import Image

    source = tmp_path / "src"
    source.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(source / "a.png")
    runner = CliRunner()
    inside = runner.invoke(app, ["batch", str(source), "-d", str(tmp_path / "out"), "--html-report",
                                 str(source / "g.html")])
    assert inside.exit_code == 2 and "--html-report" in inside.output and "inside SRC" in inside.output
    alone = runner.invoke(app, ["batch", str(source), "-d", str(tmp_path / "out"), "--inspect"])
    assert alone.exit_code == 2 and "add --html-report" in alone.output
    (tmp_path / "g.html").write_text("keep")
    exists = runner.invoke(app, ["batch", str(source), "-d", str(tmp_path / "out"), "--html-report",
                                 str(tmp_path / "g.html")])
    assert exists.exit_code == 2 and "pass --overwrite" in exists.output
    assert (tmp_path / "g.html").read_text() == "keep" and not (tmp_path / "out" / "a.png").exists()
