"""Hostile file names and inputs against the HTML pages (`poolcli inspect -o page.html` and the gallery of
`poolcli batch --html-report`), in a real headless Chromium (the fixtures of test_inspect.py).

What each page must show: every name as text (never markup; names that were not UTF-8 as ``\\xNN``,
as the terminal shows them), no script but its own (a Content-Security-Policy that forbids inline
handlers and `javascript:` URLs), every link a local path that reaches the file it names; the gallery's
picture folder checked like the page; the inspector's payload bounded by its region; 64-bit integers
read out exactly. A run never stops on one file's page or picture.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlparse

import hostile
import numpy as np
import pytest
from PIL import Image
from test_inspect import browser, open_page  # noqa: F401 -- the Chromium fixtures

from poolcli.app.settings import FileResult, PoolSettings
from poolcli.inspect import write_inspector
from poolcli.inspect.gallery import Gallery

GALLERY_READY = "() => window.poolGallery && window.poolGallery.ready"  # a function: CSP forbids eval
PWNED = "window.__pwned"  # what every injected payload below tries to set
MARKUP = "<img src=x onerror=window.__pwned=1>"
LINKS = ["a#b.png", "c?d.png", "e%41.png", "eA.png", "javascript:window.__pwned=1,{}.png", MARKUP + ".png",
         "sp ace&amp.png"]
NOT_UTF8 = os.fsdecode(b"caf\xe9.png")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS, wait4 and /proc")


def png(path: Path, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (6, 8, 3), dtype=np.uint8)).save(path, "PNG")
    return path


def file_of(url: str) -> bytes:
    """The local path a file:// URL names, as the bytes the file system holds."""
    parsed = urlparse(url)
    assert parsed.scheme == "file", url
    return unquote_to_bytes(parsed.path)


def batch(*args, cwd: Path | None = None) -> hostile.Run:
    result = hostile.run("batch", *args, "-j", "1", cwd=cwd)
    assert not result.timed_out, result
    return result


# ------------------------------------------------------------------ the gallery: names, links, script


@pytest.fixture(scope="module")
def hostile_gallery(tmp_path_factory):
    """A batch run over files with hostile names (an .npz member named as markup among them) whose OUT is
    the gallery's own folder, so an output's link is its bare name."""
    folder = tmp_path_factory.mktemp("hostile-gallery")
    source, report = folder / "src", folder / "report"
    source.mkdir()
    report.mkdir()
    for seed, name in enumerate(LINKS + [NOT_UTF8]):
        png(source / name, seed)
    np.savez(source / "members.npz", **{MARKUP: np.arange(16.0).reshape(4, 4)})
    gallery = report / "g#1%41.html"  # its picture folder's name needs escaping too
    result = batch(source, "-d", report, "--html-report", gallery, "--inspect", "--quiet")
    assert result.code == 0 and result.err == b"", result
    return source, report, gallery


def test_gallery_names_are_text_and_run_no_script(hostile_gallery, open_page):  # noqa: F811 -- the fixture
    source, report, gallery = hostile_gallery
    page = open_page(gallery, ready=GALLERY_READY)
    assert page.evaluate(PWNED) is None
    names = sorted(page.locator("article.card .name").all_text_contents())
    assert names == sorted(LINKS + ["caf\\xe9.png", "members.npz"])
    assert page.locator("article.card img:not([alt])").count() == 0  # no picture but the thumbnails
    assert any(MARKUP + ": 4x4" in text for text in page.locator("article.card .meta").all_text_contents())
    link = page.locator("article.card", has_text=MARKUP + ".png").locator("a.inspect")
    inspector = open_page(Path(os.fsdecode(file_of(link.evaluate("(a) => a.href")))))
    assert inspector.evaluate(PWNED) is None
    assert inspector.text_content("h1") == MARKUP + ".png"


