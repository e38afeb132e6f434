"""The gallery of a batch run: one HTML page of every file (thumbnails of input and output, shapes,
time, size, failures with their reasons), in pages of cards, each linking to its output and, where
asked, to its own inspector page.

`Gallery.add` takes the run's records as they stream (`FileResult`); the thumbnails and
inspector pages go to a folder beside the page, `<name>_files/`, written atomically one by
one; `Gallery.finish` writes the page itself. The page loads a card's thumbnails only when its
page of cards is shown (and the browser's lazy loading only when scrolled to), so a run of
thousands of files opens at once.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..errors import PoolError, param, render
from ..pipeline import FileResult, PoolSettings
from ..viz import apply_colormap, image_range, value_range
from .page import PAGE_SUFFIXES, asset, fill, script_json, write_inspector, write_page

THUMBNAIL_SIDE = 128


def sidecar(path: Path) -> Path:
    """The folder of a gallery's thumbnails and pages: report.html -> report_files/."""
    return path.with_name(path.stem + "_files")


def check_gallery(path: Path, source: Path, out_dir: Path, *, overwrite: bool) -> None:
    """PoolError unless the gallery may be written to `path`: an .html name in an existing folder outside SRC
    (or inside OUT, which the run never reads), not there already unless overwriting."""
    if path.suffix.lower() not in PAGE_SUFFIXES:
        raise PoolError(f"{param('html_report')} {path}: the gallery is an HTML page; name it e.g. gallery.html")
    if path.is_dir() or not path.parent.is_dir():
        raise PoolError(f"{param('html_report')} {path}: give a file name in an existing folder")
    folder, src, out = (Path(os.path.realpath(p)) for p in (path.parent, source, out_dir))
    if folder.is_relative_to(src) and not folder.is_relative_to(out):
        raise PoolError(f"{param('html_report')} {path} lies inside SRC {source}; its thumbnails would become"
                        " inputs; write it outside SRC or inside OUT")
    if os.path.lexists(path) and not overwrite:
        raise PoolError(f"{param('html_report')} {path} exists; pass {param('overwrite')} to replace it")


def thumbnail(array: np.ndarray, kind: str, side: int = THUMBNAIL_SIDE) -> np.ndarray | None:
    """An RGB uint8 picture of at most `side` pixels a side (nearest cells): an image as it looks,
    a feature map's first plane in viridis; None for a 1-D series.

    >>> thumbnail(np.zeros((512, 256, 3), np.uint8), "image").shape
    (128, 64, 3)
    """
    array = np.asarray(array)
    if array.ndim < 2:
        return None
    if kind == "image":
        plane = array if array.ndim == 3 else array[..., None]
        plane = plane[..., :3] if plane.shape[-1] >= 3 else plane[..., :1]
    else:
        plane = array.reshape((-1,) + array.shape[-2:])[0][..., None]
    step = max(1, math.ceil(max(plane.shape[:2]) / side))
    small = plane[::step, ::step].astype(np.float64)
    if kind == "image":
        lo, hi = image_range(array)
        unit = np.clip((np.nan_to_num(small) - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
        rgb = np.round(unit * 255).astype(np.uint8)
        return np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb
    lo, hi = value_range(small)
    return apply_colormap(small[..., 0], lo, hi)


class Gallery:
    """The gallery of one run, filled record by record."""

    def __init__(self, path: Path, source: Path, settings: PoolSettings, *, inspect: bool = False,
                 overwrite: bool = False, names: Mapping[str, str] | None = None):
        self.path, self.source, self.settings = Path(path), Path(source), settings
        self.inspect, self.overwrite, self._names = inspect, overwrite, names
        self.folder = sidecar(self.path)
        self.entries: list[dict] = []

    def add(self, record: FileResult) -> None:
        """One file's card; a thumbnail or page that cannot be made is noted on the card, never raised."""
        index = len(self.entries)
        entry: dict[str, Any] = dict(
            input=self._relative(record.input), output=self._link(record.output), status=record.status,
            error=None if record.error is None else render(record.error, self._names),
            seconds=round(record.seconds, 4), inputShape=record.input_shape, outputShape=record.output_shape,
            dtype=record.dtype, outputDtype=record.output_dtype, bytes=record.output_bytes, thumbs=[None, None],
            page=None, note=None)
        self.entries.append(entry)
        if record.status != "done":
            return
        try:
            self.folder.mkdir(exist_ok=True)
            entry["thumbs"] = [self._thumb(Path(record.input), f"{index}_in"),
                               self._thumb(Path(record.output or ""), f"{index}_out")]
            if self.inspect:
                entry["page"] = self._page(Path(record.input), index)
        except (PoolError, OSError) as error:
            entry["note"] = render(str(error) if isinstance(error, OSError) else error.template, self._names)

    def finish(self, summary: dict, title: str = "") -> Path:
        title = title or f"poolcli batch {self.source}"
        data = dict(title=title, settings=self.settings.label(), summary=summary, entries=self.entries)
        text = fill(asset("gallery.html"), TITLE=html.escape(title), CSS=asset("gallery.css"),
                    JS=asset("gallery.js"), DATA=script_json(data))
        return write_page(self.path, text, overwrite=self.overwrite, inputs=())

    def _relative(self, name: str) -> str:
        path = Path(name)
        return path.relative_to(self.source).as_posix() if path.is_relative_to(self.source) else name

    def _link(self, name: str | None) -> str | None:
        if not name:
            return None
        return Path(os.path.relpath(os.path.abspath(name), os.path.abspath(self.path.parent))).as_posix()

    def _thumb(self, path: Path, stem: str) -> str | None:
        loaded = io.load(path, **self.settings.load_options())
        picture = thumbnail(next(iter(loaded.arrays.values())), loaded.kind)
        if picture is None:
            return None
        target = self.folder / f"thumb_{stem}.png"
        io.save(target, picture, overwrite=self.overwrite)
        return f"{self.folder.name}/{target.name}"

    def _page(self, path: Path, index: int) -> str:
        target = self.folder / f"inspect_{index}.html"
        write_inspector(path, target, self.settings, [self.settings.mode], [self.settings.window],
                        overwrite=self.overwrite)
        return f"{self.folder.name}/{target.name}"
