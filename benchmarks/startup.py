"""Whole-process start-up: poolcli against `python -c pass` and a four-line Pillow script.

    python benchmarks/startup.py [--runs 15]

Times, alternating and paired in one run, each as a fresh process:

- `poolcli --version` against `python -c pass` (goal: within 3x)
- `poolcli pool PHOTO -o OUT -m avg` on a 512x512 JPEG and PNG photo against a Pillow script
  that does the same (open, reduce(2), save at quality 90)

and prints the best and median of each and the ratios. Absolute times on a shared machine
mean little; the ratios, measured side by side, are the point.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PILLOW_SCRIPT = """
import sys
from PIL import Image
Image.open(sys.argv[1]).reduce(2).save(sys.argv[2], quality=90)
"""


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr.decode()[-2000:]}")
    return elapsed


def paired(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Every command once per round, in turn, `runs` rounds after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(runs + 1):
        for name, command in commands.items():
            elapsed = seconds(command)
            if round_:
                times[name].append(elapsed)
    return times


def report(title: str, times: dict[str, list[float]], ours: str, theirs: str, goal: float) -> bool:
    print(f"\n{title}")
    for name, samples in times.items():
        print(f"  {name:<16} best {min(samples) * 1000:6.0f} ms   median {statistics.median(samples) * 1000:6.0f} ms")
    best = min(times[ours]) / min(times[theirs])
    median = statistics.median(times[ours]) / statistics.median(times[theirs])
    print(f"  {ours} / {theirs}: {best:.2f}x (best), {median:.2f}x (median)   [goal: <= {goal:g}x]")
    return median <= goal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed rounds")
    args = parser.parse_args(argv)
    import compileall

    import poolcli as package

    # a real install has its bytecode compiled; with PYTHONDONTWRITEBYTECODE set, runs would
    # compile poolcli's sources every time and time that instead
    compileall.compile_dir(Path(package.__file__).parent, quiet=1)
    poolcli = shutil.which("poolcli") or sys.executable
    base = [poolcli] if poolcli != sys.executable else [sys.executable, "-m", "poolcli"]
    with tempfile.TemporaryDirectory(prefix="poolcli-startup-") as folder:
        work = Path(folder)
        script = work / "pillow_reduce.py"
        script.write_text(PILLOW_SCRIPT)
        from PIL import Image

        photo = work / "photo.jpg"
        shutil.copy(ROOT / "samples" / "astronaut.jpg", photo)
        png = work / "photo.png"
        Image.open(photo).save(png)
        results = [report("version", paired({"poolcli --version": [*base, "--version"],
                                             "python -c pass": [sys.executable, "-c", "pass"]}, args.runs),
                          "poolcli --version", "python -c pass", 3.0)]
        for source in (photo, png):
            out = work / f"out{source.suffix}"
            times = paired({"poolcli pool": [*base, "pool", str(source), "-o", str(out), "-m", "avg", "--overwrite"],
                            "Pillow script": [sys.executable, str(script), str(source), str(out)]}, args.runs)
            results.append(report(f"one 512x512 {source.suffix[1:].upper()} photo, avg 2x2", times,
                                  "poolcli pool", "Pillow script", 1.0))
        floor = paired({"python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
                        "Pillow script": [sys.executable, str(script), str(photo), str(work / "floor.jpg")]},
                       args.runs)
        report("the floor: importing NumPy alone", floor, "python -c 'import numpy'", "Pillow script", 1.0)
        return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
