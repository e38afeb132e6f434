"""Big data on the command line: the options of inputs too big for memory (`--memory`,
`--dataset`, how Zarr and TIFF outputs are stored), their progress bar, and `poolcli pyramid`.
"""

import contextlib
import functools
import inspect
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..core.choices import COMPRESSIONS, DTYPE_CHOICES, MODES
from ..core.modes import described, names, spoken
from ..errors import PoolError
from .app import (
    EXIT_OK,
    AxesOption,
    NanOption,
    PlainCommand,
    UsageProblem,
    app,
    choice,
    guarded,
    one_line,
    parse_axes,
    parse_size,
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
SchedulerOption = Annotated[str | None, typer.Option(
    "--scheduler", metavar="ADDRESS", envvar="DASK_SCHEDULER_ADDRESS", show_default=False,
    help="Run on this Dask distributed cluster (tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT; default "
    "$DASK_SCHEDULER_ADDRESS); inputs and outputs must be on storage every worker sees. Needs poolcli[dask].")]


STORE_OPTIONS = {
    "memory": (MemoryOption, DEFAULT_MEMORY),
    "dataset": (DatasetOption, None),
    "compression": (CompressionOption, None),
    "ome": (OmeOption, False),
    "chunk": (ChunkOption, 1024),
    "zarr_format": (ZarrFormatOption, 2),
    "scheduler": (SchedulerOption, None),
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
        return guarded(lambda: command(big=big_data(**options), scheduler=checked_scheduler(scheduler), **kwargs))

    wrapper.__signature__ = signature.replace(parameters=own + added)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
    return wrapper


def big_data(memory: str, dataset: str | None, compression: str | None, ome: bool, chunk: int,
             zarr_format: int) -> "BigData":
    """The big-data options as the application's `BigData` (a UsageProblem for a bad value; a
    compression is checked against each output's store, `check_compression`)."""
    from ..app.settings import BigData
    from ..stream import StoreOptions

    budget = memory_budget(memory)
    if zarr_format not in (2, 3):
        raise UsageProblem(f"--zarr-format {zarr_format} is not known; use 2 or 3")
    store = StoreOptions(compression=compression, chunk=chunk, zarr_format=zarr_format, ome=ome)
    return BigData(memory=budget, dataset=dataset, store=store)


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
    input: Annotated[Path, typer.Argument(help="A .npy file, a Zarr store, a TIFF/BigTIFF or any image poolcli reads.",
                                          show_default=False, metavar="INPUT")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="OUT.zarr|OUT.tif",
                                         help="OME-Zarr store (.zarr), pyramidal tiled BigTIFF (.tif) or"
                                         " OME-TIFF (.ome.tif).",
                                         show_default=False)],
    mode: Annotated[str, typer.Option("-m", "--mode", help=f"Pooling mode of every level: {described()}; "
                                      f"{spoken(names(mixes=False))} for labels and masks.")] = "avg",
    levels: Annotated[int | None, typer.Option("--levels", help="Reduced levels (2x, 4x, ...).",
                                               show_default=False)] = None,
    min_size: Annotated[int, typer.Option("--min-size", help="Without --levels: halve until the longest side is "
                                          "at most this.")] = 512,
    axes: AxesOption = None,
    dtype: Annotated[str, typer.Option("--dtype", help="Levels' dtype: auto (the input's; "
                                       f"{spoken(names(grows=True), 'and')} their natural one)"
                                       "|keep|float32|float64|uint8|uint16.")] = "auto",
    nan: NanOption = "propagate",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    *,
    big: "BigData",
    scheduler: str | None,
):
    """Write a multi-resolution pyramid of INPUT in one pass: every level the exact, once-rounded
    pooling of level 0 (a 2^k window), as OME-Zarr or as a pyramidal TIFF."""
    def run() -> int:
        with naming_input(input):
            return _pyramid(input, output, choice("--mode", mode, MODES), levels, min_size, parse_axes(axes), dtype,
                            choice("--nan", nan, ("propagate", "omit")), overwrite, big, scheduler)

    return guarded(run)


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


def _pyramid(source: Path, target: Path, mode: str, levels: int | None, min_size: int,
             axes: tuple[int, ...] | None, dtype: str, nan: str, overwrite: bool, big: "BigData",
             scheduler: str | None) -> int:
    import numpy as np

    from .. import stream

    started = time.perf_counter()
    stream.pyramid_format(target)
    check_store_options([target], big)
    refuse_inputs([target], [source])
    with stream.open_source(source, big.dataset) as data:
        spatial = _spatial_axes(data, axes)
        count = level_count_or_usage(data.shape, spatial, levels, min_size)
        wanted = _pyramid_dtype(dtype, data.dtype, mode)
        pyramid = stream.Pyramid(data.shape, spatial, count, mode, nan, None if wanted is None else np.dtype(wanted))
        if scheduler is not None:
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


def _spatial_axes(data, axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """--axes, else H and W of an image, else an array's last two axes (its last one if 1-d)."""
    ndim = len(data.shape)
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
