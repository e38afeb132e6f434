"""Writing safely: output checks, folders, temporary names, and `atomic_output` (temporary file, fsync, rename)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from ..errors import OutputError, param
from .formats import one_line


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
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name such as {path / 'out.png'}")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputError(f"{path} exists; pass {param('overwrite')} to replace it")
    parent = path.parent
    if not parent.exists():
        raise OutputError(f"{path}: folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise OutputError(f"{path}: {parent} is not a folder; write inside a folder")


def check_apart(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse an output that is an input, holds one (a folder such as a Zarr store around it) or
    lies inside one, however either is spelt: real paths are compared (symlinks, ``..`` and
    relative paths resolved; hard links by their inode). The one guard of every writer.

    >>> check_apart("in.zarr/out.npy", ["./in.zarr"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    poolcli.errors.OutputError: in.zarr/out.npy: lies inside the input ./in.zarr; poolcli never writes into ...
    """
    target = _real(path)
    for item in inputs:
        real = _real(item)
        if real == target or _same_file(item, path):
            problem = "is one of the inputs; poolcli never overwrites an input"
        elif target in real.parents:
            problem = f"holds the input {item}; poolcli never overwrites an input"
        elif real in target.parents:
            problem = f"lies inside the input {item}; poolcli never writes into an input"
        else:
            continue
        raise OutputError(f"{path}: {problem}, even with {param('overwrite')}; choose another output path")


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(path))  # unlike Path.resolve, never raises on a symlink loop


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
) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes ``path`` only if the block finishes.

    ``durable=False`` skips the fsync: for a caller that syncs many files at once when it
    ends (batch) and that tells a file cut by a crash from a complete one (:func:`is_complete`).
    The data goes to ``.<name>.<random>.tmp`` in the target folder, is flushed to
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
    the temporary file or folder is removed, so no partial store ever has the final name.

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
    temporary = _temporary(path, folder)
    try:
        yield temporary
        if not folder:
            _sync(temporary)
        _check_target(path, overwrite, inputs, folder)  # it may have appeared meanwhile
        _publish(temporary, path, folder)
    except BaseException as error:
        _remove(temporary)
        if isinstance(error, OSError):
            reason = error.strerror or one_line(error)
            raise OutputError(f"{path}: cannot write it ({reason}); check free space and permissions") from error
        raise


def _check_target(path: Path, overwrite: bool, inputs: list, folder: bool) -> None:
    if not folder:
        check_output(path, overwrite=overwrite, inputs=inputs)
        return
    check_apart(path, inputs)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputError(f"{path} exists; pass {param('overwrite')} to replace it")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist; create it first")


def _temporary(path: Path, folder: bool) -> Path:
    try:
        if folder:
            made = Path(tempfile.mkdtemp(dir=path.parent, prefix=temporary_prefix(path), suffix=TEMPORARY_SUFFIX))
            os.chmod(made, 0o777 & ~_current_umask())  # mkdtemp's 0700 is for secrets, not for stores
            return made
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=TEMPORARY_SUFFIX)
    except OSError as error:
        raise OutputError(f"{path}: cannot create a file in {path.parent} ({error.strerror});"
                          " choose a writable folder") from None
    os.close(descriptor)
    os.chmod(name, _mode_for(path))
    return Path(name)


def _sync(path: Path) -> None:
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def _publish(temporary: Path, path: Path, folder: bool) -> None:
    """Rename into place; an old folder is moved aside first and deleted after."""
    if not folder or not (path.exists() or path.is_symlink()):
        os.replace(temporary, path)
        return
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=temporary_prefix(path), suffix=TEMPORARY_SUFFIX))
    old.rmdir()
    os.rename(path, old)
    os.rename(temporary, path)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _mode_for(path: Path) -> int:
    """Keep the read/write/execute permissions of a file being replaced (never its setuid,
    setgid or sticky bits); a new file gets the umask's default."""
    try:
        return stat.S_IMODE(path.stat().st_mode) & 0o777
    except OSError:
        return _NEW_FILE_MODE


TEMPORARY_SUFFIX = ".tmp"

_RANDOM_PART = 8  # the characters tempfile.mkstemp adds


def temporary_prefix(path: Path) -> str:
    """``.<name>.``: how the temporary files of writes to ``path`` begin (hidden, so never an
    input), with the name shortened where the whole would pass the file system's name limit.

    >>> temporary_prefix(Path("out/cat.png"))
    '.cat.png.'
    >>> len(os.fsencode(temporary_prefix(Path("x" * 255))))
    243
    """
    limit = _name_max(path.parent) - _RANDOM_PART - len(TEMPORARY_SUFFIX) - 2
    name = path.name
    while len(os.fsencode(name)) > limit:
        name = name[:-1]
    return f".{name}."


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255

