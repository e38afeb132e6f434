"""Big data on the command line: the options of inputs too big for memory (`--memory`,
`--dataset`, how Zarr and TIFF outputs are stored), their progress bar, and `poolcli pyramid`.
"""

import contextlib
import functools
import inspect
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..core.choices import COMPRESSIONS, DTYPE_CHOICES, MODES
from ..core.modes import described, names, spoken
from ..errors import PoolError
from .app import (
    EXIT_OK,
    AxesOption,
    Location,
    NanOption,
    NodataOption,
    PlainCommand,
    UsageProblem,
    app,
    choice,
    guarded,
    one_line,
    parse_axes,
    parse_ints,
    parse_nodata,
    parse_size,
    path_or_url,
    refuse_inputs,
)
from .terminal import say

if TYPE_CHECKING:
    from ..app.settings import BigData

MEMORY_FLOOR = 16 * 10**6  # the smallest --memory the streaming engine pools in
DEFAULT_MEMORY = "512MB"  # stream.DEFAULT_MEMORY, as --memory shows it

MemoryOption = Annotated[str, typer.Option(
    "--memory", metavar="SIZE", help="Memory budget for inputs too big to load (.npy, Zarr, TIFF): they are pooled "
    "block by block within it, e.g. 512MB, 2GB.")]
DatasetOption = Annotated[str | None, typer.Option(
    "--dataset", metavar="NAME", help="The array of a Zarr group to read (default: an OME-Zarr image's full "
    "resolution, or the group's only array).", show_default=False)]
CompressionOption = Annotated[str | None, typer.Option(
    "--compression", show_default=False, help=f"Compression of .zarr and .tif outputs: {'|'.join(COMPRESSIONS)}"
    " (default: zstd for .zarr, zlib for .tif: deflate, which every TIFF reader decodes; .tif takes no lz4).")]
OmeOption = Annotated[bool, typer.Option(
    "--ome", help="Write .tif outputs as OME-TIFF (as .ome.tif names are): OME-XML with the axes, pixel size and "
    "channel names that Bio-Formats (QuPath, Fiji, OMERO) reads.")]
ChunkOption = Annotated[int, typer.Option(
    "--chunk", min=1, help="Chunk side of .zarr outputs along the pooled axes (1 along the others).")]
ZarrFormatOption = Annotated[int, typer.Option("--zarr-format", help="Zarr format of .zarr outputs: 2 or 3.")]
PixelSizeOption = Annotated[str | None, typer.Option(
    "--pixel-size", metavar="SIZES", show_default=False,
    help="Physical size of one input pixel along each pooled axis (or each space axis z, y, x, or one for all), "
    "e.g. 0.5,0.5; replaces the input's own (OME-Zarr, TIFF) in .zarr and .tif outputs.")]
UnitOption = Annotated[str | None, typer.Option(
    "--unit", show_default=False, help="Unit of --pixel-size and of the space axes, as NGFF names it: micrometer, "
    "nanometer, millimeter... (um, nm, mm accepted).")]
SchedulerOption = Annotated[str | None, typer.Option(
    "--scheduler", metavar="ADDRESS", envvar="DASK_SCHEDULER_ADDRESS", show_default=False,
    help="Run on this Dask distributed cluster (tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT; default "
    "$DASK_SCHEDULER_ADDRESS); inputs and outputs must be on storage every worker sees. Needs poolcli[dask].")]


StorageOption = Annotated[list[str] | None, typer.Option(
    "--storage-option", metavar="KEY=VALUE", show_default=False,
    help="An option of the object storage of s3://, gs:// and https:// paths (repeatable), e.g. "
    "endpoint_url=http://127.0.0.1:9000 or anon=true; credentials come from the environment and ~/.aws. "
    "Needs poolcli[cloud].")]
STORE_OPTIONS = {
    "memory": (MemoryOption, DEFAULT_MEMORY),
    "dataset": (DatasetOption, None),
    "compression": (CompressionOption, None),
    "ome": (OmeOption, False),
    "chunk": (ChunkOption, 1024),
    "zarr_format": (ZarrFormatOption, 2),
    "pixel_size": (PixelSizeOption, None),
    "unit": (UnitOption, None),
    "scheduler": (SchedulerOption, None),
    "storage_option": (StorageOption, None),
}


