"""glibc's malloc tuned while big data streams through (elsewhere, nothing changes):

- one arena for every thread: the reading, pooling and writing threads (and Zarr's) would each
  keep a heap of their own, and the blocks one frees would not serve the others (measured: a
  fifth more peak memory on a 64 MB budget);
- big blocks from that heap, and freed ones kept there: every band allocates arrays of the same
  sizes again, and pages fresh from the kernel cost it about as much time to clear as the sums
  that fill them (measured: a tenth of a pyramid's CPU time). The peak stays what the bands
  need; only its return to the system waits for the end.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
KEPT = 1 << 30  # blocks up to 1 GiB come from the heap, and up to 1 GiB of free heap is kept


def tune_malloc() -> bool:
    """One arena, big blocks from the heap, freed ones kept; whether glibc took the settings."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    settings = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, KEPT), (M_TRIM_THRESHOLD, KEPT))
    return all([bool(mallopt(option, value)) for option, value in settings])
