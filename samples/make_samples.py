"""Regenerate poolcli's sample inputs from real, freely licensed data.

Run from the repository root:

    pip install scikit-image statsmodels   # only this script needs them
    python samples/make_samples.py

Sources (see README.md beside this file for licences):
- scikit-image's bundled images ``astronaut``, ``camera`` and ``coffee``
  (read from the installed package, nothing is downloaded);
- statsmodels' bundled Mauna Loa weekly CO2 table (read as a CSV file from the
  installed package, without importing statsmodels or pandas).

The script writes with Pillow and NumPy only, not with poolcli, so the samples do
not depend on the code they are used to test.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import data
from skimage.filters import gabor_kernel

HERE = Path(__file__).resolve().parent


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each factor x factor block (the image's sides must be multiples of factor)."""
    height, width = image.shape[:2]
    blocks = image.reshape(height // factor, factor, width // factor, factor, *image.shape[2:])
    return blocks.mean(axis=(1, 3))


def photo_jpeg() -> None:
    """astronaut.jpg: the 512 x 512 RGB astronaut photo, JPEG quality 90, its ICC profile kept."""
    source = Path(data.__file__).parent / "astronaut.png"
    with Image.open(source) as image:
        image.convert("RGB").save(
            HERE / "astronaut.jpg", quality=90, icc_profile=image.info.get("icc_profile")
        )


def gray_png() -> None:
    """camera.png: the 512 x 512 8-bit grayscale camera-man photo."""
    Image.fromarray(data.camera()).save(HERE / "camera.png", optimize=True)


def gray16_png() -> None:
    """coffee_gray16.png: 200 x 300 16-bit luminance of the coffee photo.

    Luminance (ITU-R BT.709 weights, as skimage.color.rgb2gray) of the 8-bit RGB
    photo, averaged over 2 x 2 blocks and scaled to 0..65535. The colour mix and
    the mean give it thousands of distinct levels, but it is derived from an 8-bit
    photo, not a native 16-bit capture.
    """
    rgb = data.coffee().astype(np.float64) / 255.0
    luminance = rgb @ np.array([0.2125, 0.7154, 0.0721])
    gray16 = np.floor(block_mean(luminance, 2) * 65535.0 + 0.5).astype(np.uint16)
    Image.fromarray(gray16).save(HERE / "coffee_gray16.png", optimize=True)


def feature_map_npy() -> None:
    """features_chw.npy: (8, 128, 128) float32 responses of fixed filters to the camera photo.

    The photo, scaled to [0, 1] and reduced to 128 x 128 by 4 x 4 block means, is
    convolved (reflected borders) with: Sobel x, Sobel y, Laplacian, the real part
    of Gabor kernels (frequency 0.25) at 0, 45, 90 and 135 degrees, and a
    difference of Gaussians (sigma 1 minus sigma 2). Responses are signed.
    """
    image = block_mean(data.camera().astype(np.float64) / 255.0, 4)
    channels = [
        ndimage.sobel(image, axis=1, mode="reflect"),
        ndimage.sobel(image, axis=0, mode="reflect"),
        ndimage.laplace(image, mode="reflect"),
    ]
    for degrees in (0, 45, 90, 135):
        kernel = np.real(gabor_kernel(0.25, theta=np.deg2rad(degrees)))
        channels.append(ndimage.convolve(image, kernel, mode="reflect"))
    channels.append(
        ndimage.gaussian_filter(image, 1.0, mode="reflect")
        - ndimage.gaussian_filter(image, 2.0, mode="reflect")
    )
    np.save(HERE / "features_chw.npy", np.stack(channels).astype(np.float32))


def co2_npy() -> None:
    """co2_weekly.npy: 2284 weekly mean CO2 levels (ppmv), Mauna Loa, 1958-03-29 .. 2001-12-29.

    float64, one value per week in date order; the 59 weeks without a measurement
    are NaN, as in the source.
    """
    spec = importlib.util.find_spec("statsmodels")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("statsmodels is needed for co2_weekly.npy: pip install statsmodels")
    table = Path(spec.submodule_search_locations[0]) / "datasets" / "co2" / "co2.csv"
    with open(table, newline="") as file:
        rows = list(csv.DictReader(file))
    values = [float(row["co2"]) if row["co2"] else np.nan for row in rows]
    np.save(HERE / "co2_weekly.npy", np.array(values, dtype=np.float64))


def main() -> None:
    photo_jpeg()
    gray_png()
    gray16_png()
    feature_map_npy()
    co2_npy()
    for path in sorted(HERE.iterdir()):
        if path.suffix in (".jpg", ".png", ".npy"):
            print(f"{path.name:20s} {path.stat().st_size:>9,d} bytes")


if __name__ == "__main__":
    main()