@pytest.mark.slow  # about 7 s: 18 real clicks, half of them page loads and back
def test_every_gallery_link_reaches_its_own_file(hostile_gallery, open_page):  # noqa: F811 -- the fixture
    """Click every link: each is './' and a percent-encoded local path, and the browser asks for exactly the
    file of its card (the output, or the card's inspector page), inside the report's folder."""
    source, report, gallery = hostile_gallery
    page = open_page(gallery, ready=GALLERY_READY)
    cards = page.locator("article.card")
    clicked = 0
    for c in range(cards.count()):
        card = cards.nth(c)
        name = card.locator(".name").text_content()
        expected_output = os.fsencode(report / (NOT_UTF8 if name == "caf\\xe9.png" else name))
        links = card.locator("a")
        assert links.count() == 2, name
        for i in range(links.count()):
            link = links.nth(i)
            assert link.get_attribute("href").startswith("./")
            inspect = link.get_attribute("class") == "inspect"
            with page.expect_request(lambda request: True) as asked:
                link.click()
            target = file_of(asked.value.url)
            assert os.path.isfile(target) and Path(os.fsdecode(target)).is_relative_to(report), asked.value.url
            if inspect:
                assert target.startswith(os.fsencode(report / "g#1%41_files" / "inspect_"))
            else:
                assert target == expected_output, (name, target)
            clicked += 1
            if page.url != gallery.resolve().as_uri():
                page.go_back()
                page.wait_for_function(GALLERY_READY)
            assert page.evaluate(PWNED) is None
    assert clicked == 2 * (len(LINKS) + 2)
    pictures = page.evaluate("[...document.querySelectorAll('article.card img')].map((img) => img.src)")
    assert len(pictures) == len(set(pictures)) == 2 * (len(LINKS) + 2)  # no two cards share a picture
    assert all(os.path.isfile(file_of(url)) for url in pictures)


@pytest.mark.parametrize("which", ["gallery", "inspector"])
def test_content_security_policy_blocks_injected_script(tmp_path, browser, which):  # noqa: F811
    """Even markup that got into a page could not run: no inline handler, no javascript: URL; the page's
    own script runs."""
    png(tmp_path / "a.png")
    if which == "inspector":
        path = write_inspector(tmp_path / "a.png", tmp_path / "a.html", PoolSettings(), ["max"], [(2,)])
        ready = "() => window.poolInspector && window.poolInspector.ready"
    else:
        gallery = Gallery(tmp_path / "g.html", tmp_path, PoolSettings())
        gallery.add(FileResult(str(tmp_path / "a.png"), None, status="failed", error="broken"))
        path = gallery.finish(dict(total=1, done=0, skipped=0, failed=1, seconds=0.1, output_bytes=0))
        ready = GALLERY_READY
    page = browser.new_page()
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text))
    page.goto(path.resolve().as_uri())
    page.wait_for_function(ready, timeout=30000)
    page.evaluate("""() => document.body.insertAdjacentHTML('beforeend',
      '<img id=x1 src=nowhere.png onerror="window.__pwned=1"><svg onload="window.__pwned=2"></svg>' +
      '<a id=x2 href="javascript:window.__pwned=3">go</a>')""")
    page.click("#x2")
    page.wait_for_timeout(300)
    assert page.evaluate(PWNED) is None
    assert any("Content Security Policy" in text for text in blocked), blocked
    page.close()


# ------------------------------------------------------------------ the gallery's picture folder


