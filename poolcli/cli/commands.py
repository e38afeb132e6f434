"""`poolcli pool`, `info`, `compare` and `grad`: parse, call the library, print. No array math,
no file formats: those are in app/ and io/.
"""

import contextlib
import dataclasses
import json
import os
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..core.choices import JPEG_QUALITY, MODES
from ..core.formats import written_suffixes
from ..errors import PoolError, param
from .app import (
    DEBUG,
    EXIT_FAILED,
    EXIT_OK,
    Location,
    PlainCommand,
    QualityOption,
    StripOption,
    UsageProblem,
    app,
    choice,
    one_line,
    parse_ints,
    path_or_url,
    refuse_inputs,
    with_pool_options,
)
from .bigdata import (
    DatasetOption,
    StorageOption,
    check_store_options,
    cluster_client,
    with_progress,
    with_storage_options,
    with_store_options,
)
from .terminal import console, flagged, report_failure, report_warning, say
from .working import working_bar

if TYPE_CHECKING:
    from ..app.settings import BigData, FileResult, PoolSettings


@app.command("pool", cls=PlainCommand)
@with_pool_options
@with_store_options
def pool_command(
    inputs: Annotated[list[Location], typer.Argument(
        help="Images, .npy or .npz files; - reads one from stdin.", show_default=False, metavar="INPUT",
        parser=path_or_url)],
    output: Annotated[str | None, typer.Option(
        "-o", "--output", metavar="OUTPUT", help="Output file (one input); - writes to stdout.")] = None,
    out_dir: Annotated[Location | None, typer.Option(
        "-d", "--out-dir", help="Output folder (created if missing) or s3:// prefix: writes "
        "{stem}_{mode}_{window}{ext} per input.", parser=path_or_url)] = None,
    output_format: Annotated[str | None, typer.Option(
        "-f", "--format", help=f"Output format: {'|'.join(written_suffixes())} (default: the extension of -o, "
        "else the input's).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per input on stdout (on stderr when -o - writes the image there).")] = False,
    compare: Annotated[Path | None, typer.Option(
        "--compare", help="Also write the input and its output side by side to this PNG (with several inputs: "
        "a folder, one DIR/{stem}_compare.png each).")] = None,
    quality: QualityOption = JPEG_QUALITY,
    strip: StripOption = False,
    *,
    settings: "PoolSettings",
    big: "BigData",
    scheduler: str | None,
):
    """Pool each INPUT and save the result. Inputs too big for --memory (.npy, Zarr, TIFF) are
    pooled block by block into .npy, .zarr or tiled .tif, with the same bits."""
    from ..app.memory import pool_file
    from ..app.settings import FileResult

    settings = settings.but(quality=quality, strip=strip)
    names = written_suffixes()
    suffix = None if output_format is None else names[choice("--format", output_format, names)]
    with contextlib.ExitStack() as stack:
        if output is not None and output.endswith(("/", os.sep)) and output != "-":
            raise UsageProblem(f"-o/--output {output} names a folder; use -d {output} to write into it")
        streams = _Streams(inputs, None if output is None else path_or_url(output), suffix, stack)
        inputs = streams.inputs
        targets = _targets(inputs, streams.output, out_dir, settings, suffix)
        figures = _compare_targets(inputs, compare)
        _refuse_collisions(inputs, targets, figures)
        check_store_options(targets, big)
        if scheduler is not None:
            big = dataclasses.replace(big, client=stack.enter_context(cluster_client(scheduler)))
        failures = 0
        for source, target, figure in zip(inputs, targets, figures):
            try:
                with with_progress(source, target, big) as streamed, working_bar(f"pooling {source.name}"):
                    result = pool_file(source, target, settings, overwrite=overwrite, inputs=tuple(inputs),
                                       big=streamed)
                if figure is not None:
                    _write_compare(source, target, figure, settings, overwrite, tuple(inputs))
                streams.send(target)
            except Exception as error:  # one input's failure, whatever it is, never stops the others
                failures += 1
                message = _input_failure(streams.shown(source), error)
                if DEBUG["on"]:
                    traceback.print_exc()
                report_failure(message)
                if as_json:
                    _print_json(FileResult(str(source), str(target), status="failed", error=flagged(message)),
                                to_stderr=streams.to_stdout)
                continue
            for warning in result.warnings:
                report_warning(warning)
            if as_json:
                _print_json(result, to_stderr=streams.to_stdout)
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

    from ..io import sniff_suffix

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
        return error.template
    if isinstance(error, OSError):
        return f"{source}: {error.strerror or one_line(str(error))}"
    return f"{source}: unexpected {type(error).__name__}: {one_line(str(error)) or 'no detail'}" \
        " (rerun with --debug for details)"


