"""The CuPy seam, checked without a GPU.

- CuPy arrays are recognised without importing CuPy; a missing CuPy or device is a
  PoolError that names the cure; pooling NumPy arrays (API and CLI) never imports CuPy;
  the `--backend auto` policy.
- The fused CUDA kernels themselves: backend_cuda's real driver runs with NumPy dressed
  as CuPy and the kernel sources compiled for the CPU (tests/cuda_host.py), against the
  NumPy engine on random and targeted cases; the same sources go through nvcc, where it
  is installed, as a syntax and type check. What is left for a GPU is in test_gpu.py.
"""

from __future__ import annotations

import functools
import importlib.machinery
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
from cuda_host import CXX, NVCC, HostRawKernel, fake_cupy, nvcc_check
from pool_cases import FUSED_MODES, Case, assert_matches, random_case

from poolcli import PoolError, backends, engine, pool
from poolcli.backends import choose_backend, cuda, cuda_source, import_cupy, is_cupy_array, namespace, to_device
from poolcli.core.geometry import plan_pool
from poolcli.engine import backward as engine_backward
from poolcli.engine import forward as engine_forward

ROOT = Path(__file__).resolve().parent.parent
EXTRA = r"pip install 'poolcli\[gpu\]'"


class _CupyLike:
    """An object whose class says it comes from CuPy."""


_CupyLike.__module__ = "cupy._core.core"


# ================================================================== detection and errors


ENGINE_FIT = functools.partial(engine.integer_sums_fit, requested=None)  # the engine's rule


def test_cupy_arrays_are_recognised_by_module_without_import(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # importing CuPy would fail
    assert is_cupy_array(_CupyLike())
    assert not is_cupy_array(np.zeros(3))
    assert not is_cupy_array([1, 2])
    assert namespace(np.zeros(3)) is np


@pytest.mark.parametrize("call", [
    lambda: import_cupy(),
    lambda: to_device(np.zeros(4), "cupy"),
    lambda: pool(_CupyLike(), 2),
    lambda: namespace(_CupyLike()),
], ids=["import_cupy", "to_device", "pool", "namespace"])
def test_missing_cupy_is_a_pool_error_naming_the_extra(monkeypatch, call):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(PoolError, match=EXTRA):
        call()


def _fake_cupy_module(devices):
    module = types.ModuleType("cupy")
    module.__spec__ = importlib.machinery.ModuleSpec("cupy", None)

    def count():
        if isinstance(devices, Exception):
            raise devices
        return devices

    module.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count))
    module.asarray = lambda x: ("on the device", x)
    return module


@pytest.mark.parametrize(("devices", "words"), [
    (0, "found no CUDA device"),
    (RuntimeError("cudaErrorInsufficientDriver"), "cannot reach a CUDA device"),
])
def test_cupy_without_a_device_is_a_pool_error(monkeypatch, devices, words):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy_module(devices))
    with pytest.raises(PoolError, match=words) as error:
        import_cupy()
    assert "poolcli[gpu]" in str(error.value)
    assert not backends.gpu_available()
    assert "poolcli[gpu]" in backends.gpu_unavailable_reason()


