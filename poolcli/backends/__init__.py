"""The one module that knows CuPy exists.

A CuPy array is recognised by its class's module, without importing CuPy; CuPy is
imported only when a GPU path is asked for. Everything else receives `xp`, the array
namespace of its input (NumPy or CuPy), and calls the same functions on it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

import numpy as np

from ..errors import PoolError

GPU_EXTRA_HINT = ("install the GPU extra with `pip install 'poolcli[gpu]'` (CUDA 12; "
                  "`poolcli[gpu-cuda13]` for CUDA 13) on a machine with an NVIDIA GPU")


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


def gpu_unavailable_reason() -> str | None:
    """None where CuPy imports and sees a CUDA device, else why not (with the cure)."""
    try:
        import_cupy()
    except PoolError as error:
        return str(error)
    return None


def gpu_available() -> bool:
    """Whether CuPy imports and sees at least one CUDA device."""
    return gpu_unavailable_reason() is None


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of a CuPy array, or `x` itself as a NumPy array."""
    return x.get() if is_cupy_array(x) else np.asarray(x)


# Inputs from this size up are pooled on the GPU by `--backend auto`: below it, the
# host->device and device->host copies cost more than the GPU saves. PLACEHOLDER: not yet
# measured on a GPU; `python benchmarks/gpu.py` prints the measured crossover (section 3).
GPU_CROSSOVER_BYTES = 16 << 20


def choose_backend(nbytes: int) -> str:
    """'cupy' where the GPU wins including the transfers (and one is usable), else 'numpy'.

    >>> choose_backend(1024)
    'numpy'
    """
    if nbytes < GPU_CROSSOVER_BYTES or importlib.util.find_spec("cupy") is None:
        return "numpy"
    return "cupy" if gpu_available() else "numpy"


def to_device(x: np.ndarray, backend: str) -> Any:
    """`x` on the requested backend: 'numpy' leaves it, 'cupy' moves it to the GPU,
    'auto' moves it only where `choose_backend` says the GPU wins."""
    if backend == "auto":
        backend = choose_backend(np.asarray(x).nbytes)
    if backend == "cupy":
        return import_cupy().asarray(x)
    return x


def scatter_add(xp: Any, target: Any, key: tuple, values: Any) -> None:
    """target[key] += values, accumulating repeated indices (unbuffered)."""
    if xp is np:
        np.add.at(target, key, values)
    else:  # CuPy spells it as cupyx.scatter_add
        importlib.import_module("cupyx").scatter_add(target, key, values)


def fused_forward(xp: Any, x: Any, plan: Any, dtype: Any, return_indices: bool, sums_fit: Any) -> Any:
    """The result of a fused GPU kernel for a CuPy `x`, or None (NumPy input, or a path
    without a fused kernel: then the generic engine runs on `xp`). `sums_fit(xp, x, plan)`:
    whether integer window sums fit 64 bits (the engine decides).

    POOLCLI_FUSED=0 turns the fused kernels off (to check the generic path on a GPU).
    """
    if xp is np or os.environ.get("POOLCLI_FUSED", "1") == "0":
        return None
    return _cuda().forward(x, plan, dtype, return_indices, sums_fit)


def fused_backward(xp: Any, grad: Any, x: Any, plan: Any) -> Any:
    """dL/dx from fused GPU kernels for a CuPy `x`, or None (as `fused_forward`)."""
    if xp is np or os.environ.get("POOLCLI_FUSED", "1") == "0":
        return None
    return _cuda().backward(grad, x, plan)


def _cuda() -> Any:
    """The CuPy kernels beside this module, imported on first use."""
    return importlib.import_module(".cuda", __package__)