@app.command("info", cls=PlainCommand)
@with_pool_options
def info_command(
    input: Annotated[Location, typer.Argument(help="An image, .npy, .npz file or a Zarr store (or its s3://, gs:// or "
                                          "https:// URL).", show_default=False, metavar="INPUT", parser=path_or_url)],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    dataset: DatasetOption = None,
    storage_option: StorageOption = None,
    *,
    settings: "PoolSettings",
):
    """Describe INPUT and what pooling would do to it, without writing anything."""
    from ..app.describe import describe_file

    input = with_storage_options({"input": input}, storage_option)["input"]
    description = describe_file(input, settings, dataset)
    for array in description["arrays"].values():
        if array["layout_warning"] is not None:
            array["layout_warning"] = flagged(array["layout_warning"])
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
    from ..app.figures import MONTAGE_SCALES, write_compare

    given = {name for name in ("mode", "window", "channel", "scale") if _given(ctx, name)}
    _refuse_conflicts(given, modes, windows, montage)
    mode_list, window_list = _grid(settings, given, modes, windows)
    written = write_compare(input, output, settings, mode_list, window_list, diff=diff, channel=channel,
                            montage=montage, scale=choice("--scale", scale, MONTAGE_SCALES), overwrite=overwrite)
    say(f"{input} -> {written}  ({len(mode_list)} modes x {len(window_list)} windows)")
    return EXIT_OK


def _refuse_conflicts(given: set[str], modes: str | None, windows: str | None, montage: int | None) -> None:
    """compare's options that contradict each other: a usage error naming both."""
    if "mode" in given and modes is not None:
        raise UsageProblem("-m/--mode and --modes both choose the modes; give one (--modes for several rows)")
    if "window" in given and windows is not None:
        raise UsageProblem("-k/--window and --windows both choose the windows; give one (--windows for several)")
    if montage is not None and "channel" in given:
        raise UsageProblem("--montage tiles channels 0..N-1 and --channel picks one; give only one of them")
    if montage is None and "scale" in given:
        raise UsageProblem("--scale applies to --montage; add --montage N or drop --scale")


def _grid(settings: "PoolSettings", given: set[str], modes: str | None,
          windows: str | None) -> tuple[list[str], list[tuple[int, ...]]]:
    """The rows (modes: --modes, else -m if given, else max,avg) and columns (--windows, else -k),
    each (mode, window) checked."""
    modes = modes or (settings.mode if "mode" in given else "max,avg")
    mode_list = [choice("--modes", m.strip(), MODES) for m in modes.split(",") if m.strip()]
    window_list = [settings.window] if windows is None else \
        [parse_ints(w, "--windows") for w in windows.split(",") if w.strip()]
    if not mode_list or not window_list:
        raise UsageProblem("--modes and --windows need at least one value each; e.g. --modes max,avg --windows 2,4")
    for window in window_list:
        for mode in mode_list:
            checked_variant(settings, mode, window)
    return mode_list, window_list


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
    from ..app.figures import write_gradient

    written = write_gradient(input, output, settings, channel=channel, overwrite=overwrite)
    say(f"{input} -> {written}  (dL/dx of {settings.label()} for dL/dy = 1)")
    return EXIT_OK


def checked_variant(settings: "PoolSettings", mode: str, window: tuple[int, ...]) -> None:
    """A usage error unless (mode, window) may pool; checked here once, and kept by `settings` for the
    figure or page that asks for the same variant (`PoolSettings.variant`)."""
    try:
        settings.variant(mode, window)
    except PoolError as error:
        raise UsageProblem(error.template) from None


def _targets(inputs: list[Path], output: Path | None, out_dir: Path | None, settings: "PoolSettings",
             suffix: str | None) -> list[Path]:
    from ..io.remote import is_url

    if output is not None and out_dir is not None:
        raise UsageProblem("-o/--output and -d/--out-dir both name the output; give only one")
    if output is not None:
        if len(inputs) > 1:
            raise UsageProblem(f"-o/--output names one file but {len(inputs)} inputs were given; use -d OUT_DIR")
        if (output.is_dir() and not _names_folder_store(output)) or str(output).endswith(os.sep):
            raise UsageProblem(f"-o/--output {output} is a folder; use -d {output} to write into it")
        if suffix is not None and output.suffix.lower() != suffix:
            raise UsageProblem(f"-o/--output {output} and --format {suffix[1:]} disagree; give only one")
        return [output]
    if out_dir is not None and not is_url(out_dir):  # a prefix in object storage needs no folder
        from ..io import make_folder

        try:
            make_folder(out_dir, param("out_dir"))
        except PoolError as error:
            raise UsageProblem(error.template) from None
    from ..app.settings import default_output

    return [default_output(source, settings, out_dir, suffix) for source in inputs]


