"""What poolcli prints, in one place: one error printer and one warning printer for every
command, plain lines on stdout, and (imported only when a table or a progress bar is
shown) rich's consoles.

Every line is made printable first (`errors.printable`): a file name never breaks a line or
sends an escape sequence to the terminal. A reader of stdout that goes away
(`poolcli ... | head -1`) silences stdout instead of ending the run: the work goes on.
"""

import contextlib
import functools
import os

import typer

from ..errors import printable, render

FLAGS = {  # the library's parameter names (errors.param) as the command line spells them
    "window": "--window", "stride": "--stride", "padding": "--padding", "dilation": "--dilation",
    "mode": "--mode", "axes": "--axes", "layout": "--layout", "p": "--power", "ceil_mode": "--ceil-mode",
    "count_include_pad": "--exclude-pad", "pad_mode": "--pad-mode", "nan_policy": "--nan", "dtype": "--dtype",
    "backend": "--backend", "normalize": "--normalize", "max_pixels": "--max-pixels", "max_bytes": "--max-decoded",
    "page": "--page", "alpha": "--alpha", "quality": "--quality", "overwrite": "--overwrite",
    "output_format": "--format", "jobs": "--jobs", "skip_existing": "--skip-existing", "patterns": "--glob",
    "out_dir": "-d/--out-dir", "compare_dir": "--compare-dir", "report": "--report", "montage": "--montage",
    "scale": "--scale", "channel": "--channel", "output": "-o/--output", "output_size": "--output-size",
    "divisor_override": "--divisor", "return_indices": "--indices", "region": "--region",
    "memory": "--memory", "dataset": "--dataset", "compression": "--compression", "ome": "--ome", "chunk": "--chunk",
    "zarr_format": "--zarr-format", "levels": "--levels", "min_size": "--min-size", "scheduler": "--scheduler",
    "labels": "--labels", "pixel_size": "--pixel-size", "unit": "--unit", "storage_option": "--storage-option",
    "html_report": "--html-report", "nodata": "--nodata", "size": "--size", "max_side": "--max-side",
}


def flagged(message: str) -> str:
    """A library message with its parameters named as the command line's flags."""
    return render(message, FLAGS)


def say(text: str) -> None:
    """One plain line on stdout."""
    with _stdout_may_close():
        typer.echo(printable(text))


def report_warning(message: str) -> None:
    """A warning: one yellow-labelled line on stderr; the command goes on."""
    typer.secho("poolcli: warning:", fg="yellow", err=True, nl=False)
    typer.echo(" " + printable(flagged(message)), err=True)


def report_failure(message: str) -> None:
    """An error: one red-labelled line on stderr."""
    typer.secho("poolcli: error:", fg="red", err=True, nl=False)
    typer.echo(" " + printable(flagged(message)), err=True)


@contextlib.contextmanager
def _stdout_may_close():
    try:
        yield
    except BrokenPipeError:
        _silence(1)


def _silence(descriptor: int) -> None:
    """Send what is still written to `descriptor` nowhere (and the interpreter's last flush)."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), descriptor)


@functools.cache
def console(*, stderr: bool = False):
    """rich's console for stdout or stderr: for tables and progress bars only."""
    from rich.console import Console

    class QuietOnClose(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            _silence(self.file.fileno())

    return QuietOnClose(stderr=stderr, highlight=False, soft_wrap=True, markup=False)
