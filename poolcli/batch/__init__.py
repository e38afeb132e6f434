"""Pool every file of a folder tree into a mirror of that tree, in parallel. Nothing here prints.

`Batch(source, out_dir, settings, options).run(on_result=...)` finds the inputs lazily,
keeps at most two files per worker in flight, and reports each file's `FileResult`
through the callback as it finishes. One bad file never stops the batch: every failure,
a decoder that kills its worker process included, becomes a record with its reason.
Ctrl-C and SIGTERM stop it within two seconds, leaving no partial or temporary file;
`run` then returns the summary so far, marked `interrupted`.

What is an input: files under SRC (recursively unless `recursive=False`) with a suffix
poolcli reads, or matching one of the `patterns` (case-insensitive `fnmatch` patterns
anchored at the right of the relative path: `*.png` at any depth, `raw/*.jpg` in any
folder named raw). Hidden files and folders (a leading dot) are skipped, symlinked
folders are never entered, a symlinked file counts only when it resolves inside SRC,
and OUT (and the compare folder) are never read as inputs when they lie inside SRC.

Outputs: OUT/<relative path> with the input's stem and the suffix of `output_format`.
Each file goes through `app.memory.pool_file`, as in `poolcli pool`: the same decoders,
engine and encoders (io/ decides them all). Batch only asks for `channel_order="bgr"`,
so plain colour JPEG and PNG stay in OpenCV's channel order from decoder to encoder.
"""

from __future__ import annotations

from .files import process_file
from .options import (
    IN_FLIGHT_PER_WORKER,
    JOBS_PER_CORE,
    PARALLEL_BYTES,
    REPORT_SUFFIXES,
    STOP_GRACE_SECONDS,
    BatchOptions,
    BatchSummary,
    OnResult,
    OnStart,
    default_jobs,
    input_suffixes,
    max_jobs,
    output_formats,
)
from .report import Report, check_report_path
from .run import Batch, open_report

__all__ = [
    "Batch",
    "BatchOptions",
    "BatchSummary",
    "IN_FLIGHT_PER_WORKER",
    "JOBS_PER_CORE",
    "OnResult",
    "OnStart",
    "PARALLEL_BYTES",
    "REPORT_SUFFIXES",
    "Report",
    "STOP_GRACE_SECONDS",
    "check_report_path",
    "default_jobs",
    "input_suffixes",
    "max_jobs",
    "output_formats",
    "open_report",
    "process_file",
]
