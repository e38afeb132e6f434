"""The `poolcli` command line: parse, call the library, print. No array math, no file formats.

Exit codes: 0 success; 1 an input could not be read, processed or written; 2 bad usage
or parameters; 130 interrupted. Errors are one line on stderr (a traceback only with --debug).
"""

import contextlib
import dataclasses
import functools
import inspect
import json
import os
import signal
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import typer.core

from . import __version__
from .choices import (
    ALPHA_CHOICES,
    BACKENDS,
    DTYPE_CHOICES,
    FORMAT_SUFFIXES,
    JPEG_QUALITY,
    MODES,
    NAN_POLICIES,
    PAD_MODES,
)
from .errors import Interrupted, PoolError
from .terminal import console, report_failure, report_warning, say

if TYPE_CHECKING:
    from .pipeline import FileResult, PoolSettings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(
    name="poolcli",
    help="Pool, downsample and inspect pooling of images and feature maps (max, min, avg, sum, l2, lp, median).",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # Click's plain help: wraps to the terminal, no cut choices, no <bool> metavars
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_debug = {"on": False}


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
                name = param.metavar or param.name.upper()
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


def parse_axes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageProblem(f"--axes {text!r} is not a list of axis numbers; use e.g. 0,1 or -2,-1") from None


def _choice(option: str, value: str, allowed) -> str:
    if value.lower() not in allowed:
        raise UsageProblem(f"{option} {value!r} is not known; use one of {', '.join(allowed)}")
    return value.lower()


# ------------------------------------------------------------------ shared pooling options


ModeOption = Annotated[str, typer.Option("-m", "--mode", help=f"Pooling mode: {'|'.join(MODES)}.")]
WindowOption = Annotated[str, typer.Option("-k", "--window", help='Window: "2", "2,3" or "2x3".')]
StrideOption = Annotated[str | None, typer.Option("-s", "--stride", help="Stride, same forms (default: the window).")]
PaddingOption = Annotated[str, typer.Option(
    "-p", "--padding", help='"1", "1,2" (per axis), "top,bottom,left,right", same or valid.')]
DilationOption = Annotated[str, typer.Option("--dilation", help="Dilation, same forms as the window.")]
CeilOption = Annotated[bool, typer.Option("--ceil-mode", help="Round the output size up (PyTorch's ceil_mode).")]
ExcludePadOption = Annotated[bool, typer.Option(
    "--exclude-pad", help="avg/l2: divide by the real cells only (count_include_pad=False).")]
PowerOption = Annotated[float, typer.Option("--power", help="lp: the norm's p (> 0).")]
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
    "--alpha", help="Images with alpha: premultiplied (avg/sum/l2/lp weigh colour by alpha) or straight.")]
PageOption = Annotated[int, typer.Option("--page", help="Multi-page TIFF or animation: the page to read, from 0.")]
QualityOption = Annotated[int, typer.Option(
    "-q", "--quality", min=1, max=100, help="JPEG quality of JPEG outputs (4:2:0 chroma, as Pillow's default).")]

POOL_OPTIONS = {
    "mode": (ModeOption, "max"),
    "window": (WindowOption, "2"),
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
    "debug": (DebugOption, False),
}


def settings_from_options(options: dict) -> "PoolSettings":
    """The command line's pooling options as validated `PoolSettings` (UsageProblem if bad)."""
    from .io import DEFAULT_MAX_PIXELS
    from .pipeline import PoolSettings

    max_pixels = options["max_pixels"]
    settings = PoolSettings(
        mode=_choice("--mode", options["mode"], MODES),
        window=parse_ints(options["window"], "--window"),
        stride=None if options["stride"] is None else parse_ints(options["stride"], "--stride"),
        padding=parse_padding(options["padding"]),
        dilation=parse_ints(options["dilation"], "--dilation"),
        ceil_mode=options["ceil_mode"],
        count_include_pad=not options["exclude_pad"],
        p=options["power"],
        pad_mode=_choice("--pad-mode", options["pad_mode"], PAD_MODES),
        nan_policy=_choice("--nan", options["nan"], NAN_POLICIES),
        axes=parse_axes(options["axes"]),
        layout=options["layout"],
        dtype=_choice("--dtype", options["dtype"], DTYPE_CHOICES),
        backend=_resolve_backend(_choice("--backend", options["backend"], BACKENDS)),
        normalize=None if options["normalize"] is None else _choice("--normalize", options["normalize"], ("minmax",)),
        max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else (max_pixels or None),
        max_bytes=None if options["max_decoded"] is None else parse_size(options["max_decoded"], "--max-decoded"),
        page=options["page"],
        alpha=_choice("--alpha", options["alpha"], ALPHA_CHOICES),
    )
    try:
        settings.check()
    except PoolError as error:
        raise UsageProblem(_option_names(str(error))) from None
    return settings


