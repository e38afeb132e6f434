"""Inputs and outputs in object storage: `s3://`, `gs://` and `http(s)://` URLs (`Url`), read
and written through fsspec (s3fs, gcsfs, its HTTP file system: the extra `poolcli[cloud]`).

Why fsspec rather than obstore: zarr's `FsspecStore`, ome-zarr-py, tifffile's range reads and
Dask workers all speak it, so one set of credentials and retries serves every reader; its
requests run concurrently on zarr's event loop. Nothing here is imported at start-up: the
libraries load on the first URL.

Credentials and endpoints come the way every AWS tool takes them (environment, `~/.aws`,
`AWS_ENDPOINT_URL`), plus the storage options a `Url` carries (`key=value` pairs). A Url prints
as its text alone: its options (secrets) are never shown, and never written anywhere.

Transient failures (timeouts, HTTP 5xx, throttling) are retried with exponential backoff by
the client (botocore's "standard" mode, `attempts()` tries); what still fails is one line naming
the object (`named_errors`). A Zarr output is published whole (`published_zarr`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import PurePosixPath
from typing import Any

from ..errors import InputError, OutputError, PoolError, param

SCHEMES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "http": "aiohttp", "https": "aiohttp"}
EXTRAS = {"gcsfs": "poolcli[gcs]"}  # the others come with poolcli[cloud]
READ_ONLY = ("http", "https")
ATTEMPTS = 5  # tries of one request, transient failures retried with exponential backoff
CONCURRENCY = 16  # requests zarr keeps in flight for a store in object storage
WRITE_DEPTH = 2  # chunk rows an output uploads in the background while the next are computed (each a copy)
WRITE_BYTES = 32 << 20  # at most this many bytes of them held (one row at least)
TIMEOUTS = {"connect_timeout": 10, "read_timeout": 60}
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
PARTIAL = ".poolcli-partial"  # the object that marks a Zarr output being written (not published)
DEFINING = ("zarr.json", ".zgroup", ".zarray")  # the keys that make a prefix a Zarr group or array
METADATA = (".zattrs", *DEFINING)


@dataclass(frozen=True)
class Url:
    """An object or prefix in object storage, path-like where poolcli asks (`name`, `suffix`,
    `parent`, `/`, `exists`), with the storage options it is opened with (never shown).

    >>> url = Url("s3://bucket/images/cells.ome.zarr")
    >>> url.name, url.suffix, str(url.parent), str(url / "0")
    ('cells.ome.zarr', '.zarr', 's3://bucket/images', 's3://bucket/images/cells.ome.zarr/0')
    >>> Url("s3://bucket/x.zarr", (("secret", "hush"),))
    Url('s3://bucket/x.zarr')
    """

    text: str
    options: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", self.text.rstrip("/"))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Url({self.text!r})"

    @property
    def scheme(self) -> str:
        return self.text.split("://", 1)[0].lower()

    @property
    def key(self) -> str:
        """What the file system names it: `bucket/key` (the whole URL over HTTP)."""
        return self.text if self.scheme in READ_ONLY else self.text.split("://", 1)[1]

    @property
    def _pure(self) -> PurePosixPath:
        return PurePosixPath("/" + self.text.split("://", 1)[1])

    @property
    def name(self) -> str:
        return self._pure.name

    @property
    def suffix(self) -> str:
        return self._pure.suffix

    @property
    def suffixes(self) -> list[str]:
        return self._pure.suffixes

    @property
    def stem(self) -> str:
        return self._pure.stem

    @property
    def parent(self) -> Url:
        head, _, _ = self.text.rpartition("/")
        return self if head.endswith(":/") or "://" not in head else Url(head, self.options)

    def __truediv__(self, name: object) -> Url:
        parts = [part for part in str(name).split("/") if part not in ("", ".")]
        return Url("/".join([self.text, *parts]), self.options)

    def with_name(self, name: str) -> Url:
        return self.parent / name

    def with_options(self, options: dict[str, Any]) -> Url:
        return Url(self.text, tuple(sorted(options.items())))

    def exists(self) -> bool:
        with named_errors(self, InputError):
            if self.scheme not in READ_ONLY:
                return bool(filesystem(self).exists(self.key))
            try:  # over HTTP a HEAD request: fsspec's `exists` would GET the whole object
                filesystem(self).info(self.key)
            except FileNotFoundError:
                return False
            return True

    def stat(self) -> Any:
        """The object's size and modification time (`st_size`, `st_mtime`), as `os.stat` gives a file's."""
        from types import SimpleNamespace

        with named_errors(self, InputError):
            info = filesystem(self).info(self.key)
        modified = info.get("LastModified") or info.get("mtime") or info.get("updated")
        when = modified.timestamp() if hasattr(modified, "timestamp") else float(modified or 0)
        return SimpleNamespace(st_size=int(info.get("size") or 0), st_mtime=when)

    def is_dir(self) -> bool:
        """Whether it is a prefix holding objects (never over HTTP, which lists nothing: asking
        would fetch the object to look for links in it)."""
        if self.scheme in READ_ONLY:
            return False
        with named_errors(self, InputError):
            return bool(filesystem(self).isdir(self.key))

    def is_file(self) -> bool:
        with named_errors(self, InputError):
            return bool(filesystem(self).isfile(self.key))


def bucket(url: Url) -> Url:
    """The bucket (or host) of `url`.

    >>> str(bucket(Url("s3://photos/2024/a.zarr")))
    's3://photos'
    """
    scheme, rest = url.text.split("://", 1)
    return Url(f"{scheme}://{rest.split('/', 1)[0]}", url.options)


def is_url(path: object) -> bool:
    """Whether `path` is a `Url` or text spelling one (`scheme://...`).

    >>> is_url("s3://bucket/x.zarr"), is_url("photos/x.png"), is_url(Url("gs://b/x"))
    (True, False, True)
    """
    return isinstance(path, Url) or (isinstance(path, str) and _URL.match(path) is not None)


def location(text: str) -> Any:
    """`text` as a `Url` where it spells one, else as a `pathlib.Path`; an InputError for a
    scheme poolcli does not read."""
    from pathlib import Path

    if not is_url(text):
        return Path(text)
    url = Url(text)
    if url.scheme not in SCHEMES:
        raise InputError(f"{text}: {url.scheme}:// is not a storage poolcli reads; use s3://, gs://, https://"
                         " or a local path")
    if not url.key.split("://")[-1].strip("/"):
        raise InputError(f"{text}: names no bucket or host; give one, e.g. s3://BUCKET/KEY")
    return url


def as_location(path: Any) -> Any:
    """`path` as `location` makes it: a Url stays as it is (with its options), text becomes a Url
    or a Path, any other path a Path."""
    from pathlib import Path

    if isinstance(path, Url):
        return path
    return location(path) if isinstance(path, str) else Path(path)


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """`key=value` texts as storage options: true/false as booleans, whole numbers as ints, the
    rest as text; a PoolError naming `storage_option` for one without `=`.

    >>> parse_options(["anon=true", "region_name=eu-west-1", "max_concurrency=4"])
    {'anon': True, 'region_name': 'eu-west-1', 'max_concurrency': 4}
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():  # not echoed: it may be a secret given without its key
            raise PoolError(f"a {param('storage_option')} is not KEY=VALUE; give e.g."
                            " endpoint_url=http://127.0.0.1:9000")
        lowered = value.strip().lower()
        options[key.strip()] = (lowered == "true") if lowered in ("true", "false") else \
            int(value) if re.fullmatch(r"-?\d+", value.strip()) else value
    return options


