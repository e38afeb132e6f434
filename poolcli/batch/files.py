"""One file of a batch, as `poolcli pool` does it; every failure becomes a failed record."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from .. import io, stream
from ..app.memory import pool_file
from ..app.settings import FileResult, PoolSettings
from ..app.streamed import streams
from ..errors import PoolError, param
from ..io import remote
from ..io.remote import is_url
from .options import BatchOptions, Job


def process_file(job: Job, settings: PoolSettings, options: BatchOptions) -> FileResult:
    """Load, pool and save one input as `poolcli pool` does; every failure becomes a failed record."""
    started = time.perf_counter()
    source, target = job.source, job.target
    big = options.big_data()
    made: list[dict | None] = []  # the card (--html-report), made while pool_file holds the arrays

    def from_arrays(loaded: io.Loaded, results: dict[str, np.ndarray], winners: dict[str, np.ndarray]) -> None:
        made.append(_pictures(job, settings, options, (loaded, results, winners)))

    try:
        if streams(source, target, big):
            stream.tune_malloc()  # as `poolcli pool` does before streaming: freed blocks are kept, not returned
        wanted = job.pictures is not None or job.compare is not None
        result = pool_file(source, target, settings, overwrite=options.overwrite or job.replace, inputs=(source,),
                           channel_order="bgr", durable=False, big=big,  # synced all at once when the batch ends
                           on_arrays=from_arrays if wanted else None,
                           winners=job.pictures is not None and job.pictures.inspect)
        if wanted and not made:  # pooled block by block: the pictures read the files
            made.append(_pictures(job, settings, options))
        card = made[0] if made else None
        size = remote.size(target) if is_url(target) else target.stat().st_size
    except PoolError as error:  # the message keeps its parameters marked: the caller names them (errors.param)
        return failed_result(source, target, error.template, started)
    except MemoryError:
        message = f"{source}: not enough memory to pool it; use fewer {param('jobs')}"
        return failed_result(source, target, message, started)
    except Exception as error:  # a decoder's or a bug's surprise: still only this file fails
        reason = " ".join(str(error).split()) or "no detail"
        return failed_result(source, target, f"{source}: unexpected {type(error).__name__}: {reason}", started)
    # the parameters are the report header's, once: the record stays small on its way back
    return dataclasses.replace(result, seconds=round(time.perf_counter() - started, 6), output_bytes=size,
                               parameters={}, card=card)


def _pictures(job: Job, settings: PoolSettings, options: BatchOptions, held: tuple | None = None) -> dict | None:
    """The compare figure (--compare-dir) and the gallery card (--html-report) of `job`, made from `held`
    (the input as decoded, the results as pooled, their winners: no decode or pooling again) or else
    from the files."""
    if job.compare is not None:
        from ..app.figures import write_side_by_side

        write_side_by_side(job.source, job.target, job.compare, settings, overwrite=options.overwrite or job.replace,
                           loaded=None if held is None else held[0], durable=False)  # synced when the batch ends
    if job.pictures is None:
        return None
    from ..inspect.gallery import card_pictures

    return card_pictures(job.pictures, job.number, job.source, job.target, settings, held)


def failed_result(source: Path, target: Path | None, message: str, started: float | None = None) -> FileResult:
    seconds = 0.0 if started is None else round(time.perf_counter() - started, 6)
    return FileResult(str(source), None if target is None else str(target), status="failed", error=message,
                       seconds=seconds)

