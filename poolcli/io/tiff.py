"""TIFF reading through tifffile: pages, strips and samples checked before decoding."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError, param
from .chatter import quiet_decoders
from .checks import check_page, check_pixels, hwc_samples, orient
from .formats import NUMERIC_KINDS, Loaded, input_errors

_TIFF_MODES = {  # (dtype, channels) -> the Pillow-style mode name poolcli reports
    ("uint8", 1): "L", ("uint8", 2): "LA", ("uint8", 3): "RGB", ("uint8", 4): "RGBA",
    ("uint16", 1): "I;16", ("uint16", 2): "LA;16", ("uint16", 3): "RGB;16", ("uint16", 4): "RGBA;16",
    ("int32", 1): "I", ("float32", 1): "F",
}

_TIFF_BYTES_PER_PIXEL = 32  # the most a page may decode to, per pixel allowed (float64 RGBA)


def load_tiff(path: Path, max_pixels: int | None, page: int) -> Loaded | None:
    """A page of a TIFF or BigTIFF through tifffile: gray or RGB(A) samples of any bit depth
    and type, interleaved or planar, striped or tiled, any compression. None for the
    photometric kinds Pillow turns into RGB (palette, CMYK, YCbCr, bilevel, white-is-zero)."""
    import tifffile

    fix = "the file may be truncated or corrupt; re-export it"
    with input_errors(path, "a TIFF image", fix), quiet_decoders(), tifffile.TiffFile(path) as tiff:
        frames = len(tiff.pages)
        check_page(path, page, frames)
        chosen: Any = tiff.pages[page]  # a TiffPage (tifffile types it as TiffPage | TiffFrame)
        check_pixels(path, (int(chosen.imagewidth), int(chosen.imagelength)), max_pixels)
        if not _tifffile_decodes(chosen):
            return None
        _check_tiff_strips(path, chosen, os.fstat(tiff.filehandle.fileno()).st_size if _has_fileno(tiff) else None)
        if max_pixels is not None and chosen.nbytes > _TIFF_BYTES_PER_PIXEL * max_pixels:
            raise InputError(
                f"{path}: page {page} decodes to {chosen.nbytes:,} bytes ({chosen.samplesperpixel} samples of"
                f" {chosen.dtype} per pixel), more than the limit; pass {param('max_pixels')} 0 if you trust this file"
            )
        array = hwc_samples(chosen.asarray(), chosen.shape, chosen.axes)
        orientation = int(chosen.tags.valueof(274, default=1) or 1)
        icc = chosen.tags.valueof(34675)
    array = orient(array, orientation)
    mode = _TIFF_MODES.get((array.dtype.name, array.shape[2]), f"{array.dtype.name}x{array.shape[2]}")
    return Loaded({"array": array}, "image", "hwc", "TIFF", mode, frames, path, bytes(icc) if icc else None)


def _has_fileno(tiff) -> bool:
    try:
        tiff.filehandle.fileno()
    except Exception:
        return False
    return True


def _check_tiff_strips(path: Path, page, file_size: int | None) -> None:
    """Refuse a page whose strips or tiles lie past the end of the file, or, uncompressed,
    hold fewer bytes than its size needs (tifffile would fill the gap with zeros)."""
    counts, offsets = page.databytecounts, page.dataoffsets
    ends = [offset + count for offset, count in zip(offsets, counts)]
    cut = file_size is not None and max(ends, default=0) > file_size
    short = page.compression == 1 and sum(counts) < page.nbytes
    if cut or short:
        shape = "x".join(map(str, page.shape))
        raise InputError(f"{path}: its pixel data is cut short or missing ({sum(counts):,} bytes stored for a"
                         f" {shape} {page.dtype} page); the file may be truncated; re-export it")


def _tifffile_decodes(page) -> bool:
    import tifffile

    photometric = tifffile.PHOTOMETRIC
    return (
        page.photometric in (photometric.MINISBLACK, photometric.RGB)
        and page.bitspersample >= 8
        and page.dtype is not None
        and page.dtype.kind in NUMERIC_KINDS
        and not page.is_subsampled
    )

