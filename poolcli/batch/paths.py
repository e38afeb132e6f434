"""Finding inputs: a lazy walk of the source folder, hidden and temporary files left out, outputs never inputs."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from .. import io
from ..io.remote import is_url
from .options import Job


def sweep(job: Job) -> None:
    """Remove what killed writes may have left: poolcli's own `.<name>.poolcli-<random>.tmp` (none a live
    write holds; a user's `*.tmp` stays)."""
    for output in job.outputs():
        if not is_url(output):  # object storage keeps no temporary object: an upload is whole or absent
            io.sweep_temporaries(output, min_age=0)


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