def test_auto_backend_uses_the_gpu_only_from_the_crossover(monkeypatch):
    small, large = 1024, backends.GPU_CROSSOVER_BYTES
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert choose_backend(small) == choose_backend(large) == "numpy"
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy_module(0))
    assert choose_backend(large) == "numpy"
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy_module(1))
    assert choose_backend(small) == "numpy"
    assert choose_backend(large) == "cupy"
    x = np.zeros(large // 8)
    assert to_device(x, "auto")[0] == "on the device"
    assert to_device(x[:10], "auto") is not None and isinstance(to_device(x[:10], "auto"), np.ndarray)


def test_the_fused_hooks_leave_numpy_to_the_engine():
    plan = plan_pool((4, 4), 2)
    assert backends.fused_forward(np, np.zeros((4, 4)), plan, None, False, ENGINE_FIT) is None
    assert backends.fused_backward(np, np.zeros((2, 2)), np.zeros((4, 4)), plan) is None


def test_numpy_paths_never_import_cupy(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import poolcli
        from poolcli.cli import main
        x = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
        poolcli.pool(x, 2, return_indices=True)
        poolcli.pool_backward(np.ones((2, 3, 4, 4)), x, 2, mode="avg")
        poolcli.adaptive_pool(x, 3)
        np.save({str(tmp_path / "x.npy")!r}, x)
        assert main(["pool", {str(tmp_path / "x.npy")!r}, "-o", {str(tmp_path / "y.npy")!r}]) == 0
        import poolcli.backends.cuda  # kernel sources need no CuPy either
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("cupy", "cupyx"))
        assert not loaded, loaded
        print("clean")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "clean" in result.stdout


# ================================================================== the kernels, run on the CPU

needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler to run the CUDA kernel sources on the CPU")


@pytest.fixture
def fused_on_cpu(monkeypatch):
    """Route NumPy arrays through the CUDA backend (kernels compiled for the CPU).

    Yields run(case) -> (fused result, engine result, whether a kernel ran).
    """
    monkeypatch.setattr(cuda, "_cupy", fake_cupy)
    original = (engine_forward.fused_forward, engine_backward.fused_backward)

    def run(case: Case):
        monkeypatch.setattr(engine_forward, "fused_forward", original[0])
        monkeypatch.setattr(engine_backward, "fused_backward", original[1])
        expected = case.run()
        monkeypatch.setattr(engine_forward, "fused_forward", lambda xp, x, plan, dtype, ri, fit: cuda.forward(
            x, plan, dtype, ri, fit))
        monkeypatch.setattr(engine_backward, "fused_backward", lambda xp, g, x, plan: cuda.backward(g, x, plan))
        before = len(HostRawKernel.launches)
        actual = case.run()
        return actual, expected, len(HostRawKernel.launches) > before

    return run


@needs_cxx
@pytest.mark.parametrize("mode", FUSED_MODES)
@pytest.mark.parametrize("kind", ["pool", "adaptive", "backward"])
def test_kernels_match_the_engine_on_random_cases(fused_on_cpu, kind, mode):
    fused = 0
    for seed in range(12):
        case = random_case(np.random.default_rng([seed, len(kind), len(mode), ord(mode[-1])]), kind, mode)
        actual, expected, ran = fused_on_cpu(case)
        assert_matches(actual, expected, case)
        padded = any(lo or hi for lo, hi in case.keywords.get("padding", ()))
        falls_back = kind == "backward" and padded and case.keywords.get("pad_mode") != "zeros"
        assert ran != falls_back, case
        fused += ran
    assert fused >= 6


NAN = np.nan
TARGETED = [
    # SPEC's worked examples
    Case("pool", np.arange(25).reshape(5, 5), dict(window=2, ceil_mode=True, return_indices=True)),
    Case("pool", np.array([1, 2, 3, 4, 5]), dict(window=3, stride=3, padding=1, ceil_mode=True)),
    Case("pool", np.array([[-1, -2], [-3, -4]]), dict(window=2, stride=1, padding=1, return_indices=True)),
    Case("pool", np.arange(1.0, 10).reshape(3, 3), dict(window=3, stride=2, padding=1, mode="avg")),
    Case("pool", np.arange(1.0, 10).reshape(3, 3),
         dict(window=3, stride=2, padding=1, mode="avg", count_include_pad=False)),
    Case("pool", np.array([1, 5, 2, 6, 3, 7, 4]), dict(window=3, stride=1, dilation=2)),
    Case("pool", np.array([4, 3, 2, 1]), dict(window=2, stride=1, padding="same")),
    Case("pool", np.array([3.0, 4.0]), dict(window=2, mode="l2")),
    Case("pool", np.array([3.0, 4.0]), dict(window=2, mode="lp", p=2)),
    Case("backward", np.array([1.0, 3, 2, 3, 5, 5]), dict(window=2, stride=1), np.ones(5)),
    # the ceil-mode overhang is not in PyTorch's divisor
    Case("pool", np.arange(6.0), dict(window=3, stride=2, ceil_mode=True, mode="avg")),
    Case("pool", np.arange(6.0), dict(window=3, stride=2, ceil_mode=True, padding=1, mode="l2")),
    # NaN rules: a NaN always replaces (the last one wins); omit skips them
    Case("pool", np.array([1, NAN, 3, NAN]), dict(window=4, return_indices=True)),
    Case("pool", np.array([1, NAN, 3, NAN]), dict(window=4, return_indices=True, nan_policy="omit")),
    Case("pool", np.array([NAN, NAN, 2, -np.inf]), dict(window=2, mode="min", return_indices=True,
                                                        nan_policy="omit")),
    Case("pool", np.array([NAN, NAN, 2, 4]), dict(window=2, mode="avg", nan_policy="omit")),
    Case("pool", np.array([NAN, 1, 2, 4]), dict(window=2, mode="avg", nan_policy="omit", divisor_override=3)),
    # PyTorch's divisor_override may be negative: the mean's sign flips, integers still round half up
    Case("pool", np.arange(1.0, 10).reshape(3, 3),
         dict(window=3, stride=2, padding=1, mode="avg", divisor_override=-2)),
    Case("pool", np.array([1, 2, 3, 4, 5, 255, 7, 250], np.uint8), dict(window=2, mode="avg", divisor_override=-2,
                                                                        dtype="int16")),
    Case("pool", np.array([1, 2, 3, 4, 5, 255, 7, 250], np.uint8), dict(window=2, mode="avg", divisor_override=-2,
                                                                        dtype="uint8")),
    Case("pool", np.array([-3, 2, -5, 4, 7, 1, 0, -8, 3], np.int8), dict(window=3, mode="avg", divisor_override=-4,
                                                                         dtype="int8")),
    Case("backward", np.arange(8.0), dict(window=3, stride=2, padding=1, mode="avg", divisor_override=-3), np.ones(4)),
    Case("pool", np.arange(8.0) * 2.0**70, dict(window=2, mode="avg", divisor_override=2**62 + 1)),  # past a C int
    Case("pool", np.array([2**40, 3, -5, 2**41], np.int64), dict(window=2, mode="avg", divisor_override=-(2**33),
                                                                 dtype="int64")),
    Case("pool", np.array([NAN, 1, 2, 4]), dict(window=2, mode="l2", nan_policy="omit")),
    Case("pool", np.array([NAN, NAN, 2, 4]), dict(window=2, mode="sum", nan_policy="omit")),
    Case("backward", np.array([NAN, 1, 2, 4]), dict(window=2, mode="l2", nan_policy="omit"), np.ones(2)),
    Case("backward", np.array([NAN, 1, 2, 0]), dict(window=2, mode="lp", p=3.0), np.ones(2)),
    # integer rounding, accumulation and dtypes
    Case("pool", np.array([[2, 3], [2, 3]], np.uint8), dict(window=2, mode="avg", dtype="uint8")),
    Case("pool", np.full((2, 2), 255, np.uint8), dict(window=2, mode="avg", dtype="uint8")),
    Case("pool", np.array([-3, -2, -5, -4], np.int8), dict(window=2, mode="avg", dtype="int8")),
    Case("pool", np.array([-3, -2, -5, -4], np.int8), dict(window=2, mode="sum")),
    Case("pool", np.array([250, 250, 7, 1], np.uint8), dict(window=2, mode="sum")),
    Case("pool", np.array([True, False, False, False]), dict(window=2, return_indices=True)),
    Case("pool", np.array([True, False, True, True]), dict(window=2, mode="min")),
    Case("pool", np.array([1.5, 2.5, -0.5], np.float16), dict(window=2, stride=1, mode="avg")),
    Case("pool", np.array([0.4, 2.6, -1.5, 1e9]), dict(window=1, mode="max", dtype="uint8")),
    # layouts: channels last (an inner block), axes apart (moved), a strided view
    Case("pool", np.arange(5 * 6 * 3.0).reshape(5, 6, 3), dict(window=2, axes=(0, 1), return_indices=True)),
    Case("pool", np.arange(4 * 3 * 5.0).reshape(4, 3, 5), dict(window=(2, 3), stride=1, axes=(2, 0),
                                                               mode="avg", padding=1)),
    Case("backward", np.arange(5 * 6 * 3.0).reshape(5, 6, 3) % 7, dict(window=3, stride=1, axes=(0, 1)),
         np.arange(3 * 4 * 3.0).reshape(3, 4, 3)),
    Case("pool", np.arange(40.0).reshape(5, 8)[:, ::2], dict(window=2, mode="sum")),
    # windows too wide to unroll, and an empty batch
    Case("pool", np.sin(np.arange(300.0)).reshape(3, 100), dict(window=(70,), stride=9, return_indices=True)),
    Case("pool", np.sin(np.arange(300.0)).reshape(20, 15), dict(window=(12, 3), mode="lp", p=1.5)),
    Case("pool", np.zeros((0, 4, 20), np.float32), dict(window=2)),  # not (0, 4, 4): the engine fails there
    Case("adaptive", np.arange(5.0), dict(output_size=3, mode="max", return_indices=True)),
    Case("adaptive", np.arange(7 * 5.0).reshape(7, 5), dict(output_size=(3, 1), mode="avg")),
    # edge/reflect padding: materialised, indices mapped back to the input
    Case("pool", np.array([5.0, 1, 2, 9]), dict(window=3, stride=1, padding=2, pad_mode="edge",
                                                return_indices=True)),
    Case("pool", np.array([[5.0, 1, 2], [0, 7, 3]]), dict(window=3, stride=2, padding=2, pad_mode="reflect",
                                                          return_indices=True, mode="min")),
]


@needs_cxx
@pytest.mark.parametrize("case", TARGETED, ids=[f"{i}-{c.kind}" for i, c in enumerate(TARGETED)])
def test_kernels_match_the_engine_on_edge_cases(fused_on_cpu, case):
    actual, expected, ran = fused_on_cpu(case)
    assert_matches(actual, expected, case)
    assert ran or case.x.size == 0, case


@needs_cxx
@pytest.mark.parametrize("tuning", [dict(items=1), dict(items=2), dict(items=4), dict(items=3, index64=True),
                                    dict(threads=32)])
def test_kernel_variants_agree(fused_on_cpu, monkeypatch, tuning):
    monkeypatch.setattr(cuda, "TUNING", {**cuda.TUNING, **tuning})
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, size=(2, 3, 17, 70)).astype(np.float32)
    for keywords in (dict(window=3, stride=2, padding=1, return_indices=True),
                     dict(window=2, mode="avg"), dict(window=(3, 2), stride=(1, 1), dilation=2, mode="l2"),
                     dict(window=3, stride=2, ceil_mode=True, mode="lp", p=3)):
        case = Case("pool", x, keywords)
        actual, expected, ran = fused_on_cpu(case)
        assert ran
        assert_matches(actual, expected, case)
    case = Case("backward", x, dict(window=3, stride=2, padding=1, mode="avg"),
                rng.standard_normal((2, 3, 9, 35)).astype(np.float32))
    assert_matches(*fused_on_cpu(case)[:2], case)


