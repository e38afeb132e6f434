"""What `poolcli batch` shows while it runs: a progress bar on a terminal (rich), else one
plain line per file; warnings and failures as they come; the summary table at the end."""

from typing import Any

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

from ..app.settings import FileResult
from ..batch import BatchSummary
from ..errors import printable
from .terminal import console, flagged, report_failure, report_warning, say


class RateColumn(ProgressColumn):
    """Files per second."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- files/s" if speed is None else f"{speed:.1f} files/s", style="progress.data.speed")


class Display:
    """A progress bar on a terminal (stderr), else one plain line per file on stdout; failures on stderr."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task: Any = None
        self.total = 0

    def start(self, total: int, workers: int) -> None:
        self.total = total
        if self.quiet or not console(stderr=True).is_terminal:
            return
        self.progress = Progress(
            TextColumn(f"[bold]pooling[/bold] ({workers} worker{'s' * (workers > 1)})"), BarColumn(),
            MofNCompleteColumn(), RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console(stderr=True))
        self.task = self.progress.add_task("batch", total=total)
        self.progress.start()

    def result(self, record: FileResult, summary: BatchSummary) -> None:
        for warning in record.warnings:
            self._warning(warning)
        if record.status == "failed":
            self._failure(record.error or f"{record.input}: failed")
        elif not self.quiet and self.progress is None:
            width = len(str(self.total))
            detail = f" -> {record.output}" if record.status == "done" else f" ({record.error})"
            say(f"[{summary.finished:>{width}}/{self.total}] {record.status:<7} {record.input}{detail}")
        if self.progress is not None:
            self.progress.advance(self.task)


    def _warning(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(f"[yellow]poolcli: warning:[/yellow] {escape(printable(message))}")
        else:
            report_warning(message)

    def _failure(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(f"[red]poolcli: error:[/red] {escape(printable(flagged(message)))}")
        else:
            report_failure(message)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def print_summary(summary: BatchSummary) -> None:
    rate = summary.finished / summary.seconds if summary.seconds else 0.0
    table = Table(title="poolcli batch" + (" (interrupted)" if summary.interrupted else ""))
    for column in ("done", "skipped", "failed", "time", "files/s", "written"):
        table.add_column(column, justify="right")
    table.add_row(str(summary.done), str(summary.skipped), str(summary.failed), f"{summary.seconds:.1f} s",
                  f"{rate:.1f}", _size(summary.output_bytes))
    console().print(table)
    if summary.failures:  # one line each, unwrapped: "<input>: <reason>", easy to grep and copy
        console().print(f"{summary.failed} failure{'s' * (summary.failed > 1)}:", style="bold red")
        for record in summary.failures:
            console().print(Text("  " + printable(flagged(record.error or f"{record.input}: failed"))), crop=False,
                            overflow="ignore")


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"