def with_store_options(command):
    """Give a command the big-data options; it receives them as `big` (BigData) and `scheduler`."""
    signature = inspect.signature(command)
    own = [p for name, p in signature.parameters.items() if name not in ("big", "scheduler")]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
             for name, (annotation, default) in STORE_OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(**kwargs):
        options = {name: kwargs.pop(name) for name in STORE_OPTIONS}
        scheduler = options.pop("scheduler")
        storage = options.pop("storage_option")
        return guarded(lambda: command(big=big_data(**options), scheduler=checked_scheduler(scheduler),
                                       **with_storage_options(kwargs, storage)))

    wrapper.__signature__ = signature.replace(parameters=own + added)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
    return wrapper


def with_storage_options(arguments: dict, pairs: list[str] | None) -> dict:
    """A command's `arguments` with every URL among them (or in a list of them) carrying the
    storage options of `pairs` (KEY=VALUE; a UsageProblem for a malformed one)."""
    from ..io.remote import bound, parse_options

    try:
        options = parse_options(pairs or ())
    except PoolError as error:
        raise UsageProblem(error.template) from None
    if not options:
        return arguments
    return {name: [bound(item, options) for item in value] if isinstance(value, list) else bound(value, options)
            for name, value in arguments.items()}


def big_data(memory: str, dataset: str | None, compression: str | None, ome: bool, chunk: int, zarr_format: int,
             pixel_size: str | None = None, unit: str | None = None) -> "BigData":
    """The big-data options as the application's `BigData` (a UsageProblem for a bad value; a
    compression is checked against each output's store, `check_compression`)."""
    from ..app.settings import BigData
    from ..stream import StoreOptions

    budget = memory_budget(memory)
    if zarr_format not in (2, 3):
        raise UsageProblem(f"--zarr-format {zarr_format} is not known; use 2 or 3")
    store = StoreOptions(compression=compression, chunk=chunk, zarr_format=zarr_format, ome=ome)
    return BigData(memory=budget, dataset=dataset, store=store, pixel_size=parse_sizes(pixel_size),
                   unit=None if unit is None else unit_or_usage(unit))


