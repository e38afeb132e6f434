"""One record per mode (core/modes.py) is all the other layers know of a mode.

A mode that only the tests know, added to the table before anything reads it (as an edit of
core/modes.py would add it), is run through the real command line in a subprocess: `pool -m`
takes it, `--help` lists it with its summary, a pyramid's NGFF metadata records its type, and
the inspector page shows its formula (read in a real Chromium). It is the Euclidean norm of a
window, sqrt(sum of squares): the sum family's power 2 without a divisor, arithmetic the engine
already has (and the same as lp with p = 2), checked here against NumPy written out.

The existing modes keep the words they had before the records carried them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import test_inspect
import zarr
from test_inspect import hover

from poolcli.app.settings import PoolSettings
from poolcli.core.modes import MODES, Mode
from poolcli.inspect import write_inspector

browser, open_page = test_inspect.browser, test_inspect.open_page  # the fixtures of a real Chromium

NORM = Mode("l2norm", "sum", "zeros", False, "float", False, False, True, True, False, power="2",
            summary="the root of the sum of squares", formula="sqrt(sum of squares)", ngff="l2norm")
LAUNCH = ("import sys; from poolcli.core.modes import MODES, Mode; MODES[{name!r}] = {record!r}; "
          "sys.argv[0] = 'poolcli'; from poolcli.cli import main; raise SystemExit(main())")


@pytest.fixture
def with_extra_mode():
    """`poolcli ARGS...` in a fresh process whose table of modes holds NORM as well."""
    def run(*arguments: object) -> subprocess.CompletedProcess:
        code = LAUNCH.format(name=NORM.name, record=NORM)
        return subprocess.run([sys.executable, "-c", code, *map(str, arguments)], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "COLUMNS": "100"})
    return run


def norms(x: np.ndarray, k: int) -> np.ndarray:
    """sqrt(sum of squares) of each k x k block, in float64 (the reference)."""
    h, w = x.shape[0] // k, x.shape[1] // k
    blocks = x[:h * k, :w * k].astype(np.float64).reshape(h, k, w, k)
    return np.sqrt((blocks ** 2).sum(axis=(1, 3)))


def test_the_extra_mode_is_unknown_without_its_record(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((4, 4), np.float32))
    done = subprocess.run([sys.executable, "-m", "poolcli", "pool", str(tmp_path / "x.npy"), "-o",
                           str(tmp_path / "y.npy"), "-m", NORM.name], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "'l2norm' is not known" in done.stderr


def test_help_lists_the_extra_mode_with_its_summary(with_extra_mode):
    done = with_extra_mode("--help")
    assert "(max, min, avg, sum, l2, lp, median, l2norm)" in " ".join(done.stdout.split())
    for command in ("pool", "pyramid", "batch", "inspect", "compare"):
        done = with_extra_mode(command, "--help")
        assert done.returncode == 0, done.stderr
        text = " ".join(done.stdout.split())
        assert "l2norm (the root of the sum of squares)" in text
        assert "max (the largest value)" in text and "median (the middle value)" in text


def test_pool_runs_the_extra_mode(tmp_path, with_extra_mode):
    x = np.random.default_rng(1).normal(size=(6, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = with_extra_mode("pool", tmp_path / "x.npy", "-o", tmp_path / "y.npy", "-m", "l2norm", "-k", "2",
                           "--axes", "0,1")
    assert done.returncode == 0, done.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and y.shape == (3, 4)
    np.testing.assert_allclose(y, norms(x, 2), rtol=1e-6)


def test_a_pyramid_records_the_extra_modes_ngff_type(tmp_path, with_extra_mode):
    x = np.random.default_rng(2).normal(size=(16, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = with_extra_mode("pyramid", tmp_path / "x.npy", "-o", tmp_path / "p.zarr", "-m", "l2norm",
                           "--levels", "2")
    assert done.returncode == 0, done.stderr
    group = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")
    attrs = group.attrs.asdict()
    meta = attrs["multiscales"][0] if "multiscales" in attrs else attrs["ome"]["multiscales"][0]
    assert meta["type"] == "l2norm" and meta["metadata"]["kwargs"]["mode"] == "l2norm"
    for k in (1, 2):
        np.testing.assert_allclose(group[str(k)][:], norms(x, 2 ** k), rtol=1e-5)


def test_batch_and_info_run_the_extra_mode(tmp_path, with_extra_mode):
    x = np.random.default_rng(4).normal(size=(8, 6)).astype(np.float32)
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "x.npy", x)
    done = with_extra_mode("batch", tmp_path / "src", "-d", tmp_path / "out", "-m", "l2norm", "-k", "2")
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out" / "x.npy"), norms(x, 2), rtol=1e-6)
    done = with_extra_mode("info", tmp_path / "src" / "x.npy", "-m", "l2norm", "-k", "2", "--json")
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)["arrays"]["array"]
    assert described["output_shape"] == [4, 3]


def page_data(path) -> dict:
    found = re.search(r'<script type="application/json" id="poolcli-data">(.*?)</script>', path.read_text(), re.S)
    assert found is not None
    return json.loads(found.group(1))


def shown_formula(page, view: int) -> str:
    hover(page, view, 0, 0)
    return page.evaluate("() => document.querySelector('#readout .result .muted').textContent")


def test_the_inspector_shows_the_extra_modes_formula_from_its_record(tmp_path, with_extra_mode, open_page):
    x = np.random.default_rng(3).normal(size=(6, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = with_extra_mode("inspect", tmp_path / "x.npy", "-o", tmp_path / "page.html", "-m", "l2norm", "-k", "2")
    assert done.returncode == 0, done.stderr
    [panel] = page_data(tmp_path / "page.html")["panels"]
    assert panel["mode"] == "l2norm" and panel["formula"] == "sqrt(sum of squares)"
    page = open_page(tmp_path / "page.html")
    assert shown_formula(page, 1) == "sqrt(sum of squares)"
    result = page.evaluate("() => document.querySelector('#readout [data-role=result]').textContent")
    assert abs(float(result) - norms(x, 2)[0, 0]) <= 1e-5 * norms(x, 2)[0, 0]


WORDS_BEFORE_THE_RECORDS = {  # the page's formulas as inspector.js spelled them itself
    "max": "largest tap", "min": "smallest tap", "avg": "sum / divisor", "sum": "sum",
    "l2": "sqrt(sum of squares / divisor)", "lp": "(sum of |x|^p)^(1/p), p = 3",
    "median": "middle tap (mean of two for an even count)",
}


def test_the_existing_modes_keep_their_formulas(tmp_path, open_page):
    assert tuple(WORDS_BEFORE_THE_RECORDS) == tuple(MODES)
    x = np.random.default_rng(4).normal(size=(1, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    page = open_page(write_inspector(tmp_path / "x.npy", tmp_path / "page.html", PoolSettings(window=(2,), p=3.0),
                                     list(MODES), [(2,)]))
    shown = {mode: shown_formula(page, view) for view, mode in enumerate(MODES, start=1)}
    assert shown == WORDS_BEFORE_THE_RECORDS


def test_the_existing_modes_keep_their_ngff_types():
    assert {name: mode.ngff for name, mode in MODES.items()} == {
        "max": "max", "min": "min", "avg": "mean", "sum": "sum", "l2": "l2", "lp": "lp", "median": "median"}