def bound(path: Any, options: dict[str, Any]) -> Any:
    """`path` with `options` where it is a Url; any other path as it is."""
    return path.with_options(options) if isinstance(path, Url) and options else path


def storage_options(url: Url) -> dict[str, Any]:
    """What fsspec opens `url`'s file system with: bounded retries and timeouts, then the
    Url's own options."""
    defaults: dict[str, Any] = {}
    if url.scheme == "s3":
        defaults = {"config_kwargs": {"retries": {"max_attempts": attempts(), "mode": "standard"}, **TIMEOUTS}}
    elif url.scheme in ("gs", "gcs"):
        defaults = {"retries": attempts()}
    return {**defaults, **dict(url.options)}


def attempts() -> int:
    """How often one request is tried: `AWS_MAX_ATTEMPTS` where set (as AWS tools read it), else `ATTEMPTS`."""
    value = os.environ.get("AWS_MAX_ATTEMPTS", "")
    return int(value) if value.isdigit() and int(value) > 0 else ATTEMPTS


def filesystem(url: Url, *, asynchronous: bool = False) -> Any:
    """The fsspec file system of `url` (one per scheme and options; `asynchronous` for zarr's
    event loop); an InputError naming the extra to install where its library is missing."""
    return _filesystem(url.scheme, url.options, _frozen(storage_options(url)), asynchronous, os.getpid())