def parse_sizes(text: str | None) -> tuple[float, ...] | None:
    """--pixel-size '0.5,0.5' as positive finite floats (a UsageProblem otherwise)."""
    if text is None:
        return None
    try:
        sizes = tuple(float(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or not all(0 < size < float("inf") for size in sizes):
        raise UsageProblem(f"--pixel-size {text!r} is not a list of positive sizes; use e.g. 0.5 or 0.5,0.5")
    return sizes


def unit_or_usage(unit: str) -> str:
    """--unit as NGFF names it (a UsageProblem for a unit NGFF does not know)."""
    from ..core.calibration import unit_name

    try:
        return unit_name(unit)
    except PoolError as error:
        raise UsageProblem(error.template) from None


def check_store_options(targets: list[Path], big: "BigData") -> None:
    """Refuse (a UsageProblem, before any work) a --compression that some output's store cannot
    write, or given for an output no store writes (PNG, JPEG, ...), and --ome for an output other
    than TIFF: the stores' records say."""
    from ..stream import checked_options

    for target in targets:
        try:
            checked_options(target, big.store)
        except PoolError as error:
            raise UsageProblem(error.template) from None


def memory_budget(memory: str) -> int:
    """--memory in bytes (a UsageProblem for a bad size or one too small to pool in)."""
    budget = parse_size(memory, "--memory")
    if budget < MEMORY_FLOOR:
        raise UsageProblem(f"--memory {memory} is too small to pool in; give at least 16MB")
    return budget


def checked_scheduler(address: str | None) -> str | None:
    """--scheduler (or $DASK_SCHEDULER_ADDRESS) as a scheduler address, checked before any work:
    a UsageProblem for one that is malformed."""
    if address is None:
        return None
    from ..stream.cluster import scheduler_address

    try:
        return scheduler_address(address)
    except PoolError as error:
        raise UsageProblem(error.template) from None


@contextlib.contextmanager
def cluster_client(address: str) -> Iterator:
    """A client of the Dask scheduler at `address` for the block, closed whatever happens (a
    PoolError, exit 1, if none answers in time)."""
    from ..stream.cluster import connect

    client = connect(address)
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def progress_bar(total: int, label: str) -> Iterator:
    """A progress bar of input bytes on stderr (bytes, rate, ETA) where stderr is a terminal;
    yields the function that advances it."""
    import sys

    if not sys.stderr.isatty() or total <= 0:
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.advance(task, done)


@app.command("pyramid", cls=PlainCommand)
@with_store_options
def pyramid_command(
    input: Annotated[Location, typer.Argument(help="A .npy file, a Zarr store, a TIFF/BigTIFF or any image poolcli "
                                              "reads (or an s3://, gs:// or https:// URL of one).", show_default=False,
                                              metavar="INPUT", parser=path_or_url)],
    output: Annotated[Location, typer.Option("-o", "--output", metavar="OUT.zarr|OUT.tif", parser=path_or_url,
                                         help="OME-Zarr store (.zarr), pyramidal tiled BigTIFF (.tif) or"
                                         " OME-TIFF (.ome.tif).",
                                         show_default=False)],
    mode: Annotated[str | None, typer.Option(
        "-m", "--mode", show_default=False,
        help=f"Pooling mode of every level: {described()}. Default: avg ({spoken(names(labels=True))} with "
        f"--labels). Labels and masks: {spoken(names(picks=True))}, whose levels hold only labels of the input "
        f"({spoken(names(labels=True))} alone writes a label pyramid).")] = None,
    labels: Annotated[str | None, typer.Option(
        "--labels", metavar="NAME", show_default=False,
        help="Write a label pyramid (NGFF image-label): beside the OME-Zarr image OUT.zarr as labels/NAME (the image "
        "is left as it is), or, where OUT.zarr is not an image, as the label image OUT.zarr itself.")] = None,
    levels: Annotated[int | None, typer.Option("--levels", help="Reduced levels (2x, 4x, ...).",
                                               show_default=False)] = None,
    min_size: Annotated[int, typer.Option("--min-size", help="Without --levels: halve until the longest side is "
                                          "at most this.")] = 512,
    axes: AxesOption = None,
    layout: Annotated[str | None, typer.Option(
        "--layout", show_default=False, help="The input's axes, one letter each: t, c, z (or d), y (or h), x (or w), "
        "e.g. z,y,x, cyx or tczyx; names the OME-Zarr axes, and y and x are pooled (default: guessed, see info).")]
    = None,
    factors: Annotated[str | None, typer.Option(
        "-k", "--factors", show_default=False, help="Per input axis, what each level does to it: 2 halves it, 1 "
        "keeps it, e.g. 1,2,2 for z,y,x (2,2,2 halves z too; default: 2 on the pooled axes).")] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="Levels' dtype: auto (the input's; "
                                       f"{spoken(names(grows=True), 'and')} their natural one)"
                                       "|keep|float32|float64|uint8|uint16.")] = "auto",
    nan: NanOption = "propagate",
    nodata: NodataOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    *,
    big: "BigData",
    scheduler: str | None,
):
    """Write a multi-resolution pyramid of INPUT in one pass: every level the exact, once-rounded
    pooling of level 0 (a 2^k window), as OME-Zarr or as a pyramidal TIFF."""
    def run() -> int:
        chosen, label = label_mode(None if mode is None else choice("--mode", mode, MODES), labels)
        with naming_input(input):
            axes_chosen = AxesChoice(parse_axes(axes), layout, None if factors is None else parse_ints(factors, "-k"))
            return _pyramid(input, output, chosen, levels, min_size, axes_chosen, dtype,
                            choice("--nan", nan, ("propagate", "omit")), overwrite, big, scheduler, label,
                            parse_nodata(nodata))

    return guarded(run)


LABEL_IMAGE = ""  # a label pyramid written as the output itself, not beside an image


def label_mode(mode: str | None, labels: str | None) -> tuple[str, str | None]:
    """The mode of every level and the label pyramid asked for: None (an image pyramid), the name of
    labels beside an image (--labels NAME), or LABEL_IMAGE (a mode made for labels, alone). Label
    pyramids take majority unless -m names another mode whose results are cells of the input."""
    from ..core.modes import MODES as TABLE
    from ..stream import check_label_name

    made_for_labels = names(labels=True)
    if mode is None:
        mode = made_for_labels[0] if labels is not None else "avg"
    if labels is None:
        return mode, LABEL_IMAGE if TABLE[mode].labels else None
    try:
        check_label_name(labels)
    except PoolError as error:
        raise UsageProblem(error.template) from None
    if not TABLE[mode].picks:
        raise UsageProblem(f"--mode {mode} can write a value that is no label of the input (a mean of labels);"
                           f" label pyramids take {spoken(names(picks=True))}")
    return mode, labels


