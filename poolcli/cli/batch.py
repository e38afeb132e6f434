"""`poolcli batch`: pool a folder tree into a mirrored tree, in parallel. Parse, call, print.

The work (finding files, worker processes, signals, the report's format) is in the batch package (poolcli/batch/);
batch_display.py shows the progress and the summary; this module maps the exit code: 0
every file done or skipped, 1 any file failed, 2 bad usage, 128 + N stopped by signal N
(130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). Nothing heavy is imported before the command runs.
"""

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..core.choices import JPEG_QUALITY
from ..core.formats import written_suffixes
from ..errors import PoolError
from .app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Location,
    PlainCommand,
    QualityOption,
    StripOption,
    UsageProblem,
    app,
    path_or_url,
    refuse_size_in_inspector,
    with_pool_options,
)
from .bigdata import (
    DEFAULT_MEMORY,
    MemoryOption,
    SchedulerOption,
    StorageOption,
    checked_scheduler,
    memory_budget,
    with_storage_options,
)
from .terminal import FLAGS, report_failure, report_warning

if TYPE_CHECKING:
    from ..app.settings import FileResult, PoolSettings
    from ..batch import Batch, BatchSummary
    from ..inspect.gallery import Gallery

@app.command("batch", cls=PlainCommand)
@with_pool_options
def batch_command(
    source: Annotated[Location, typer.Argument(help="Folder of inputs (images, .npy, .npz), or an s3:// or gs:// "
                                               "prefix.", metavar="SRC", show_default=False, parser=path_or_url)],
    out_dir: Annotated[Location, typer.Option(
        "-d", "--out-dir", help="Output folder (created if missing), or an s3:// or gs:// prefix: mirrors SRC's "
        "tree, same file names.", show_default=False, parser=path_or_url)],
    recursive: Annotated[bool, typer.Option(
        "--recursive/--no-recursive", help="Also pool the files in SRC's subfolders.")] = True,
    glob: Annotated[list[str] | None, typer.Option(
        "--glob", metavar="PATTERN", show_default=False,
        help="Only files matching PATTERN (repeatable; case-insensitive; '*.png' at any depth, 'raw/*.jpg' "
             "in folders named raw). Default: every file with a suffix poolcli reads.")] = None,
    jobs: Annotated[int | None, typer.Option(
        "-j", "--jobs", help="Worker processes (default: the number of cores; 1 runs in this process).",
        show_default=False)] = None,
    skip_existing: Annotated[bool, typer.Option(
        "--skip-existing", help="Skip inputs whose output exists (resume an interrupted batch).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    report: Annotated[Path | None, typer.Option(
        "--report", metavar="FILE.json|FILE.csv", help="Write one record per file (status, shapes, time, "
        "bytes, error) to this JSON or CSV file.", show_default=False)] = None,
    compare_dir: Annotated[Path | None, typer.Option(
        "--compare-dir", metavar="DIR", help="Also write each input and its output side by side to "
        "DIR/PATH/STEM_compare.png (PATH: the input's folder under SRC).", show_default=False)] = None,
    output_format: Annotated[str, typer.Option(
        "-f", "--format", help=f"Output format: same|{'|'.join(written_suffixes())} (same: the input's).")] = "same",
    quality: QualityOption = JPEG_QUALITY,
    strip: StripOption = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", help="No progress and no summary: only failures, one line each on stderr.")] = False,
    scheduler: SchedulerOption = None,
    memory: MemoryOption = DEFAULT_MEMORY,
    html_report: Annotated[Path | None, typer.Option(
        "--html-report", metavar="FILE.html", help="Write a gallery of the run (thumbnails, shapes, time, failures) "
        "to this page; its pictures go to FILE_files/.", show_default=False)] = None,
    inspect: Annotated[bool, typer.Option(
        "--inspect", help="With --html-report: also write an inspector page per file, linked from the gallery.")
    ] = False,
    storage_option: StorageOption = None,
    *,
    settings: "PoolSettings",
):
    """Pool every file under SRC into OUT, in parallel; one bad file never stops the batch."""
    from ..batch import Batch, BatchOptions

    settings = settings.but(quality=quality, strip=strip)
    if html_report is not None:
        refuse_size_in_inspector(settings, "--html-report")
    located = with_storage_options({"source": source, "out_dir": out_dir}, storage_option)
    source, out_dir = located["source"], located["out_dir"]
    options = BatchOptions(recursive=recursive, patterns=tuple(glob or ()), output_format=output_format.lower(),
                           jobs=_capped_jobs(jobs), jobs_given=jobs is not None, skip_existing=skip_existing,
                           overwrite=overwrite, compare_dir=compare_dir, scheduler=checked_scheduler(scheduler),
                           memory=memory_budget(memory))
    try:
        runner = Batch(source, out_dir, settings, options)
        if report is not None:
            runner.check_report(report)
        gallery = _gallery(runner, html_report, inspect, overwrite)
        runner.pictures = None if gallery is None else gallery.pictures
    except PoolError as error:
        raise UsageProblem(error.template) from None
    if options.scheduler is not None:
        runner.connect_cluster()  # a scheduler that does not answer, or workers that cannot see SRC: exit 1
    summary, report_error = _run(runner, report, quiet, gallery)
    return _finish(summary, report_error, source, quiet)