def test_paths_without_a_fused_kernel_are_left_to_the_engine():
    x = np.zeros((6, 6))
    assert cuda.forward(x, plan_pool(x.shape, 2, mode="median"), None, False, ENGINE_FIT) is None
    four = np.zeros((3, 3, 3, 3))
    assert cuda.forward(four, plan_pool(four.shape, (2, 2, 2, 2)), None, False, ENGINE_FIT) is None
    reflect = plan_pool(x.shape, 3, padding=1, pad_mode="reflect", mode="avg")
    assert cuda.backward(np.zeros((4, 4)), x, reflect) is None
    assert not cuda.supported(x, reflect, backward=True)
    assert cuda.supported(x, reflect)  # forward: padded once, then fused


def test_layouts():
    assert cuda._layout((2, 3, 8, 9), (2, 3)) == cuda._Layout((2, 3), 6, 1, False)
    assert cuda._layout((8, 9, 3), (0, 1)) == cuda._Layout((0, 1), 1, 3, False)
    assert cuda._layout((4, 5, 6), (0, 2)) == cuda._Layout((0, 2), 5, 1, True)


@needs_cxx
def test_adaptive_and_backward_public_calls(fused_on_cpu):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 7)).astype(np.float32)
    for case in (Case("adaptive", x, dict(output_size=(4, 3), mode="max", return_indices=True)),
                 Case("backward", x, dict(window=2, mode="lp", p=3.0),
                      rng.standard_normal((2, 4, 3)).astype(np.float32))):
        actual, expected, ran = fused_on_cpu(case)
        assert ran
        assert_matches(actual, expected, case)