def _names_folder_store(output: Path) -> bool:
    """Whether `output`'s suffix names a store kept as a folder (a Zarr store), per the stores' table."""
    from ..stream.stores import by_suffix

    store = by_suffix(output)
    return store is not None and store.folder


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
    from ..io.remote import is_url

    claimed: dict[str, Path] = {}
    for source, *outputs in zip(inputs, targets, figures):
        for output in outputs:
            if output is None:
                continue
            key = str(output) if is_url(output) else os.path.realpath(output)
            if key in claimed:
                raise UsageProblem(f"{claimed[key]} and {source} would both write {output};"
                                   " pool them into different folders or one at a time with -o")
            claimed[key] = source
    refuse_inputs([output for output in (*targets, *figures) if output is not None], inputs)



def _write_compare(source: Path, target: Path, figure: Path, settings: "PoolSettings", overwrite: bool,
                   inputs: tuple[Path, ...]) -> None:
    from ..app.figures import write_side_by_side

    write_side_by_side(source, target, figure, settings, overwrite=overwrite, inputs=inputs)


def _print_json(result: "FileResult", *, to_stderr: bool = False) -> None:
    """One JSON record; on stderr when stdout carries the image (`-o -`), so the image stays whole."""
    typer.echo(json.dumps(result.to_json()), err=to_stderr)


def _shape_text(shape) -> str:
    if isinstance(shape, dict):
        return ", ".join(f"{k}: {tuple(v)}" for k, v in shape.items())
    return str(tuple(shape))


def _print_levels(levels: list[dict]) -> None:
    """A multi-resolution input's levels (an OME-Zarr's or a pyramidal TIFF's): shape, axes, pixel
    size (scale), translation, units and compression, where its metadata gives them."""
    if not levels:
        return
    from rich.table import Table

    say(f"pyramid: {len(levels)} levels")
    rows = [_level_cells(k, level) for k, level in enumerate(levels)]
    shown = [c for c, name in enumerate(LEVEL_COLUMNS) if c < 2 or any(row[c] for row in rows)]  # no empty column
    table = Table(*(LEVEL_COLUMNS[c] for c in shown))
    for row in rows:
        table.add_row(*(row[c] for c in shown))
    console().print(table)


LEVEL_COLUMNS = ("level", "shape", "axes", "scale", "translation", "units", "compression")


def _level_cells(k: int, level: dict) -> list[str]:
    """One level's cells under LEVEL_COLUMNS (an OME-Zarr level's scale, a TIFF level's pixel size)."""
    axes = level.get("axes") or ""
    units = level.get("units") or ([level["unit"]] if level.get("unit") else [])
    return [str(level.get("path", k)), "x".join(map(str, level["shape"])),
            axes if isinstance(axes, str) else ",".join(axes),
            _numbers(level.get("scale") or level.get("pixel_size")), _numbers(level.get("translation")),
            ",".join(unit or "-" for unit in units) if any(units) else "", level.get("compression") or ""]


def _numbers(values: list | None) -> str:
    return "" if not values else ", ".join(f"{v:g}" for v in values)


def _print_description(description: dict) -> None:
    from rich.table import Table

    from ..core.values import special_text

    say(f"{description['input']}  {description['format']} ({description['kind']})"
        + (f", mode {description['source_mode']}" if description["source_mode"] else "")
        + (f", {description['frames']} pages or frames (page {description['page']} is pooled)"
           if description["frames"] > 1 else ""))
    for key, array in description["arrays"].items():
        title = "" if key == "array" else f"[{key}] "
        value_range = "n/a" if array["min"] is None else f"{array['min']:g} .. {array['max']:g}"
        if array["nan"] is None:  # a Zarr store: described from its metadata, its values not read
            value_range, specials = f"not read (chunks {tuple(array['chunks'])})", ""
        else:
            specials = special_text({key: array[key] for key in ("nan", "posinf", "neginf")})
        layout = f"{array['layout'] or '-'} ({array['layout_reason']})"
        say(f"{title}shape {tuple(array['shape'])}  dtype {array['dtype']}  layout {layout}  "
            f"range {value_range}{specials}"
            + ("" if array.get("nodata") is None else f"  nodata {array['nodata']}")
            + f"  -> output {tuple(array['output_shape'])}")
        if array.get("axis_names_from") and description["kind"] != "image":  # an image's are y, x, c
            names = ",".join(array["axis_names"] or ["(none)"])
            origin = array["axis_names_from"]
            said = f"guessed ({array['axis_names_rule']}); name them with --layout" if origin == "guessed" \
                else f"from the {origin}"
            say(f"{title}OME axes {names}, {said}")
        table = Table("axis", "size", "window", "stride", "dilation", "pad lo,hi", "output", "dropped")
        for axis in array["axes"]:
            table.add_row(*(str(axis[k]) for k in ("axis", "size", "window", "stride", "dilation")),
                          f"{axis['padding'][0]}, {axis['padding'][1]}", str(axis["output"]), str(axis["dropped"]))
        console().print(table)
        if array["layout_warning"] is not None:
            report_warning(f"{description['input']}: {array['layout_warning']}")
    _print_levels(description.get("levels") or [])