def _resolve_backend(choice: str) -> str:
    """cupy must be usable now (a usage error otherwise); auto decides per array (backend.choose_backend)."""
    if choice == "cupy":
        from .backend import import_cupy

        try:
            import_cupy()
        except PoolError as error:
            raise UsageProblem(f"--backend cupy: {error}") from None
    return choice


def _option_names(message: str) -> str:
    """Library words to command-line words in messages about parameters."""
    for word, option in (("count_include_pad", "--exclude-pad"), ("ceil_mode", "--ceil-mode"),
                         ("pad_mode", "--pad-mode"), ("nan_policy", "--nan"), ("p ", "--power ")):
        if message.startswith(word):
            return option + message[len(word):]
    for word in ("window", "stride", "padding", "dilation", "mode", "axes"):
        if message.startswith(word):
            return "--" + message
    return message


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
        _debug["on"] = options["debug"]
        return _guarded(lambda: command(settings=settings_from_options(options), **kwargs))

    wrapper.__signature__ = signature.replace(parameters=own + shared)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
    return wrapper


def _guarded(run):
    """One exit-code mapping for every command."""
    try:
        code = run()
    except UsageProblem as problem:
        _fail(str(problem), EXIT_USAGE)
    except PoolError as error:
        _fail(str(error), EXIT_FAILED)
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
    if _debug["on"]:
        traceback.print_exc()
    report_failure(message)
    raise typer.Exit(code)


# ------------------------------------------------------------------ commands


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


@app.command("pool", cls=PlainCommand)
@with_pool_options
def pool_command(
    inputs: Annotated[list[Path], typer.Argument(
        help="Images, .npy or .npz files; - reads one from stdin.", show_default=False, metavar="INPUT")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Output file (one input); - writes to stdout.")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "-d", "--out-dir", help="Output folder (created if missing): writes {stem}_{mode}_{window}{ext} per input.")
    ] = None,
    output_format: Annotated[str | None, typer.Option(
        "-f", "--format", help=f"Output format: {'|'.join(FORMAT_SUFFIXES)} (default: the extension of -o, "
        "else the input's).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per input on stdout.")] = False,
    compare: Annotated[Path | None, typer.Option(
        "--compare", help="Also write the input and its output side by side to this PNG (with several inputs: "
        "a folder, one DIR/{stem}_compare.png each).")] = None,
    quality: QualityOption = JPEG_QUALITY,
    *,
    settings: "PoolSettings",
):
    """Pool each INPUT and save the result."""
    from .pipeline import FileResult, pool_file

    settings = dataclasses.replace(settings, quality=quality)
    suffix = None if output_format is None else FORMAT_SUFFIXES[_choice("--format", output_format, FORMAT_SUFFIXES)]
    with contextlib.ExitStack() as stack:
        streams = _Streams(inputs, output, suffix, stack)
        inputs = streams.inputs
        targets = _targets(inputs, streams.output, out_dir, settings, suffix)
        figures = _compare_targets(inputs, compare)
        _refuse_collisions(inputs, targets, figures)
        failures = 0
        for source, target, figure in zip(inputs, targets, figures):
            try:
                result = pool_file(source, target, settings, overwrite=overwrite, inputs=tuple(inputs))
                if figure is not None:
                    _write_compare(source, target, figure, settings, overwrite, tuple(inputs))
                streams.send(target)
            except Exception as error:  # one input's failure, whatever it is, never stops the others
                failures += 1
                message = _input_failure(streams.shown(source), error)
                if _debug["on"]:
                    traceback.print_exc()
                report_failure(message)
                if as_json:
                    _print_json(FileResult(str(source), str(target), status="failed", error=message))
                continue
            for warning in result.warnings:
                report_warning(warning)
            if as_json:
                _print_json(result)
            elif not streams.to_stdout:
                say(f"{source} -> {target}  {_shape_text(result.input_shape)} -> {_shape_text(result.output_shape)}")
    return EXIT_FAILED if failures else EXIT_OK


