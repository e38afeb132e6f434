"""`poolcli batch`: pool a folder tree into a mirrored tree, in parallel. Parse, call, print.

The work (finding files, worker processes, signals, the report's format) is in batch.py;
this module shows the progress, prints the summary and maps the exit code: 0 every
file done or skipped, 1 any file failed, 2 bad usage, 130 interrupted (Ctrl-C, SIGTERM).
"""

import contextlib
import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .batch import (
    OUTPUT_FORMATS,
    Batch,
    BatchOptions,
    BatchRecord,
    BatchSummary,
    default_jobs,
    max_jobs,
    open_report,
)
from .cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PlainCommand,
    QualityOption,
    UsageProblem,
    app,
    err,
    out,
    report_failure,
    report_warning,
    with_pool_options,
)
from .errors import PoolError, printable
from .io import JPEG_QUALITY
from .pipeline import PoolSettings


@app.command("batch", cls=PlainCommand)
@with_pool_options
def batch_command(
    source: Annotated[Path, typer.Argument(help="Folder of inputs (images, .npy, .npz).", metavar="SRC",
                                           show_default=False)],
    out_dir: Annotated[Path, typer.Option(
        "-d", "--out-dir", help="Output folder (created if missing): mirrors SRC's tree, same file names.",
        show_default=False)],
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
        "-f", "--format", help=f"Output format: {'|'.join(OUTPUT_FORMATS)} (same: the input's).")] = "same",
    quality: QualityOption = JPEG_QUALITY,
    quiet: Annotated[bool, typer.Option(
        "--quiet", help="No progress and no summary: only failures, one line each on stderr.")] = False,
    *,
    settings: PoolSettings,
):
    """Pool every file under SRC into OUT, in parallel; one bad file never stops the batch."""
    settings = dataclasses.replace(settings, quality=quality)
    options = BatchOptions(recursive=recursive, patterns=tuple(glob or ()), output_format=output_format.lower(),
                           jobs=_capped_jobs(jobs), skip_existing=skip_existing, overwrite=overwrite,
                           compare_dir=compare_dir)
    try:
        runner = Batch(source, out_dir, settings, options)
        if report is not None:
            runner.check_report(report)
    except PoolError as error:
        raise UsageProblem(str(error)) from None

    display = _Display(quiet)
    report_error = None
    try:
        with contextlib.ExitStack() as stack:
            written = stack.enter_context(open_report(report, runner)) if report is not None else None

            def on_result(record: BatchRecord, summary: BatchSummary) -> None:
                display.result(record, summary)
                if written is not None:
                    written.add(record)

            try:
                summary = runner.run(on_result=on_result, on_start=display.start)
            finally:
                display.stop()
            if written is not None:
                written.finish(summary)
    except PoolError as error:  # the report could not be written: the run itself is complete
        report_error = error

    if summary.total == 0 and not summary.interrupted:
        display.print(f"poolcli: warning: no inputs under {printable(str(source))}; check --glob and --recursive",
                      error=True)
    if not quiet:
        _print_summary(summary)
    if report_error is not None:
        report_failure(str(report_error))
    if summary.interrupted:
        report_failure(f"interrupted after {summary.finished} of {summary.total} files; no partial output was "
                       "left behind; rerun with --skip-existing to resume")
        return 128 + summary.stop_signal if summary.stop_signal else EXIT_INTERRUPTED
    return EXIT_FAILED if summary.failed or report_error is not None else EXIT_OK


def _capped_jobs(jobs: int | None) -> int:
    """--jobs as given (default: the cores), at most `max_jobs()`, with a warning when capped."""
    if jobs is None:
        return default_jobs()
    if jobs > max_jobs():
        err.print(f"poolcli: warning: --jobs {jobs} is more than {max_jobs()} ({max_jobs() // default_jobs()} per "
                  f"core); using {max_jobs()}", markup=False)
        return max_jobs()
    return jobs


class _RateColumn(ProgressColumn):
    """Files per second."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- files/s" if speed is None else f"{speed:.1f} files/s", style="progress.data.speed")


class _Display:
    """A progress bar on a terminal (stderr), else one plain line per file on stdout; failures on stderr."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task = None
        self.total = 0

    def start(self, total: int, workers: int) -> None:
        self.total = total
        if self.quiet or not err.is_terminal:
            return
        self.progress = Progress(
            TextColumn(f"[bold]pooling[/bold] ({workers} worker{'s' * (workers > 1)})"), BarColumn(),
            MofNCompleteColumn(), _RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=err)
        self.task = self.progress.add_task("batch", total=total)
        self.progress.start()

    def result(self, record: BatchRecord, summary: BatchSummary) -> None:
        for warning in record.warnings:
            self._warning(warning)
        if record.status == "failed":
            self._failure(record.error or f"{record.input}: failed")
        elif not self.quiet and self.progress is None:
            width = len(str(self.total))
            detail = f" -> {record.output}" if record.status == "done" else f" ({record.error})"
            self.print(f"[{summary.finished:>{width}}/{self.total}] {record.status:<7} {record.input}{detail}")
        if self.progress is not None:
            self.progress.advance(self.task)

    def print(self, text: str, *, error: bool = False) -> None:
        (err if error else out).print(printable(text), markup=False, highlight=False)

    def _warning(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(f"[yellow]poolcli: warning:[/yellow] {escape(printable(message))}")
        else:
            report_warning(message)

    def _failure(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(f"[red]poolcli: error:[/red] {escape(printable(message))}")
        else:
            report_failure(message)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _print_summary(summary: BatchSummary) -> None:
    rate = summary.finished / summary.seconds if summary.seconds else 0.0
    table = Table(title="poolcli batch" + (" (interrupted)" if summary.interrupted else ""))
    for column in ("done", "skipped", "failed", "time", "files/s", "written"):
        table.add_column(column, justify="right")
    table.add_row(str(summary.done), str(summary.skipped), str(summary.failed), f"{summary.seconds:.1f} s",
                  f"{rate:.1f}", _size(summary.output_bytes))
    out.print(table)
    if summary.failures:  # one line each, unwrapped: "<input>: <reason>", easy to grep and copy
        out.print(f"{summary.failed} failure{'s' * (summary.failed > 1)}:", style="bold red")
        for record in summary.failures:
            out.print(Text("  " + printable(record.error or f"{record.input}: failed")), crop=False,
                      overflow="ignore")


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"
