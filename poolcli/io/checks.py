"""Checks shared by the image readers: page and pixel budgets, sample layout, EXIF orientation."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from ..errors import InputError, param

_FROM_PILLOW_LIMIT = threading.Lock()


def open_lazily(source: Path | BinaryIO, formats: tuple[str, ...]) -> Image.Image:
    """Pillow's lazy open (header only) of one of `formats`, with Pillow's own bomb limit
    lifted for the call.

    poolcli checks the size itself, against the caller's limit, right after; the
    lock keeps concurrent loads from restoring Pillow's global limit wrongly.
    """
    with _FROM_PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(source, formats=formats)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def check_page(path: Path, page: int, count: int) -> None:
    if page >= count:
        raise InputError(f"{path}: has {count} page(s) or frame(s), no page {page}; use {param('page')} 0..{count - 1}")


def check_pixels(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(
            f"{path}: {width}x{height} = {width * height:,} pixels exceeds the limit of"
            f" {max_pixels:,} (decompression-bomb guard); pass {param('max_pixels')}"
            f" {width * height} if you trust this file"
        )


def hwc_samples(array: np.ndarray, shape: tuple[int, ...], axes: str) -> np.ndarray:
    """tifffile's page array (axes such as 'YX', 'YXS' or 'SYX') as native H x W x C."""
    if 0 in shape or array.size != math.prod(shape) or math.prod(shape[:-3]) != 1:
        raise ValueError(f"its page of shape {shape} ({axes}) holds no image of rows and columns")
    array, axes = array.reshape(shape[-3:]), axes[-3:]
    if "S" not in axes:
        array, axes = array.reshape(array.shape[-2:])[..., np.newaxis], axes[-2:] + "S"
    array = np.moveaxis(array, axes.index("S"), -1)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an H x W x C array, as ImageOps.exif_transpose does."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    transform = transforms.get(orientation)
    return array if transform is None else np.ascontiguousarray(transform(array))

