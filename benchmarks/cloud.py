"""A pyramid from and to a bucket against the same pyramid on local disk, on one machine.

    python benchmarks/cloud.py [--side 4096] [--chunk 512] [--runs 3]

Starts moto's S3 server on 127.0.0.1 (tests/s3server.py; `pip install 'moto[server]' s3fs`),
puts the same Zarr input (a SIDE x SIDE uint8 photo-like array in CHUNK chunks) in a local
folder and in a bucket, then times `poolcli pyramid` as fresh processes, alternating and paired:
local -> local and s3:// -> s3://. Prints the best and median of each and their ratio (goal:
within 1.5x). A local S3 server answers in well under a millisecond, so the ratio measures what
poolcli adds on top of the requests (their concurrency, the metadata held back), not a network.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def photo(side: int):
    import numpy as np

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side]
    smooth = (127 + 60 * np.sin(x / 97.0) * np.cos(y / 61.0)).astype(np.int16)
    return np.clip(smooth + rng.integers(-12, 13, (side, side)), 0, 255).astype(np.uint8)


def seconds(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()

    import zarr
    from s3server import S3Server

    server = S3Server().start()
    env = {**os.environ, **server.env(), "PYTHONPATH": str(ROOT)}
    os.environ.update(server.env())
    bucket = server.new_bucket()
    data = photo(arguments.side)
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder)
        zarr.create_array(str(local / "in.zarr"), data=data, chunks=(arguments.chunk,) * 2, zarr_format=2)
        server.filesystem().put(str(local / "in.zarr"), f"{bucket}/in.zarr", recursive=True)
        poolcli = [sys.executable, "-m", "poolcli", "pyramid", "--min-size", "256", "--chunk", str(arguments.chunk),
                   "--overwrite"]
        commands = {
            "local -> local": [*poolcli, str(local / "in.zarr"), "-o", str(local / "out.ome.zarr")],
            "s3 -> s3": [*poolcli, f"s3://{bucket}/in.zarr", "-o", f"s3://{bucket}/out.ome.zarr"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(arguments.runs + 1):
            for name, command in commands.items():
                elapsed = seconds(command, env)
                if round_:  # the first round warms the caches
                    times[name].append(elapsed)
    server.stop()
    size = f"{arguments.side}x{arguments.side} uint8, chunks {arguments.chunk}"
    print(f"pyramid of {size}, {arguments.runs} runs each (best / median):")
    for name, values in times.items():
        print(f"  {name:15s} {min(values):7.2f} s / {statistics.median(values):7.2f} s")
    ratio = min(times["s3 -> s3"]) / min(times["local -> local"])
    print(f"  ratio s3/local (best): {ratio:.2f}x  (goal: within 1.5x)")


if __name__ == "__main__":
    main()
