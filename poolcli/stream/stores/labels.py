"""Label pyramids as NGFF `image-label` groups (NGFF 0.4 on Zarr v2, 0.5 on Zarr v3), written by
the Zarr store's own pyramid writer (`zarr.write_ome_zarr`) with the label metadata added.

Beside an image: where the output is already an OME-Zarr image, its labels go into it as the
NGFF spec lays them out, and the image is left as it is:

    image.zarr/                  the image (multiscales), untouched
      labels/                    {"labels": ["cells", ...]} (0.5: inside "ome", with its version)
        cells/                   multiscales + "image-label": {version, colors, source: {image: "../../"}}
          0/ 1/ ...

The label pyramid must have the image's level-0 spatial shape, and takes the image's Zarr format.
Any other output (a new one, or one replaced with overwrite) is the label image alone: the
group at the output is the label pyramid with its "image-label" metadata (no source image).

Labels are integers (NGFF); bool masks are written as uint8 0/1. Each label value found in the
input gets a colour ("colors": label 0, the background, transparent; the others spread round
the hue circle, the same colour for the same value in every run), up to MAX_COLOURS values.
"""

from __future__ import annotations

import colorsys
import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError, OutputError, param
from ..budget import Budget
from ..pyramid import Pyramid
from ..sinks import StoreOptions
from ..sources import Source
from .zarr import NGFF_VERSIONS, write_ome_zarr

MAX_COLOURS = 4096  # label values listed with a colour; beyond, none are listed
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
GOLDEN = 0.6180339887498949  # hue steps that keep neighbouring label values apart


def check_label_name(name: str) -> str:
    """A label image's name: a plain folder name (letters, digits, '.', '_', '-')."""
    if not PLAIN_NAME.match(name):
        raise OutputError(f"{param('labels')} {name!r} is not a plain name; use letters, digits, '.', '_' or '-'"
                          " (such as cells)")
    return name


def check_label_dtype(path: Path, dtype: np.dtype) -> None:
    """NGFF labels are integers: refuse a float (or other) input before anything is read."""
    if dtype.kind not in "biu":
        raise InputError(f"{path}: holds {dtype} values; labels are integers (bool masks too), so pool it as an"
                         " image instead")


def write_label_pyramid(source: Source, pyramid: Pyramid, target: Path, options: StoreOptions, budget: Budget, *,
                        name: str | None, overwrite: bool, progress: Callable[[int], None] | None = None) -> list:
    """The label pyramid of `source`: beside the OME-Zarr image at `target` as labels/`name`, or
    (no image there, or no `name`) as the label image `target` itself; the levels' stored shapes."""
    check_label_dtype(source.path, source.dtype)
    found = LabelValues(source)
    image = None if name is None else image_format(target)
    if name is None or image is None:
        return write_ome_zarr(found.source, pyramid, target, options, budget, overwrite=overwrite, progress=progress,
                              finish=lambda metadata: labelled(metadata, found.colours(), None))
    check_label_name(name)
    _check_fits(source, pyramid, target, image)
    folder = target / "labels"
    made = not folder.exists()
    folder.mkdir(exist_ok=True)
    try:
        shapes = write_ome_zarr(found.source, pyramid, folder / name, dataclasses.replace(options, zarr_format=image),
                                budget, overwrite=overwrite, progress=progress,
                                finish=lambda metadata: labelled(metadata, found.colours(), "../../"))
    except BaseException:
        if made and not any(folder.iterdir()):
            folder.rmdir()
        raise
    _list_label(folder, name, image)
    return shapes


class LabelValues:
    """`source` read as labels (bool as uint8), and the label values its reads held."""

    def __init__(self, source: Source):
        self.values: set[int] | None = set()
        self.source = dataclasses.replace(source, array=_Recorded(source.array, self))

    def record(self, block: np.ndarray) -> None:
        if self.values is None or block.size == 0:
            return
        present = np.flatnonzero(np.bincount(block.ravel())) if block.dtype == np.uint8 else np.unique(block)
        self.values.update(int(v) for v in present)
        if len(self.values) > MAX_COLOURS:
            self.values = None  # too many to list

    def colours(self) -> list[dict] | None:
        if self.values is None:
            return None
        return [{"label-value": value, "rgba": colour(value)} for value in sorted(self.values)]


