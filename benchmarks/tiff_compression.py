"""Which compression should poolcli's TIFF outputs take by default? Size and write speed of a
tiled TIFF (256 x 256 tiles, as poolcli writes them) of a photo-like and a microscopy-like
array, for deflate (zlib) and LZW with the horizontal predictor, and ZSTD, measured in one run
and printed as ratios to deflate at tifffile's default level.

    python benchmarks/tiff_compression.py [--side 2048] [--repeat 3]

Only deflate and LZW are decoded by every common TIFF reader (libtiff and so OpenCV, Pillow,
GDAL, libvips; Bio-Formats and ImageJ); ZSTD is not (OpenCV's and ImageJ's builds lack it).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = {  # name: tifffile keywords
    "deflate+predictor (level 6)": dict(compression="zlib", predictor=True),
    "deflate+predictor (level 1)": dict(compression="zlib", predictor=True, compressionargs={"level": 1}),
    "deflate (no predictor)": dict(compression="zlib"),
    "lzw+predictor": dict(compression="lzw", predictor=True),
    "zstd (level 5, tifffile's default)": dict(compression="zstd"),
    "zstd+predictor": dict(compression="zstd", predictor=True),
    "none": dict(compression=None),
}


def photo(side: int) -> np.ndarray:
    """The sample photo, tiled up to side x side x 3 (mirrored, so no seams)."""
    from PIL import Image

    image = np.asarray(Image.open(ROOT / "samples" / "astronaut.jpg").convert("RGB"))
    tile = np.concatenate([image, image[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[::-1]], axis=0)
    reps = (-(-side // tile.shape[0]), -(-side // tile.shape[1]), 1)
    return np.ascontiguousarray(np.tile(tile, reps)[:side, :side])


def microscopy(side: int) -> np.ndarray:
    """A 12-bit fluorescence-like plane in uint16: dark background, blurred nuclei, shot noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    signal = np.full((side, side), 100.0, np.float32)
    for cy, cx, r in zip(rng.uniform(0, side, 60), rng.uniform(0, side, 60), rng.uniform(side / 60, side / 25, 60)):
        window = (slice(max(0, int(cy - 3 * r)), int(cy + 3 * r)), slice(max(0, int(cx - 3 * r)), int(cx + 3 * r)))
        signal[window] += 2500 * np.exp(-((y[window] - cy) ** 2 + (x[window] - cx) ** 2) / (2 * r * r))
    return np.clip(rng.poisson(signal), 0, 4095).astype(np.uint16)


def measure(array: np.ndarray, keywords: dict, repeat: int) -> tuple[int, float]:
    """Bytes written and the best write time of `array` as a tiled TIFF."""
    best, size = float("inf"), 0
    photometric = "rgb" if array.ndim == 3 else "minisblack"
    for _ in range(repeat):
        buffer = io.BytesIO()
        started = time.perf_counter()
        tifffile.imwrite(buffer, array, tile=(256, 256), photometric=photometric, **keywords)
        best = min(best, time.perf_counter() - started)
        size = buffer.tell()
    return size, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name, array in (("photo-like (RGB uint8)", photo(args.side)), ("microscopy-like (uint16)",
                                                                        microscopy(args.side))):
        results = {label: measure(array, keywords, args.repeat) for label, keywords in CANDIDATES.items()}
        base_size, base_time = results["deflate+predictor (level 6)"]
        print(f"{name}, {array.nbytes / 1e6:.1f} MB raw; ratios to deflate+predictor at level 6"
              f" ({base_size / 1e6:.2f} MB, {base_time:.2f} s)")
        for label, (size, seconds) in results.items():
            print(f"  {label:36s} size x{size / base_size:5.2f}  (raw/size {array.nbytes / size:5.2f})"
                  f"  write time x{seconds / base_time:5.2f}")


if __name__ == "__main__":
    main()
