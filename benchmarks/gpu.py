"""poolcli's CuPy backend on a GPU: correctness, speed against PyTorch and a copy, and the
crossover for `--backend auto`, in one run of under three minutes.

    python benchmarks/gpu.py [--out DIR] [--cases 150]

Needs CuPy and a CUDA device; PyTorch (CUDA build) for the comparison. Runs from a
checkout without installing (the repository root goes on sys.path). Every section
catches its own errors and prints them, so one failure does not hide the others.
With --out, a copy of everything printed goes to DIR/gpu_bench.txt.

1. correctness: random calls (tests/pool_cases.py) on CuPy against the NumPy engine:
   max/min values and indices bit-identical, the rest within a float tolerance.
2. speed: device time of one call (CUDA events, median of 50 after warm-up; a spin
   kernel queued first keeps Python's launch time out of the measurement), for
   poolcli, torch.nn.functional and a plain device copy of the same input. Goals:
   >= 1.2x torch's throughput and >= 60% of the copy's bandwidth, counting bytes
   read + written. Kernel variants (outputs per thread, block size) are timed too.
3. crossover: NumPy engine vs host->device + pool + device->host, per input size:
   where the GPU starts to win is what backends.GPU_CROSSOVER_BYTES should be.
"""

from __future__ import annotations

import argparse
import functools
import io
import math
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from timing import median_seconds  # noqa: E402

import poolcli  # noqa: E402
from poolcli import backends  # noqa: E402
from poolcli.backends import cuda  # noqa: E402

START = time.perf_counter()
BUDGET_S = 170.0


class Tee(io.TextIOBase):
    def __init__(self, stream):
        self.stream, self.parts = stream, []

    def write(self, text):
        self.stream.write(text)
        self.stream.flush()
        self.parts.append(text)
        return len(text)

    def flush(self):
        self.stream.flush()


def section(title):
    print(f"\n== {title}  (t = {time.perf_counter() - START:.0f} s)")


def left() -> float:
    return BUDGET_S - (time.perf_counter() - START)


# ================================================================== 0. environment


def environment():
    cp = backends.import_cupy()
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print(f"device: {name}, {props['multiProcessorCount']} SMs, "
          f"{props['totalGlobalMem'] / 2**30:.0f} GiB; CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}, "
          f"driver {cp.cuda.runtime.driverGetVersion()}")
    print(f"cupy {cp.__version__}, numpy {np.__version__}, poolcli {poolcli.__version__}, "
          f"python {sys.version.split()[0]}")
    try:
        import torch

        print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
    except ImportError:
        print("torch: not installed (the torch columns stay empty)")
    print(f"kernel tuning: {cuda.TUNING}; NumPy threads: {poolcli.engine.worker_threads()}")


# ================================================================== 1. correctness


def correctness(cases: int):
    from pool_cases import FUSED_MODES, assert_matches, random_case

    cp = backends.import_cupy()

    def to_host(result):
        if isinstance(result, tuple):
            return tuple(to_host(r) for r in result)
        assert isinstance(result, cp.ndarray), type(result)
        return result.get()

    kinds = ("pool", "adaptive", "backward")
    per = max(1, cases // (len(kinds) * (len(FUSED_MODES) + 1)))
    passed, failed, failures = 0, 0, []
    rows = []
    for kind in kinds:
        for mode in FUSED_MODES + ("median",):
            ok = bad = 0
            for seed in range(per):
                if left() < 120:
                    break
                case = random_case(np.random.default_rng([seed, len(kind), len(mode), 99]), kind, mode)
                try:
                    expected = case.run()
                    actual = to_host(case.run(cp.asarray))
                    assert_matches(actual, expected, case)
                    ok += 1
                except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the run
                    bad += 1
                    failures.append(f"{case!r}: {type(error).__name__}: {str(error)[:300]}")
            rows.append((kind, mode, ok, bad))
            passed, failed = passed + ok, failed + bad
    print(f"{'call':10} {'mode':7} {'pass':>5} {'fail':>5}")
    for kind, mode, ok, bad in rows:
        print(f"{kind:10} {mode:7} {ok:5d} {bad:5d}")
    print(f"correctness: PASS {passed}  FAIL {failed}  (max/min bit-identical incl. indices; others allclose)")
    for line in failures[:10]:
        print("  FAIL", line)


# ================================================================== 2. speed


@functools.lru_cache(maxsize=1)
def _spin_kernel(cp):
    code = r"""
    extern "C" __global__ void poolcli_spin(long long cycles) {
        const long long start = clock64();
        while (clock64() - start < cycles) { }
    }"""
    return cp.RawKernel(code, "poolcli_spin")


def device_ms(cp, function, repeat: int = 50, warmup: int = 3) -> float:
    """Median device time of one call: a spin kernel queued ahead hides Python's launch time."""
    spin = _spin_kernel(cp)
    for _ in range(warmup):
        function()
    cp.cuda.Device().synchronize()
    samples = []
    for _ in range(repeat):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        spin((1,), (1,), (np.int64(2_000_000),))  # ~1 ms of queue ahead of the measured call
        start.record()
        function()
        end.record()
        end.synchronize()
        samples.append(cp.cuda.get_elapsed_time(start, end))
    return statistics.median(samples)


def batch_ms(cp, function, repeat: int = 20) -> float:
    """Mean time per call of `repeat` calls back to back, Python included (throughput)."""
    function()
    cp.cuda.Device().synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(repeat):
        function()
    end.record()
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end) / repeat