def test_picture_folder_symlink_into_src_is_refused(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    png(source / "thumb_0_in.png")
    before = (source / "thumb_0_in.png").read_bytes()
    (tmp_path / "g_files").symlink_to(source)
    result = batch(source, "-d", out, "--html-report", tmp_path / "g.html", "--overwrite")
    assert result.code == 2 and result.err_text.count("\n") == 1, result
    assert "g_files is a symbolic link" in result.err_text and "--html-report" in result.err_text
    assert sorted(os.listdir(source)) == ["thumb_0_in.png"] and (source / "thumb_0_in.png").read_bytes() == before
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("layout", ["src-is-the-folder", "outputs-fill-the-folder", "exists"])
def test_picture_folder_that_would_mix_with_inputs_or_outputs_is_refused(tmp_path, layout):
    """SRC as the picture folder (the page beside it, outside SRC); OUT holding the page, with a
    folder of SRC that would put outputs among the pictures; a folder that is there already."""
    source, out = tmp_path / "src", tmp_path / "out"
    if layout == "src-is-the-folder":
        source = tmp_path / "g_files"
        page, message = tmp_path / "g.html", "overlaps SRC"
    elif layout == "outputs-fill-the-folder":
        page, message = out / "g.html", "is where the outputs of"
    else:
        page, message = tmp_path / "g.html", "exists; pass --overwrite"
        (tmp_path / "g_files").mkdir()
    (source / "g_files").mkdir(parents=True)
    png(source / "g_files" / "thumb_0_in.png")
    out.mkdir(exist_ok=True)
    result = batch(source, "-d", out, "--html-report", page)
    assert result.code == 2 and message in result.err_text and result.err_text.count("\n") == 1, result
    assert not page.exists() and not any(out.iterdir())


def test_picture_named_as_a_link_to_an_input_never_writes_through_it(tmp_path):
    """An old picture folder (--overwrite) whose card picture is a symbolic link to the input: the input
    keeps its bytes and stays a file of its own."""
    source, out = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    before = png(source / "a.png").read_bytes()
    (tmp_path / "g_files").mkdir()
    (tmp_path / "g_files" / "thumb_0_in.png").symlink_to(source / "a.png")
    (tmp_path / "g_files" / "thumb_0_out.png").symlink_to(source / "a.png")
    result = batch(source, "-d", out, "--html-report", tmp_path / "g.html", "--overwrite", "--quiet")
    assert result.code == 0 and result.err == b"", result
    assert (source / "a.png").read_bytes() == before and not (source / "a.png").is_symlink()
    assert sorted(os.listdir(source)) == ["a.png"]


def test_picture_folder_swapped_for_a_link_during_the_run_gets_no_picture(tmp_path):
    """The folder checked before the run, replaced by a symbolic link into SRC before a card's pictures:
    the card notes it, nothing is written through the link."""
    source = tmp_path / "src"
    source.mkdir()
    png(source / "a.png")
    gallery = Gallery(tmp_path / "g.html", source, PoolSettings())
    (tmp_path / "g_files").symlink_to(source)
    gallery.add(FileResult(str(source / "a.png"), str(source / "a.png"), output_dtype="uint8"))
    assert sorted(os.listdir(source)) == ["a.png"]
    assert "no longer the picture folder" in gallery.entries[0]["note"]


# ------------------------------------------------------------------ names that are not UTF-8


def test_inspect_of_a_name_that_is_not_utf8(tmp_path, open_page):  # noqa: F811 -- the fixture
    np.save(tmp_path / "x.npy", np.arange(12.0).reshape(3, 4))
    name = tmp_path / os.fsdecode(b"caf\xe9.npy")
    os.rename(tmp_path / "x.npy", name)
    result = hostile.run("inspect", name, "-o", tmp_path / "page.html")
    assert result.code == 0 and result.err == b"", result
    assert "caf\\xe9.npy" in result.out.decode()
    page = open_page(tmp_path / "page.html")
    assert page.text_content("h1") == "caf\\xe9.npy"
    assert page.title() == "caf\\xe9.npy - poolcli inspector"


def test_batch_with_a_name_that_is_not_utf8_pools_every_file(tmp_path, open_page):  # noqa: F811 -- the fixture
    """The file whose name is not UTF-8 comes first; every later file is pooled, the summary printed,
    exit 0 (every file done), and its card shows the name escaped."""
    source, out = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    png(source / os.fsdecode(b"\xff-first.png"))
    later = [f"later{i}.png" for i in range(3)]
    for i, name in enumerate(later):
        png(source / name, i + 1)
    gallery = tmp_path / "g.html"
    result = batch(source, "-d", out, "--html-report", gallery, "--inspect", "--report", tmp_path / "r.json")
    assert result.code == 0 and result.err == b"", result
    assert len(json.loads((tmp_path / "r.json").read_bytes())["files"]) == 4
    assert re.search(r"│\s+4\s+│\s+0\s+│\s+0\s+│", result.out.decode()), result  # the summary: 4 done, 0, 0
    assert all((out / name).is_file() for name in later) and os.path.isfile(out / os.fsdecode(b"\xff-first.png"))
    page = open_page(gallery, ready=GALLERY_READY)
    assert "4 files: 4 done" in page.text_content("#summary")
    assert "\\xff-first.png" in page.locator("article.card .name").all_text_contents()
    assert page.locator("article.card .note").count() == 0


# ------------------------------------------------------------------ the inspector's payload and readouts


def test_inspect_of_an_8m_value_series_is_bounded_by_its_region(tmp_path):
    """8M values (a sparse file of zeros): the page holds the exact region and previews, not one divisor
    per output (that was 24 MB); the child's peak memory stays that of pooling the input."""
    series = np.lib.format.open_memmap(tmp_path / "long.npy", mode="w+", dtype=np.float64, shape=(8_000_000,))
    del series
    result = hostile.run("inspect", tmp_path / "long.npy", "-o", tmp_path / "long.html", "--modes", "max,avg,l2",
                         timeout=60)
    assert result.code == 0 and result.err == b"", result
    assert (tmp_path / "long.html").stat().st_size < 2_000_000
    assert result.rss_mb < 480, result


@pytest.mark.parametrize("shape", [(20_000_000,), (4096, 4096)], ids=["series", "image"])
def test_inspect_of_a_large_input_needs_little_memory_beyond_its_own(tmp_path, shape):
    """A 20M-value series and a 4096x4096 map (float32, sparse files of zeros): pooled band by band for
    each panel and its preview, never whole, so the child's peak stays near the input's own size (pooling
    it whole took about 6 times that)."""
    series = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=shape)
    input_mb = series.nbytes / 2**20
    del series
    result = hostile.run("inspect", tmp_path / "big.npy", "-o", tmp_path / "big.html", "--modes", "max,avg,l2",
                         timeout=60)
    assert result.code == 0 and result.err == b"", result
    assert result.rss_mb < input_mb + 120, result


