"""The one module that knows CuPy exists.

A CuPy array is recognised by its class's module, without importing CuPy; CuPy is
imported only when a GPU path is asked for. Everything else receives `xp`, the array
namespace of its input (NumPy or CuPy), and calls the same functions on it.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .errors import PoolError

GPU_EXTRA_HINT = "install the GPU extra with `pip install 'poolcli[gpu]'` on a machine with an NVIDIA GPU"


def is_cupy_array(x: object) -> bool:
    """True for a CuPy ndarray, decided without importing CuPy.

    >>> is_cupy_array(np.zeros(3))
    False
    """
    return type(x).__module__.split(".")[0] == "cupy"


def namespace(x: object) -> Any:
    """The array library of `x`: CuPy for CuPy arrays, NumPy for everything else.

    >>> namespace([1, 2]).__name__
    'numpy'
    """
    return import_cupy() if is_cupy_array(x) else np


def as_array(x: object) -> tuple[Any, Any]:
    """`(xp, array)`: the namespace and `x` as an array of it (lists become NumPy arrays)."""
    xp = namespace(x)
    return xp, x if xp is not np else np.asarray(x)


def import_cupy() -> Any:
    """CuPy, or a PoolError that says how to get it."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as error:
        raise PoolError(f"the cupy backend needs CuPy, which is not installed; {GPU_EXTRA_HINT}") from error
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise PoolError(f"the cupy backend found no CUDA device; {GPU_EXTRA_HINT}")
    except PoolError:
        raise
    except Exception as error:  # CUDA driver missing or broken
        raise PoolError(f"the cupy backend cannot reach a CUDA device ({error}); {GPU_EXTRA_HINT}") from error
    return cupy


def gpu_available() -> bool:
    """Whether CuPy imports and sees at least one CUDA device."""
    try:
        import_cupy()
    except PoolError:
        return False
    return True


def to_numpy(x: object) -> np.ndarray:
    """A NumPy copy of a CuPy array, or `x` itself as a NumPy array."""
    return x.get() if is_cupy_array(x) else np.asarray(x)


def to_device(x: np.ndarray, backend: str) -> Any:
    """`x` on the requested backend: 'numpy' leaves it, 'cupy' moves it to the GPU."""
    if backend == "cupy":
        return import_cupy().asarray(x)
    return x


def scatter_add(xp: Any, target: Any, key: tuple, values: Any) -> None:
    """target[key] += values, accumulating repeated indices (unbuffered)."""
    if xp is np:
        np.add.at(target, key, values)
    else:  # CuPy spells it as cupyx.scatter_add
        importlib.import_module("cupyx").scatter_add(target, key, values)
