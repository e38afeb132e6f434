"""`batch --html-report --inspect --compare-dir` decodes each input once and pools it once: the gallery's
thumbnails, its inspector pages and the compare figures are made from the arrays the pooling holds.

A real batch runs in this process (`--jobs 1`) with counting wrappers around the real `io.load` and the
real `engine.pool_with` (each calls through): the count is taken of the real work, not of a stand-in.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_inspect import decoded

from poolcli import io, pool, pool_backward
from poolcli.cli import main
from poolcli.engine import api


@pytest.fixture
def counted(monkeypatch) -> list[tuple[str, object]]:
    """Every decode (`io.load`, with its path) and every pooling (`pool_with`, with its input's shape),
    in order, wherever a module of poolcli calls them."""
    events: list[tuple[str, object]] = []
    real_load, real_pool = io.load, api.pool_with

    def load(path, *args, **keywords):
        events.append(("load", Path(path)))
        return real_load(path, *args, **keywords)

    def pool_with(spec, x):
        events.append(("pool", tuple(np.shape(x))))
        return real_pool(spec, x)

    monkeypatch.setattr(io, "load", load)
    for name, module in list(sys.modules.items()):
        if name.startswith("poolcli.") and getattr(module, "pool_with", None) is real_pool and module is not api:
            monkeypatch.setattr(module, "pool_with", pool_with)
    return events


def _inputs(src: Path) -> list[Path]:
    rng = np.random.default_rng(7)
    src.mkdir()
    Image.fromarray(rng.integers(0, 256, (30, 41), np.uint8)).save(src / "gray.png")
    Image.fromarray(rng.integers(0, 256, (26, 20, 3), np.uint8)).save(src / "rgb.png")
    np.save(src / "map.npy", rng.standard_normal((2, 12, 10)).astype(np.float32))
    np.save(src / "series.npy", rng.standard_normal(50))
    return sorted(src.iterdir())


def _per_input(events: list, inputs: list[Path]) -> dict[str, list]:
    """The events of each input: from its decode to the next input's."""
    found: dict[str, list] = {}
    current = None
    for kind, what in events:
        if kind == "load" and what in inputs:
            current = what.name
        if current is not None:
            found.setdefault(current, []).append((kind, what))
    return found


def _run(*args) -> None:
    try:
        main([str(a) for a in args])
    except SystemExit as stop:
        assert stop.code == 0


@pytest.mark.parametrize("mode", ["avg", "max", "median"])
def test_each_input_is_decoded_once_and_pooled_once(tmp_path, counted, mode):
    inputs = _inputs(tmp_path / "src")
    _run("batch", tmp_path / "src", "-d", tmp_path / "out", "-m", mode, "-k", "2", "--jobs", "1",
         "--html-report", tmp_path / "gallery.html", "--inspect", "--compare-dir", tmp_path / "compare")
    assert len(list((tmp_path / "gallery_files").glob("inspect_*.html"))) == len(inputs)
    assert len(list((tmp_path / "compare").glob("*_compare.png"))) == len(inputs)
    per_input = _per_input(counted, inputs)
    assert sorted(per_input) == sorted(p.name for p in inputs)
    for source in inputs:
        events = per_input[source.name]
        decodes = [what for kind, what in events if kind == "load" and what.parent == source.parent]
        poolings = [what for kind, what in events if kind == "pool"]
        assert decodes == [source], (source.name, events)
        assert len(poolings) == 1, (source.name, events)
        # the compare figure shows the output as its file holds it: read back once, never pooled
        assert [what for kind, what in events if kind == "load" and what.parent != source.parent] == \
            [tmp_path / "out" / source.name]


def _payload(page: Path) -> dict:
    found = re.search(r'<script type="application/json" id="poolcli-data">(.*?)</script>', page.read_text(), re.S)
    assert found is not None
    return json.loads(found.group(1).replace("<\\/", "</"))


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_a_batch_page_shows_what_pool_wrote_and_the_engines_routing(tmp_path, mode):
    """The page made from the worker's arrays: its values are the written output's; max's winners
    and routing are the engine's (`return_indices`, `pool_backward`)."""
    rng = np.random.default_rng(3)
    (tmp_path / "src").mkdir()
    x = rng.integers(0, 256, (9, 11, 3), np.uint8)
    x[0, :4] = 200  # ties: the first in window order wins
    Image.fromarray(x).save(tmp_path / "src" / "a.png")
    _run("batch", tmp_path / "src", "-d", tmp_path / "out", "-m", mode, "-k", "3", "-s", "2", "--jobs", "1",
         "--html-report", tmp_path / "g.html", "--inspect")
    payload = _payload(tmp_path / "g_files" / "inspect_0.html")
    panel = payload["panels"][0]
    written = np.asarray(io.load(tmp_path / "out" / "a.png").array)
    assert np.array_equal(decoded(panel["values"]), np.moveaxis(written, -1, 0))
    if mode == "max":
        _, winners = pool(x, 3, 2, axes=(0, 1), return_indices=True)
        assert np.array_equal(decoded(panel["indices"]), np.moveaxis(winners, -1, 0))
        routing = pool_backward(np.ones(written.shape), x, 3, 2, axes=(0, 1), mode="max")
        assert np.array_equal(decoded(panel["grad"]), np.moveaxis(routing, -1, 0))
    else:
        assert panel["indices"] is None and panel["grad"] is None


def test_a_batch_compare_figure_is_the_one_pool_draws_from_the_files(tmp_path):
    """The figure made from the decoded array in memory is byte for byte the one `pool --compare` makes
    by reading the input again."""
    inputs = _inputs(tmp_path / "src")
    _run("batch", tmp_path / "src", "-d", tmp_path / "out", "-m", "avg", "-k", "3", "--jobs", "1",
         "--compare-dir", tmp_path / "compare")
    for source in inputs:
        alone = tmp_path / f"alone_{source.name}"
        _run("pool", source, "-o", alone.with_suffix(source.suffix), "-m", "avg", "-k", "3",
             "--compare", tmp_path / f"{source.stem}_alone.png")
        assert (tmp_path / "compare" / f"{source.stem}_compare.png").read_bytes() == \
            (tmp_path / f"{source.stem}_alone.png").read_bytes(), source.name
