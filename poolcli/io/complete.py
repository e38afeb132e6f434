"""Is an output complete? Each format's end marker or length, so `--skip-existing` redoes cut files."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from .arrays import npy_header
from .chatter import quiet_decoders
from .formats import ARRAY_FORMATS, IMAGE_FORMATS
from .png import png_is_complete


def is_complete(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a whole file of the format its suffix names, by cheap checks
    of its structure (no pixel is decoded): not empty, and not cut short where the format
    tells (PNG up to IEND, JPEG up to EOI, GIF's trailer, WebP's and BMP's size fields,
    the data of .npy and .npz members and TIFF strips). ``batch --skip-existing`` counts
    only complete outputs as done.

    >>> import tempfile
    >>> from poolcli.io import load, save
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     whole = save(Path(folder) / "ramp.png", np.arange(6, dtype=np.uint8).reshape(2, 3))
    ...     cut = Path(folder) / "cut.png"
    ...     _ = cut.write_bytes(whole.read_bytes()[:-5])
    ...     is_complete(whole), is_complete(cut)
    (True, False)
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            return False
        check = _COMPLETENESS.get(IMAGE_FORMATS.get(path.suffix.lower()) or ARRAY_FORMATS.get(path.suffix.lower(), ""))
        return True if check is None else bool(check(path, size))
    except Exception:  # whatever a broken file makes a parser raise, it is not complete
        return False


def _tail(path: Path, count: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(max(file.seek(0, os.SEEK_END) - count, 0))
        return file.read()


def _head(path: Path, count: int) -> bytes:
    with open(path, "rb") as file:
        return file.read(count)


def _npy_complete(path: Path, size: int) -> bool:
    with open(path, "rb") as file:
        header = npy_header(file)
    return size - header.offset == header.nbytes


def _npz_complete(path: Path, size: int) -> bool:
    with zipfile.ZipFile(path) as archive:  # a cut archive has no central directory: BadZipFile
        for member in archive.infolist():
            with archive.open(member) as stream:
                header = npy_header(stream)
            if member.file_size - header.offset != header.nbytes:
                return False
    return True


def _tiff_complete(path: Path, size: int) -> bool:
    import tifffile

    with quiet_decoders(), tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)]
        return max(ends, default=0) <= size


_COMPLETENESS = {
    "PNG": lambda path, size: png_is_complete(np.fromfile(path, dtype=np.uint8)),
    "JPEG": lambda path, size: _head(path, 2) == b"\xff\xd8" and _tail(path, 64).rstrip(b"\0")[-2:] == b"\xff\xd9",
    "GIF": lambda path, size: _tail(path, 1) == b"\x3b",
    "WEBP": lambda path, size: struct.unpack("<4sI4s", _head(path, 12))[1] + 8 <= size,
    "BMP": lambda path, size: struct.unpack("<2sI", _head(path, 6))[1] <= size,
    "TIFF": _tiff_complete,
    "NPY": _npy_complete,
    "NPZ": _npz_complete,
}

