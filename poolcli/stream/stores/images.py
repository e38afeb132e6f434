"""Images no store streams (PNG, JPEG, 16-bit PNG, GIF, BMP, WebP...) as a source: decoded
whole by `io.load` (its checks from the header first), held in memory, then read block by block
like any other source, so that `pyramid` takes every image poolcli reads. No sink: such outputs
are written by `io.save`, never streamed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ... import io
from ...errors import InputError, param
from ..sources import Source


def reads(path: Path) -> bool:
    """Whether `path` names an image format `io.load` reads (by its suffix)."""
    from ...core import formats

    record = formats.by_suffix(path.suffix.lower())
    return path.is_file() and record is not None and record.kind == "image"


@contextlib.contextmanager
def open_source(path: Path, dataset: str | None = None) -> Iterator[Source]:
    """The image at `path`, decoded by `io.load` (within its decompression-bomb guard) and held in
    memory; `Source.check_memory` refuses it where it does not fit the memory budget."""
    if dataset is not None:
        raise InputError(f"{path}: an image holds one array, no dataset {dataset!r}; drop the dataset")
    loaded = io.load(path)
    array = loaded.array
    yield HeldImage(path, array, "image", loaded.format, tuple(array.shape), calibration=loaded.calibration)


class HeldImage(Source):
    """A decoded image held in memory as a source."""

    def check_memory(self, memory: int) -> None:
        """Refuse an image that takes more than `memory` (with the work of its reads, twice its bytes)."""
        if 2 * self.nbytes > memory:
            raise InputError(f"{self.path}: decodes to {self.nbytes:,} bytes, more than {param('memory')}"
                             f" ({memory:,} bytes) holds with the work; pass {param('memory')}"
                             f" {-(-2 * self.nbytes // 10**6)}MB or more")