def _frozen(options: dict[str, Any]) -> str:
    import json

    return json.dumps(options, sort_keys=True, default=str)


@lru_cache(maxsize=16)
def _filesystem(scheme: str, options: tuple, frozen: str, asynchronous: bool, process: int) -> Any:
    """One file system per process (`process`): their event loops and sessions are not fork-safe."""
    import json

    try:
        import fsspec

        made = fsspec.filesystem(scheme, asynchronous=asynchronous, **json.loads(frozen))
        if hasattr(made, "retries") and scheme == "s3":
            made.retries = 1  # botocore retries (`storage_options`); s3fs's own loop would multiply them
        return made
    except ImportError:
        library = SCHEMES.get(scheme, "fsspec")
        raise InputError(f"{scheme}:// needs {library}, which is not installed;"
                         f" pip install '{EXTRAS.get(library, 'poolcli[cloud]')}'") from None


def zarr_store(url: Any, *, read_only: bool) -> Any:
    """zarr's FsspecStore of the prefix `url` (requests concurrent on zarr's event loop)."""
    from zarr.storage import FsspecStore

    return FsspecStore(filesystem(url, asynchronous=True), path=url.key, read_only=read_only)


def refuse_read_only(url: Url) -> None:
    """An OutputError for a URL nothing is written to (HTTP)."""
    if url.scheme in READ_ONLY:
        raise OutputError(f"{url}: {url.scheme}:// is read-only; write to s3://, gs:// or a local path")


def check_apart(path: Any, inputs: Iterable[Any]) -> None:
    """Refuse a URL output that is read-only (`refuse_read_only`), an input, holds one or lies
    inside one (their texts compared)."""
    refuse_read_only(path)
    target = str(path).rstrip("/")
    for item in inputs:
        text = str(item).rstrip("/")
        if text == target:
            problem = "is one of the inputs; poolcli never overwrites an input"
        elif text.startswith(target + "/"):
            problem = f"holds the input {item}; poolcli never overwrites an input"
        elif target.startswith(text + "/"):
            problem = f"lies inside the input {item}; poolcli never writes into an input"
        else:
            continue
        raise OutputError(f"{path}: {problem}, even with {param('overwrite')}; choose another output path")


@contextlib.contextmanager
def named_errors(url: Any, kind: type[PoolError] = InputError) -> Iterator[None]:
    """The failures of object storage (a missing bucket or object, a refused credential, a
    server still failing after `attempts()` tries) as one `kind` line naming `url`."""
    try:
        yield
    except (PoolError, KeyboardInterrupt, MemoryError):
        raise
    except Exception as error:
        raise kind(f"{url}: {hidden(failure(error), url)}") from None


