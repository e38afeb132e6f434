"""Finding inputs: a lazy walk of the source folder, hidden and temporary files left out, outputs never inputs."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
from pathlib import Path

from .. import io
from .options import Job

RANDOM_NAME = re.compile(r"[a-z0-9_]{8}")  # the part tempfile.mkstemp adds to io.atomic_output's names


def sweep(job: Job) -> None:
    """Remove what a killed write may have left: io.atomic_output's `.<name>.<random>.tmp`, and
    nothing else (a user's own `notes.tmp` or `.<name>.tmp` stays)."""
    for output in job.outputs():
        prefix = io.temporary_prefix(output)
        with contextlib.suppress(OSError), os.scandir(output.parent) as scan:
            for entry in scan:
                if is_temporary_of(entry.name, prefix):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def is_temporary_of(name: str, prefix: str) -> bool:
    """Whether `name` is one of the temporary files that begin with `prefix` (`io.temporary_prefix`).

    >>> [is_temporary_of(n, ".a.png.") for n in (".a.png.k3_x9q0z.tmp", ".a.png.tmp", ".a.png.mine.tmp")]
    [True, False, False]
    """
    middle = name[len(prefix):-len(io.TEMPORARY_SUFFIX)]
    return name.startswith(prefix) and name.endswith(io.TEMPORARY_SUFFIX) and bool(RANDOM_NAME.fullmatch(middle))


def right_match(relative: str, pattern: str) -> bool:
    """fnmatch `pattern` against the last as many parts of `relative` as it has.

    >>> right_match("2024/raw/a.jpg", "*.jpg"), right_match("2024/raw/a.jpg", "raw/*"), right_match("a.jpg", "raw/*")
    (True, True, False)
    """
    parts, wanted = relative.split("/"), pattern.strip("/").split("/")
    return len(wanted) <= len(parts) and all(
        fnmatch.fnmatchcase(part, want) for part, want in zip(parts[-len(wanted):], wanted))


def resolved(path: str | os.PathLike) -> Path:
    """The path with every symlink resolved; never raises, not even for a symlink loop."""
    return Path(os.path.realpath(path))


def real_folder(folder: Path, option: str) -> Path:
    """`folder`, created if missing (io.make_folder), with every symlink resolved."""
    return resolved(io.make_folder(folder, option))


def is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents

