"""Is an output complete? Each format's end marker or length, so `--skip-existing` redoes cut files."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from ..core import formats
from .arrays import npy_header
from .chatter import quiet_decoders
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
        record = formats.by_suffix(path.suffix)
        if record is None or record.complete is None:
            return True
        return bool(formats.resolve(record.complete)(path, size))
    except Exception:  # whatever a broken file makes a parser raise, it is not complete
        return False


def _tail(path: Path, count: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(max(file.seek(0, os.SEEK_END) - count, 0))
        return file.read()


def _head(path: Path, count: int) -> bytes:
    with open(path, "rb") as file:
        return file.read(count)


def npy_complete(path: Path, size: int) -> bool:
    with open(path, "rb") as file:
        header = npy_header(file)
    return size - header.offset == header.nbytes


def npz_complete(path: Path, size: int) -> bool:
    with zipfile.ZipFile(path) as archive:  # a cut archive has no central directory: BadZipFile
        for member in archive.infolist():
            with archive.open(member) as stream:
                header = npy_header(stream)
            if member.file_size - header.offset != header.nbytes:
                return False
    return True


def tiff_complete(path: Path, size: int) -> bool:
    import tifffile

    with quiet_decoders(), tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)]
        return max(ends, default=0) <= size


def png_complete(path: Path, size: int) -> bool:
    return png_is_complete(np.fromfile(path, dtype=np.uint8))


def jpeg_complete(path: Path, size: int) -> bool:
    return _head(path, 2) == b"\xff\xd8" and _tail(path, 64).rstrip(b"\0")[-2:] == b"\xff\xd9"


def gif_complete(path: Path, size: int) -> bool:
    return _tail(path, 1) == b"\x3b"


def webp_complete(path: Path, size: int) -> bool:
    return struct.unpack("<4sI4s", _head(path, 12))[1] + 8 <= size


def bmp_complete(path: Path, size: int) -> bool:
    return struct.unpack("<2sI", _head(path, 6))[1] <= size