class _Recorded:
    """An array read through `LabelValues`: each block cast to labels and recorded."""

    def __init__(self, array: Any, values: LabelValues):
        self.array, self.values = array, values
        self.shape = array.shape
        self.dtype = np.dtype(np.uint8) if np.dtype(array.dtype).kind == "b" else np.dtype(array.dtype)

    def __getitem__(self, index: tuple) -> np.ndarray:
        block = np.asarray(self.array[index]).astype(self.dtype, copy=False)
        self.values.record(block)
        return block


def colour(value: int) -> list[int]:
    """The RGBA colour of a label value: 0 transparent, the others by golden-ratio hue steps."""
    if value == 0:
        return [0, 0, 0, 0]
    red, green, blue = colorsys.hsv_to_rgb((value * GOLDEN) % 1.0, 0.65, 0.95)
    return [round(red * 255), round(green * 255), round(blue * 255), 255]


def labelled(metadata: dict, colours: list[dict] | None, image: str | None) -> dict:
    """A multiscales group's NGFF attributes with the "image-label" of a label image added."""
    ome = metadata.get("ome")
    version = ome["version"] if ome is not None else metadata["multiscales"][0]["version"]
    label: dict[str, Any] = {"version": version}
    if colours is not None:
        label["colors"] = colours
    if image is not None:
        label["source"] = {"image": image}
    if ome is not None:
        return {"ome": {**ome, "image-label": label}}
    return {**metadata, "image-label": label}


def image_format(target: Path) -> int | None:
    """The Zarr format of the OME-Zarr image (a group with multiscales) at `target`, else None."""
    attributes = _group_attributes(target)
    if attributes is None:
        return None
    format_, attrs = attributes
    holder = attrs.get("ome", attrs) if format_ == 3 else attrs
    return format_ if isinstance(holder, dict) and holder.get("multiscales") and "image-label" not in holder else None


def _group_attributes(folder: Path) -> tuple[int, dict] | None:
    """(Zarr format, attributes) of the group at `folder`, read from its metadata file; None where
    there is none or it is not a group."""
    try:
        if (folder / "zarr.json").is_file():
            document = json.loads((folder / "zarr.json").read_text())
            if document.get("node_type") == "group":
                return 3, document.get("attributes") or {}
        elif (folder / ".zgroup").is_file():
            attrs = folder / ".zattrs"
            return 2, json.loads(attrs.read_text()) if attrs.is_file() else {}
    except (OSError, ValueError, AttributeError) as error:
        raise InputError(f"{folder}: its Zarr metadata cannot be read ({error}); check the store") from None
    return None


def _check_fits(source: Source, pyramid: Pyramid, target: Path, zarr_format: int) -> None:
    """The label pyramid's level 0 must have the image's level-0 spatial shape (its first dataset)."""
    import zarr

    group = zarr.open_group(str(target), mode="r")
    attrs: Any = group.attrs.asdict()
    holder = attrs.get("ome", attrs) if zarr_format == 3 else attrs
    try:
        level0: Any = group[holder["multiscales"][0]["datasets"][0]["path"]]
        image = list(level0.shape)[-len(pyramid.spatial):]
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        raise InputError(f"{target}: its multiscales metadata names no readable level 0 ({error}); check the image")\
            from None
    spatial = [pyramid.shape[a] for a in sorted(pyramid.spatial)]  # stored last, in the input's order
    if spatial != image:
        raise InputError(f"{source.path}: labels of spatial shape {'x'.join(map(str, spatial))} do not fit the image"
                         f" {target} ({'x'.join(map(str, image))}); give labels of the image's size")


def _list_label(folder: Path, name: str, zarr_format: int) -> None:
    """Add `name` to the labels group's list (made if missing), keeping the names it has."""
    import zarr

    group = zarr.open_group(str(folder), mode="a", zarr_format=zarr_format)  # type: ignore[arg-type]
    attrs: Any = group.attrs.asdict()
    if zarr_format == 3:
        ome = dict(attrs.get("ome") or {})
        listed = list(ome.get("labels") or [])
        group.attrs.update({"ome": {**ome, "version": NGFF_VERSIONS[3], "labels": [*listed, name]
                                    if name not in listed else listed}})
    else:
        listed = list(attrs.get("labels") or [])
        group.attrs.update({"labels": listed + [name] if name not in listed else listed})
