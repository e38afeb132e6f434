"""The `poolcli` app: the Typer object, the options every pooling command shares, how their
values become `PoolSettings`, one exit-code mapping, and the entry point.

Exit codes: 0 success; 1 an input could not be read, processed or written; 2 bad usage
or parameters; 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). Errors are
one line on stderr (a traceback only with --debug). The commands live beside this module
(commands.py, batch.py) and register themselves on `app` when the package is imported.
"""

import contextlib
import functools
import inspect
import os
import signal
import traceback
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

from ..core.choices import (
    ALPHA_CHOICES,
    BACKENDS,
    DTYPE_CHOICES,
    MODES,
    NAN_POLICIES,
    NODATA_CHOICES,
    PAD_MODES,
)
from ..core.modes import described, names
from ..errors import Interrupted, PoolError, signals_interrupt
from ..version import __version__
from .terminal import report_failure

if TYPE_CHECKING:
    from ..app.settings import PoolSettings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(
    name="poolcli",
    help=f"Pool, downsample and inspect pooling of images and feature maps ({', '.join(MODES)}).",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # Click's plain help: wraps to the terminal, no cut choices, no <bool> metavars
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
DEBUG = {"on": False}  # --debug: tracebacks for every command


class PlainCommand(typer.core.TyperCommand):
    """A command whose help reads like a man page: `Usage: poolcli pool [OPTIONS] INPUT...`,
    `-m, --mode MODE`, arguments without Python type names, flags without metavars."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, typer.core.TyperArgument):
                param.display_type_rich = lambda ctx: None
            elif not param.is_flag and param.metavar is None:
                param.metavar = max(param.opts, key=len).lstrip("-").upper()

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, typer.core.TyperArgument):
                name = param.metavar or (param.name or "").upper()
                name += "..." if param.nargs != 1 else ""
                pieces.append(name if param.required else f"[{name}]")
        return pieces


class UsageProblem(Exception):
    """A bad option value: exit 2."""


# ------------------------------------------------------------------ option parsing


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    """'2' -> (2,), '2,3' or '2x3' -> (2, 3).

    >>> parse_ints("2x3", "--window")
    (2, 3)
    """
    parts = text.lower().replace("x", ",").split(",")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        raise UsageProblem(f"{option} {text!r} is not a list of integers; use e.g. 2, 2,3 or 2x3") from None
    return values


_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str, option: str) -> int:
    """'1000', '512MB', '1.5GB' or '2GiB' -> bytes.

    >>> parse_size("1.5GB", "--max-decoded"), parse_size("2GiB", "--max-decoded")
    (1500000000, 2147483648)
    """
    number = text.strip().upper().rstrip("BKMGTI")
    unit = text.strip().upper()[len(number):]
    try:
        value = float(number) * _SIZE_UNITS[unit.strip()]
    except (ValueError, KeyError):
        raise UsageProblem(f"{option} {text!r} is not a size; use e.g. 500MB, 2GB or 2GiB") from None
    if not 1 <= value < 2**63:
        raise UsageProblem(f"{option} {text!r} is out of range; use a size from 1 byte, e.g. 2GB")
    return int(value)


def parse_padding(text: str) -> tuple[int, ...] | str:
    """'1', '1,2' (per axis), 'top,bottom,left,right' (lo,hi per axis), 'same' or 'valid'."""
    if text.lower() in ("same", "valid"):
        return text.lower()
    return parse_ints(text, "--padding")


def parse_nodata(text: str | None) -> int | float | str | None:
    """--nodata: a number ('-9999', '0', 'nan', '1e20'), 'fill' or 'none'; None when not given.

    >>> parse_nodata("-9999"), parse_nodata("NaN"), parse_nodata("fill")
    (-9999, nan, 'fill')
    """
    from ..core.options import nodata_from_text

    if text is None:
        return None
    if text.strip().lower() in NODATA_CHOICES:
        return text.strip().lower()
    value = nodata_from_text(text)
    if value is None:
        raise UsageProblem(f"--nodata {text!r} is not a number; use e.g. -9999, 0, nan, fill or none")
    return value


def parse_target(text: str | None) -> tuple[int | None, ...] | None:
    """--size: sides separated by x or comma, '-' for a side that keeps the aspect ratio.

    >>> parse_target("512x-"), parse_target("480x640"), parse_target("-,100")
    ((512, None), (480, 640), (None, 100))
    """
    if text is None:
        return None
    parts = text.lower().replace("x", ",").split(",")
    try:
        return tuple(None if part.strip() == "-" else int(part) for part in parts)
    except ValueError:
        raise UsageProblem(f"--size {text!r} is not a size; use e.g. 512x384, 512x- or -x384") from None


WINDOW_DEFAULTS = {"window": None, "stride": None, "padding": "0", "dilation": "1", "ceil_mode": False}


def refuse_windows_with_size(options: dict) -> None:
    """--size and --max-side choose the windows themselves: -k, -s, -p, --dilation and --ceil-mode
    with them are a usage error."""
    if options["size"] is None and options["max_side"] is None:
        return
    given = [name for name, default in WINDOW_DEFAULTS.items() if options[name] != default]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        target = "--size" if options["size"] is not None else "--max-side"
        raise UsageProblem(f"{target} chooses the windows itself (adaptive pooling); drop {flags}")


def refuse_size_in_inspector(settings: "PoolSettings", option: str) -> None:
    """The inspector draws sliding windows tap by tap: a target size (adaptive windows) is a usage
    error there, with `compare` named as what shows it."""
    if settings.resizes:
        target = "--size" if settings.size is not None else "--max-side"
        raise UsageProblem(f"{option} draws sliding windows; {target} pools with adaptive windows, which compare"
                           " shows (labelled with their sizes); drop " + target)


def parse_axes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageProblem(f"--axes {text!r} is not a list of axis numbers; use e.g. 0,1 or -2,-1") from None


def choice(option: str, value: str, allowed) -> str:
    """`value` (any case) if it is one of `allowed`, else a UsageProblem naming `option`."""
    if value.lower() not in allowed:
        raise UsageProblem(f"{option} {value!r} is not known; use one of {', '.join(allowed)}")
    return value.lower()



def refuse_inputs(outputs, inputs) -> None:
    """No output may be an input, hold one or lie inside one (`io.check_apart`): a usage error, before any work."""
    from ..io import check_apart

    for output in outputs:
        try:
            check_apart(output, inputs)
        except PoolError as error:
            raise UsageProblem(error.template) from None


Location = Any  # what `path_or_url` gives: a pathlib.Path or an io.remote.Url (typer would make a Path a Path)


def path_or_url(text: str):
    """A path on the command line: a `pathlib.Path`, or an `io.remote.Url` where it spells one
    (s3://, gs://, https://); an unknown scheme is a usage error."""
    from ..errors import render
    from ..io.remote import location

    try:
        return location(text)
    except PoolError as error:
        raise typer.BadParameter(render(error.template)) from None


# ------------------------------------------------------------------ shared pooling options


ModeOption = Annotated[str, typer.Option("-m", "--mode", help=f"Pooling mode: {described()}.")]
WindowOption = Annotated[str | None, typer.Option("-k", "--window", show_default=False,
                                                  help='Window: "2", "2,3" or "2x3" (default 2).')]
StrideOption = Annotated[str | None, typer.Option("-s", "--stride", help="Stride, same forms (default: the window).")]
PaddingOption = Annotated[str, typer.Option(
    "-p", "--padding", help='"1", "1,2" (per axis), "top,bottom,left,right", same or valid.')]
DilationOption = Annotated[str, typer.Option("--dilation", help="Dilation, same forms as the window.")]
CeilOption = Annotated[bool, typer.Option("--ceil-mode", help="Round the output size up (PyTorch's ceil_mode).")]
ExcludePadOption = Annotated[bool, typer.Option(
    "--exclude-pad", help=f"{'/'.join(names(divisor=True))}: divide by the real cells only (count_include_pad=False).")]
PowerOption = Annotated[float, typer.Option("--power", help=f"{'/'.join(names(power='p'))}: the norm's p (> 0).")]
PadModeOption = Annotated[str, typer.Option("--pad-mode", help=f"Padding values: {'|'.join(PAD_MODES)}.")]
NanOption = Annotated[str, typer.Option("--nan", help=f"NaN handling: {'|'.join(NAN_POLICIES)}.")]
AxesOption = Annotated[str | None, typer.Option("--axes", help='Axes to pool in .npy inputs, e.g. "0,1".')]
LayoutOption = Annotated[str | None, typer.Option(
    "--layout", help="Layout of .npy inputs (hwc, chw, nchw, ncdhw, nlc, l...): pools h, w, d, l.")]
DtypeOption = Annotated[str, typer.Option(
    "--dtype", help=f"Output dtype: {'|'.join(DTYPE_CHOICES)} (auto: images keep theirs, arrays follow "
    "docs/semantics.md).")]
BackendOption = Annotated[str, typer.Option("--backend", help="auto|numpy|cupy (cupy needs poolcli[gpu]).")]
MaxPixelsOption = Annotated[int | None, typer.Option(
    "--max-pixels", help="Refuse images with more pixels (decompression bombs); default Pillow's limit, 0 = none.",
    show_default=False)]
MaxDecodedOption = Annotated[str | None, typer.Option(
    "--max-decoded", metavar="SIZE", show_default=False,
    help="Refuse compressed arrays (.npz) that inflate to more, e.g. 2GB; default 4 bytes per --max-pixels.")]
NormalizeOption = Annotated[str | None, typer.Option(
    "--normalize", help="minmax: map float results to 0..255 to save them as 8-bit images.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
AlphaOption = Annotated[str, typer.Option(
    "--alpha", help=f"Images with alpha: premultiplied ({'/'.join(names(mixes=True))} weigh colour by alpha)"
    " or straight.")]
PageOption = Annotated[int, typer.Option("--page", help="Multi-page TIFF or animation: the page to read, from 0.")]
StripOption = Annotated[bool, typer.Option(
    "--strip", help="Image outputs drop the input's EXIF, XMP, ICC profile and resolution (kept by default).")]
NodataOption = Annotated[str | None, typer.Option(
    "--nodata", metavar="VALUE", show_default=False,
    help="Cells equal to VALUE (a number or nan) hold no data: every mode skips them, a window of them alone gives "
    "VALUE, outputs record it (TIFF GDAL_NODATA, Zarr fill value). Default: what the input declares (GDAL_NODATA, "
    "a Zarr 'nodata' attribute); fill: a Zarr input's fill value; none: no nodata.")]
SizeOption = Annotated[str | None, typer.Option(
    "--size", metavar="HxW", show_default=False,
    help='Pool to this size instead of by windows: "512x384", or "512x-" / "-x384" to keep the aspect ratio '
    "(rounded half up); adaptive windows, PyTorch's adaptive pooling, for every mode.")]
MaxSideOption = Annotated[int | None, typer.Option(
    "--max-side", metavar="N", show_default=False,
    help="Pool so the longest side is N, keeping the aspect ratio (adaptive windows); a smaller input stays as it "
    "is (never enlarged).")]
QualityOption = Annotated[int, typer.Option(
    "-q", "--quality", min=1, max=100, help="JPEG quality of JPEG outputs (4:2:0 chroma, as Pillow's default).")]

POOL_OPTIONS = {
    "mode": (ModeOption, "max"),
    "window": (WindowOption, None),
    "stride": (StrideOption, None),
    "padding": (PaddingOption, "0"),
    "dilation": (DilationOption, "1"),
    "ceil_mode": (CeilOption, False),
    "exclude_pad": (ExcludePadOption, False),
    "power": (PowerOption, 2.0),
    "pad_mode": (PadModeOption, "zeros"),
    "nan": (NanOption, "propagate"),
    "axes": (AxesOption, None),
    "layout": (LayoutOption, None),
    "dtype": (DtypeOption, "auto"),
    "backend": (BackendOption, "auto"),
    "normalize": (NormalizeOption, None),
    "max_pixels": (MaxPixelsOption, None),
    "max_decoded": (MaxDecodedOption, None),
    "page": (PageOption, 0),
    "alpha": (AlphaOption, "premultiplied"),
    "nodata": (NodataOption, None),
    "size": (SizeOption, None),
    "max_side": (MaxSideOption, None),
    "debug": (DebugOption, False),
}


def settings_from_options(options: dict) -> "PoolSettings":
    """The command line's pooling options as validated `PoolSettings` (UsageProblem if bad)."""
    from ..app.settings import PoolSettings
    from ..io import DEFAULT_MAX_PIXELS

    max_pixels = options["max_pixels"]
    settings = PoolSettings(
        mode=choice("--mode", options["mode"], MODES),
        window=parse_ints(options["window"] or "2", "--window"),
        stride=None if options["stride"] is None else parse_ints(options["stride"], "--stride"),
        padding=parse_padding(options["padding"]),
        dilation=parse_ints(options["dilation"], "--dilation"),
        ceil_mode=options["ceil_mode"],
        count_include_pad=not options["exclude_pad"],
        p=options["power"],
        pad_mode=choice("--pad-mode", options["pad_mode"], PAD_MODES),
        nan_policy=choice("--nan", options["nan"], NAN_POLICIES),
        axes=parse_axes(options["axes"]),
        layout=options["layout"],
        dtype=choice("--dtype", options["dtype"], DTYPE_CHOICES),
        backend=_resolve_backend(choice("--backend", options["backend"], BACKENDS)),
        normalize=None if options["normalize"] is None else choice("--normalize", options["normalize"], ("minmax",)),
        max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else (max_pixels or None),
        max_bytes=None if options["max_decoded"] is None else parse_size(options["max_decoded"], "--max-decoded"),
        page=options["page"],
        alpha=choice("--alpha", options["alpha"], ALPHA_CHOICES),
        nodata=parse_nodata(options["nodata"]),
        size=parse_target(options["size"]),
        max_side=options["max_side"],
    )
    refuse_windows_with_size(options)
    try:
        return settings.check()
    except PoolError as error:
        raise UsageProblem(error.template) from None


def _resolve_backend(choice: str) -> str:
    """cupy must be usable now (a usage error otherwise); auto decides per array (backend.choose_backend)."""
    if choice == "cupy":
        from ..backends import import_cupy

        try:
            import_cupy()
        except PoolError as error:
            raise UsageProblem(f"--backend cupy: {error}") from None
    return choice


def with_pool_options(command):
    """Give a command every shared pooling option; it receives them as `settings`."""
    signature = inspect.signature(command)
    own = [p for name, p in signature.parameters.items() if name != "settings"]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, (annotation, default) in POOL_OPTIONS.items()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs):
        options = {name: kwargs.pop(name) for name in POOL_OPTIONS}
        DEBUG["on"] = options["debug"]
        return guarded(lambda: command(settings=settings_from_options(options), **kwargs))

    wrapper.__signature__ = signature.replace(parameters=own + shared)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
    return wrapper


def guarded(run):
    """One exit-code mapping for every command."""
    try:
        code = run()
    except UsageProblem as problem:
        _fail(str(problem), EXIT_USAGE)
    except PoolError as error:
        _fail(error.template, EXIT_FAILED)
    except MemoryError:
        _fail("not enough memory for this input; free memory or pool a smaller file", EXIT_FAILED)
    except KeyboardInterrupt as stop:
        _fail(f"interrupted{_signal_name(stop)}; no partial output was left behind", _interrupt_code(stop))
    raise typer.Exit(code or EXIT_OK)


def _interrupt_code(stop: KeyboardInterrupt) -> int:
    return stop.exit_code if isinstance(stop, Interrupted) else EXIT_INTERRUPTED


def _signal_name(stop: KeyboardInterrupt) -> str:
    if isinstance(stop, Interrupted) and stop.signum != signal.SIGINT:
        return f" by {signal.Signals(stop.signum).name}"
    return ""


def _fail(message: str, code: int):
    if DEBUG["on"]:
        traceback.print_exc()
    report_failure(message)
    raise typer.Exit(code)


def _version(value: bool):
    if value:
        typer.echo(f"poolcli {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("-V", "--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
):
    """Pool images (PNG, JPEG, TIFF, BMP, GIF, WebP) and NumPy feature maps (.npy, .npz)."""



# ------------------------------------------------------------------ entry point


def main(argv: list[str] | None = None) -> int:
    """Run the app; usage errors become one line on stderr with exit code 2."""
    import os
    import sys

    # Pooling never multiplies matrices: OpenBLAS's idle threads only cost start-up and CPU time
    # (measured: 0.3 s of a 1.5 s pyramid). Set before NumPy is first imported; a user's value wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if not (sys.argv[1:] if argv is None else argv):
        argv = ["--help"]  # `poolcli` alone: the help, and success
    with signals_interrupt(STOP_SIGNALS):  # SIGTERM and SIGHUP stop a command as Ctrl-C does
        try:
            code = app(args=argv, prog_name="poolcli", standalone_mode=False)
        except typer.Exit as done:
            return done.exit_code
        except KeyboardInterrupt as stop:
            report_failure(f"interrupted{_signal_name(stop)}")
            return _interrupt_code(stop)
        except BrokenPipeError:
            return _stdout_gone()
        except Exception as error:  # Click's usage errors carry exit_code and format_message
            if hasattr(error, "format_message") and hasattr(error, "exit_code"):
                report_failure(one_line(error.format_message()) + _help_hint(error))
                return error.exit_code
            if DEBUG["on"]:
                raise
            report_failure(f"unexpected {type(error).__name__}: {one_line(str(error))}"
                           " (rerun with --debug for details)")
            return EXIT_FAILED
    return code if isinstance(code, int) else EXIT_OK


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _stdout_gone() -> int:
    """The reader of stdout went away (`poolcli ... | head -1`): stop quietly, as `cat` would."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # so the interpreter's last flush does not fail again
    return 128 + 13  # SIGPIPE


def one_line(text: str) -> str:
    return " ".join(text.split()).rstrip(".")


def _help_hint(error: Exception) -> str:
    context = getattr(error, "ctx", None)
    path = context.command_path if context is not None else "poolcli"
    return f"; see '{path} --help'"


# The batch command registers itself on `app`.
