"""The memory budget (`memory`, in bytes) split in one place: every share streaming, pyramids
and their readers take of it is a property of one frozen `Budget`.

>>> budget = Budget(512 * 10**6)
>>> budget.bands, budget.gathering, budget.codecs, budget.segment
(256000000, 128000000, 128000000, 64000000)
>>> budget.output_rows, budget.level_room(3)
(85333333, 32000000)
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MEMORY = 512 * 10**6  # the memory budget of streaming, where none is given
SEGMENT_SHARE = 8  # a TIFF segment decoded whole may take this fraction of the memory budget (it is held
# with its encoded bytes, a copy, and the segments kept for the next read, beside the blocks)


@dataclass(frozen=True)
class Budget:
    """How `memory` bytes are shared: a pyramid's bands take half, gathering whole chunk rows (or
    holding the reduced levels) a quarter, the codecs the last quarter; a streamed pooling sets
    a sixth aside for gathering output chunk rows and as much for the store's copies of them."""

    memory: int = DEFAULT_MEMORY

    @property
    def bands(self) -> int:
        """A pyramid's bands: the input read, its levels reduced (`pyramid.build`)."""
        return self.memory // 2

    @property
    def gathering(self) -> int:
        """A pyramid's levels gathered into whole chunk rows, or held until level 0 is written."""
        return self.memory // 4

    @property
    def codecs(self) -> int:
        """What the store's codecs hold while they encode: the rest of a pyramid's budget."""
        return self.memory - self.bands - self.gathering

    @property
    def chunk_reads(self) -> int:
        """The most one Zarr chunk read (its file and its decoded values at once) may take."""
        return self.memory // 2

    @property
    def segment(self) -> int:
        """The most one TIFF tile or strip may decode to."""
        return self.memory // SEGMENT_SHARE

    @property
    def output_rows(self) -> int:
        """A streamed pooling's output chunk rows gathered (and as much again for the store's copies)."""
        return self.memory // 6

    def pooling(self, direct: bool) -> int:
        """What a streamed pooling's blocks may take: all of it where blocks go straight to the
        store (`direct`), else what gathering output chunk rows leaves."""
        return self.memory - (0 if direct else 2 * self.output_rows)

    def level_room(self, levels: int) -> int:
        """Gathering's share for each of a pyramid's `levels` + 1 levels."""
        return self.gathering // (levels + 1)