def hidden(text: str, url: Any) -> str:
    """`text` with the values of `url`'s storage options (secrets among them) masked.

    >>> hidden("key hush refused", Url("s3://b/k", (("secret", "hush"),)))
    'key *** refused'
    """
    for _, value in getattr(url, "options", ()):
        if len(str(value)) >= 4:
            text = text.replace(str(value), "***")
    return text


def failure(error: BaseException) -> str:
    """What went wrong with a request, in one line, and the fix."""
    text = " ".join(str(error).split())[:200] or type(error).__name__
    lowered = text.lower()
    if isinstance(error, FileNotFoundError) or "nosuchbucket" in lowered or "not found" in lowered:
        return f"not found ({text}); check the bucket and key"
    if isinstance(error, PermissionError) or any(word in lowered for word in (
            "accessdenied", "access denied", "forbidden", "invalidaccesskeyid", "signaturedoesnotmatch",
            "credentials", "403")):
        return f"access refused ({text}); check the credentials (AWS_ACCESS_KEY_ID, ~/.aws, storage options)"
    if isinstance(error, TimeoutError | ConnectionError) or any(word in lowered for word in (
            "slowdown", "reduce your request rate", "throttl", "timeout", "timed out", "internalerror",
            "service unavailable", "503", "500", "502", "504", "connect")):
        return f"the storage failed after {attempts()} tries ({type(error).__name__}: {text}); try again later"
    return f"the request failed ({type(error).__name__}: {text})"


class NamedReads:
    """An array in object storage (a zarr array on an FsspecStore) whose failed reads are one
    InputError naming `url` (`named_errors`); its other attributes are the array's."""

    def __init__(self, url: Any, array: Any):
        self.url = url
        self.array = array

    def __getattr__(self, name: str) -> Any:
        return getattr(self.array, name)

    def __getitem__(self, index: tuple) -> Any:
        with named_errors(self.url, InputError):
            return self.array[index]


def is_metadata(key: str) -> bool:
    """Whether `key` of a Zarr store is metadata (of the root or of any group or array in it)."""
    return key.rsplit("/", 1)[-1] in METADATA


def held_metadata(store: Any, held: dict[str, Any] | None = None) -> Any:
    """`store` (zarr) with every metadata key held in memory (`held` to begin with) until
    `publish()` writes them, the root's keys that make the prefix a Zarr store last: until then
    no group or array of it opens."""
    from zarr.storage import WrapperStore

    class Held(WrapperStore):
        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.held: dict[str, Any] = {}
            self.pending: list[tuple[Any, int]] = []  # writes running on the upload threads, their bytes
            self.uploads: Any = None

        def submit(self, write: Any, size: int) -> None:
            """Run `write` (of `size` bytes) on an upload thread, once fewer than `WRITE_DEPTH`
            writes and `WRITE_BYTES` bytes with it are in flight."""
            from concurrent.futures import ThreadPoolExecutor

            if self.uploads is None:
                self.uploads = ThreadPoolExecutor(WRITE_DEPTH, thread_name_prefix="poolcli-upload")
            while self.pending and (len(self.pending) >= WRITE_DEPTH
                                    or sum(held for _, held in self.pending) + size > WRITE_BYTES):
                self.pending.pop(0)[0].result()
            self.pending.append((self.uploads.submit(write), size))

        def drain(self, *, cancel: bool = False) -> None:
            """Wait for the writes in flight (the first one's error raised), or cancel those not begun."""
            pending, self.pending = self.pending, []
            try:
                for future, _ in pending:
                    if cancel:
                        future.cancel()
                    else:
                        future.result()
            finally:
                if self.uploads is not None:
                    self.uploads.shutdown(wait=True, cancel_futures=True)
                    self.uploads = None

        def _with_store(self, inner: Any) -> Any:
            made = type(self)(inner)
            made.held = self.held
            return made

        def __reduce__(self) -> tuple:
            """Sent to a Dask worker as the store and a copy of what it holds: the worker reads the
            held metadata and writes chunks straight to the prefix."""
            return held_metadata, (self._store, dict(self.held))

        async def set(self, key: str, value: Any) -> None:
            if is_metadata(key):
                self.held[key] = value
            else:
                await self._store.set(key, value)

        async def set_if_not_exists(self, key: str, value: Any) -> None:
            if not await self.exists(key):
                await self.set(key, value)

        async def _set_many(self, values: Iterable[tuple[str, Any]]) -> None:
            for key, value in values:
                await self.set(key, value)

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            if key in self.held:
                value = self.held[key]
                return value if byte_range is None else await self._store.get(key, prototype, byte_range)
            return await self._store.get(key, prototype, byte_range)

        async def exists(self, key: str) -> bool:
            return key in self.held or await self._store.exists(key)

        async def delete(self, key: str) -> None:
            self.held.pop(key, None)
            if not is_metadata(key):
                await self._store.delete(key)

        async def delete_dir(self, prefix: str) -> None:
            """The prefix was cleared before writing began (`published_zarr`)."""

        async def clear(self) -> None:
            """As `delete_dir`."""

        def publish(self) -> None:
            """Write the held metadata: the levels' and the root's attributes together, then the
            root's group or array, which makes the prefix a store."""
            import asyncio

            from zarr.core.sync import sync

            self.drain()
            last = [key for key in self.held if key in DEFINING]

            async def together(keys: list[str]) -> None:
                await asyncio.gather(*(self._store.set(key, self.held[key]) for key in keys))

            sync(together([key for key in self.held if key not in last]))
            sync(together(last))

    made = Held(store)
    made.held.update(held or {})
    return made