class _Streams:
    """`-` as an input (stdin) or as -o (stdout): the bytes go through a private temporary folder,
    so every input and output is a file to the rest of poolcli."""

    def __init__(self, inputs: list[Path], output: Path | None, suffix: str | None, stack: contextlib.ExitStack):
        self.to_stdout = output is not None and str(output) == "-"
        from_stdin = [source for source in inputs if str(source) == "-"]
        if len(from_stdin) > 1:
            raise UsageProblem("- (stdin) may be given once; pass the other inputs as files")
        self.inputs, self.output, self._stdin = list(inputs), output, None
        if not from_stdin and not self.to_stdout:
            return
        import tempfile

        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="poolcli-")))
        if from_stdin:
            self._stdin = _read_stdin(folder)
            self.inputs = [self._stdin if str(source) == "-" else source for source in inputs]
        if self.to_stdout:
            if suffix is None and len(self.inputs) == 1:
                suffix = self.inputs[0].suffix
            if suffix is None:
                raise UsageProblem("-o - (stdout) has no extension to go by; pass --format, e.g. --format png")
            self.output = folder / f"stdout{suffix}"

    def send(self, target: Path) -> None:
        if self.to_stdout:
            import shutil
            import sys

            with open(target, "rb") as file:
                shutil.copyfileobj(file, sys.stdout.buffer)
            sys.stdout.buffer.flush()

    def shown(self, source: Path) -> Path:
        return Path("<stdin>") if source == self._stdin else source


def _read_stdin(folder: Path) -> Path:
    import sys

    from .io import sniff_suffix

    data = sys.stdin.buffer.read()
    suffix = sniff_suffix(data)
    if suffix is None:
        raise UsageProblem("- (stdin): the data is not in a format poolcli reads (PNG, JPEG, TIFF, GIF, BMP, WebP,"
                           " .npy, .npz); check what is piped in")
    path = folder / f"stdin{suffix}"
    path.write_bytes(data)
    return path


def _input_failure(source: Path, error: Exception) -> str:
    """One line for what went wrong with one input."""
    if isinstance(error, PoolError):
        return str(error)
    if isinstance(error, OSError):
        return f"{source}: {error.strerror or _one_line(str(error))}"
    return f"{source}: unexpected {type(error).__name__}: {_one_line(str(error)) or 'no detail'}" \
        " (rerun with --debug for details)"