@contextlib.contextmanager
def naming_input(source: Path) -> Iterator[None]:
    """A failure poolcli did not foresee, or memory running out, as one line naming the input
    (as `pool` names each of its inputs)."""
    try:
        yield
    except (PoolError, UsageProblem):
        raise
    except MemoryError:
        raise PoolError(f"{source}: not enough memory for its pyramid; free memory or pass a smaller --memory") \
            from None
    except Exception as error:
        raise PoolError(f"{source}: unexpected {type(error).__name__}: {one_line(str(error)) or 'no detail'}"
                        " (rerun with --debug for details)") from error


@dataclass(frozen=True)
class AxesChoice:
    """How the user names and picks a pyramid's axes: --axes, --layout, -k (each may be None)."""

    axes: tuple[int, ...] | None
    layout: str | None
    factors: tuple[int, ...] | None


def _pyramid(source: Path, target: Path, mode: str, levels: int | None, min_size: int,
             axes: AxesChoice, dtype: str, nan: str, overwrite: bool, big: "BigData",
             scheduler: str | None, label: str | None = None, nodata: int | float | str | None = None) -> int:
    import dataclasses

    import numpy as np

    from .. import stream
    from ..app.settings import nodata_for

    started = time.perf_counter()
    stream.pyramid_format(target)
    check_store_options([target], big)
    refuse_inputs([target], [source])
    if label is not None and scheduler is not None:
        raise UsageProblem("a label pyramid is written on this machine; drop --scheduler")
    with stream.open_source(source, big.dataset) as data:
        names = _layout_names(axes.layout, len(data.shape))
        spatial = _spatial_axes(data, axes, names)
        count = level_count_or_usage(data.shape, spatial, levels, min_size)
        if label == LABEL_IMAGE and data.dtype.kind not in "biu":
            label = None  # a mode made for labels, of floats: an image pyramid in that mode
        if label is not None:
            stream.check_label_dtype(source, data.dtype)
        wanted = _pyramid_dtype(dtype, data.dtype, mode)
        if label is not None and wanted is not None and np.dtype(wanted).kind == "f":
            raise UsageProblem(f"--dtype {dtype}: labels are integers; use auto or keep")
        found = nodata_for(nodata, data.dtype, data.nodata, data.fill_value)  # recorded by every level
        pyramid = stream.Pyramid(data.shape, spatial, count, mode, nan, None if wanted is None else np.dtype(wanted),
                                 nodata=found)
        big = dataclasses.replace(big, store=dataclasses.replace(
            big.store, nodata=found, calibration=_calibration(data, spatial, names, big)))
        if label is not None:
            with progress_bar(data.nbytes, f"labels {source.name}") as advance:
                shapes = stream.build_label_pyramid(data, target, pyramid, name=label or None, memory=big.memory,
                                                    options=big.store, overwrite=overwrite, progress=advance)
        elif scheduler is not None:
            shapes = _pyramid_on_cluster(scheduler, source, target, pyramid, big, overwrite)
        else:
            stream.tune_malloc()
            with progress_bar(data.nbytes, f"pyramid {source.name}") as advance:
                shapes = stream.build_pyramid(data, target, pyramid, memory=big.memory, options=big.store,
                                              overwrite=overwrite, progress=advance)
    seconds = time.perf_counter() - started
    say(f"{source} -> {target}  {count + 1} levels: " + ", ".join("x".join(map(str, s)) for s in shapes)
        + f"  ({seconds:.1f} s)")
    return EXIT_OK


def _pyramid_on_cluster(scheduler: str, source: Path, target: Path, pyramid, big: "BigData",
                        overwrite: bool) -> list:
    from ..stream import cluster

    with cluster_client(scheduler) as client:
        cluster.check_cluster_paths(source, target)
        cluster.check_shared(client, source, target.parent)
        return cluster.pyramid_on_cluster(client, source, target, pyramid, options=big.store, overwrite=overwrite,
                                          dataset=big.dataset)