CASES = [
    ("max 3x3 s2 p1", (64, 64, 112, 112), dict(window=3, stride=2, padding=1, mode="max")),
    ("max 2x2", (16, 3, 2048, 2048), dict(window=2, mode="max")),
    ("avg 2x2", (16, 3, 2048, 2048), dict(window=2, mode="avg")),
]


def _torch_call(keywords):
    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        return None
    k, s, p = keywords["window"], keywords.get("stride", keywords["window"]), keywords.get("padding", 0)
    if keywords["mode"] == "max":
        return torch, lambda t: F.max_pool2d(t, k, s, p)
    return torch, lambda t: F.avg_pool2d(t, k, s, p)


def speed():
    cp = backends.import_cupy()
    print(f"{'case':15} {'shape':20} {'poolcli ms':>10} {'torch ms':>9} {'copy ms':>8} "
          f"{'x torch':>8} {'% copy BW':>9} {'batch ms':>9}  goals: x torch >= 1.2, % copy BW >= 60")
    rng = np.random.default_rng(0)
    for label, shape, keywords in CASES:
        try:
            _speed_case(cp, rng, label, shape, keywords)
        except Exception:  # noqa: BLE001
            print(f"{label}: FAILED\n{traceback.format_exc()}")
        cp.get_default_memory_pool().free_all_blocks()


def _speed_case(cp, rng, label, shape, keywords):
    x = cp.asarray(rng.standard_normal(shape, dtype=np.float32))
    y = poolcli.pool(x, **keywords)
    moved = x.nbytes + y.nbytes
    ours = device_ms(cp, lambda: poolcli.pool(x, **keywords))
    ours_batch = batch_ms(cp, lambda: poolcli.pool(x, **keywords))
    copy_target = cp.empty_like(x)
    copy = device_ms(cp, lambda: cp.copyto(copy_target, x))
    copy_bandwidth = 2 * x.nbytes / copy / 1e9  # TB/s (bytes/ms / 1e9)
    ours_bandwidth = moved / ours / 1e9
    torch_ms, agreement = float("nan"), ""
    try:
        found = _torch_call(keywords)
        if found is not None:
            torch, call = found
            t = torch.from_dlpack(x)
            torch_ms = device_ms(cp, lambda: call(t))
            reference = cp.from_dlpack(call(t))
            if keywords["mode"] == "max":
                agreement = "identical to torch" if bool((reference == y).all()) else "DIFFERS from torch"
            else:
                agreement = f"max |diff| vs torch {float(cp.abs(reference - y).max()):.2e}"
    except Exception as error:  # noqa: BLE001
        agreement = f"torch failed: {type(error).__name__}: {error}"
    ratio = torch_ms / ours
    print(f"{label:15} {str(shape):20} {ours:10.3f} {torch_ms:9.3f} {copy:8.3f} {ratio:8.2f} "
          f"{100 * ours_bandwidth / copy_bandwidth:8.0f}% {ours_batch:9.3f}  "
          f"[{ours_bandwidth:.2f} TB/s vs copy {copy_bandwidth:.2f} TB/s; {agreement}]")


