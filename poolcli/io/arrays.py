"""`.npy` and `.npz` reading, bounded by the headers: lengths checked, members inflated at most as far as they claim."""

from __future__ import annotations

import io
import math
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import InputError, param
from .formats import DTYPE_FIXES, MMAP_THRESHOLD_BYTES, NUMERIC_KINDS, Loaded, ReadRequest, guess_layout, input_errors


def read_npy(path: Path, request: ReadRequest) -> Loaded:
    """A .npy file, memory-mapped when large; its length checked against its header."""
    with input_errors(path, "a .npy array", "re-save it with numpy.save"):
        with open(path, "rb") as file:
            header = npy_header(file)
            size = os.fstat(file.fileno()).st_size
        _check_array_dtype(str(path), header.dtype)
        _check_npy_length(str(path), header, size)
        large = size > MMAP_THRESHOLD_BYTES
        array = np.load(path, allow_pickle=False, mmap_mode="r" if large else None)
    return Loaded({"array": array}, "npy", guess_layout(array.ndim), "NPY", None, 1, path)


def read_npz(path: Path, request: ReadRequest) -> Loaded:
    """Every member of an .npz, each checked from its header before a byte is inflated:
    its length must match the header, and compressed members must inflate to at most
    ``request.max_bytes`` in all (zip bombs)."""
    max_bytes = request.max_bytes
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: is not a .npz (zip) archive; save it with numpy.savez")
    arrays: dict[str, np.ndarray] = {}
    inflated = 0
    with input_errors(path, "a .npz archive", "re-save it with numpy.savez"), zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            key = member.filename.removesuffix(".npy")
            where = f"{path} (key {key!r})"
            if member.compress_type != zipfile.ZIP_STORED:  # as declared (less a header), before a byte
                _check_inflated(where, inflated + member.file_size - _NPY_HEADER_ROOM, max_bytes)
            with _member_stream(archive, member) as stream:
                header = npy_header(stream)
                _check_array_dtype(where, header.dtype)
                _check_npy_length(where, header, member.file_size)
                if member.compress_type != zipfile.ZIP_STORED:
                    inflated += header.nbytes
                    _check_inflated(where, inflated, max_bytes)
                arrays[key] = _read_npy_body(where, stream, header)
    if not arrays:
        raise InputError(f"{path}: holds no arrays; save at least one with numpy.savez")
    layout = guess_layout(next(iter(arrays.values())).ndim)
    return Loaded(arrays, "npz", layout, "NPZ", None, 1, path)


@dataclass(frozen=True)
class _NpyHeader:
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    offset: int  # where the data starts

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


MAX_NPY_BYTES = 2**63 - 1

"""Most bytes a .npy header may declare: NumPy counts an array's size in 64-bit integers, and a
larger product overflows there (with a RuntimeWarning) before any check could say why."""


def npy_header(file: IO[bytes]) -> _NpyHeader:
    """What a .npy stream declares, read without touching its data; a ValueError for a shape no
    array can have (a negative length, more than :data:`MAX_NPY_BYTES` bytes), checked here in
    Python integers so that no reader after this one meets it.

    >>> import io
    >>> buffer = io.BytesIO()
    >>> np.save(buffer, np.zeros((2, 3), np.float32))
    >>> _ = buffer.seek(0)
    >>> npy_header(buffer).nbytes
    24
    """
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
    else:
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
    header = _NpyHeader(tuple(shape), bool(fortran_order), dtype, file.tell())
    if any(length < 0 for length in header.shape):
        raise ValueError(f"its header declares a negative length in shape {header.shape}")
    if header.nbytes > MAX_NPY_BYTES or math.prod(header.shape) > MAX_NPY_BYTES:
        raise ValueError(f"its header declares a {header.shape} {header.dtype} array of {header.nbytes:,} bytes,"
                         " more than any array can hold")
    return header


def _check_npy_length(where: str, header: _NpyHeader, length: int) -> None:
    """Refuse a .npy whose data is shorter or longer than its header says."""
    if header.dtype.hasobject or length - header.offset == header.nbytes:
        return
    raise InputError(
        f"{where}: its header promises a {header.shape} {header.dtype} array ({header.nbytes:,} bytes) but"
        f" {length - header.offset:,} bytes follow; the file is truncated or corrupt; re-save it with numpy.save"
    )


