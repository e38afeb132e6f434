"""Run poolcli's CUDA kernel sources on the CPU: a stand-in for CuPy on machines without a GPU.

`HostRawKernel` compiles the very source `poolcli.backend_cuda` hands to CuPy's RawKernel
with the host C++ compiler, behind a few definitions that make CUDA's names plain C++
(`__global__`, `blockIdx`, `__int_as_float`, ...), and runs every thread of the grid in
turn. `fake_cupy()` is NumPy with that RawKernel, so backend_cuda's whole driver (layout,
launch arguments, result dtypes) runs unchanged on NumPy arrays.

What this cannot check: that NVRTC accepts the source (see `nvcc_check`), speed, and
anything that depends on threads running at the same time (the kernels share nothing).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import types

import numpy as np

CXX = shutil.which("g++") or shutil.which("c++")
NVCC = shutil.which("nvcc")

HOST_SHIM = r"""
#include <math.h>
#include <string.h>
struct poolcli_dim3 { unsigned x, y, z; };
static poolcli_dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline double __longlong_as_double(long long i) { double d; memcpy(&d, &i, 8); return d; }
"""

# POOLCLI_HOST_ASAN=1 builds the kernels with AddressSanitizer (run Python with
# LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0): every read
# and write outside the arrays then stops the run with a report.
_SANITIZE = ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"] if os.environ.get("POOLCLI_HOST_ASAN") else []
_CACHE_DIR = os.path.join(tempfile.gettempdir(),
                          f"poolcli-host-kernels-{os.getuid()}" + ("-asan" if _SANITIZE else ""))
_libraries: dict = {}


def _signature(code: str, name: str) -> list[tuple[str, bool]]:
    """(C type without __restrict__, is pointer) of each parameter of kernel `name`."""
    match = re.search(rf"void\s+{re.escape(name)}\s*\((.*?)\)\s*\{{", code, re.S)
    params = []
    for part in match.group(1).split(","):
        part = " ".join(part.replace("__restrict__", "").split())
        ctype = part.rsplit(" ", 1)[0]
        params.append((ctype, "*" in ctype))
    return params


def _library(code: str, name: str):
    key = hashlib.sha1((code + name).encode()).hexdigest()
    if key in _libraries:
        return _libraries[key]
    params = _signature(code, name)
    call = ", ".join(f"({ctype})a[{i}]" if pointer else f"*({ctype}*)a[{i}]"
                     for i, (ctype, pointer) in enumerate(params))
    launcher = f"""
extern "C" void poolcli_host_launch(unsigned grid, unsigned block, void** a) {{
    gridDim.x = grid; gridDim.y = gridDim.z = 1;
    blockDim.x = block; blockDim.y = blockDim.z = 1;
    blockIdx.y = blockIdx.z = threadIdx.y = threadIdx.z = 0;
    for (unsigned bx = 0; bx < grid; ++bx) {{
        blockIdx.x = bx;
        for (unsigned tx = 0; tx < block; ++tx) {{
            threadIdx.x = tx;
            {name}({call});
        }}
    }}
}}
"""
    os.makedirs(_CACHE_DIR, exist_ok=True)
    library = os.path.join(_CACHE_DIR, f"{key}.so")
    if not os.path.exists(library):
        source = os.path.join(_CACHE_DIR, f"{key}.cpp")
        with open(source, "w") as handle:
            handle.write(HOST_SHIM + code + launcher)
        partial = library + f".{os.getpid()}"
        subprocess.run([CXX, "-O0", "-std=c++14", "-shared", "-fPIC", "-ffp-contract=off", "-w", *_SANITIZE,
                        "-o", partial, source], check=True, capture_output=True, text=True)
        os.replace(partial, library)
    handle = ctypes.CDLL(library)
    handle.poolcli_host_launch.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
    _libraries[key] = (handle, params)
    return _libraries[key]


class HostRawKernel:
    """cupy.RawKernel's call interface, run on the CPU (arguments are NumPy arrays and scalars)."""

    launches: list = []  # (name, grid, block) of every launch, for tests to inspect

    def __init__(self, code: str, name: str, options: tuple = ()):
        self.code, self.name, self.options = code, name, options

    def __call__(self, grid, block, args):
        handle, params = _library(self.code, self.name)
        assert len(args) == len(params), (len(args), len(params))
        keep, pointers = [], []
        for value, (ctype, pointer) in zip(args, params):
            if pointer:
                assert isinstance(value, np.ndarray) and value.flags.c_contiguous, (ctype, type(value))
                pointers.append(value.ctypes.data)
            else:
                assert isinstance(value, (np.int32, np.int64)), (ctype, type(value))
                expected = np.int32 if ctype == "int" else np.int64
                assert type(value) is expected, (ctype, type(value))
                box = np.array(value)
                keep.append(box)
                pointers.append(box.ctypes.data)
        array = (ctypes.c_void_p * len(pointers))(*pointers)
        (blocks,), (threads,) = grid, block
        HostRawKernel.launches.append((self.name, blocks, threads))
        handle.poolcli_host_launch(blocks, threads, array)


def fake_cupy() -> types.SimpleNamespace:
    """NumPy dressed as CuPy for backend_cuda: the functions it calls, and HostRawKernel."""
    names = ("asarray", "ascontiguousarray", "moveaxis", "empty", "zeros_like", "pad", "floor", "add",
             "clip", "nan_to_num", "ndarray")
    namespace = types.SimpleNamespace(**{name: getattr(np, name) for name in names})
    namespace.RawKernel = HostRawKernel
    namespace.__name__ = "cupy"
    return namespace


def nvcc_check(sources, workdir: str) -> subprocess.CompletedProcess:
    """Compile kernel sources to PTX for sm_90 with nvcc (no GPU needed): a syntax and type check."""
    path = os.path.join(workdir, "kernels.cu")
    with open(path, "w") as handle:
        handle.write("\n".join(source.code for source in sources))
    return subprocess.run([NVCC, "--ptx", "-arch=sm_90", "--fmad=false", "-Werror", "all-warnings",
                           "-o", os.path.join(workdir, "kernels.ptx"), path],
                          capture_output=True, text=True)
