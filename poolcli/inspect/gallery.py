"""The gallery of a batch run: one HTML page of every file (thumbnails of input and output, shapes,
time, size, failures with their reasons), in pages of cards, each linking to its output and, where
asked, to its own inspector page.

`Gallery.add` takes the run's records as they stream (`FileResult`); the thumbnails and
inspector pages go to a folder beside the page, `<name>_files/`, written atomically one by
one; `Gallery.finish` writes the page itself. That folder is checked like the page (`check_gallery`):
never a symbolic link, never inside SRC (nor SRC inside it), never where the run writes outputs;
its pictures have names of their own (the card's number), never an input's. Nothing a card shows
can stop the run: a picture that cannot be made is a note on the card. The page loads a card's
thumbnails only when its page of cards is shown (and the browser's lazy loading only when scrolled
to), so a run of thousands of files opens at once.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..app.figures import rgb_loaded
from ..app.settings import FileResult, PoolSettings
from ..core import formats
from ..errors import PoolError, param, printable, render
from ..io.encode import rgb_array
from ..viz import apply_colormap, image_range, to_display, value_range
from .data import Held
from .page import PAGE_SUFFIXES, document, local_href, write_inspector, write_page

THUMBNAIL_SIDE = 128


def sidecar(path: Path) -> Path:
    """The folder of a gallery's thumbnails and pages: report.html -> report_files/."""
    return path.with_name(path.stem + "_files")


def check_gallery(path: Path, source: Path, out_dir: Path, *, overwrite: bool, trees: Iterable[Path] = ()) -> None:
    """PoolError unless the gallery may be written to `path`: an .html name in an existing folder outside SRC
    (or inside OUT, which the run never reads), not there already unless overwriting; and its picture
    folder likewise (`check_pictures`; `trees`: other folders the run writes into, as OUT)."""
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
    check_pictures(sidecar(path), source, (out_dir, *trees), overwrite=overwrite)


def check_pictures(folder: Path, source: Path, trees: Iterable[Path], *, overwrite: bool) -> None:
    """PoolError unless the gallery's pictures may go to `folder`: not a symbolic link or a file, not
    there already unless overwriting, not overlapping SRC (outside OUT), and not a folder of OUT (or
    of another of the run's output `trees`) that the outputs of SRC's files will fill."""
    name = f"{param('html_report')} picture folder {folder}"
    if os.path.islink(folder):
        raise PoolError(f"{name} is a symbolic link; its pictures would be written where it points;"
                        " remove it or name the page otherwise")
    if os.path.lexists(folder) and not folder.is_dir():
        raise PoolError(f"{name} is a file; remove it or name the page otherwise")
    real, src = Path(os.path.realpath(folder)), Path(os.path.realpath(source))
    outputs = [Path(os.path.realpath(tree)) for tree in trees]
    if src.is_relative_to(real) or (real.is_relative_to(src) and not any(real.is_relative_to(t) for t in outputs)):
        raise PoolError(f"{name} overlaps SRC {source}; its pictures would become inputs; name the page otherwise")
    for tree in outputs:
        if real.is_relative_to(tree) and os.path.lexists(src / real.relative_to(tree)):
            raise PoolError(f"{name} is where the outputs of {source / real.relative_to(tree)} go;"
                            " name the page otherwise")
    if os.path.lexists(folder) and not overwrite:
        raise PoolError(f"{name} exists; pass {param('overwrite')} to replace its pictures")


