"""The file formats poolcli reads and writes: one record each, in one table (no NumPy, so the
command line's start-up reads it without importing any codec).

A record says what the rest of poolcli asks of a format: its name, its extensions, how its
bytes begin, whether it is an image or an array, what it holds exactly (channels, sizes,
metadata), and where its reader, writer and completeness check live, as "module:function"
strings imported on first use (imageio v3's plugin table is the model). `io.load`, `io.save`,
`io.is_complete`, `io.sniff_suffix`, batch's discovery, `--format` and `info` read this table;
a new format is one record here (or one `register` call) plus its codec module.

>>> by_suffix(".JPEG").name, by_suffix(".tif").written, by_suffix(".xyz")
('JPEG', '.tiff', None)
>>> sniff(b"RIFF1234WEBPVP8 ").name, sniff(b"hello")
('WEBP', None)
>>> list(written_suffixes())[:3]
['png', 'jpg', 'tiff']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Signature = tuple[tuple[int, bytes], ...]

"""Byte strings a file holds at given offsets, all of them: ((0, b"RIFF"), (8, b"WEBP"))."""


def begins(*prefixes: bytes) -> tuple[Signature, ...]:
    """Signatures of files that begin with one of ``prefixes``.

    >>> begins(b"BM")
    (((0, b'BM'),),)
    """
    return tuple(((0, prefix),) for prefix in prefixes)


@dataclass(frozen=True)
class Format:
    """One file format. ``reader``, ``writer`` and ``complete`` are "module:function" names
    (or the functions themselves), resolved by :func:`resolve` on first use:

    - ``reader(path, request) -> Loaded`` with an ``io.ReadRequest``;
    - ``writer(path, request) -> write(file)`` with an ``io.WriteRequest``: every check (and
      the encoding) happens before it returns, so a refusal leaves no file; ``write`` only
      writes the bytes into the open temporary file;
    - ``complete(path, size) -> bool``: whether a non-empty file is whole (None: any is).
    """

    name: str  # as `load` reports it and `info` prints it
    kind: str  # "image" (H x W x C arrays) or "array" (.npy, .npz: any shape)
    suffixes: tuple[str, ...]  # every extension it is read from, lower case
    written: str | None  # the extension `--format NAME` writes (NAME: it without the dot); None: not offered
    reader: str | Callable[..., Any]
    writer: str | Callable[..., Any] | None = None
    complete: str | Callable[..., Any] | None = None
    signatures: tuple[Signature, ...] = ()  # how its bytes begin, for data without a name (stdin)
    uint8_channels: tuple[int, ...] = ()  # channel counts kept exactly, for uint8 images
    uint16_channels: tuple[int, ...] = ()  # for uint16 images (none: 16 bits are refused)
    float_channels: tuple[int, ...] = ()  # for float images, stored as float32 (none: refused)
    int32_channels: tuple[int, ...] = ()  # for other integers that fit int32
    max_side: int | None = None  # the widest and tallest image it holds; None: no limit of its own
    metadata: tuple[str, ...] = ()  # what it carries beyond pixels: "icc", "exif", "xmp", "resolution",
    # "orientation", "pages", "keys" (an output keeps the input's icc, exif, xmp and resolution where it has them)
    decoders: tuple[str, ...] = ()  # the Pillow plugins allowed to open it

    def __post_init__(self) -> None:
        if self.kind not in ("image", "array"):
            raise ValueError(f"format {self.name}: kind {self.kind!r} must be 'image' or 'array'")
        if not self.suffixes or any(s != s.lower() or not s.startswith(".") for s in self.suffixes):
            raise ValueError(f"format {self.name}: suffixes {self.suffixes!r} must be lower case, each with its dot")
        if (self.written is None) != (self.writer is None) or self.written not in (None, *self.suffixes):
            raise ValueError(f"format {self.name}: written {self.written!r} must be one of its suffixes,"
                             " given exactly when it has a writer")

    @property
    def extension(self) -> str:
        """The extension its files are given: the one it is written with, else its first."""
        return self.written or self.suffixes[0]

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` (a file's first bytes) begins as this format's files do."""
        return any(all(data[at:at + len(part)] == part for at, part in signature) for signature in self.signatures)


