"""poolcli's engine against PyTorch CPU, scikit-image, a naive loop and a memory floor, in one run.

    python benchmarks/engine.py [--repeat 7] [--markdown]

Every case is timed here, now, on the same data and thread count: absolute times on a
shared machine mean little, the ratios are the result. Floors: OpenCV's INTER_AREA 2x2
reduction for uint8 images (the fastest known reduction of the same bytes), a plain copy
of the input for float arrays. Peak memory is measured with tracemalloc (NumPy reports
its allocations there) and printed in units of the output size, above the input.
"""

from __future__ import annotations

import argparse
import os
import tracemalloc

import numpy as np
from timing import median_seconds

import poolcli
import poolcli.engine


def peak_extra(function) -> tuple[float, int]:
    """(peak bytes allocated during the call, bytes of its result)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result = result[0] if isinstance(result, tuple) else result
    return peak, result.nbytes


def opencv_threaded(cv2, call):
    """Run an OpenCV call with OpenCV's own thread pool on (poolcli keeps it off), then off again."""
    cv2.setNumThreads(poolcli.engine.worker_threads())
    try:
        return call()
    finally:
        cv2.setNumThreads(0)


def naive_max(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """One Python step per output element: the textbook loop (2-D, last two axes)."""
    h, w = x.shape[-2:]
    out = np.empty(x.shape[:-2] + ((h - k) // s + 1, (w - k) // s + 1), x.dtype)
    for i in range(out.shape[-2]):
        for j in range(out.shape[-1]):
            out[..., i, j] = x[..., i * s : i * s + k, j * s : j * s + k].max(axis=(-2, -1))
    return out


def cases(torch, F, cv2, block_reduce):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (4096, 4096, 3), dtype=np.uint8)
    image_t = torch.from_numpy(image).permute(2, 0, 1)[None]  # the same bytes, as torch sees HWC
    image_nchw = image_t.contiguous()
    maps = rng.standard_normal((8, 64, 128, 128), dtype=np.float32)
    maps_t = torch.from_numpy(maps)
    area = (lambda: opencv_threaded(cv2, lambda: cv2.resize(image, (2048, 2048), interpolation=cv2.INTER_AREA))
            ) if cv2 else None
    copy_floor = maps.copy

    yield dict(
        name="uint8 4096x4096x3 HWC max 2x2",
        ours=lambda: poolcli.pool(image, 2, axes=(0, 1)),
        torch=lambda: F.max_pool2d(image_nchw, 2),
        torch_note="NCHW contiguous (faster for torch than the HWC view)",
        skimage=(lambda: block_reduce(image, (2, 2, 1), np.max)) if block_reduce else None,
        floor=area,
        naive=(image[:256, :256], lambda x: naive_max(np.moveaxis(x, -1, 0), 2, 2), 2 * 2048 * 2048 / (128 * 128)),
        goals=dict(torch=10.0, floor=4.0),
    )
    yield dict(
        name="uint8 4096x4096x3 HWC avg 2x2 -> uint8",
        ours=lambda: poolcli.pool(image, 2, axes=(0, 1), mode="avg", dtype=np.uint8),
        torch=lambda: F.avg_pool2d(image_t.float(), 2).round().to(torch.uint8),
        torch_note="float32 round trip (torch has no uint8 avg_pool2d)",
        skimage=(lambda: block_reduce(image, (2, 2, 1), np.mean)) if block_reduce else None,
        floor=area,
        goals=dict(floor=4.0),
    )
    yield dict(
        name="float32 (8,64,128,128) NCHW max 3x3 s2 p1",
        ours=lambda: poolcli.pool(maps, 3, 2, padding=1),
        torch=lambda: F.max_pool2d(maps_t, 3, 2, 1),
        floor=copy_floor,
        goals=dict(torch=4.0),
    )
    yield dict(
        name="float32 NCHW avg 2x2",
        ours=lambda: poolcli.pool(maps, 2, mode="avg"),
        torch=lambda: F.avg_pool2d(maps_t, 2),
        skimage=(lambda: block_reduce(maps, (1, 1, 2, 2), np.mean)) if block_reduce else None,
        floor=copy_floor,
        naive=(maps[:1, :8], lambda x: naive_max(x, 2, 2), 8 * 8),
        goals=dict(torch=1.5, floor=3.0),
    )
    yield dict(
        name="float32 NCHW l2 2x2",
        ours=lambda: poolcli.pool(maps, 2, mode="l2"),
        torch=lambda: torch.sqrt(F.avg_pool2d(maps_t * maps_t, 2)),
        floor=copy_floor,
        goals=dict(torch=1.5),
    )


def mode_cases(repeat: int):
    """Every mode but median against max, on the same geometry (goal: <= 2x max)."""
    rng = np.random.default_rng(1)
    maps = rng.standard_normal((8, 64, 128, 128), dtype=np.float32)
    image = rng.integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
    rows = []
    for label, x, keywords in (("float32 NCHW 3x3 s2 p1", maps, dict(window=3, stride=2, padding=1)),
                               ("uint8 HWC 2x2", image, dict(window=2, axes=(0, 1)))):
        base = median_seconds(lambda: poolcli.pool(x, **keywords), repeat)
        for mode in ("min", "sum", "avg", "l2", "lp"):
            t = median_seconds(lambda: poolcli.pool(x, mode=mode, **keywords), repeat)
            rows.append((label, mode, t / base))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--markdown", action="store_true", help="print the README's table")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    try:
        import cv2
    except ImportError:
        cv2 = None
    try:
        from skimage.measure import block_reduce
    except ImportError:
        block_reduce = None
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads)
    print(f"threads: {threads} (torch {torch.__version__}, numpy {np.__version__}), median of {args.repeat}")

    table = []
    for case in cases(torch, F, cv2, block_reduce):
        ours = median_seconds(case["ours"], args.repeat)
        row = dict(name=case["name"], ours=ours)
        for rival in ("torch", "skimage", "floor"):
            if case.get(rival) is not None:
                row[rival] = median_seconds(case[rival], args.repeat)
        if "naive" in case:
            sample, loop, scale = case["naive"]
            row["naive"] = median_seconds(lambda: loop(sample), 1) * scale
        peak, out_bytes = peak_extra(case["ours"])
        row["peak_outputs"] = peak / out_bytes
        row["goals"] = case.get("goals", {})
        row["torch_note"] = case.get("torch_note")
        table.append(row)
        print(format_row(row))

    print("\nmodes against max on the same geometry (goal <= 2.0):")
    for label, mode, ratio in mode_cases(args.repeat):
        print(f"  {label:24s} {mode:4s} {ratio:5.2f}x max")
    if args.markdown:
        print("\n" + markdown(table))


def format_row(row: dict) -> str:
    parts = [f"{row['name']}: poolcli {row['ours'] * 1e3:.1f} ms"]
    if "torch" in row:
        parts.append(f"torch {row['torch'] * 1e3:.1f} ms = {row['torch'] / row['ours']:.1f}x slower"
                     + (f" (goal >= {row['goals']['torch']}x)" if "torch" in row["goals"] else ""))
    if "skimage" in row:
        parts.append(f"skimage {row['skimage'] * 1e3:.1f} ms = {row['skimage'] / row['ours']:.1f}x slower")
    if "naive" in row:
        parts.append(f"naive loop ~{row['naive']:.1f} s = {row['naive'] / row['ours']:.0f}x slower")
    if "floor" in row:
        parts.append(f"floor {row['floor'] * 1e3:.1f} ms, poolcli = {row['ours'] / row['floor']:.2f}x floor"
                     + (f" (goal <= {row['goals']['floor']}x)" if "floor" in row["goals"] else ""))
    parts.append(f"peak memory above the input = {row['peak_outputs']:.2f}x the output")
    return "\n  ".join(parts)


def markdown(table: list[dict]) -> str:
    lines = ["| case | poolcli | torch | vs torch | floor | vs floor |", "| --- | --- | --- | --- | --- | --- |"]
    for row in table:
        torch_cell = f"{row['torch'] * 1e3:.1f} ms" if "torch" in row else "-"
        ratio = f"{row['torch'] / row['ours']:.1f}x faster" if "torch" in row else "-"
        floor_cell = f"{row['floor'] * 1e3:.1f} ms" if "floor" in row else "-"
        floor_ratio = f"{row['ours'] / row['floor']:.2f}x" if "floor" in row else "-"
        lines.append(f"| {row['name']} | {row['ours'] * 1e3:.1f} ms | {torch_cell} | {ratio} | {floor_cell} | "
                     f"{floor_ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
