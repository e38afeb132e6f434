"""Byte identity of poolcli's streamed outputs: pool and pyramid a fixed .npy, Zarr and TIFF
input into .npy, Zarr v2/v3 and tiled TIFF, print a sha256 of every file of each output.

    PYTHONPATH=. python benchmarks/stream_hashes.py > after.txt   # then diff against a run of the old code

The inputs are written by NumPy, zarr and tifffile alone; the budget is small, so every output
is written in many bands. Errors print as one line, so messages are compared too.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

MEMORY = 2 * 10**6  # small: many bands, gathered chunk rows, scratch levels


def inputs(folder: Path) -> list[Path]:
    import tifffile
    import zarr

    rng = np.random.default_rng(5)
    data = rng.integers(0, 4000, (300, 260), dtype=np.uint16)
    np.save(folder / "in.npy", data)
    array = zarr.create_array(store=str(folder / "in.zarr"), shape=data.shape, chunks=(64, 48), dtype=data.dtype,
                              zarr_format=2)
    array[:] = data
    tifffile.imwrite(folder / "in.tif", data, tile=(64, 64))
    return [folder / "in.npy", folder / "in.zarr", folder / "in.tif"]


def digests(path: Path) -> list[str]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [f"  {p.relative_to(path.parent)} {hashlib.sha256(p.read_bytes()).hexdigest()}" for p in files]


def main() -> None:
    from poolcli import stream
    from poolcli.core.spec import PoolSpec

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        outputs = (("npy", ".npy", 2), ("zarr2", ".zarr", 2), ("zarr3", ".zarr", 3), ("tif", ".tif", 2))
        for source_path in inputs(folder):
            for name, suffix, zarr_format in outputs:
                options = stream.StoreOptions(chunk=40, zarr_format=zarr_format)
                for action in ("pool", "pyramid"):
                    target = folder / f"{source_path.stem}_{source_path.suffix[1:]}_{action}_{name}{suffix}"
                    try:
                        with stream.open_source(source_path) as source:
                            if action == "pool":
                                stream.pool_to(source, target, PoolSpec((3, 2), mode="avg"), None,
                                               memory=MEMORY, options=options)
                            else:
                                pyramid = stream.Pyramid(source.shape, (0, 1), 3, mode="avg")
                                stream.build_pyramid(source, target, pyramid, memory=MEMORY, options=options)
                        lines = digests(target)
                    except Exception as error:  # the message is part of what must not change
                        lines = [f"  error: {type(error).__name__}: {error}"]
                    print(f"{source_path.name} {action} -> {name}")
                    print("\n".join(lines).replace(temporary, "<tmp>"))
        print(unknown_suffixes(folder).replace(temporary, "<tmp>"))
    sys.stdout.flush()


def unknown_suffixes(folder: Path) -> str:
    """What streaming says of a suffix no store has, as input and as output."""
    from poolcli import stream
    from poolcli.core.spec import PoolSpec

    odd = folder / "odd.xyz"
    odd.write_bytes(b"data")
    lines = []
    npy = folder / "in.npy"
    for action in (lambda: stream.open_source(odd).__enter__(),
                   lambda: stream.pool_to(stream.open_source(npy).__enter__(), odd, PoolSpec((2,)), None)):
        try:
            action()
            lines.append("no error")
        except Exception as error:
            lines.append(f"error: {type(error).__name__}: {error}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