def thumbnail(array: np.ndarray, kind: str, side: int = THUMBNAIL_SIDE) -> np.ndarray | None:
    """An RGB uint8 picture of at most `side` pixels a side (nearest cells): an image as it looks,
    a feature map's first plane in viridis; None for a 1-D series. Alpha is drawn over the grey
    checkerboard, as `compare` draws it.

    >>> thumbnail(np.zeros((512, 256, 3), np.uint8), "image").shape
    (128, 64, 3)
    """
    array = np.asarray(array)
    if array.ndim < 2:
        return None
    step = max(1, math.ceil(max(array.shape[-2:] if kind != "image" else array.shape[:2]) / side))
    if kind == "image":
        plane = array if array.ndim == 3 else array[..., None]
        if plane.shape[-1] in (2, 4):  # with alpha: over the checkerboard, as compare draws it
            return to_display(plane[::step, ::step], value_range=image_range(array))
        plane = plane[..., :3] if plane.shape[-1] >= 3 else plane[..., :1]
    else:
        plane = array.reshape((-1,) + array.shape[-2:])[0][..., None]
    small = plane[::step, ::step].astype(np.float64)
    if kind == "image":
        lo, hi = image_range(array)
        unit = np.clip((np.nan_to_num(small) - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
        rgb = np.round(unit * 255).astype(np.uint8)
        return np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb
    lo, hi = value_range(small)
    return apply_colormap(small[..., 0], lo, hi)


@dataclass(frozen=True)
class CardPictures:
    """Where the pictures of a gallery's cards go: its picture folder (`real`: where it led when it was
    checked before the run), and whether each card gets an inspector page too. Sent with each file to
    the process that pools it, which makes them from the arrays it holds (`card_pictures`)."""

    folder: Path
    real: str
    inspect: bool = False
    overwrite: bool = False


def card_pictures(pictures: CardPictures, number: int, source: Path, target: Path, settings: PoolSettings,
                  held: tuple[io.Loaded, Mapping[str, np.ndarray], Mapping[str, np.ndarray]] | None = None) -> dict:
    """The card of input `number`: thumbnails of its input and output and its inspector page, made from
    `held` (the input as decoded, the results as pooled and the winners of max and min: no file read or
    pooled again) or else from the files; what cannot be made is the card's note (a message template),
    never raised."""
    card: dict[str, Any] = dict(thumbs=[None, None], page=None, note=None)
    try:
        loaded, output, output_kind = _from_files(source, target, settings) if held is None else _rgb(*held[:2], target)
        card["thumbs"] = [_thumb(pictures, number, "in", next(iter(loaded.arrays.values())), loaded.kind, source,
                                 target), _thumb(pictures, number, "out", output, output_kind, source, target)]
        if pictures.inspect:
            pooled = None if held is None else Held(output, _first(held[2], held[0].channel_order == "bgr"))
            card["page"] = _page(pictures, number, source, loaded, settings, pooled)
    except Exception as error:  # noqa: BLE001 -- one card's pictures never stop the run (its note says why)
        card["note"] = (error.template if isinstance(error, PoolError) else
                        f"{error.strerror or error}" if isinstance(error, OSError) else
                        f"no pictures ({type(error).__name__}: {error})")
    return card


def _from_files(source: Path, target: Path, settings: PoolSettings) -> tuple[io.Loaded, np.ndarray, str]:
    """The input and the output read back: the input, the output's first array, the output's kind."""
    loaded, output = (io.load(path, **settings.load_options()) for path in (source, target))
    return loaded, next(iter(output.arrays.values())), output.kind


def _rgb(loaded: io.Loaded, results: Mapping[str, np.ndarray], target: Path) -> tuple[io.Loaded, np.ndarray, str]:
    """`_from_files`'s answer from the arrays in memory: in RGB order where batch kept OpenCV's BGR."""
    output = rgb_array(next(iter(results.values())), loaded.channel_order == "bgr")
    return rgb_loaded(loaded), output, "image" if formats.is_image_suffix(target.suffix) else "array"


def _first(arrays: Mapping[str, np.ndarray], bgr: bool) -> np.ndarray | None:
    """The first of `arrays` (None if there is none), in RGB order where `bgr` says it is BGR."""
    first = next(iter(arrays.values()), None)
    return None if first is None else rgb_array(first, bgr)


class Gallery:
    """The gallery of one run, filled record by record."""

    def __init__(self, path: Path, source: Path, settings: PoolSettings, *, inspect: bool = False,
                 overwrite: bool = False, names: Mapping[str, str] | None = None):
        self.path, self.source, self.settings = Path(path), Path(source), settings
        self.inspect, self.overwrite, self._names = inspect, overwrite, names
        self.folder = sidecar(self.path)
        self.pictures = CardPictures(self.folder, os.path.realpath(self.folder), inspect, overwrite)  # as checked
        self.entries: list[dict] = []

    def add(self, record: FileResult) -> None:
        """One file's card, with the pictures the record brings (`card_pictures`)."""
        entry = self._entry(record)
        self.entries.append(entry)
        if record.status != "done":
            return
        card = record.card  # made where the file was pooled; else (a cluster's run) from the files, here
        if card is None:
            card = card_pictures(self.pictures, len(self.entries) - 1, Path(record.input), Path(record.output or ""),
                                 self.settings)
        entry["thumbs"], entry["page"] = card["thumbs"], card["page"]
        entry["note"] = None if card["note"] is None else self._text(card["note"])

    def finish(self, summary: dict, title: str = "") -> Path:
        title = title or f"poolcli batch {self.source}"
        data = dict(title=printable(title), settings=printable(self.settings.label()), summary=summary,
                    entries=self.entries)
        return write_page(self.path, document("gallery", data, TITLE=title), overwrite=self.overwrite, inputs=())

    def _entry(self, record: FileResult) -> dict[str, Any]:
        """The card's text (names shown as the terminal shows them) and its link to the output."""
        return dict(
            input=printable(self._relative(record.input)), output=self._link(record.output), status=record.status,
            error=None if record.error is None else self._text(record.error), seconds=round(record.seconds, 4),
            inputShape=_shown_shape(record.input_shape), outputShape=_shown_shape(record.output_shape),
            dtype=record.dtype, outputDtype=record.output_dtype, bytes=record.output_bytes, thumbs=[None, None],
            page=None, note=None)

    def _text(self, message: str) -> str:
        return printable(render(message, self._names))

    def _relative(self, name: str) -> str:
        path = Path(name)
        return path.relative_to(self.source).as_posix() if path.is_relative_to(self.source) else name

    def _link(self, name: str | None) -> str | None:
        if not name:
            return None
        return local_href(os.path.relpath(os.path.abspath(name), os.path.abspath(self.path.parent)))


def _picture_folder(pictures: CardPictures) -> Path:
    """The picture folder, made on first use and checked before every picture: still the real folder
    checked before the run, not a symbolic link put there since."""
    with contextlib.suppress(FileExistsError):
        pictures.folder.mkdir()
    mode = os.lstat(pictures.folder).st_mode
    if not stat.S_ISDIR(mode) or os.path.realpath(pictures.folder) != pictures.real:
        raise PoolError(f"{pictures.folder}: is no longer the picture folder checked before the run"
                        " (a link or a file now); no pictures written")
    return pictures.folder


def _thumb(pictures: CardPictures, number: int, side: str, array: np.ndarray, kind: str, *inputs: Path) -> str | None:
    picture = thumbnail(array, kind)
    if picture is None:
        return None
    target = _picture_folder(pictures) / f"thumb_{number}_{side}.png"  # the input's number: no two cards share it
    io.save(target, picture, overwrite=pictures.overwrite, inputs=inputs, durable=False)  # batch syncs at its end
    return local_href(f"{pictures.folder.name}/{target.name}")


def _page(pictures: CardPictures, number: int, source: Path, loaded: io.Loaded, settings: PoolSettings,
          held: Held | None) -> str:
    target = _picture_folder(pictures) / f"inspect_{number}.html"
    write_inspector(source, target, settings, [settings.mode], [settings.window], overwrite=pictures.overwrite,
                    loaded=loaded, held=held, durable=False)  # batch syncs at its end
    return local_href(f"{pictures.folder.name}/{target.name}")


def _shown_shape(shape: list[int] | dict) -> list[int] | dict:
    """A shape, or an .npz's {member: shape} with member names shown as the terminal shows them."""
    if isinstance(shape, dict):
        return {printable(str(key)): value for key, value in shape.items()}
    return shape