@app.command("info", cls=PlainCommand)
@with_pool_options
def info_command(
    input: Annotated[Path, typer.Argument(help="An image, .npy or .npz file.", show_default=False, metavar="INPUT")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    *,
    settings: "PoolSettings",
):
    """Describe INPUT and what pooling would do to it, without writing anything."""
    from .pipeline import describe_file

    description = describe_file(input, settings)
    if as_json:
        typer.echo(json.dumps(description))
        return EXIT_OK
    _print_description(description)
    return EXIT_OK


@app.command("compare", cls=PlainCommand)
@with_pool_options
def compare_command(
    ctx: typer.Context,
    input: Annotated[Path, typer.Argument(help="An image, .npy or .npz file.", show_default=False, metavar="INPUT")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The grid, a PNG.", show_default=False)],
    modes: Annotated[str | None, typer.Option(
        "--modes", help="Comma-separated modes, one row each (default: -m if given, else max,avg).",
        show_default=False)] = None,
    windows: Annotated[str | None, typer.Option(
        "--windows", help='Comma-separated windows, one column each, e.g. "2,4,8" (default: -k).')] = None,
    diff: Annotated[bool, typer.Option(
        "--diff", help="Add |original - result| heat maps with a colour scale.")] = False,
    channel: Annotated[int, typer.Option("--channel", help="Feature maps: the channel to show.")] = 0,
    montage: Annotated[int | None, typer.Option(
        "--montage", help="Feature maps: tile the first N channels instead of one.")] = None,
    scale: Annotated[str, typer.Option(
        "--scale", help="With --montage: one colour scale for all channels (shared) or one each (channel).")
    ] = "shared",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    *,
    settings: "PoolSettings",
):
    """Draw INPUT beside its pooled results, one cell per (mode, window), upscaled to the same size."""
    from .figures import MONTAGE_SCALES, write_compare

    given = {name for name in ("mode", "window", "channel", "scale") if _given(ctx, name)}
    if "mode" in given and modes is not None:
        raise UsageProblem("-m/--mode and --modes both choose the modes; give one (--modes for several rows)")
    if "window" in given and windows is not None:
        raise UsageProblem("-k/--window and --windows both choose the windows; give one (--windows for several)")
    if montage is not None and "channel" in given:
        raise UsageProblem("--montage tiles channels 0..N-1 and --channel picks one; give only one of them")
    if montage is None and "scale" in given:
        raise UsageProblem("--scale applies to --montage; add --montage N or drop --scale")
    modes = modes or (settings.mode if "mode" in given else "max,avg")
    mode_list = [_choice("--modes", m.strip(), MODES) for m in modes.split(",") if m.strip()]
    window_list = [settings.window] if windows is None else \
        [parse_ints(w, "--windows") for w in windows.split(",") if w.strip()]
    if not mode_list or not window_list:
        raise UsageProblem("--modes and --windows need at least one value each; e.g. --modes max,avg --windows 2,4")
    for window in window_list:
        for mode in mode_list:
            _checked_variant(settings, mode, window)
    written = write_compare(input, output, settings, mode_list, window_list, diff=diff, channel=channel,
                            montage=montage, scale=_choice("--scale", scale, MONTAGE_SCALES), overwrite=overwrite)
    say(f"{input} -> {written}  ({len(mode_list)} modes x {len(window_list)} windows)")
    return EXIT_OK


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option `name` (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


@app.command("grad", cls=PlainCommand)
@with_pool_options
def grad_command(
    input: Annotated[Path, typer.Argument(help="An image, .npy or .npz file.", show_default=False, metavar="INPUT")],
    output: Annotated[Path, typer.Option(
        "-o", "--output", help="MAP.png (a picture) or MAP.npy (the raw gradient).", show_default=False)],
    channel: Annotated[int, typer.Option("--channel", help="Feature maps: the channel to show.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    *,
    settings: "PoolSettings",
):
    """Show the backward pass: which inputs receive gradient (max/min) or with what weight."""
    from .figures import write_gradient

    written = write_gradient(input, output, settings, channel=channel, overwrite=overwrite)
    say(f"{input} -> {written}  (dL/dx of {settings.label()} for dL/dy = 1)")
    return EXIT_OK


def _checked_variant(settings: "PoolSettings", mode: str, window: tuple[int, ...]) -> None:
    from dataclasses import replace

    try:
        replace(settings, mode=mode, window=window).check()
    except PoolError as error:
        raise UsageProblem(_option_names(str(error))) from None


def _targets(inputs: list[Path], output: Path | None, out_dir: Path | None, settings: "PoolSettings",
             suffix: str | None) -> list[Path]:
    if output is not None and out_dir is not None:
        raise UsageProblem("-o/--output and -d/--out-dir both name the output; give only one")
    if output is not None:
        if len(inputs) > 1:
            raise UsageProblem(f"-o/--output names one file but {len(inputs)} inputs were given; use -d OUT_DIR")
        if output.is_dir() or str(output).endswith(os.sep):
            raise UsageProblem(f"-o/--output {output} is a folder; use -d {output} to write into it")
        if suffix is not None and output.suffix.lower() != suffix:
            raise UsageProblem(f"-o/--output {output} and --format {suffix[1:]} disagree; give only one")
        return [output]
    if out_dir is not None:
        _make_out_dir(out_dir)
    from .pipeline import default_output

    return [default_output(source, settings, out_dir, suffix) for source in inputs]


def _make_out_dir(folder: Path) -> None:
    """-d's folder, created (its parent must exist) as batch creates OUT."""
    if folder.is_dir():
        return
    if folder.exists():
        raise UsageProblem(f"-d/--out-dir {folder} is a file, not a folder; give a folder")
    if not folder.parent.is_dir():
        raise UsageProblem(f"-d/--out-dir {folder}: its parent folder {folder.parent} does not exist; create it first")
    try:
        folder.mkdir()
    except OSError as error:
        raise UsageProblem(f"-d/--out-dir {folder}: cannot create it ({error.strerror}); choose a writable folder") \
            from None


def _compare_targets(inputs: list[Path], compare: Path | None) -> list[Path | None]:
    """Where each input's --compare figure goes: the file named, or {stem}_compare.png in the
    folder named (the only choice with several inputs)."""
    if compare is None:
        return [None] * len(inputs)
    if compare.is_dir() or str(compare).endswith(os.sep):
        if not compare.is_dir():
            raise UsageProblem(f"--compare {compare} is not a folder; create it first")
        return [compare / f"{source.stem}_compare.png" for source in inputs]
    if len(inputs) > 1:
        raise UsageProblem(f"--compare {compare} names one file but {len(inputs)} inputs were given;"
                           " give a folder for one figure per input")
    return [compare]


def _refuse_collisions(inputs: list[Path], targets: list[Path], figures: list[Path | None]) -> None:
    """Two inputs must never write one file (nor an output be another input): refuse up front."""
    claimed: dict[str, Path] = {}
    for source, *outputs in zip(inputs, targets, figures):
        for output in outputs:
            if output is None:
                continue
            key = os.path.realpath(output)
            if key in claimed:
                raise UsageProblem(f"{claimed[key]} and {source} would both write {output};"
                                   " pool them into different folders or one at a time with -o")
            claimed[key] = source
    for source in inputs:
        owner = claimed.get(os.path.realpath(source))
        if owner is not None:
            raise UsageProblem(f"{source} is an input but also where {owner} would be written;"
                               " poolcli never overwrites an input; choose another output")


def _write_compare(source: Path, target: Path, figure: Path, settings: "PoolSettings", overwrite: bool,
                   inputs: tuple[Path, ...]) -> None:
    from .figures import write_side_by_side

    write_side_by_side(source, target, figure, settings, overwrite=overwrite, inputs=inputs)


def _print_json(result: "FileResult") -> None:
    typer.echo(json.dumps(result.to_json()))


def _shape_text(shape) -> str:
    if isinstance(shape, dict):
        return ", ".join(f"{k}: {tuple(v)}" for k, v in shape.items())
    return str(tuple(shape))


def _print_description(description: dict) -> None:
    from rich.table import Table

    from .values import special_text

    say(f"{description['input']}  {description['format']} ({description['kind']})"
        + (f", mode {description['source_mode']}" if description["source_mode"] else "")
        + (f", {description['frames']} pages or frames (page {description['page']} is pooled)"
           if description["frames"] > 1 else ""))
    for key, array in description["arrays"].items():
        title = "" if key == "array" else f"[{key}] "
        value_range = "n/a" if array["min"] is None else f"{array['min']:g} .. {array['max']:g}"
        specials = special_text({key: array[key] for key in ("nan", "posinf", "neginf")})
        say(f"{title}shape {tuple(array['shape'])}  dtype {array['dtype']}  layout {array['layout']}  "
            f"range {value_range}{specials}  -> output {tuple(array['output_shape'])}")
        table = Table("axis", "size", "window", "stride", "dilation", "pad lo,hi", "output", "dropped")
        for axis in array["axes"]:
            table.add_row(*(str(axis[k]) for k in ("axis", "size", "window", "stride", "dilation")),
                          f"{axis['padding'][0]}, {axis['padding'][1]}", str(axis["output"]), str(axis["dropped"]))
        console().print(table)


# ------------------------------------------------------------------ entry point


def main(argv: list[str] | None = None) -> int:
    """Run the app; usage errors become one line on stderr with exit code 2."""
    import sys

    if not (sys.argv[1:] if argv is None else argv):
        argv = ["--help"]  # `poolcli` alone: the help, and success
    with _signals_stop():
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
                report_failure(_one_line(error.format_message()) + _help_hint(error))
                return error.exit_code
            if _debug["on"]:
                raise
            report_failure(f"unexpected {type(error).__name__}: {_one_line(str(error))}"
                           " (rerun with --debug for details)")
            return EXIT_FAILED
    return code if isinstance(code, int) else EXIT_OK


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _signals_stop():
    """SIGTERM and SIGHUP stop a command as Ctrl-C does (clean-up, one line), with exit code
    128 + the signal; a signal the caller ignores (nohup) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Interrupted(signum)

    previous = {}
    for number in STOP_SIGNALS:
        if signal.getsignal(number) != signal.SIG_IGN:
            previous[number] = signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _stdout_gone() -> int:
    """The reader of stdout went away (`poolcli ... | head -1`): stop quietly, as `cat` would."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # so the interpreter's last flush does not fail again
    return 128 + 13  # SIGPIPE


def _one_line(text: str) -> str:
    return " ".join(text.split()).rstrip(".")


def _help_hint(error: Exception) -> str:
    context = getattr(error, "ctx", None)
    path = context.command_path if context is not None else "poolcli"
    return f"; see '{path} --help'"


# The batch command registers itself on `app`.
from . import cli_batch  # noqa: E402,F401