def test_int64_values_read_out_exactly(tmp_path, open_page):  # noqa: F811 -- the fixture
    x = np.array([[2**62 + 1, 5], [7, -(2**62) - 3]], np.int64)
    np.save(tmp_path / "wide.npy", x)
    settings = PoolSettings(window=(2,))
    page = open_page(write_inspector(tmp_path / "wide.npy", tmp_path / "wide.html", settings, ["max", "sum"], [(2,)]))
    page.evaluate("window.poolInspector.probeInput(0, 0)")
    assert page.text_content("#readout [data-role=value]") == "4611686018427387905"
    page.evaluate("window.poolInspector.probeOutput(0, 0, 0)")
    assert page.text_content("#readout [data-role=result]") == "4611686018427387905"
    values = page.evaluate("[...document.querySelectorAll('#readout tr[data-tap]')]"
                           ".map((r) => r.children[2].textContent)")
    assert values == ["4611686018427387905", "5", "7", "-4611686018427387907"]
    page.evaluate("window.poolInspector.probeOutput(1, 0, 0)")
    assert page.text_content("#readout [data-role=result]") == "10"
    assert page.text_content("#readout [data-role=sum]") == "10"
    np.save(tmp_path / "top.npy", np.array([2**64 - 1, 1], np.uint64))
    page = open_page(write_inspector(tmp_path / "top.npy", tmp_path / "top.html", PoolSettings(window=(1,)), ["max"],
                                     [(1,)]))
    page.evaluate("window.poolInspector.probeOutput(0, 0, 0)")
    assert page.text_content("#readout [data-role=result]") == "18446744073709551615"