def _finish(summary: "BatchSummary", report_error: PoolError | None, source: Path, quiet: bool) -> int:
    """The summary table, the warnings and errors of the run as a whole, and its exit code."""
    if summary.total == 0 and not summary.interrupted:
        report_warning(f"no inputs under {source}; check --glob and --recursive")
    if not quiet:
        from .batch_display import print_summary

        print_summary(summary)
    if report_error is not None:
        report_failure(report_error.template)
    if summary.interrupted:
        report_failure(f"interrupted after {summary.finished} of {summary.total} files; no partial output was "
                       "left behind; rerun with --skip-existing to resume")
        return 128 + summary.stop_signal if summary.stop_signal else EXIT_INTERRUPTED
    return EXIT_FAILED if summary.failed or report_error is not None else EXIT_OK


def _gallery(runner: "Batch", path: Path | None, inspect: bool, overwrite: bool) -> "Gallery | None":
    """The gallery of --html-report (checked before the run), or None."""
    if path is None:
        if inspect:
            raise UsageProblem("--inspect writes pages linked from the gallery; add --html-report FILE.html")
        return None
    from ..inspect.gallery import Gallery, check_gallery

    compare = runner.options.compare_dir
    check_gallery(path, runner.source, runner.out_dir, overwrite=overwrite, trees=() if compare is None else (compare,))
    return Gallery(path, runner.source, runner.settings, inspect=inspect, overwrite=overwrite, names=FLAGS)


def _run(runner: "Batch", report: Path | None, quiet: bool,
         gallery: "Gallery | None" = None) -> "tuple[BatchSummary, PoolError | None]":
    """Run the batch with its progress display, each record into the report as it comes; the
    summary, and the error that kept the report from being written (the run itself is complete)."""
    from ..batch import open_report
    from .batch_display import Display

    display = Display(quiet)
    try:
        with contextlib.ExitStack() as stack:
            written = stack.enter_context(open_report(report, runner, FLAGS)) if report is not None else None

            def on_result(record: "FileResult", summary: "BatchSummary") -> None:
                display.result(record, summary)
                if written is not None:
                    written.add(record)
                if gallery is not None:
                    gallery.add(record)

            try:
                summary = runner.run(on_result=on_result, on_start=display.start)
            finally:
                display.stop()
            if written is not None:
                written.finish(summary)
            if gallery is not None:
                gallery.finish(summary.to_json())
    except PoolError as error:
        return summary, error
    return summary, None


def _capped_jobs(jobs: int | None) -> int:
    """--jobs as given (default: the cores), at most `max_jobs()`, with a warning when capped."""
    from ..batch import JOBS_PER_CORE, default_jobs, max_jobs

    if jobs is None:
        return default_jobs()
    if jobs > max_jobs():
        report_warning(f"--jobs {jobs} is more than {max_jobs()} ({JOBS_PER_CORE} per core); using {max_jobs()}")
        return max_jobs()
    return jobs
