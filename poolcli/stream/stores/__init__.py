"""The stores streaming reads and writes, one record each: a `Store` names its suffixes, opens
a source and a sink, writes a pyramid (or has no pyramid writer) and says which compressions
its outputs take. Streaming, pyramids, the cluster path, `info` and the command line read
this table; one module (`npy`, `zarr`, `tiff`) and one `register` line add a store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from ...errors import InputError, OutputError, param
from ...io.remote import as_location, is_url
from ..sinks import Sink, StoreOptions
from ..sources import Source
from . import images, labels, npy, tiff, zarr

SourceOpener = Callable[[Path, "str | None"], contextlib.AbstractContextManager[Source]]
SinkOpener = Callable[..., contextlib.AbstractContextManager[Sink]]  # (target, shape, dtype, *, spatial, options,
# overwrite, inputs)
PyramidWriter = Callable[..., list]  # (source, pyramid, target, options, budget, *, overwrite, progress)
LabelWriter = Callable[..., list]  # (source, pyramid, target, options, budget, *, name, overwrite, progress)


@dataclass(frozen=True)
class Store:
    """One store: how its paths are named, read, written and pyramided."""

    name: str  # the Source's `format` (what `info` prints), e.g. "ZARR"
    suffixes: tuple[str, ...]  # lower case, with the dot
    open_source: SourceOpener
    open_sink: SinkOpener
    write_pyramid: PyramidWriter | None = None  # None: a pyramid is refused (it has one level)
    compressions: tuple[str, ...] = ()  # the `compression` names its outputs take, its default first
    folder: bool = False  # a folder: read and written only by streaming, whatever its size
    recognises: Callable[[Path], bool] | None = None  # a folder of this store without its suffix
    data_bytes: Callable[[Path], int] | None = None  # a file's decoded size from its header (0: unknown)
    write_labels: LabelWriter | None = None  # a label pyramid (NGFF image-label); None: refused
    remote: bool = False  # its source opens an `io.remote.Url` (object storage) too
    ome: bool = False  # its outputs may be written as OME-TIFF (`StoreOptions.ome`)


STORES: dict[str, Store] = {}


def register(store: Store) -> Store:
    """Add (or replace) `store` in the table every reader of stores consults."""
    STORES[store.name] = store
    return store


register(Store("NPY", (".npy",), npy.open_source, npy.open_sink, data_bytes=npy.data_bytes))
register(Store("ZARR", zarr.SUFFIXES, zarr.open_source, zarr.open_sink, zarr.write_ome_zarr, zarr.COMPRESSIONS,
               folder=True, recognises=zarr.is_zarr, write_labels=labels.write_label_pyramid, remote=True))
register(Store("TIFF", tiff.SUFFIXES, tiff.open_source, tiff.open_sink, tiff.write_pyramid_tiff, tiff.COMPRESSIONS,
               data_bytes=tiff.data_bytes, remote=True, ome=True))
check_label_name, check_label_dtype = labels.check_label_name, labels.check_label_dtype  # asked before any read
# Any other image poolcli reads, decoded whole and held (no suffix of its own: never an output store).
IMAGES = Store("IMAGE", (), images.open_source, npy.open_sink)
DEFAULT_FOLDER = "ZARR"  # a folder no store's suffix names is read as this store (and refused by it)


def by_suffix(path: Path) -> Store | None:
    """The store whose suffixes hold `path`'s (None where none does)."""
    suffix = path.suffix.lower()
    return next((store for store in STORES.values() if suffix in store.suffixes), None)


def is_big_input(path: Path) -> bool:
    """Whether `path` is read by streaming in any case: a folder store (Zarr)."""
    store = by_suffix(path)
    if store is not None and store.folder:
        return True
    return path.is_dir() and any(s.recognises(path) for s in STORES.values() if s.recognises is not None)


def input_store(path: Path) -> Store:
    """The store that reads `path`; an InputError naming it where none does."""
    store = by_suffix(path)
    if path.is_dir() and (store is None or not store.folder):
        store = next((s for s in STORES.values() if s.recognises is not None and s.recognises(path)),
                     STORES[DEFAULT_FOLDER])
    if store is None and images.reads(path):
        return IMAGES
    if store is None:
        raise InputError(f"{path}: big inputs are {_named(STORES.values())} or images poolcli reads; convert it,"
                         " or pool it in memory")
    return store