_NPY_HEADER_ROOM = 64 << 10  # more than any .npy header numpy writes


def _member_stream(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Any:
    """A member's bytes, inflated at most as far as they are read. zipfile does that for
    deflate; its bzip2 and LZMA readers inflate all a read's input at once (a few KB of a
    bzip2 bomb make gigabytes), so those are inflated here, with a bound on every step."""
    if member.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return archive.open(member)
    raw = zipfile.ZipInfo(member.filename, member.date_time)
    raw.compress_type, raw.compress_size, raw.file_size = zipfile.ZIP_STORED, member.compress_size, member.compress_size
    raw.header_offset, raw.flag_bits = member.header_offset, member.flag_bits
    raw.CRC = None  # type: ignore[assignment]  # the stored bytes are compressed: no CRC to check
    return _Inflating(archive.open(raw), member.compress_type, member.file_size)


class _Inflating(io.RawIOBase):
    """Read-only bytes of a bzip2 or zip-LZMA stream, inflated `size` bytes at most and never more
    than each read asks for."""

    def __init__(self, raw: IO[bytes], compress_type: int, size: int):
        super().__init__()
        self._raw, self._left, self._type = raw, size, compress_type
        self._decompressor: Any = None
        self._input = b""
        self._position = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self._left)
        while wanted:
            if self._input == b"" and self._needs_input():
                self._input = self._raw.read(64 << 10)
                if not self._input and self._needs_input():
                    return 0
            chunk = self._inflate(wanted)
            if chunk:
                buffer[: len(chunk)] = chunk
                self._left -= len(chunk)
                self._position += len(chunk)
                return len(chunk)
            if self._decompressor is not None and self._decompressor.eof:
                return 0
        return 0

    def _needs_input(self) -> bool:
        return self._decompressor is None or self._decompressor.needs_input

    def _inflate(self, wanted: int) -> bytes:
        if self._decompressor is None and not self._start():
            return b""
        data, self._input = self._input, b""
        return self._decompressor.decompress(data, wanted)

    def _start(self) -> bool:
        import bz2
        import lzma

        if self._type == zipfile.ZIP_BZIP2:
            self._decompressor = bz2.BZ2Decompressor()
            return True
        if self._type != zipfile.ZIP_LZMA:
            raise ValueError(f"zip compression method {self._type} is not supported")
        if len(self._input) < 4 or len(self._input) < 4 + struct.unpack("<H", self._input[2:4])[0]:
            more = self._raw.read(64 << 10)
            if not more:
                raise ValueError("the LZMA member is cut short")
            self._input += more
            return False
        size = struct.unpack("<H", self._input[2:4])[0]
        properties = lzma._decode_filter_properties(  # type: ignore[attr-defined]  # as zipfile does
            lzma.FILTER_LZMA1, self._input[4 : 4 + size])
        self._decompressor = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[properties])
        self._input = self._input[4 + size :]
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()


def _check_inflated(where: str, inflated: int, max_bytes: int | None) -> None:
    if max_bytes is not None and inflated > max_bytes:
        raise InputError(
            f"{where}: compressed arrays inflate to {inflated:,} bytes, more than the limit of {max_bytes:,}"
            f" (decompression-bomb guard); pass {param('max_bytes')} {inflated} if you trust this file"
        )


def _read_npy_body(where: str, stream: Any, header: _NpyHeader) -> np.ndarray:
    """The data of a .npy stream after its header, read into one array of the declared size."""
    array = np.empty(header.shape, header.dtype, order="F" if header.fortran_order else "C")
    view = memoryview(array.reshape(-1, order="A").view(np.uint8))  # type: ignore[arg-type]
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:filled + (16 << 20)])
        if not count:
            raise InputError(f"{where}: the array data ends early; the file is truncated; re-save it")
        filled += count
    return array


def _check_array_dtype(where: str, dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise InputError(
            f"{where}: holds Python objects (pickle); poolcli never unpickles;"
            " save it with a numeric dtype"
        )
    if dtype.kind not in NUMERIC_KINDS:
        fix = DTYPE_FIXES.get(dtype.kind, "convert it to a real numeric dtype first")
        raise InputError(f"{where}: dtype {dtype} cannot be pooled; {fix}")