def resolve(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """The function a record names: "package.module:function" imported now, or the function itself.

    >>> resolve("os.path:basename")("a/b.png")
    'b.png'
    """
    if callable(target):
        return target
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


_TIFF_SIGNATURES = begins(b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
_IMAGES = "poolcli.io.images:read_image"
_ENCODE = "poolcli.io.writing:image_writer"
_COMPLETE = "poolcli.io.complete:"
_COMMON_CHANNELS = (1, 3, 4)

FORMATS: dict[str, Format] = {}

"""Every format poolcli knows, by name, in the order messages list them."""


def register(record: Format) -> Format:
    """Add ``record`` to :data:`FORMATS` (replacing one of the same name); a suffix or a
    `--format` name another format already has is refused."""
    others = [f for f in FORMATS.values() if f.name != record.name]
    taken = {suffix for f in others for suffix in f.suffixes} & set(record.suffixes)
    if taken:
        raise ValueError(f"format {record.name}: suffixes {sorted(taken)} belong to another format")
    FORMATS[record.name] = record
    return record


def unregister(name: str) -> None:
    """Remove the format ``name`` (a test's own format, say); unknown names are ignored."""
    FORMATS.pop(name, None)


for _record in (
    Format("PNG", "image", (".png",), ".png", _IMAGES, _ENCODE, _COMPLETE + "png_complete",
           begins(b"\x89PNG\r\n\x1a\n"), (1, 2, 3, 4), _COMMON_CHANNELS, max_side=2**31 - 1,
           metadata=("icc", "exif", "xmp", "resolution"), decoders=("PNG",)),
    Format("JPEG", "image", (".jpg", ".jpeg"), ".jpg", _IMAGES, _ENCODE, _COMPLETE + "jpeg_complete",
           begins(b"\xff\xd8\xff"), (1, 3), max_side=65500,  # libjpeg's limit
           metadata=("icc", "exif", "xmp", "resolution", "orientation"),
           decoders=("JPEG",)),  # JPEG also opens MPO, multi-picture JPEG
    Format("TIFF", "image", (".tif", ".tiff"), ".tiff", _IMAGES, _ENCODE, _COMPLETE + "tiff_complete",
           _TIFF_SIGNATURES, (1, 2, 3, 4), _COMMON_CHANNELS, _COMMON_CHANNELS, (1,),
           metadata=("icc", "exif", "resolution", "orientation", "pages"), decoders=("TIFF",)),
    Format("BMP", "image", (".bmp",), ".bmp", _IMAGES, _ENCODE, _COMPLETE + "bmp_complete",
           begins(b"BM"), (1, 3), max_side=2**31 - 1, metadata=("resolution",), decoders=("BMP", "DIB")),
    Format("GIF", "image", (".gif",), ".gif", _IMAGES, _ENCODE, _COMPLETE + "gif_complete",
           begins(b"GIF8"), (1, 3, 4),  # colour is quantised to a 256-colour palette: lossy, as GIF is
           max_side=65535, metadata=("pages",), decoders=("GIF",)),
    Format("WEBP", "image", (".webp",), ".webp", _IMAGES, _ENCODE, _COMPLETE + "webp_complete",
           (((0, b"RIFF"), (8, b"WEBP")),), (1, 2, 3, 4), max_side=16383,  # 14 bits a side
           metadata=("icc", "exif", "xmp", "pages"), decoders=("WEBP",)),
    Format("NPY", "array", (".npy",), ".npy", "poolcli.io.arrays:read_npy", "poolcli.io.writing:npy_writer",
           _COMPLETE + "npy_complete", begins(b"\x93NUMPY")),
    Format("NPZ", "array", (".npz",), ".npz", "poolcli.io.arrays:read_npz", "poolcli.io.writing:npz_writer",
           _COMPLETE + "npz_complete", begins(b"PK\x03\x04"), metadata=("keys",)),
):
    register(_record)


def by_suffix(suffix: str) -> Format | None:
    """The format read from files ending in ``suffix`` (any case); None when none is."""
    suffix = suffix.lower()
    return next((record for record in FORMATS.values() if suffix in record.suffixes), None)


def by_name(name: str) -> Format:
    """The format called ``name`` ("PNG"); a KeyError for an unknown one."""
    return FORMATS[name]


def read_suffixes() -> tuple[str, ...]:
    """Every extension poolcli reads (and batch discovers), in table order."""
    return tuple(suffix for record in FORMATS.values() for suffix in record.suffixes)


def written_suffixes() -> dict[str, str]:
    """The names `--format` takes, each with the extension it writes: {"png": ".png", ...}."""
    return {record.written[1:]: record.written for record in FORMATS.values() if record.written is not None}


def is_image_suffix(suffix: str) -> bool:
    """Whether files ending in ``suffix`` are images (H x W x C), not arrays."""
    record = by_suffix(suffix)
    return record is not None and record.kind == "image"


def holds_keys(suffix: str) -> bool:
    """Whether files ending in ``suffix`` hold several arrays by key (.npz), so every result goes in."""
    record = by_suffix(suffix)
    return record is not None and "keys" in record.metadata


def sniff(data: bytes) -> Format | None:
    """The format whose signature ``data`` (a file's first bytes) begins with; None if none."""
    return next((record for record in FORMATS.values() if record.matches(data)), None)


def pillow_decoders() -> tuple[str, ...]:
    """The Pillow plugins poolcli lets near its inputs."""
    return tuple(plugin for record in FORMATS.values() for plugin in record.decoders)
