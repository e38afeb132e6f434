"""What a batch pools: SRC walked lazily, depth first, sorted by name in each folder; the files
whose suffix poolcli reads (or that match `patterns`), never hidden ones, never OUT's."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import PoolError
from .options import BatchOptions, input_suffixes
from .paths import is_inside, resolved, right_match


def source_root(source: Path) -> Path:
    """SRC resolved, once it is known to be a folder (PoolError, a usage error, otherwise)."""
    if not source.is_dir():
        what = "does not exist" if not source.exists() else "is not a folder"
        raise PoolError(f"SRC {source} {what}; give the folder of inputs")
    return resolved(source)


class Discovery:
    """The inputs under `source` (resolved: `root`), skipping the folders in `excluded` (OUT and
    the compare folder where they lie inside SRC)."""

    def __init__(self, source: Path, root: Path, excluded: Iterable[Path], options: BatchOptions):
        self.source, self.root, self.options = source, root, options
        self.excluded = set(excluded)
        self.suffixes = input_suffixes()  # every format's, as the table holds them when the run starts

    def inputs(self) -> Iterator[Path]:
        """The inputs' paths relative to SRC, lazily, depth first, sorted by name in each folder."""
        folders = [Path()]
        while folders:
            relative = folders.pop()
            try:
                with os.scandir(self.source / relative) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except OSError:
                continue  # a folder that vanished or cannot be read: nothing to pool there
            subfolders = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                path = relative / entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if resolved(entry.path) not in self.excluded:
                            subfolders.append(path)
                        continue
                    found = self._is_input(entry, path)
                except OSError:  # it vanished or cannot be examined: not an input
                    continue
                if found:
                    yield path
            if self.options.recursive:
                folders.extend(reversed(subfolders))

    def is_read(self, folder: Path) -> bool:
        """Whether the walk reads `folder` (resolved): inside SRC and in none of the excluded trees."""
        return is_inside(folder, self.root) and not any(is_inside(folder, p) for p in self.excluded)

    def _is_input(self, entry: os.DirEntry, relative: Path) -> bool:
        if self.options.patterns:
            text = relative.as_posix().lower()
            if not any(right_match(text, pattern.lower()) for pattern in self.options.patterns):
                return False
        elif not entry.name.lower().endswith(self.suffixes):
            return False
        if not entry.is_symlink():
            return entry.is_file(follow_symlinks=False)
        real = resolved(entry.path)  # a link counts only when it lands on a file inside SRC, not in OUT
        return real.is_file() and self.is_read(real)


def input_bytes(inputs: Iterable[Path], source: Path, limit: int) -> int:
    """The inputs' total size, counted up to `limit` (a stat per file, stopping there)."""
    total = 0
    for relative in inputs:
        with contextlib.suppress(OSError):
            total += (source / relative).stat().st_size
        if total >= limit:
            break
    return total