def variants():
    """The same cases under each kernel tuning, to choose the defaults (device ms)."""
    cp = backends.import_cupy()
    choices = [dict(items=1), dict(items=2), dict(items=4), dict(items=2, threads=128), dict(items=2, threads=512),
               dict(items=1, threads=128)]
    print(f"{'case':15} " + " ".join(f"{str(c):>28}" for c in choices))
    rng = np.random.default_rng(1)
    saved = dict(cuda.TUNING)
    try:
        for label, shape, keywords in CASES:
            if left() < 40:
                print("(time budget reached; variants skipped)")
                break
            times = _variant_times(cp, rng, shape, keywords, choices, saved)
            print(f"{label:15} " + " ".join(f"{t:28.3f}" for t in times))
            cp.get_default_memory_pool().free_all_blocks()
    finally:
        cuda.TUNING.clear()
        cuda.TUNING.update(saved)


def _variant_times(cp, rng, shape, keywords, choices, saved) -> list[float]:
    x = cp.asarray(rng.standard_normal(shape, dtype=np.float32))
    expected = poolcli.pool(x, **keywords)
    times = []
    for choice in choices:
        cuda.TUNING.clear()
        cuda.TUNING.update(saved, **choice)
        if not bool((poolcli.pool(x, **keywords) == expected).all()):
            print(f"  variant {choice} gives a DIFFERENT result")
        times.append(device_ms(cp, lambda: poolcli.pool(x, **keywords), repeat=20))
    return times


# ================================================================== 3. crossover


def _wall_ms(function, repeat: int) -> float:
    return 1000 * median_seconds(function, repeat)


CROSSOVER_POWERS = range(16, 27)  # input sizes 2**16 .. 2**26 elements


def crossover():
    cp = backends.import_cupy()
    rng = np.random.default_rng(2)
    setups = [
        ("float32 (h, w) max 2x2", lambda n: rng.standard_normal(_square(n), dtype=np.float32),
         dict(window=2, mode="max")),
        ("uint8 (h, w, 3) avg 2x2 -> uint8", lambda n: rng.integers(0, 256, _square(n // 3) + (3,), dtype=np.uint8),
         dict(window=2, mode="avg", axes=(0, 1), dtype="uint8")),
    ]
    for title, make, keywords in setups:
        print(f"\n{title}: NumPy engine vs GPU round trip (asarray + pool + get), wall ms, median")
        print(f"{'elements':>10} {'MiB':>8} {'numpy ms':>9} {'gpu ms':>8} {'winner':>7}")
        first_win = None
        for k in CROSSOVER_POWERS:
            if left() < 10:
                print("(time budget reached)")
                break
            x = make(2**k)
            repeat = 5 if k > 22 else 15

            def on_gpu():
                return poolcli.pool(cp.asarray(x), **keywords).get()

            numpy_ms = _wall_ms(lambda: poolcli.pool(x, **keywords), repeat)
            gpu_ms = _wall_ms(on_gpu, repeat)
            wins = gpu_ms < numpy_ms
            if wins and first_win is None:
                first_win = x.nbytes
            elif not wins:
                first_win = None
            print(f"{x.size:10d} {x.nbytes / 2**20:8.2f} {numpy_ms:9.3f} {gpu_ms:8.3f} {'gpu' if wins else 'numpy':>7}")
        verdict = (f"GPU wins from {first_win / 2**20:.2f} MiB of input up" if first_win
                   else "GPU never wins consistently in this range")
        print(f"crossover ({title}): {verdict}; backends.GPU_CROSSOVER_BYTES is now "
              f"{backends.GPU_CROSSOVER_BYTES / 2**20:.0f} MiB")


def _square(n: int) -> tuple[int, int]:
    h = 2 ** (int(math.log2(max(n, 1))) // 2)
    return h, max(1, n // h)


# ================================================================== main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for gpu_bench.txt (a copy of this output)")
    parser.add_argument("--cases", type=int, default=150, help="random correctness cases (default 150)")
    args = parser.parse_args()
    tee = Tee(sys.stdout)
    sys.stdout = tee
    try:
        for title, step in (("0. environment", environment),
                            ("1. correctness against the NumPy engine", lambda: correctness(args.cases)),
                            ("2. speed: device ms per call (float32)", speed),
                            ("2b. kernel variants: device ms per call", variants),
                            ("3. crossover for --backend auto", crossover)):
            section(title)
            try:
                step()
            except Exception:  # noqa: BLE001 - report and go on to the next section
                print(f"section failed:\n{traceback.format_exc()}")
        section(f"done in {time.perf_counter() - START:.0f} s")
    finally:
        sys.stdout = tee.stream
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            Path(args.out, "gpu_bench.txt").write_text("".join(tee.parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
