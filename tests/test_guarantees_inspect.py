"""What the README promises about the inspector page's numbers, checked on the payload the page
embeds (poolcli.inspect.build_payload): every value, winner, gradient and divisor is the engine's,
over an exact region that holds every tap its outputs read; a region that is not the whole input
gets an overview and the colour range of the whole, whatever sides it spans."""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import numpy as np
import pytest
import test_inspect

from poolcli import pool, pool_backward
from poolcli.app.settings import PoolSettings
from poolcli.cli import main
from poolcli.inspect import build_payload

browser, open_page = test_inspect.browser, test_inspect.open_page  # the headless Chromium fixtures


def decoded(item: dict) -> np.ndarray:
    """An array as the page reads it back (inspect.data.encode's byte planes)."""
    dtype = np.dtype(item["dtype"]).newbyteorder("<")
    raw = np.frombuffer(zlib.decompress(base64.b64decode(item["data"])), np.uint8)
    return raw.reshape(dtype.itemsize, -1).T.copy().view(dtype).reshape(item["shape"])


def _map(folder: Path, x: np.ndarray) -> Path:
    np.save(folder / "map.npy", x)
    return folder / "map.npy"


def _window(payload: dict, settings: PoolSettings, **extra) -> dict:
    """`pool`'s keywords for what `settings` asked, over the axes the page shows."""
    def one(value):
        return value[0] if isinstance(value, tuple) and len(value) == 1 else value

    return dict(window=one(settings.window), stride=one(settings.stride), padding=one(settings.padding),
                dilation=one(settings.dilation), ceil_mode=settings.ceil_mode,
                count_include_pad=settings.count_include_pad, pad_mode=settings.pad_mode,
                axes=tuple(payload["pooledAxes"]), **extra)


# ------------------------------------------------------------------ the region and the overview


@pytest.mark.parametrize("region", [(0, 10, 40, 8), (12, 0, 6, 30), (0, 0, 40, 20), (2, 0, 38, 30)])
def test_a_region_short_of_the_whole_gets_an_overview_and_the_whole_range(tmp_path, region):
    """A region that spans one whole side (all rows, some columns) is still not the whole input:
    the page needs the overview, and colours on the range of the whole, not of the cut."""
    x = np.random.default_rng(1).random((40, 30))
    x[:, 0], x[0, :], x[-1, -1] = -5.0, -7.0, 9.0  # the extremes lie outside every region tested
    x[20, 29] = 8.0
    payload = build_payload(_map(tmp_path, x), PoolSettings(window=(2,)), ["max", "avg"], [(2,)], region=region)
    assert payload["overview"] is not None
    assert payload["range"] == [-7.0, 9.0]
    assert all(panel["overview"] is not None for panel in payload["panels"])
    y, xx, h, w = region
    assert payload["requested"] == dict(y=y, x=xx, h=h, w=w)


def test_the_whole_input_has_no_overview_and_its_own_range(tmp_path):
    x = np.random.default_rng(2).random((40, 30))
    payload = build_payload(_map(tmp_path, x), PoolSettings(window=(2,)), ["max"], [(2,)], region=(0, 0, 40, 30))
    assert payload["overview"] is None and payload["panels"][0]["overview"] is None
    assert payload["range"] == [float(x.min()), float(x.max())]
    np.testing.assert_array_equal(decoded(payload["input"])[0], x)


# ------------------------------------------------------------------ every number is the engine's


GEOMETRIES = [
    PoolSettings(window=(3,), stride=(2,), padding=(1,), dilation=(2,), ceil_mode=True),
    PoolSettings(window=(2, 3), stride=(1, 2), padding=(1, 1)),
    PoolSettings(window=(3,), stride=(2,), padding=(1,), pad_mode="reflect", ceil_mode=True),
]