class BackgroundWrites:
    """A zarr array of an output in object storage whose writes (`array[index] = values`) run on
    its store's upload threads (`WRITE_DEPTH` at most, each with its own copy of the values, so
    the caller may reuse its buffers), drained before the store is published; its other
    attributes are the array's."""

    def __init__(self, array: Any, store: Any):
        self.array, self.store = array, store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.array, name)

    def __setitem__(self, index: Any, values: Any) -> None:
        self.store.submit(partial(self.array.__setitem__, index, values.copy()), values.nbytes)


def background_writes(array: Any) -> Any:
    """`array` with its writes in the background where its store is an output in object storage
    (`published_zarr`), else `array` itself."""
    store = array.store_path.store
    return BackgroundWrites(array, store) if hasattr(store, "submit") else array


def zarr_exists(url: Url) -> bool:
    """Whether `url` is a published Zarr store (its root metadata there)."""
    fs = filesystem(url)
    with named_errors(url, OutputError):
        return any(fs.exists(f"{url.key}/{name}") for name in DEFINING)


@contextlib.contextmanager
def published_zarr(target: Url, *, overwrite: bool, inputs: Iterable[Any] = ()) -> Iterator[Any]:
    """A zarr store at the prefix `target`, published whole: its root metadata is written last
    (`held_metadata`), once every chunk is in; until then the prefix holds a `PARTIAL` marker
    and chunks, which no reader takes for a store, and a failure removes what was written. An
    existing store is refused without `overwrite`, and removed before writing with it (object
    storage has no rename); a prefix holding anything but a Zarr store or an earlier run's
    unpublished chunks is refused in any case."""
    refuse_read_only(target)
    check_apart(target, inputs)
    fs = filesystem(target)
    with named_errors(target, OutputError):
        fs.invalidate_cache()
        found = fs.find(target.key)
        published = zarr_exists(target)
    if published and not overwrite:
        raise OutputError(f"{target} exists; pass {param('overwrite')} to replace it")
    if found and not published and f"{target.key}/{PARTIAL}" not in found:
        raise OutputError(f"{target}: the prefix holds objects that are not a Zarr store; choose another output")
    with named_errors(target, OutputError):
        _clear(fs, target, found)
        fs.pipe(f"{target.key}/{PARTIAL}", b"")
    store = held_metadata(zarr_store(target, read_only=False))
    try:
        with named_errors(target, OutputError):  # a read of an input already names that input
            yield store
            store.publish()
            fs.rm(f"{target.key}/{PARTIAL}")
            fs.invalidate_cache()
    except BaseException:
        with contextlib.suppress(Exception):
            store.drain(cancel=True)  # before the prefix is cleared: no write lands after it
        with contextlib.suppress(Exception):
            _clear(fs, target, fs.find(target.key))
        raise


