"""One TIFF page read segment by segment (its tiles or strips): tifffile reads the bytes of the
segments a read touches (`FileHandle.read_segments`) and decodes them (`TiffPage.decode`: every
compression, predictor and bit depth it knows), and they are copied into place. No whole page
is ever decoded.

The segment table is checked first, as the in-memory reader checks it (`io.tiff.check_segments`):
every segment inside the file, holding no more bytes than its compression can take for its
size. Uncompressed segments are read in pieces (the rows a read needs, straight from the file);
a compressed one is decoded whole, with tifffile's bound of its exact size, once: the segments a
read leaves half used are kept for the next read, down the page. `check_memory` refuses, from
the sizes alone, a page whose one segment would not fit the memory budget; an image codec's
segment (JPEG, PNG, WebP, JPEG 2000) is decoded only once its own header is checked against the
segment's size (`Segments.check_header`). Any failure is one
InputError naming the file, the page and the segment.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, param
from ..io.chatter import quiet_logs
from ..io.formats import one_line
from ..io.tiff import Segments
from .budget import SEGMENT_SHARE, Budget
from .chunkfiles import full_index

# The stored axes of a series read this way, as positions in tifffile's normalised page shape
# (separate samples, depth, length, width, contiguous samples).
LAYOUTS = {"YX": (2, 3), "YXS": (2, 3, 4), "SYX": (0, 2, 3)}



@dataclass
class TiffSegments:
    """A single-page TIFF series of axes YX, YXS or SYX, sliced into NumPy arrays."""

    path: Path
    handle: Any  # tifffile.FileHandle, open while the TiffFile is
    page: Any  # tifffile.TiffPage
    axes: str
    table: Segments  # the page's segments, checked against the file
    room: int  # the bytes of decoded segments a read may keep for the next one
    kept: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # segment index -> decoded
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(self.page.shaped[a]) for a in LAYOUTS[self.axes])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.page.dtype)

    @property
    def segment(self) -> tuple[int, int]:
        """A segment's rows and columns (strips: the rows per strip, the whole width)."""
        return min(self.table.rows, int(self.page.imagelength)), self.table.columns

    @property
    def grid(self) -> tuple[int, int]:
        """Segments down and across a plane."""
        (height, width), shaped = self.segment, self.page.shaped
        return -(-int(shaped[2]) // height), -(-int(shaped[3]) // width)

    @property
    def chunks(self) -> tuple[int, ...]:
        rows, columns = self.segment
        sizes = {2: rows, 3: columns, 0: 1, 4: int(self.page.shaped[4])}
        return tuple(sizes[a] for a in LAYOUTS[self.axes])

    @property
    def raw(self) -> bool:
        """Whether segments are stored as they decode (no compression, predictor or bit order):
        read in pieces, never whole."""
        page = self.page
        return (page.compression == 1 and page.predictor == 1 and page.fillorder == 1
                and int(page.bitspersample) == 8 * self.dtype.itemsize and page.sampleformat != 5)

    def check_memory(self, memory: int) -> None:
        """Refuse, from its sizes, a page whose one segment (decoded whole) would not fit `memory`;
        keep what reads hold for the next one within it."""
        most = Budget(memory).segment
        if not self.raw and self.table.decoded > most:
            kind, need = self.table.kind, self.table.decoded * SEGMENT_SHARE
            rows, columns = self.segment
            raise InputError(
                f"{self.path}: page {self.page.index}: each of its {kind}s ({columns}x{rows}, compressed) decodes"
                f" to {self.table.decoded:,} bytes, more than {param('memory')} {_megabytes(memory)} lets one {kind}"
                f" take (an eighth); pass {param('memory')} {_megabytes(need)} or more, or re-save it with smaller"
                f" {kind}s")
        self.room = most

    def __getitem__(self, index: tuple) -> np.ndarray:
        shaped = self.page.shaped
        wanted = dict(zip(LAYOUTS[self.axes], full_index(index, len(self.axes)), strict=True))
        planes = range(*wanted.get(0, slice(None)).indices(shaped[0]))
        rows = range(*wanted[2].indices(shaped[2]))
        columns = range(*wanted[3].indices(shaped[3]))
        if any(r.step != 1 for r in (planes, rows, columns)):
            raise ValueError("TIFF segments are read with unit steps only")
        out = np.empty((len(planes), len(rows), len(columns), shaped[4]), dtype=self.dtype)
        if len(rows) and len(columns) and len(planes):
            with self.lock, quiet_logs():
                self._fill(out, planes, rows, columns)
        picked = out[..., wanted.get(4, slice(None))]
        return picked[0, ..., 0] if self.axes == "YX" else (picked[0] if self.axes == "YXS" else picked[..., 0])

    def _fill(self, out: np.ndarray, planes: range, rows: range, columns: range) -> None:
        """Copy the segments over `rows` x `columns` of `planes` into `out` (planes, rows, columns, samples)."""
        height, width = self.segment
        down, across = self.grid
        first, last = rows.start // height, (rows.stop - 1) // height
        indices = [(plane * down + y) * across + x for plane in planes for y in range(first, last + 1)
                   for x in range(columns.start // width, (columns.stop - 1) // width + 1)]
        pieces = self._raw_pieces(indices, rows) if self.raw else self._decoded(indices, last)
        for index, top, segment in pieces:
            plane, left = index // (down * across), index % across * width
            y0, y1 = max(top, rows.start), min(top + segment.shape[0], rows.stop)
            x0, x1 = max(left, columns.start), min(left + segment.shape[1], columns.stop)
            if y0 < y1 and x0 < x1:
                out[plane - planes.start, y0 - rows.start:y1 - rows.start, x0 - columns.start:x1 - columns.start] = \
                    segment[y0 - top:y1 - top, x0 - left:x1 - left]

    def _raw_pieces(self, indices: list[int], rows: range):
        """(index, top row, rows x columns x samples) of the rows of uncompressed segments that
        `rows` covers, read straight from the file (an empty segment: zeros)."""
        (height, width), (down, across) = self.segment, self.grid
        stored = np.dtype(self.page.parent.byteorder + self.dtype.char)
        samples = int(self.page.shaped[4])
        for index in indices:
            top = index // across % down * height
            start, stop = max(rows.start - top, 0), min(rows.stop - top, self.table.stored(self.page, index)
                                                        // self.table.row_bytes)
            offset, count = int(self.page.dataoffsets[index]), int(self.page.databytecounts[index])
            if count == 0:
                yield index, top + start, np.zeros((stop - start, width, samples), self.dtype)
                continue
            with self.handle.lock:
                self.handle.seek(offset + start * self.table.row_bytes)
                data = self.handle.read((stop - start) * self.table.row_bytes)
            if len(data) != (stop - start) * self.table.row_bytes:
                raise InputError(f"{self._where(index)} ends early: the file was cut while it was read; check it")
            yield index, top + start, np.frombuffer(data, stored).reshape(stop - start, width, samples)

    def _decoded(self, indices: list[int], last: int):
        """(index, top row, rows x columns x samples) of whole decoded segments: those kept from the
        last read, the others read and decoded now (one buffer of encoded bytes at a time); those
        of the read's last segment row are kept for the next read, as far as there is room."""
        page, kept, room = self.page, {}, self.room
        height, (down, across) = self.segment[0], self.grid
        fresh = [i for i in indices if i not in self.kept]
        read = self.handle.read_segments([page.dataoffsets[i] for i in fresh], [page.databytecounts[i] for i in fresh],
                                         fresh, buffersize=max(room, 1 << 20))
        old = ((self.kept[i], i) for i in indices if i in self.kept)
        for segment, index in itertools.chain(old, ((self._decode(data, i), i) for data, i in read)):
            y = index // across % down
            if y == last and segment.nbytes <= room:
                kept[index], room = segment, room - segment.nbytes
            yield index, y * height, segment
        self.kept = kept

    def _decode(self, data: bytes | None, index: int) -> np.ndarray:
        """Segment `index` decoded by tifffile (rows x columns x samples); an empty one is zeros."""
        if data is None:
            rows = self.table.stored(self.page, index) // self.table.row_bytes
            return np.zeros((rows, self.segment[1], int(self.page.shaped[4])), self.dtype)
        self.table.check_header(self.path, self.page, index, data)
        try:
            segment, _, _ = self.page.decode(data, index, jpegtables=self.page.jpegtables)
        except Exception as error:  # tifffile and imagecodecs raise many kinds for corrupt data
            raise InputError(f"{self._where(index)} cannot be decoded ({one_line(error)}); the file is corrupt;"
                             " re-export it") from None
        return segment[0]

    def _where(self, index: int) -> str:
        return f"{self.path}: page {self.page.index}: {self.table.kind} {index}"


def _megabytes(count: int) -> str:
    """A size as --memory takes it, rounded up: 8,388,608 bytes -> '9MB'."""
    return f"{-(-count // 10**6)}MB"