@pytest.mark.parametrize("settings", GEOMETRIES)
@pytest.mark.parametrize("region", [(5, 7, 10, 12), (0, 0, 6, 6), (24, 30, 6, 10), (29, 39, 1, 1), (29, 0, 1, 40)])
def test_values_winners_and_routing_over_a_region_are_the_engines(tmp_path, settings, region):
    x = np.random.default_rng(3).normal(size=(30, 40)).astype(np.float32)
    payload = build_payload(_map(tmp_path, x), settings, ["max", "avg"], [settings.window], region=region)
    exact = payload["exact"]
    rows, cols = slice(exact["y"], exact["y"] + exact["h"]), slice(exact["x"], exact["x"] + exact["w"])
    np.testing.assert_array_equal(decoded(payload["input"])[0], x[rows, cols])
    for panel in payload["panels"]:
        keywords = _window(payload, settings, mode=panel["mode"])
        out = panel["region"]
        oy, ox = slice(out["y"], out["y"] + out["h"]), slice(out["x"], out["x"] + out["w"])
        np.testing.assert_array_equal(decoded(panel["values"])[0], pool(x, **keywords)[oy, ox])
        if panel["indices"] is not None:
            _, winners = pool(x, return_indices=True, **keywords)
            np.testing.assert_array_equal(decoded(panel["indices"])[0], winners[oy, ox])
        if panel["grad"] is not None:
            expected = pool_backward(np.ones(pool(x, **keywords).shape, np.float32), x, **keywords)
            np.testing.assert_array_equal(decoded(panel["grad"])[0], expected[rows, cols])
        _every_tap_is_held(panel, exact)
        _outputs_cover_the_region(panel, payload["requested"])


def _taps(axis: dict, first: int, stop: int) -> set[int]:
    return {o * axis["stride"] - axis["padLo"] + j * axis["dilation"]
            for o in range(first, stop) for j in range(axis["window"])}


def _every_tap_is_held(panel: dict, exact: dict) -> None:
    out = panel["region"]
    for axis, first, count, lo, length in zip(panel["axes"], (out["y"], out["x"]), (out["h"], out["w"]),
                                              (exact["y"], exact["x"]), (exact["h"], exact["w"]), strict=True):
        real = {t for t in _taps(axis, first, first + count) if 0 <= t < axis["size"]}
        assert real <= set(range(lo, lo + length)), (axis, out, exact)


def _outputs_cover_the_region(panel: dict, shown: dict) -> None:
    """The panel holds the outputs drawn over a cell of the region shown, no others (output o is
    drawn on [o*s - pad_lo, (o+1)*s - pad_lo)); at an edge of the input, those drawn on the padding too."""
    out = panel["region"]
    for axis, first, count, lo, length in zip(panel["axes"], (out["y"], out["x"]), (out["h"], out["w"]),
                                              (shown["y"], shown["x"]), (shown["h"], shown["w"]), strict=True):
        s, pad = axis["stride"], axis["padLo"]
        drawn = {o for o in range(axis["out"]) if o * s - pad < lo + length and (o + 1) * s - pad > lo}
        drawn |= {o for o in range(axis["out"]) if lo == 0 and o * s - pad < 0}
        drawn |= {o for o in range(axis["out"]) if lo + length == axis["size"] and (o + 1) * s - pad > axis["size"]}
        drawn = drawn or {axis["out"] - 1}  # cells past the last output (a floor mode's rest): the nearest one
        assert drawn == set(range(first, first + count)), (axis, out, shown)


@pytest.mark.parametrize("pad_mode", ["zeros", "edge", "reflect"])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_divisors_are_those_the_engine_divides_by(tmp_path, pad_mode, count_include_pad):
    """The divisor of each output (the product of its axes' divisors) is the engine's sum over its
    avg: edge and reflect pads are copies of real cells, counted whatever count_include_pad says."""
    x = np.random.default_rng(4).uniform(1, 2, size=(9, 11))
    settings = PoolSettings(window=(3,), stride=(2,), padding=(1,), ceil_mode=True, pad_mode=pad_mode,
                            count_include_pad=count_include_pad)
    payload = build_payload(_map(tmp_path, x), settings, ["avg"], [(3,)])
    panel = payload["panels"][0]
    rows, cols = (np.array(axis["divisors"], dtype=float) for axis in panel["axes"])
    keywords = _window(payload, settings)
    expected = pool(x, mode="sum", **keywords) / pool(x, mode="avg", **keywords)
    np.testing.assert_allclose(np.outer(rows, cols), expected, rtol=1e-9)


# ------------------------------------------------------------------ channels


