"""Writing safely: output checks, folders, temporary names, and `atomic_output` (temporary file, fsync, rename)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from ..errors import OutputError, param

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a sweep then goes by age alone
    fcntl = None  # type: ignore[assignment]
from . import remote
from .formats import one_line
from .remote import is_url


def make_folder(folder: str | os.PathLike[str], name: str) -> Path:
    """`folder`, created if missing (its parent must exist); an OutputError naming it as `name`
    (the option that gave it) when it is a file or cannot be created."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{name} {folder} is a file, not a folder; give a folder")
    if not folder.exists():
        if not folder.parent.is_dir():
            raise OutputError(f"{name} {folder}: its parent folder {folder.parent} does not exist; create it first")
        try:
            folder.mkdir()
        except FileExistsError:  # made meanwhile by another process
            pass
        except OSError as error:
            raise OutputError(f"{name} {folder}: cannot create it ({error.strerror}); choose a writable folder") \
                from None
    return folder


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_current_umask()


def check_output(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Refuse an output path that is an input, a folder, exists (without ``overwrite``) or
    lies in a missing folder. :func:`atomic_output` calls it; a batch can call it up front.

    >>> check_output(Path(__file__), overwrite=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    poolcli.errors.OutputError: ... exists; pass overwrite to replace it
    """
    path = Path(path)
    check_apart(path, inputs)
    status = _status(path, os.stat)  # three system calls where a new file goes (a batch makes many)
    if status is not None and stat.S_ISDIR(status.st_mode):
        raise OutputError(f"{path}: is a folder; give a file name such as {path / 'out.png'}")
    if not overwrite and (status is not None or _status(path, os.lstat) is not None):  # a dangling link too
        raise OutputError(f"{path} exists; pass {param('overwrite')} to replace it")
    parent = path.parent
    folder = _status(parent, os.stat)
    if folder is None:
        raise OutputError(f"{path}: folder {parent} does not exist; create it first")
    if not stat.S_ISDIR(folder.st_mode):
        raise OutputError(f"{path}: {parent} is not a folder; write inside a folder")


_MISSING_ERRNOS = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)  # what pathlib's exists() calls missing


def _status(path: Path, call) -> os.stat_result | None:
    """os.stat or os.lstat of `path`; None where pathlib's exists() and is_dir() say False."""
    try:
        return call(path)
    except OSError as error:
        if error.errno in _MISSING_ERRNOS:
            return None
        raise
    except ValueError:  # a NUL in the name
        return None


def check_apart(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse an output that is an input, holds one (a folder such as a Zarr store around it) or
    lies inside one, however either is spelt: real paths are compared (symlinks, ``..`` and
    relative paths resolved; hard links by their inode). The one guard of every writer.

    >>> check_apart("in.zarr/out.npy", ["./in.zarr"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    poolcli.errors.OutputError: in.zarr/out.npy: lies inside the input ./in.zarr; poolcli never writes into ...
    """
    if is_url(path):
        remote.check_apart(path, inputs)
        return
    target = _real(path)
    for item in dict.fromkeys(inputs):  # each input once, however often it is named
        if is_url(item):
            continue  # a URL is never a local file
        real = _real(item)
        if real == target or _same_file(item, path):
            problem = "is one of the inputs; poolcli never overwrites an input"
        elif _inside(real, target):
            problem = f"holds the input {item}; poolcli never overwrites an input"
        elif _inside(target, real):
            problem = f"lies inside the input {item}; poolcli never writes into an input"
        else:
            continue
        raise OutputError(f"{path}: {problem}, even with {param('overwrite')}; choose another output path")


def _real(path: str | os.PathLike[str]) -> str:
    """The real path, normalised (as text: a batch checks every file, and pathlib's parsing
    cost more than the check); unlike Path.resolve, never raises on a symlink loop."""
    return os.path.normcase(os.path.realpath(path))


def _inside(inner: str, outer: str) -> bool:
    """Whether real path `inner` lies below real path `outer`."""
    return inner != outer and inner.startswith(outer.rstrip(os.sep) + os.sep)


def _same_file(one: str | os.PathLike[str], other: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    durable: bool = True,
    checked: bool = False,
) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes ``path`` only if the block finishes.

    ``checked=True`` says the caller has just run :func:`check_output` with the same arguments
    (the check after writing still runs). ``durable=False`` skips the fsync: for a caller that
    syncs many files at once when it ends (batch) and that tells a file cut by a crash from a
    complete one (:func:`is_complete`).
    The data goes to ``.<name>.poolcli-<random>.tmp`` in the target folder, is flushed to
    disk (fsync: a crash right after the rename never leaves an empty file under the
    final name), then ``os.replace`` moves it into place. On any failure, KeyboardInterrupt
    included, the temporary file is removed and the error re-raised (an OSError
    as an OutputError), so no partial file is ever left behind.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with atomic_output(Path(folder) / "note.txt") as file:
    ...         _ = file.write(b"pooled")
    ...     sorted(p.name for p in Path(folder).iterdir())
    ['note.txt']
    """
    path = Path(path)
    inputs = list(inputs)
    if not checked:
        check_output(path, overwrite=overwrite, inputs=inputs)
    try:
        descriptor, temporary_name = tempfile.mkstemp(
            dir=path.parent, prefix=temporary_prefix(path), suffix=TEMPORARY_SUFFIX
        )
    except OSError as error:
        raise OutputError(
            f"{path}: cannot create a file in {path.parent} ({error.strerror});"
            " choose a writable folder"
        ) from None
    temporary = Path(temporary_name)
    if fcntl is not None:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a sweep leaves a live write alone
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            if durable:
                os.fsync(file.fileno())
        os.chmod(temporary, _mode_for(path))
        check_output(path, overwrite=overwrite, inputs=inputs)  # it may have appeared meanwhile
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            reason = error.strerror or one_line(error)
            raise OutputError(
                f"{path}: cannot write it ({reason}); check free space and permissions"
            ) from error
        raise


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    folder: bool = False,
) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that becomes ``path`` only if the block finishes:
    for writers that need a name (a memory-mapped ``.npy``, tifffile) or a folder (a Zarr
    store, ``folder=True``). An existing ``path`` is replaced only with ``overwrite`` (a folder
    by moving the old one aside, then deleting it); on any failure, KeyboardInterrupt included,
    the temporary file or folder is removed, so no partial store ever has the final name. A
    store is built inside a hidden scratch folder that stays locked while it is written (a
    writer may clear and remake the store itself); a killed run's is swept by the next.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with atomic_path(Path(folder) / "store.zarr", folder=True) as store:
    ...         _ = (store / "part").write_bytes(b"pooled")
    ...     sorted(p.name for p in Path(folder).rglob("*"))
    ['part', 'store.zarr']
    """
    path = Path(path)
    inputs = list(inputs)
    _check_target(path, overwrite, inputs, folder)
    sweep_temporaries(path)  # what a killed run writing `path` left
    with _locked_temporary(path, folder) as made:
        try:
            temporary = _store_in(made, path) if folder else made
            yield temporary
            if not folder:
                _sync(temporary)
            _check_target(path, overwrite, inputs, folder)  # it may have appeared meanwhile
            with _signals_held():
                _publish(temporary, path, folder)
        except BaseException as error:
            with _signals_held():
                _remove(made)
            if isinstance(error, OSError):
                reason = error.strerror or one_line(error)
                raise OutputError(f"{path}: cannot write it ({reason}); check free space and permissions") \
                    from error
            raise


@contextlib.contextmanager
def scratch(target: str | os.PathLike[str], *, folder: bool = False) -> Iterator[Path]:
    """A hidden scratch file (or folder) beside `target`, ``.<name>.poolcli-<random>.scratch.tmp``, locked
    while the block runs and removed when it ends, whatever happens (a killed run's is swept by
    the next write of `target`)."""
    target = Path(target)
    with _locked_temporary(target, folder, SCRATCH_SUFFIX) as made:
        try:
            yield made
        finally:
            with _signals_held():
                _remove(made)


def sweep_temporaries(path: str | os.PathLike[str], *, min_age: float = 1.0) -> None:
    """Remove the temporary files and folders that writes of `path` left when their process was
    killed: only poolcli's own names for `path` (``.<name>.poolcli-<8 random>.tmp`` and
    ``.<name>.poolcli-<8 random>.scratch.tmp``), only those no live process holds locked, and only those
    older than `min_age` seconds (a fresh one may not be locked yet). Never raises.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for name in (".out.zarr.poolcli-k1ll3d_x.tmp", ".out.zarr.mybackup.tmp", "out.zarr.tmp"):
    ...         _ = Path(folder, name).write_bytes(b"")
    ...     sweep_temporaries(Path(folder) / "out.zarr", min_age=0)
    ...     sorted(p.name for p in Path(folder).iterdir())
    ['.out.zarr.mybackup.tmp', 'out.zarr.tmp']
    """
    path = Path(path)
    pattern = re.compile(re.escape(temporary_prefix(path)) + r"[a-z0-9_]{8}(?:\.scratch)?\.tmp")
    with contextlib.suppress(OSError), os.scandir(path.parent) as scan:
        found = [entry.path for entry in scan if pattern.fullmatch(entry.name)]
    now = time.time()
    for name in found:
        with contextlib.suppress(OSError):
            if now - os.lstat(name).st_mtime >= min_age:
                _remove_unless_locked(Path(name))


def _remove_unless_locked(path: Path) -> None:
    kind = stat.S_IFMT(os.lstat(path).st_mode)
    if kind not in (stat.S_IFREG, stat.S_IFDIR):
        return  # poolcli makes only files and folders under such names, never links or pipes
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if fcntl is not None:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a live write holds it
        _remove(path)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _locked_temporary(path: Path, folder: bool, suffix: str | None = None) -> Iterator[Path]:
    """`_temporary`, held under an exclusive lock until the block ends: a sweep leaves it alone.
    Made with signals held, and removed on any failure, so an interrupt that lands between its
    creation and the caller's own clean-up cannot leave it behind."""
    made: Path | None = None
    descriptor: int | None = None
    try:
        with _signals_held():  # one held back arrives as the block ends: inside the try
            made = _temporary(path, folder, suffix)
            descriptor = os.open(made, os.O_RDONLY)
        if fcntl is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield made
    except BaseException:
        if made is not None:
            with _signals_held():
                _remove(made)
        raise
    finally:
        if descriptor is not None:
            os.close(descriptor)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP held back (delivered when the block ends) while files are moved
    or removed: an interrupt never leaves half a store, or an old store moved aside."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _check_target(path: Path, overwrite: bool, inputs: list, folder: bool) -> None:
    if not folder:
        check_output(path, overwrite=overwrite, inputs=inputs)
        return
    check_apart(path, inputs)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputError(f"{path} exists; pass {param('overwrite')} to replace it")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist; create it first")


def _temporary(path: Path, folder: bool, suffix: str | None = None) -> Path:
    suffix = TEMPORARY_SUFFIX if suffix is None else suffix
    try:
        if folder:
            made = Path(tempfile.mkdtemp(dir=path.parent, prefix=temporary_prefix(path), suffix=suffix))
            os.chmod(made, 0o777 & ~_current_umask())  # mkdtemp's 0700 is for secrets: cluster workers write here
            return made
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=suffix)
    except OSError as error:
        raise OutputError(f"{path}: cannot create a file in {path.parent} ({error.strerror});"
                          " choose a writable folder") from None
    os.close(descriptor)
    os.chmod(name, _mode_for(path))
    return Path(name)


def _sync(path: Path) -> None:
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def _store_in(scratch: Path, path: Path) -> Path:
    """The store's folder inside the locked scratch folder, with the permissions of a new folder."""
    store = scratch / path.name
    store.mkdir(mode=0o777)  # less the umask
    return store


def _publish(temporary: Path, path: Path, folder: bool) -> None:
    """Rename into place. A store: an old one is moved into the scratch folder first (and back if
    the rename fails), then the scratch folder goes with it."""
    if not folder:
        os.replace(temporary, path)
        return
    scratch = temporary.parent
    old = scratch / ".replaced"
    there = path.exists() or path.is_symlink()
    if there:
        os.rename(path, old)
    try:
        os.rename(temporary, path)
    except BaseException:
        if there:
            os.rename(old, path)
        raise
    _remove(scratch)


def _remove(path: Path) -> None:
    """Remove a file or a whole folder, read-only subfolders included (never what a link points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, onerror=_writable_then_again)
    else:
        path.unlink(missing_ok=True)


def _writable_then_again(function, name: str, _info) -> None:
    """rmtree's error handler: make `name`'s folder (and `name`, a folder) writable, then remove it again."""
    with contextlib.suppress(OSError):
        for folder in (os.path.dirname(name), name):
            if os.path.isdir(folder) and not os.path.islink(folder):
                os.chmod(folder, stat.S_IMODE(os.lstat(folder).st_mode) | stat.S_IRWXU)
        if os.path.isdir(name) and not os.path.islink(name):
            shutil.rmtree(name, ignore_errors=True)
        else:
            function(name)


def _mode_for(path: Path) -> int:
    """Keep the read/write/execute permissions of a file being replaced (never its setuid,
    setgid or sticky bits); a new file gets the umask's default."""
    try:
        return stat.S_IMODE(path.stat().st_mode) & 0o777
    except OSError:
        return _NEW_FILE_MODE


TEMPORARY_SUFFIX = ".tmp"
SCRATCH_SUFFIX = ".scratch.tmp"

_RANDOM_PART = 8  # the characters tempfile.mkstemp adds


def temporary_prefix(path: Path) -> str:
    """``.<name>.poolcli-``: how the temporary files of writes to ``path`` begin (hidden, so never
    an input; marked, so a sweep never takes a user's file for one), with the name shortened where
    the whole would pass the file system's name limit.

    >>> temporary_prefix(Path("out/cat.png"))
    '.cat.png.poolcli-'
    >>> len(os.fsencode(temporary_prefix(Path("x" * 255))))
    235
    """
    mark = "poolcli-"
    limit = _name_max(path.parent) - _RANDOM_PART - len(SCRATCH_SUFFIX) - 2 - len(mark)
    name = path.name
    while len(os.fsencode(name)) > limit:
        name = name[:-1]
    return f".{name}.{mark}"


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255