def _clear(fs: Any, target: Url, found: list[str]) -> None:
    """Remove the objects `found` under `target`: its root metadata first, so that it stops
    being a store before its chunks go."""
    first = [f"{target.key}/{name}" for name in DEFINING if f"{target.key}/{name}" in found]
    if first:
        fs.rm(first)
    rest = [key for key in found if key not in first]
    if rest:
        fs.rm(rest)
    fs.invalidate_cache()


FETCH_LIMIT = 2 << 30  # the largest object fetched whole (an image pooled in memory); bigger ones are Zarr stores


def size(url: Any) -> int:
    """The size of the object `url` in bytes (an InputError naming it where it cannot be had)."""
    with named_errors(url, InputError):
        return int(filesystem(url).size(url.key) or 0)


@contextlib.contextmanager
def fetched(url: Any) -> Iterator[Any]:
    """A local copy of the object `url` (same name, in a private temporary folder removed when the
    block ends), for the readers that take a file: an image pooled in memory. Refused, before
    anything is fetched, past `FETCH_LIMIT` bytes."""
    import tempfile
    from pathlib import Path

    length = size(url)
    if length > FETCH_LIMIT:
        raise InputError(f"{url}: {length:,} bytes is more than an image fetched whole ({FETCH_LIMIT:,});"
                         " store it as Zarr to pool it block by block")
    with tempfile.TemporaryDirectory(prefix="poolcli-fetch-") as folder:
        local = Path(folder) / (url.name or "object")
        with named_errors(url, InputError):
            filesystem(url).get_file(url.key, str(local))
        yield local


@contextlib.contextmanager
def sent(url: Any, *, overwrite: bool, inputs: Iterable[Any] = ()) -> Iterator[Any]:
    """A local temporary path (named as `url`) whose file becomes the object `url` when the block
    ends: one upload, which object storage shows whole or not at all (a PUT, or a multipart
    upload completed at its end). An existing object is refused without `overwrite`; a failure
    uploads nothing."""
    import tempfile
    from pathlib import Path

    check_apart(url, inputs)
    fs = filesystem(url)
    with named_errors(url, OutputError):
        exists = fs.exists(url.key)
    if exists and not overwrite:
        raise OutputError(f"{url} exists; pass {param('overwrite')} to replace it")
    with tempfile.TemporaryDirectory(prefix="poolcli-send-") as folder:
        local = Path(folder) / (url.name or "object")
        yield local
        with named_errors(url, OutputError):
            fs.put_file(str(local), url.key)
            fs.invalidate_cache(url.parent.key)


def objects(prefix: Url, *, recursive: bool) -> Iterator[Url]:
    """The objects under `prefix` (with `recursive`, at any depth), in name order."""
    fs = filesystem(prefix)
    with named_errors(prefix, InputError):
        keys = fs.find(prefix.key, maxdepth=None if recursive else 1)
    base = prefix.key.rstrip("/")
    for key in sorted(keys):
        yield prefix / key[len(base) + 1:]


RANGE_BLOCK = 64 << 10  # bytes a ranged read of an object fetches at least (a TIFF's tags come in small reads)


def object_file(url: Any) -> Any:
    """The object `url` opened for reading by range requests (seek and read fetch only what is
    read, in `RANGE_BLOCK`s): a tiled TIFF read tile by tile, never downloaded whole."""
    with named_errors(url, InputError):
        return filesystem(url).open(url.key, "rb", cache_type="bytes", block_size=RANGE_BLOCK)
