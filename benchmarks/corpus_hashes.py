"""Byte identity of poolcli's outputs: pool a fixed corpus into every output format, print a sha256 each.

    PYTHONPATH=. python benchmarks/corpus_hashes.py > after.txt   # then diff against a run of the old code

The corpus is samples/ plus small inputs written here by Pillow and NumPy alone (not by
poolcli, so the inputs do not change with the code under test): gray, RGB, RGBA and 16-bit
images in every input format, and arrays. Each input is pooled (avg, window 2) into every
output format `--format` offers, and each result line is the output's sha256 (with its
`is_complete` verdict and the `info` format name of the input) or the one-line error poolcli
gives, so messages are compared too. A refactor of the format code must leave this output
unchanged, line for line.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUTPUT_SUFFIXES = (".png", ".jpg", ".tiff", ".bmp", ".gif", ".webp", ".npy", ".npz")


def generated_inputs(folder: Path) -> list[Path]:
    """Small deterministic inputs in every input format, written without poolcli."""
    rng = np.random.default_rng(23)
    gray = rng.integers(0, 256, (37, 50), dtype=np.uint8)
    rgb = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (37, 50, 4), dtype=np.uint8)
    images = {"gray": Image.fromarray(gray), "rgb": Image.fromarray(rgb), "rgba": Image.fromarray(rgba)}
    written = []
    for name, image in images.items():
        for suffix, options in ((".png", {}), (".tif", {}), (".tiff", {}), (".webp", {"lossless": True}),
                                (".gif", {}), (".bmp", {}), (".jpg", {"quality": 90}), (".jpeg", {})):
            if image.mode == "RGBA" and suffix in (".bmp", ".jpg", ".jpeg"):
                continue
            path = folder / f"{name}{suffix}"
            image.save(path, **options)
            written.append(path)
    wide = rng.integers(0, 65536, (37, 50), dtype=np.uint16)
    Image.fromarray(wide).save(folder / "gray16.png")
    np.save(folder / "float.npy", rng.standard_normal((3, 20, 22)).astype(np.float32))
    np.save(folder / "int16.npy", rng.integers(-500, 500, (20, 22), dtype=np.int16))
    np.savez(folder / "pair.npz", a=rng.random((8, 10)), b=rng.integers(0, 9, (4, 6, 3), dtype=np.uint8))
    np.savez_compressed(folder / "one.npz", array=rgb)
    return [*written, folder / "gray16.png", folder / "float.npy", folder / "int16.npy", folder / "pair.npz",
            folder / "one.npz"]


def corpus(folder: Path) -> list[Path]:
    samples = sorted(p for p in (ROOT / "samples").iterdir() if p.suffix.lower() not in (".md", ".py"))
    return samples + generated_inputs(folder)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    from poolcli import io
    from poolcli.app.describe import describe_file
    from poolcli.app.memory import pool_file
    from poolcli.app.settings import PoolSettings

    settings = PoolSettings(mode="avg", window=(2,))
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        (folder / "out").mkdir()
        for source in corpus(folder):
            try:
                kind = describe_file(source, settings)["format"]
            except Exception as error:  # the message is part of what must not change
                kind = f"error: {error}"
            print(f"{source.name} info {kind} sniffed {io.sniff_suffix(source.read_bytes()[:64])}")
            for suffix in OUTPUT_SUFFIXES:
                target = folder / "out" / f"{source.stem}{source.suffix.replace('.', '_')}{suffix}"
                try:
                    pool_file(source, target, settings)
                    line = f"{digest(target)} complete={io.is_complete(target)}"
                except Exception as error:
                    line = f"error: {type(error).__name__}: {error}"
                print(f"{source.name} -> {suffix} {line}".replace(temporary, "<tmp>"))
        print(unknown_extensions(folder).replace(temporary, "<tmp>"))
    sys.stdout.flush()


def unknown_extensions(folder: Path) -> str:
    """What load and save say of a suffix no format has."""
    from poolcli import io

    lines = []
    odd = folder / "odd.xyz"
    odd.write_bytes(b"data")
    for action in (lambda: io.load(odd), lambda: io.save(odd, np.zeros((2, 2), np.uint8))):
        try:
            action()
            lines.append("no error")
        except Exception as error:
            lines.append(f"error: {type(error).__name__}: {error}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
