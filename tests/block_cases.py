"""Random inputs and pooling geometries for the tests that cut arrays into blocks (streaming,
Dask): every mode, padding kind, NaN policy and ceil mode, 1-3 axes, one or two of them pooled."""

import numpy as np
from hypothesis import strategies as st

MODES = ("max", "min", "avg", "sum", "l2", "lp", "median", "majority", "nearest")
DTYPES = (np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64, np.bool_)


def values(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """Values of `dtype` in about -100..100 (0..200 unsigned); floats with a NaN and an infinity."""
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    x = (rng.random(shape) * 200 - (0 if np.dtype(dtype).kind == "u" else 100)).astype(dtype)
    if x.dtype.kind == "f" and x.size > 2:
        x.flat[rng.integers(0, x.size, 2)] = [np.nan, np.inf]
    return x


@st.composite
def pooled_shapes(draw, side: int = 14) -> tuple[tuple[int, ...], dict]:
    """A shape of 1-3 axes of at most `side` cells and `pool`'s keywords for one or two of them."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, side)) for _ in range(ndim))
    count = draw(st.integers(1, min(2, ndim)))
    axes = tuple(sorted(draw(st.permutations(range(ndim)))[:count]))
    window = tuple(draw(st.integers(1, 4)) for _ in axes)
    keywords = dict(window=window, stride=tuple(draw(st.integers(1, 3)) for _ in axes),
                    dilation=tuple(draw(st.integers(1, 2)) for _ in axes),
                    padding=tuple(draw(st.integers(0, k // 2)) for k in window), axes=axes,
                    mode=draw(st.sampled_from(MODES)), ceil_mode=draw(st.booleans()),
                    count_include_pad=draw(st.booleans()), pad_mode=draw(st.sampled_from(("zeros", "edge", "reflect"))),
                    nan_policy=draw(st.sampled_from(("propagate", "omit"))), p=draw(st.sampled_from((3.0, 1.5))))
    return shape, keywords
