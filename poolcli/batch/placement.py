"""Where a batch writes: each input's output (OUT mirrors SRC) and compare figure, their folders
created one level at a time and checked, two inputs claiming one output, `--skip-existing`, and
where the report may go. Each input becomes a `Job`, or at once its record."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .. import io
from ..app.settings import FileResult
from ..errors import PoolError, param
from ..io.remote import is_url
from .discovery import Discovery
from .files import failed_result
from .options import BatchOptions, Job, output_formats
from .paths import is_inside, real_folder, resolved
from .report import check_report_path

if TYPE_CHECKING:
    from ..inspect.gallery import CardPictures


class Placement:
    """The outputs of a run of SRC (resolved: `root`) into `out_dir`. Creating it creates OUT and
    refuses OUT or the compare folder being SRC itself (PoolError, a usage error)."""

    def __init__(self, source: Path, root: Path, out_dir: Path, options: BatchOptions):
        self.source, self.root, self.out_dir, self.options = source, root, out_dir, options
        self.out_root = out_dir if is_url(out_dir) else real_folder(out_dir, param("out_dir"))
        if self.out_root == root:
            raise PoolError(f"{param('out_dir')} {out_dir} is SRC itself; write the outputs to another folder")
        compare = options.compare_dir
        self.compare_root = None if compare is None else real_folder(compare, param("compare_dir"))
        if self.compare_root == root:
            raise PoolError(f"{param('compare_dir')} {compare} is SRC itself; write the figures to another folder")
        self.suffix = output_formats()[options.output_format]

    def trees(self) -> set[Path]:
        """The folders written (resolved): never read as inputs."""
        return {p for p in (self.out_root, self.compare_root) if p is not None}

    def target_for(self, relative: Path) -> Path:
        suffix = self.suffix or relative.suffix
        return self.out_dir / relative.parent / (relative.stem + suffix)

    def compare_for(self, relative: Path) -> Path | None:
        folder = self.options.compare_dir
        return None if folder is None else folder / relative.parent / f"{relative.stem}_compare.png"

    def check_report(self, path: Path, discovery: Discovery) -> None:
        """PoolError unless the report may be written to `path`: a .json or .csv name in an
        existing folder that batch does not read, not there already unless --overwrite."""
        check_report_path(path)
        if discovery.is_read(resolved(path.parent)):
            raise PoolError(f"{param('report')} {path} lies inside SRC {self.source};"
                            f" write it outside SRC or inside OUT")
        if os.path.lexists(path) and not self.options.overwrite:
            raise PoolError(f"{param('report')} {path} exists;"
                            f" pass {param('overwrite')} to replace it, or choose another name")

    def jobs(self, inputs: Iterable[Path], pictures: CardPictures | None = None) -> Iterator[Job | FileResult]:
        """A job per input (numbered in the walk's order; with the gallery's `pictures`), or at once its
        record when it is skipped or cannot be written."""
        folders: dict[Path, str | None] = {}  # output folder -> why it cannot be written, or None
        claimed: dict[Path, Path] = {}  # outputs of the current folder (inputs come a folder's files together)
        for number, relative in enumerate(inputs):
            source, target = self.source / relative, self.target_for(relative)
            if claimed and next(iter(claimed)).parent != target.parent:
                claimed.clear()
            if target in claimed:
                yield failed_result(source, target, f"{source}: its output {target} is also the output of "
                                    f"{claimed[target]}; use {param('output_format')} same or rename one of them")
                continue
            claimed[target] = source
            job = Job(source, target, self.compare_for(relative), number=number, pictures=pictures)
            problem = self._problem(job, folders)
            if problem is not None:
                yield failed_result(source, target, f"{source}: {problem}")
            elif self.options.skip_existing and any(_exists(path) for path in job.outputs()):
                if all(_complete(path) for path in job.outputs()):
                    yield FileResult(str(source), str(target), status="skipped", error="output exists")
                else:  # one missing (a run killed between them), empty or cut short: not done, so done again
                    yield dataclasses.replace(job, replace=True)
            else:
                yield job

    def _problem(self, job: Job, folders: dict[Path, str | None]) -> str | None:
        """Why the job's outputs cannot be written (their folders' problem, each folder asked once), or None."""
        for output, given, real in ((job.target, self.out_dir, self.out_root),
                                    (job.compare, self.options.compare_dir, self.compare_root)):
            if output is not None and given is not None and real is not None and not is_url(output):
                if output.parent not in folders:
                    folders[output.parent] = self._output_folder_problem(output.parent, given, real)
                if folders[output.parent] is not None:
                    return folders[output.parent]
        return None

    def _output_folder_problem(self, folder: Path, given: Path, real: Path) -> str | None:
        """Create `folder` below `given` one level at a time, refusing symlinks that lead out of it
        and, when SRC lies inside OUT, folders inside SRC (their outputs would become inputs)."""
        current = given
        try:
            for part in folder.relative_to(given).parts:
                current = current / part
                if not current.is_dir():
                    current.mkdir(exist_ok=True)
                if not is_inside(resolved(current), real):
                    return f"output folder {current} leads outside {given} through a symlink; remove the link"
        except OSError as error:
            return f"cannot create the output folder {current} ({error.strerror}); check the permissions"
        if is_inside(resolved(folder), self.root) and not is_inside(real, self.root):
            return f"output folder {folder} lies inside SRC {self.source}; choose an output folder outside SRC"
        return None


def _exists(path: Path) -> bool:
    """Whether there is something at `path` (a link, even a broken one; an object)."""
    return path.exists() if is_url(path) else os.path.lexists(path)


def _complete(path: Path) -> bool:
    """Whether the output at `path` is whole (`io.is_complete`); an object always is (its upload
    shows it whole or not at all)."""
    return is_url(path) or io.is_complete(path)