def _layout_names(layout: str | None, ndim: int) -> tuple[str, ...] | None:
    """--layout as NGFF axis names (checked as pool checks its --layout; a UsageProblem if bad)."""
    if layout is None:
        return None
    from ..core.calibration import layout_names
    from ..io import pooled_axes_for_layout

    try:
        pooled_axes_for_layout(layout, ndim)
        return layout_names(layout)
    except PoolError as error:
        raise UsageProblem(error.template) from None


def _calibration(data, spatial: tuple[int, ...], names: tuple[str, ...] | None, big: "BigData"):
    """Level 0's calibration: the input's (its metadata, --layout's names), --pixel-size and --unit on top."""
    from ..core.calibration import input_calibration

    try:
        return input_calibration(data.shape, spatial, data.calibration, names=names, image=data.kind == "image",
                                 pixel_size=big.pixel_size, unit=big.unit)
    except PoolError as error:
        raise UsageProblem(error.template) from None


def _spatial_axes(data, chosen: AxesChoice, names: tuple[str, ...] | None) -> tuple[int, ...]:
    """The pooled axes: -k's 2s, else --axes, else --layout's y and x, else H and W of an image,
    else an array's last two axes (its last one if 1-d)."""
    ndim = len(data.shape)
    axes = chosen.axes
    if chosen.factors is not None:
        if axes is not None:
            raise UsageProblem("-k and --axes both choose the pooled axes; give only one")
        if len(chosen.factors) != ndim or not set(chosen.factors) <= {1, 2} or 2 not in chosen.factors:
            raise UsageProblem(f"-k {','.join(map(str, chosen.factors))} must give each of the input's {ndim} axes"
                               " 2 (halved at each level) or 1 (kept), at least one 2; e.g. "
                               + ",".join(["1"] * (ndim - 2) + ["2", "2"])[:2 * ndim - 1])
        return tuple(a for a, f in enumerate(chosen.factors) if f == 2)
    if axes is None and names is not None:
        pooled = tuple(a for a, name in enumerate(names) if name in ("y", "x"))
        if not pooled:
            raise UsageProblem(f"--layout {chosen.layout} names no y or x axis to pool; name them, or give -k")
        return pooled
    if axes is not None:
        resolved = tuple(sorted(a % ndim for a in axes if -ndim <= a < ndim))
        if len(resolved) != len(axes) or len(set(resolved)) != len(resolved):
            raise UsageProblem(f"--axes {','.join(map(str, axes))} does not name distinct axes of a {ndim}-d input")
        return resolved
    if data.kind == "image":
        return (0, 1)
    return tuple(range(max(0, ndim - 2), ndim))


def level_count_or_usage(shape, spatial, levels, min_size) -> int:
    from ..stream import level_count

    try:
        return level_count(shape, spatial, levels, min_size)
    except PoolError as error:
        raise UsageProblem(error.template) from None


def _pyramid_dtype(dtype: str, source, mode: str) -> str | None:
    """auto: levels keep the input's dtype (sum and lp, which grow, and bool inputs take their
    natural one); keep: always the input's; else the dtype named."""
    from ..core.modes import MODES as TABLE

    dtype = choice("--dtype", dtype, DTYPE_CHOICES)
    if dtype == "auto":
        return None if TABLE[mode].grows or source.kind == "b" else str(source)
    if dtype == "keep":
        return str(source)
    return dtype


@contextlib.contextmanager
def with_progress(source: Path, target: Path, big: "BigData") -> Iterator["BigData"]:
    """`big` with a progress bar where `source` is pooled block by block (none otherwise)."""
    import dataclasses

    from ..app.streamed import streams

    if not streams(source, target, big):
        yield big
        return
    if big.client is None:
        from ..stream import tune_malloc

        tune_malloc()
    with progress_bar(_input_bytes(source, big), f"pool {source.name}") as advance:
        yield dataclasses.replace(big, progress=advance)


def _input_bytes(source: Path, big: "BigData") -> int:
    from .. import stream

    try:
        with stream.open_source(source, big.dataset) as data:
            return data.nbytes
    except PoolError:
        return 0  # the pooling itself will say what is wrong
