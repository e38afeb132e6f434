"""What a batch pools: SRC walked lazily, depth first, sorted by name in each folder; the files
whose suffix poolcli reads (or that match `patterns`), never hidden ones, never OUT's."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import cast

from ..errors import PoolError
from ..io import remote
from ..io.remote import Url, is_url
from .options import BatchOptions, input_suffixes
from .paths import is_inside, resolved, right_match


def source_root(source: Path) -> Path:
    """SRC resolved, once it is known to be a folder or a prefix in object storage (PoolError, a
    usage error, otherwise)."""
    if not source.is_dir():
        what = "does not exist" if not source.exists() else "is not a folder"
        raise PoolError(f"SRC {source} {what}; give the folder of inputs")
    return source if is_url(source) else resolved(source)


class Discovery:
    """The inputs under `source` (resolved: `root`), skipping the folders in `excluded` (OUT and
    the compare folder where they lie inside SRC)."""

    def __init__(self, source: Path, root: Path, excluded: Iterable[Path], options: BatchOptions):
        self.source, self.root, self.options = source, root, options
        self.excluded = set(excluded)
        self.suffixes = input_suffixes()  # every format's, as the table holds them when the run starts

    def inputs(self) -> Iterator[Path]:
        """The inputs' paths relative to SRC, lazily, depth first, sorted by name in each folder
        (a prefix in object storage: its keys, listed page by page, in name order)."""
        if is_url(self.source):
            yield from self._objects()
            return
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

    def _objects(self) -> Iterator[Path]:
        """The inputs under the prefix SRC: the keys whose name (and every folder's) is not
        hidden, outside OUT and the compare prefix, whose suffix or `patterns` match."""
        excluded = tuple(f"{folder}/" for folder in self.excluded)
        for url in remote.objects(cast(Url, self.source), recursive=self.options.recursive):
            relative = PurePosixPath(str(url)[len(str(self.source)) + 1:])
            if any(part.startswith(".") for part in relative.parts) or f"{url}/".startswith(excluded):
                continue
            if self._matches(relative):
                yield Path(relative)

    def _matches(self, relative: PurePosixPath) -> bool:
        """Whether `relative` is an input by its name: `patterns`, else the suffixes poolcli reads."""
        if self.options.patterns:
            text = relative.as_posix().lower()
            return any(right_match(text, pattern.lower()) for pattern in self.options.patterns)
        return relative.name.lower().endswith(self.suffixes)

    def is_read(self, folder: Path) -> bool:
        """Whether the walk reads `folder` (resolved): inside SRC and in none of the excluded trees."""
        return is_inside(folder, self.root) and not any(is_inside(folder, p) for p in self.excluded)

    def _is_input(self, entry: os.DirEntry, relative: Path) -> bool:
        if not self._matches(PurePosixPath(relative.as_posix())):
            return False
        if not entry.is_symlink():
            return entry.is_file(follow_symlinks=False)
        real = resolved(entry.path)  # a link counts only when it lands on a file inside SRC, not in OUT
        return real.is_file() and self.is_read(real)


def input_bytes(inputs: Iterable[Path], source: Path, limit: int) -> int:
    """The inputs' total size, counted up to `limit` (a stat per file, stopping there)."""
    if is_url(source):
        return limit  # objects: fetched over the network, worth worker processes however small
    total = 0
    for relative in inputs:
        with contextlib.suppress(OSError):
            total += (source / relative).stat().st_size
        if total >= limit:
            break
    return total
