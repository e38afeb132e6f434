"""`poolcli inspect`: write the interactive inspector page of one input. Parse, call, print.

The page (poolcli/inspect/) shows the input and one panel per (mode, window); every value
on it is computed by the engine here, in Python.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..core.choices import MODES
from ..errors import PoolError
from .app import (
    EXIT_OK,
    PlainCommand,
    UsageProblem,
    app,
    choice,
    parse_ints,
    refuse_size_in_inspector,
    with_pool_options,
)
from .commands import checked_variant
from .terminal import say

if TYPE_CHECKING:
    from ..app.settings import PoolSettings


@app.command("inspect", cls=PlainCommand)
@with_pool_options
def inspect_command(
    ctx: typer.Context,
    input: Annotated[Path, typer.Argument(help="An image, .npy or .npz file.", show_default=False, metavar="INPUT")],
    output: Annotated[Path, typer.Option(
        "-o", "--output", help="The page, an .html file (self-contained: open it offline).", show_default=False)],
    modes: Annotated[str | None, typer.Option(
        "--modes", help="Comma-separated modes, one panel each (default: -m if given, else max,avg,l2).",
        show_default=False)] = None,
    windows: Annotated[str | None, typer.Option(
        "--windows", help='Comma-separated windows, one panel each per mode, e.g. "2,4" (default: -k).',
        show_default=False)] = None,
    channel: Annotated[str | None, typer.Option(
        "--channel", help="Feature maps: the channels to embed, e.g. 0,3,7 (default: the first 16).",
        show_default=False)] = None,
    region: Annotated[str | None, typer.Option(
        "--region", metavar="Y,X,H,W", help="Large inputs: the rows and columns whose exact values the page holds "
        "(default: all of an input up to 1024x1024, else the centre 512x512; H*W at most 1024*1024).",
        show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing page.")] = False,
    *,
    settings: "PoolSettings",
):
    """Write an HTML page that shows which input pixels each pooled value came from."""
    from ..inspect import write_inspector

    refuse_size_in_inspector(settings, "inspect")
    mode_list = _modes(ctx, settings, modes)
    window_list = [settings.window] if windows is None else \
        [parse_ints(w, "--windows") for w in windows.split(",") if w.strip()]
    if not window_list:
        raise UsageProblem("--windows needs at least one value; e.g. --windows 2,4")
    for window in window_list:
        for mode in mode_list:
            checked_variant(settings, mode, window)
    channels = None if channel is None else list(parse_ints(channel, "--channel"))
    written = write_inspector(input, output, settings, mode_list, window_list, channels=channels,
                              region=_region(region), overwrite=overwrite)
    say(f"{input} -> {written}  ({len(mode_list)} modes x {len(window_list)} windows)")
    return EXIT_OK


def _modes(ctx: typer.Context, settings: "PoolSettings", modes: str | None) -> list[str]:
    """--modes, else -m if given, else max,avg,l2; -m and --modes together are a usage error."""
    source = ctx.get_parameter_source("mode")
    mode_given = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
    if mode_given and modes is not None:
        raise UsageProblem("-m/--mode and --modes both choose the modes; give one (--modes for several panels)")
    text = modes or (settings.mode if mode_given else "max,avg,l2")
    mode_list = [choice("--modes", m.strip(), MODES) for m in text.split(",") if m.strip()]
    if not mode_list:
        raise UsageProblem("--modes needs at least one mode; e.g. --modes max,avg")
    return list(dict.fromkeys(mode_list))


def _region(text: str | None) -> tuple[int, int, int, int] | None:
    if text is None:
        return None
    values = parse_ints(text, "--region")
    if len(values) != 4:
        raise UsageProblem(f"--region {text!r} needs four numbers Y,X,H,W; e.g. --region 0,0,512,512")
    region = values[0], values[1], values[2], values[3]
    from ..inspect import check_region

    try:
        check_region(region)  # before the input is read
    except PoolError as error:
        raise UsageProblem(error.template) from None
    return region