# ================================================================== the sources through nvcc


def _representative_sources():
    A = cuda_source.AxisSpec
    regular, wide, adaptive = A(False, 3, 2, 1), A(False, 70, 9, 2), A(True)
    sources = []
    for mode in FUSED_MODES:
        for src, acc, out, finish in (("float32",) * 3 + ("value",), ("float64",) * 3 + ("value",),
                                      cuda._forward_dtypes(np.dtype("uint8"), mode, None),
                                      cuda._forward_dtypes(np.dtype("int64"), mode, np.dtype("int16")),
                                      cuda._forward_dtypes(np.dtype("bool"), mode, None)):
            for axes, items, inner, omit in (((regular, regular), 2, False, src == "float32"),
                                             ((adaptive, regular, wide), 1, True, True),
                                             ((regular, adaptive), 1, False, False)):
                divisor = "padded" if mode in ("avg", "l2") else "none"
                spec = cuda_source.ForwardSpec(mode, src, acc, out, axes, items=items, inner=inner,
                                                omit=omit and src in ("float32", "float64"),
                                                indices=mode in ("max", "min"), divisor=divisor, p=3.0,
                                                finish=finish, index32=not inner)
                sources.append(cuda_source.forward_source(spec))
        if mode not in ("max", "min", "sum"):
            spec = cuda_source.ForwardSpec(mode, "float32", "float32", "float32", (regular, regular),
                                            omit=True, divisor="real" if mode != "lp" else "none",
                                            finish="weight", p=2.0 if mode == "lp" else 3.0)
            sources.append(cuda_source.forward_source(spec))
    for override, dtypes in ((-2, cuda._forward_dtypes(np.dtype("uint8"), "avg", np.dtype("uint8"), True)),
                             (2**40 + 1, ("float32",) * 3 + ("value",))):  # PyTorch's any non-zero int64
        src, acc, out, finish = dtypes
        spec = cuda_source.ForwardSpec("avg", src, acc, out, (regular, regular), divisor="override", override=override,
                                        finish=finish)
        sources.append(cuda_source.forward_source(spec))
    for route, local in ((True, "none"), (False, "none"), (False, "l2"), (False, "lp")):
        for work, src in (("float32", "float32"), ("float64", "int16")):
            spec = cuda_source.GatherSpec(route, local, src, work, (regular, wide), inner=not route,
                                           omit=src == "float32" and not route, p=3.0, index32=route)
            sources.append(cuda_source.gather_source(spec))
    return sources


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
def test_kernel_sources_compile_with_nvcc(tmp_path):
    sources = _representative_sources()
    assert len({s.name for s in sources}) == len(sources)
    result = nvcc_check(sources, str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