def test_feature_maps_embed_the_first_16_channels_or_those_named(tmp_path):
    x = np.random.default_rng(5).random((20, 6, 6)).astype(np.float32)
    path = _map(tmp_path, x)
    settings = PoolSettings(window=(2,), axes=(1, 2))
    payload = build_payload(path, settings, ["max"], [(2,)])
    assert payload["channelIndex"] == list(range(16)) and payload["channelCount"] == 20
    np.testing.assert_array_equal(decoded(payload["input"]), x[:16])
    named = build_payload(path, settings, ["max"], [(2,)], channels=[17, 0, 17])
    assert named["channelIndex"] == [17, 0] and named["channels"] == ["channel 17", "channel 0"]
    np.testing.assert_array_equal(decoded(named["panels"][0]["values"]), pool(x, 2, axes=(1, 2))[[17, 0]])


def test_a_region_past_the_edge_is_cut_to_the_input(tmp_path):
    x = np.random.default_rng(6).random((30, 40))
    payload = build_payload(_map(tmp_path, x), PoolSettings(window=(2,)), ["max"], [(2,)], region=(25, 35, 20, 20))
    assert payload["requested"] == dict(y=25, x=35, h=5, w=5)
    exact = payload["exact"]
    assert exact["y"] + exact["h"] <= 30 and exact["x"] + exact["w"] <= 40
    assert decoded(payload["input"]).shape == (1, exact["h"], exact["w"])


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint32, np.float32, np.float64, np.bool_, np.int64])
def test_arrays_reach_the_page_with_their_values(dtype):
    from poolcli.inspect.data import encode

    x = (np.random.default_rng(7).normal(size=(3, 5, 7)) * 1000).astype(dtype)
    np.testing.assert_array_equal(decoded(encode(x)), x)


@pytest.mark.parametrize("pad_mode", ["edge", "reflect"])
def test_edge_and_reflect_pads_name_the_cells_they_copy(tmp_path, pad_mode):
    x = np.random.default_rng(8).random((9, 11))
    settings = PoolSettings(window=(3,), stride=(2,), padding=(2,), pad_mode=pad_mode, ceil_mode=True)
    payload = build_payload(_map(tmp_path, x), settings, ["max", "avg"], [(3,)])
    for panel in payload["panels"]:
        for axis in panel["axes"]:
            expected = np.pad(np.arange(axis["size"]), (axis["padLo"], axis["padHi"]), mode=pad_mode)
            assert axis["padBefore"] == expected[:axis["padLo"]].tolist()
            assert axis["padAfter"] == expected[axis["padLo"] + axis["size"]:].tolist()


def test_a_series_panel_holds_the_pooling_of_each_series(tmp_path):
    x = np.random.default_rng(9).normal(size=(3, 50))
    settings = PoolSettings(window=(4,), stride=(3,), padding=(1,), axes=(-1,))
    payload = build_payload(_map(tmp_path, x), settings, ["max", "l2"], [(4,)])
    assert payload["kind"] == "series" and payload["size"] == [1, 50]
    for panel in payload["panels"]:
        expected = pool(x, 4, 3, padding=1, axes=(-1,), mode=panel["mode"])
        assert panel["region"] == dict(y=0, x=0, h=1, w=expected.shape[1])
        np.testing.assert_array_equal(decoded(panel["values"])[:, 0], expected)


def test_a_region_past_the_last_output_shows_the_nearest_one_on_a_page_that_loads(tmp_path, open_page):
    """The cells a floor mode leaves over (row 10 of 11 with k=2) have no output drawn on them: the
    page shows the last output instead of failing, and opens without an error."""
    x = np.random.default_rng(10).random((11, 11))
    path = _map(tmp_path, x)
    assert main(["inspect", str(path), "-o", str(tmp_path / "r.html"), "-k", "2", "--region", "10,10,1,1"]) == 0
    payload = build_payload(path, PoolSettings(window=(2,)), ["max"], [(2,)], region=(10, 10, 1, 1))
    panel = payload["panels"][0]
    assert panel["region"] == dict(y=4, x=4, h=1, w=1)
    assert decoded(panel["values"])[0, 0, 0] == pool(x, 2)[4, 4]
    page = open_page(tmp_path / "r.html")
    assert page.evaluate("window.poolInspector.ready")
