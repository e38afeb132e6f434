"""One TIFF page read segment by segment (its tiles or strips): tifffile reads the bytes of the
segments a read touches (`FileHandle.read_segments`) and decodes them (`TiffPage.decode`: every
compression, predictor and bit depth it knows), and they are copied into place. No whole page
is ever decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .chunkfiles import full_index

# The stored axes of a series read this way, as positions in tifffile's normalised page shape
# (separate samples, depth, length, width, contiguous samples).
LAYOUTS = {"YX": (2, 3), "YXS": (2, 3, 4), "SYX": (0, 2, 3)}


@dataclass(frozen=True)
class TiffSegments:
    """A single-page TIFF series of axes YX, YXS or SYX, sliced into NumPy arrays."""

    handle: Any  # tifffile.FileHandle, open while the TiffFile is
    page: Any  # tifffile.TiffPage
    axes: str

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(self.page.shaped[a]) for a in LAYOUTS[self.axes])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.page.dtype)

    @property
    def segment(self) -> tuple[int, int]:
        """A segment's rows and columns (strips: the rows per strip, the whole width)."""
        page = self.page
        if page.is_tiled:
            return int(page.tilelength), int(page.tilewidth)
        rows = int(page.rowsperstrip) or int(page.imagelength)
        return min(rows, int(page.imagelength)), int(page.imagewidth)

    @property
    def chunks(self) -> tuple[int, ...]:
        rows, columns = self.segment
        sizes = {2: rows, 3: columns, 0: 1, 4: int(self.page.shaped[4])}
        return tuple(sizes[a] for a in LAYOUTS[self.axes])

    def __getitem__(self, index: tuple) -> np.ndarray:
        shaped = self.page.shaped
        wanted = dict(zip(LAYOUTS[self.axes], full_index(index, len(self.axes)), strict=True))
        planes = range(*wanted.get(0, slice(None)).indices(shaped[0]))
        rows = range(*wanted[2].indices(shaped[2]))
        columns = range(*wanted[3].indices(shaped[3]))
        if any(r.step != 1 for r in (planes, rows, columns)):
            raise ValueError("TIFF segments are read with unit steps only")
        out = np.empty((len(planes), len(rows), len(columns), shaped[4]), dtype=self.dtype)
        if len(rows) and len(columns):
            self._fill(out, planes, rows, columns)
        picked = out[..., wanted.get(4, slice(None))]
        return picked[0, ..., 0] if self.axes == "YX" else (picked[0] if self.axes == "YXS" else picked[..., 0])

    def _fill(self, out: np.ndarray, planes: range, rows: range, columns: range) -> None:
        """Decode the segments over `rows` x `columns` of `planes` into `out` (planes, rows, columns, samples)."""
        height, width = self.segment
        across = -(-int(self.page.shaped[3]) // width)
        down = -(-int(self.page.shaped[2]) // height)
        indices = [(plane * down + y) * across + x for plane in planes
                   for y in range(rows.start // height, (rows.stop - 1) // height + 1)
                   for x in range(columns.start // width, (columns.stop - 1) // width + 1)]
        offsets = [self.page.dataoffsets[i] for i in indices]
        counts = [self.page.databytecounts[i] for i in indices]
        decode = self.page.decode
        for data, index in self.handle.read_segments(offsets, counts, indices):
            segment, (plane, _, top, left, _), shape = decode(data, index, jpegtables=self.page.jpegtables)
            segment = np.zeros(shape, self.dtype)[0] if segment is None else segment[0]  # (length, width, samples);
            # an empty segment (no bytes in the file) holds zeros
            y0, y1 = max(top, rows.start), min(top + segment.shape[0], rows.stop)
            x0, x1 = max(left, columns.start), min(left + segment.shape[1], columns.stop)
            if y0 < y1 and x0 < x1:
                out[plane - planes.start, y0 - rows.start:y1 - rows.start, x0 - columns.start:x1 - columns.start] = \
                    segment[y0 - top:y1 - top, x0 - left:x1 - left]
