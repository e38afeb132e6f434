"""What a batch run is asked for and what it counts: `BatchOptions`, `BatchSummary`, job limits."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..app.settings import BigData, FileResult
from ..core import formats
from ..errors import PoolError, param
from ..stream import DEFAULT_MEMORY

if TYPE_CHECKING:
    from ..inspect.gallery import CardPictures


def output_formats() -> dict[str, str | None]:
    """The names `output_format` takes, each with the extension it writes ("same": the input's)."""
    return {"same": None, **formats.written_suffixes()}


def input_suffixes() -> tuple[str, ...]:
    """The extensions batch discovers: every format poolcli reads, and every store kept as one file."""
    from ..stream import file_suffixes

    return tuple(dict.fromkeys(formats.read_suffixes() + file_suffixes()))


REPORT_SUFFIXES = (".json", ".csv")

IN_FLIGHT_PER_WORKER = 2  # one being pooled, one waiting: workers never idle on the parent

STOP_GRACE_SECONDS = 1.0  # after SIGTERM, a worker still alive this long is killed (then swept)

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

JOBS_PER_CORE = 4  # the most worker processes per core --jobs may ask for

PARALLEL_BYTES = 8 << 20  # less input than this is pooled in this process: workers would not pay off


def max_jobs() -> int:
    """The most worker processes a batch starts: JOBS_PER_CORE per core (pooling is CPU-bound;
    a few more than the cores hide file I/O, thousands would only exhaust memory)."""
    return JOBS_PER_CORE * default_jobs()


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass(frozen=True)
class BatchOptions:
    """How to walk SRC and write OUT (validated by `check`)."""

    recursive: bool = True
    patterns: tuple[str, ...] = ()
    output_format: str = "same"
    jobs: int = field(default_factory=default_jobs)
    jobs_given: bool = True  # False: --jobs was not given, so workers start only where they pay off
    skip_existing: bool = False
    overwrite: bool = False
    compare_dir: Path | None = None
    scheduler: str | None = None  # a Dask distributed scheduler's address: the files are pooled there
    memory: int = DEFAULT_MEMORY  # each file's budget: a bigger .npy or TIFF input is pooled block by block

    def big_data(self) -> BigData:
        """How a file too big for `memory` is pooled: as `poolcli pool` pools it."""
        return BigData(memory=self.memory)

    def check(self) -> None:
        """Raise PoolError for a bad option (a usage error).

        >>> BatchOptions(jobs=0).check()
        Traceback (most recent call last):
        ...
        poolcli.errors.PoolError: jobs 0 must be >= 1; use jobs 1 to run in this process
        """
        if self.output_format not in output_formats():
            raise PoolError(f"{param('output_format')} {self.output_format!r} is not known;"
                            f" use one of {', '.join(output_formats())}")
        if self.jobs < 1:
            raise PoolError(f"{param('jobs')} {self.jobs} must be >= 1; use {param('jobs')} 1 to run in this process")
        if self.skip_existing and self.overwrite:
            raise PoolError(f"{param('skip_existing')} and {param('overwrite')} disagree about existing outputs;"
                            f" give only one")
        for pattern in self.patterns:
            if not pattern or pattern.startswith("/"):
                raise PoolError(f"{param('patterns')} {pattern!r} must be a relative pattern"
                                " such as '*.png' or 'raw/*.jpg'")


@dataclass
class BatchSummary:
    """Counts, time and every failure of a run (the records themselves go to the callback)."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    output_bytes: int = 0
    interrupted: bool = False
    stop_signal: int | None = None  # the signal that interrupted the run
    failures: list[FileResult] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed

    def add(self, record: FileResult) -> None:
        if record.status == "done":
            self.done += 1
            self.output_bytes += record.output_bytes
        elif record.status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(record)

    def to_json(self) -> dict:
        counts = asdict(self)
        counts.pop("failures")
        return counts


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    compare: Path | None
    replace: bool = False  # --skip-existing found an output missing, empty or cut: pool it again, replacing the others
    number: int = 0  # the input's number in the walk (its gallery pictures' names)
    pictures: CardPictures | None = None  # --html-report: make the card's pictures from the arrays pooled

    def outputs(self) -> tuple[Path, ...]:
        return (self.target,) if self.compare is None else (self.target, self.compare)


OnResult = Callable[[FileResult, BatchSummary], None]

OnStart = Callable[[int, int], None]