def output_store(path: Path) -> Store:
    """The store that writes `path`; an OutputError naming it where none does (and for a URL, a
    store other than a folder: object storage takes Zarr stores)."""
    store = by_suffix(path)
    if store is None:
        raise OutputError(f"{path}: big outputs are {_named(STORES.values())}; use one of those extensions")
    if is_url(path) and not store.folder:
        raise OutputError(f"{path}: outputs in object storage are Zarr stores; write .zarr there, or"
                          f" {store.suffixes[0]} to a local path")
    return store


def as_path(path: Any) -> Path:
    """`path` as a `pathlib.Path`, or as it is where it is an `io.remote.Url` (which stores read
    as a path: its name, suffix, `exists`, `/`)."""
    return cast(Path, as_location(path))  # a Url keeps its options (credentials)


def checked_options(target: Path, options: StoreOptions) -> StoreOptions:
    """`options` for writing `target`: its compression one that `target`'s store takes (the store's
    default, the first it names, where none is asked for), OME only for a store that writes it;
    an OutputError naming the fix otherwise. The one check of store options against an output:
    streaming, pyramids, the cluster and the command line all ask it."""
    store = by_suffix(target)
    if options.ome and (store is None or not store.ome):
        raise OutputError(f"{target}: {param('ome')} applies to TIFF outputs (.tif); drop it, or write a .tif")
    return replace(options, compression=compression_for(target, options.compression))


def compression_for(target: Path, compression: str | None) -> str | None:
    """The compression `target` is written with: `compression` where its store takes it, its store's
    default where `compression` is None (None for an output no store writes, such as a PNG, and for
    a store that takes none); an OutputError where the store cannot write `compression`."""
    store = by_suffix(target)
    if compression is None:
        return store.compressions[0] if store is not None and store.compressions else None
    if store is None or not store.compressions:
        kind = "no store" if store is None else store.name
        raise OutputError(f"{target}: {param('compression')} applies to {_compressed_outputs()} outputs, not to"
                          f" {target.suffix or kind}; drop it, or write one of those")
    if compression not in store.compressions:
        raise OutputError(f"{target}: {store.name} outputs cannot take {param('compression')} {compression};"
                          f" use one of {', '.join(store.compressions)}")
    return compression


def _compressed_outputs() -> str:
    suffixes = [store.suffixes[0] for store in STORES.values() if store.compressions]
    return " and ".join(filter(None, (", ".join(suffixes[:-1]), suffixes[-1])))


def pyramid_stores() -> list[Store]:
    """The stores that write pyramids."""
    return [store for store in STORES.values() if store.write_pyramid is not None]


def _named(stores: Iterable[Store]) -> str:
    """The stores' suffixes as a message lists them: ".npy, .zarr/.zarr2/... or .tif/.tiff/..."."""
    names = ["/".join(store.suffixes) for store in stores]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def named_pyramid_stores() -> str:
    """The suffixes of the stores that write pyramids, for a message."""
    return _named(pyramid_stores())


def file_suffixes() -> tuple[str, ...]:
    """The suffixes of the stores kept as one file (not a folder): inputs a batch walk finds."""
    return tuple(suffix for store in STORES.values() if not store.folder for suffix in store.suffixes)


def decoded_bytes(path: Path) -> int:
    """An input file's decoded size from its store's header reader (0 where no store knows it)."""
    store = by_suffix(path)
    return 0 if store is None or store.data_bytes is None else store.data_bytes(path)


@contextlib.contextmanager
def open_source(path: Path | str, dataset: str | None = None) -> Iterator[Source]:
    """The input at `path` (a local path or an `io.remote.Url`), opened for reading blocks by its
    store; an InputError naming it and the fix."""
    path = as_path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; check the path")
    store = input_store(path)
    if is_url(path) and not store.remote:
        raise InputError(f"{path}: {store.name} in object storage is not read block by block; copy it to a local"
                         " path, or store it as Zarr")
    with store.open_source(path, dataset) as source:
        yield source


def open_sink(target: Path, shape: tuple[int, ...], dtype: np.dtype, *, spatial: tuple[int, ...],
              options: StoreOptions, overwrite: bool, inputs: tuple[Path, ...]) -> Any:
    """A sink for an output of `shape` and `dtype` that becomes `target` when the block ends."""
    options = checked_options(target, options)
    return output_store(target).open_sink(target, shape, dtype, spatial=spatial, options=options, overwrite=overwrite,
                                          inputs=inputs)
