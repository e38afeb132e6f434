"""A small mutation check: plant plausible one-line bugs, one at a time, and see which the tests catch.

Each mutant replaces one exact piece of a source file (it must occur exactly once) in a
scratch copy of the repository, never in this working tree, then runs the test files most
likely to notice (pytest -x, with a time limit). A mutant is killed when those tests fail,
survives when they pass, and is stale when its original text is no longer in the file (the
code moved on: update the list). The copy is imported through PYTHONPATH, so the editable
install of this tree is never used; a first run without any mutant must pass.

    python benchmarks/mutation.py                    # HEAD (git archive), every mutant
    python benchmarks/mutation.py --worktree         # the working tree as it is, uncommitted tests too
    python benchmarks/mutation.py -k atomic -k batch # only mutants whose description or file matches
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    file: str  # relative to the repository root
    original: str  # exact text, found exactly once
    mutated: str
    description: str
    tests: tuple[str, ...]  # test files (relative to tests/) that should notice


ENGINE = ("test_engine.py", "test_engine_reference.py", "test_engine_edges.py")
FIGURES = ("test_figures_labels.py", "test_figures.py")
BIGDATA = ("test_guarantees_bigdata.py",)
BATCH28 = ("test_guarantees_batch.py",)
INSPECT = ("test_guarantees_inspect.py",)

MUTANTS = [
    # ---------------------------------------------------------------- issue #17's four survivors
    Mutant("poolcli/io/atomic.py",
           "        check_output(path, overwrite=overwrite, inputs=inputs)  # it may have appeared meanwhile\n",
           "        pass  # it may have appeared meanwhile\n",
           "atomic write: no re-check before os.replace", ("test_io.py", "test_safety.py")),
    Mutant("poolcli/batch/placement.py",
           "elif self.options.skip_existing and any(os.path.lexists(path) for path in job.outputs()):",
           "elif self.options.skip_existing and os.path.lexists(self.out_dir / relative):",
           "batch --skip-existing checks the input's name, not the --format target", ("test_batch.py",)),
    Mutant("poolcli/app/figures.py",
           "_compact(g.window for g in plan.sliding), _compact(g.stride for g in plan.sliding),\n"
           "                          plan.out_shape,",
           "_compact(g.window for g in plan.sliding), _compact(keywords['stride'] or (1,)),\n"
           "                          plan.out_shape,",
           "figure label: s=1 where the stride defaults to the window", FIGURES),
    Mutant("poolcli/app/figures.py",
           "                          plan.out_shape, **_geometry(plan, spec))",
           "                          plan.shape, **_geometry(plan, spec))",
           "figure label: the input shape where the output shape belongs", FIGURES),
    # ---------------------------------------------------------------- the rest of the figures
    Mutant("poolcli/app/figures.py",
           "label = viz.cell_label(plan.mode, windows, strides, result.shape, **_geometry(plan, spec))",
           "label = viz.cell_label(plan.mode, windows, strides, original.shape, **_geometry(plan, spec))",
           "pool --compare label: the input's shape for the output's", FIGURES),
    Mutant("poolcli/app/figures.py",
           "} s={_compact(g.stride for g in plan.sliding)}\"\n             f\"{geometry}: dL/dx for dL/dy = 1\")",
           "} s={_compact(g.window for g in plan.sliding)}\"\n             f\"{geometry}: dL/dx for dL/dy = 1\")",
           "grad label: the window for the stride", FIGURES),
    Mutant("poolcli/app/figures.py",
           "    return 1.0 / taps, f\" (shown / {taps} taps)\"",
           "    return 1.0, f\" (shown / {taps} taps)\"",
           "sum figure: says 'shown / taps' but draws the raw sums", FIGURES),
    Mutant("poolcli/viz/gradient.py",
           "    for n, colour in enumerate(ROUTE_COLORS, start=1):",
           "    for n, colour in enumerate(ROUTE_COLORS, start=2):",
           "routing map: colours shifted by one window count", FIGURES + ("test_viz.py",)),
    Mutant("poolcli/viz/gradient.py",
           "    counts[finite & (grad != 0) & (counts == 0)] = 1\n",
           "    pass\n",
           "routing map: a pixel with half a window's gradient (median) left dimmed", FIGURES + ("test_viz.py",)),
    Mutant("poolcli/viz/colors.py",
           "    return np.arange(length, dtype=np.int64) * source // length",
           "    return (np.arange(length, dtype=np.int64) * source + length // 2) // length",
           "nearest upsampling rounds instead of flooring", ("test_viz.py",) + FIGURES),
    # ---------------------------------------------------------------- geometry and engine
    Mutant("poolcli/core/options.py",
           "    return total // 2, total - total // 2",
           "    return total - total // 2, total // 2",
           "padding='same' puts the odd cell first", ENGINE),
    Mutant("poolcli/core/geometry.py",
           "    if (out - 1) * stride >= size + lo:",
           "    if (out - 1) * stride > size + lo:",
           "ceil_mode keeps a window that starts in the right padding", ENGINE),
    Mutant("poolcli/core/dtypes.py",
           "        rounded += (y - rounded) >= 0.5",
           "        rounded += (y - rounded) > 0.5",
           "integer outputs round half down", ENGINE),
    Mutant("poolcli/engine/median.py",
           "    return xp.maximum((count - 1) // 2, 0), count // 2",
           "    return count // 2, count // 2",
           "median of an even count takes the upper middle only", ENGINE),
    Mutant("poolcli/engine/extreme.py",
           "    return -np.inf if _largest(mode) else np.inf",
           "    return 0.0 if _largest(mode) else np.inf",
           "max pads with 0, so padding wins over negatives", ENGINE),
    Mutant("poolcli/engine/divisors.py",
           "    return [g.count_padded() if plan.count_include_pad else g.count_real() for g in plan.axes]",
           "    return [g.count_real() if plan.count_include_pad else g.count_padded() for g in plan.axes]",
           "count_include_pad inverted", ENGINE),
    Mutant("poolcli/engine/divisors.py",
           "        return np.dtype(dtype).type(math.prod(int(count[0]) for count in per_axis))",
           "        return np.dtype(dtype).type(math.prod(int(count[0]) for count in per_axis[:1]))",
           "avg divides by the first pooled axis's taps only", ENGINE),
    # ---------------------------------------------------------------- settings reaching the engine
    Mutant("poolcli/app/settings.py",
           "            dilation=_fit(self.dilation, count, f\"{param('dilation')}\"),",
           "            dilation=1,",
           "--dilation never reaches the engine", ("test_cli.py",)),
    Mutant("poolcli/app/settings.py",
           "\n    return settings.axes\n",
           "\n    return None\n",
           "--axes ignored for arrays", ("test_cli.py",)),
    # ---------------------------------------------------------------- io
    Mutant("poolcli/io/checks.py",
           "    if max_pixels is not None and width * height > max_pixels:",
           "    if max_pixels is not None and width * height >= max_pixels:",
           "--max-pixels refuses an image of exactly the limit", ("test_io.py",)),
    Mutant("poolcli/io/atomic.py",
           "    return f\".{name}.{mark}\"",
           "    return f\"{name}.{mark}\"",
           "temporary files are not hidden", ("test_io.py", "test_batch.py")),
    Mutant("poolcli/io/atomic.py",
           "        return stat.S_IMODE(path.stat().st_mode) & 0o777",
           "        return _NEW_FILE_MODE",
           "a replaced file loses its permissions", ("test_io.py", "test_safety.py")),
    # ---------------------------------------------------------------- batch
    Mutant("poolcli/batch/placement.py",
           "        suffix = self.suffix or relative.suffix",
           "        suffix = relative.suffix",
           "batch --format ignored", ("test_batch.py",)),
    Mutant("poolcli/batch/placement.py",
           "        for number, relative in enumerate(inputs):",
           "        for number, relative in enumerate(list(inputs)):",
           "batch lists every input before the first job", ("test_batch.py",)),
    Mutant("poolcli/batch/discovery.py",
           "            folders.extend(reversed(subfolders))",
           "            folders.extend(subfolders)",
           "batch walks subfolders in reverse order", ("test_batch.py",)),
    Mutant("poolcli/batch/workers.py",
           "                while len(worker.jobs) < IN_FLIGHT_PER_WORKER and",
           "                while len(worker.jobs) <= IN_FLIGHT_PER_WORKER and",
           "one job too many in flight per worker", ("test_batch.py",)),
    Mutant("poolcli/batch/workers.py",
           "            record = process_file(job, settings, options)\n",
           "            record = process_file(job, settings, options)\n"
           "            record.parameters = {'pixels': bytes(1 << 20)}\n",
           "workers send back a heavy record", ("test_batch.py",)),
    Mutant("poolcli/batch/discovery.py",
           "                if entry.name.startswith(\".\"):",
           "                if entry.name.startswith(\"..\"):",
           "batch reads hidden files", ("test_batch.py",)),  # not test_hostile.py: its time limits need an idle machine
    # ---------------------------------------------------------------- #28: big data, Dask, cluster batch, inspector
    Mutant("poolcli/stream/pooling.py",
           "    _check_room(geometry, inner, rows, memory)\n",
           "    pass\n",
           "#28 stream: a budget too small for one band streams over it", BIGDATA),
    Mutant("poolcli/stream/pooling.py",
           "    budget = memory // working_factor(dtype)",
           "    budget = memory",
           "#28 stream: blocks sized on the whole budget, not on the engine's working factor", BIGDATA),
    Mutant("poolcli/stream/pooling.py",
           "    for start in range(0, source.shape[0], rows):",
           "    for start in range(0, rows, rows):",
           "#28 stream: lp's whole-input magnitudes judged on the first rows only", BIGDATA),
    Mutant("poolcli/stream/pyramid.py",
           "    while count < most and max(sides) >> count > target:",
           "    while count < most and max(sides) >> count >= target:",
           "#28 pyramid: default levels halve once past --min-size", BIGDATA),
    Mutant("poolcli/stream/pyramid.py",
           "        return tuple(n >> k if axis in self.spatial else n for axis, n in enumerate(self.shape))",
           "        return tuple(n >> k for axis, n in enumerate(self.shape))",
           "#28 pyramid: the channel axis is halved too", BIGDATA),
    Mutant("poolcli/stream/stores/zarr.py",
           " or order != tuple(range(len(order))) or source.zarr_format != options.zarr_format:",
           " or order != tuple(range(len(order))):",
           "#28 NGFF: level 0 copied as chunk files of the other Zarr format", BIGDATA),
    Mutant("poolcli/stream/stores/zarr.py",
           "[float(2 ** k if axis in pyramid.spatial else 1) for axis in order]",
           "[float(2 ** k if axis in pyramid.spatial else 1) for axis in range(len(order))]",
           "#28 NGFF: scale transforms in the input's axis order, not the stored one", BIGDATA),
    Mutant("poolcli/stream/stores/zarr.py",
           'OTHER_AXES = {0: (), 1: (("c", "channel"),), 2: (("t", "time"), ("c", "channel"))}',
           'OTHER_AXES = {0: (), 1: (("c", "channel"),), 2: (("c", "channel"), ("t", "time"))}',
           "#28 NGFF: t and c axes named in the wrong order", BIGDATA),
    Mutant("poolcli/stream/stores/zarr.py",
           '        "type": MODES[pyramid.mode].ngff,',
           '        "type": pyramid.mode,',
           "#28 NGFF: the multiscales type is poolcli's mode name, not NGFF's", BIGDATA),
    Mutant("poolcli/stream/stores/zarr.py",
           'NGFF_VERSIONS = {2: "0.4", 3: "0.5"}',
           'NGFF_VERSIONS = {2: "0.5", 3: "0.5"}',
           "#28 NGFF: Zarr v2 stores claim NGFF 0.5", BIGDATA),
    Mutant("poolcli/stream/sinks.py",
           'LEVELS = {"zstd": 2, "lz4": 5, "zlib": 3, "none": 0}',
           'LEVELS = {"zstd": 3, "lz4": 5, "zlib": 3, "none": 0}',
           "#28 stores: zstd at the clevel the README does not state", BIGDATA),
    Mutant("poolcli/stream/cluster.py",
           "        first = 0 if origin is None else 1\n",
           "        first = 1\n",
           "#28 cluster pyramid: no level 0 for an input that is not Zarr", BIGDATA),
    Mutant("poolcli/stream/cluster.py",
           "        start = [s.start >> k if a in pyramid.spatial else s.start for a, s in enumerate(index)]",
           "        start = [s.start >> k for a, s in enumerate(index)]",
           "#28 cluster pyramid: a tile's channel index halved with the levels", BIGDATA),
    Mutant("poolcli/engine/lazy.py",
           'name = "poolcli-pool-" + tokenize(x, whole.keywords(), str(out_dtype))',
           'name = "poolcli-pool-" + tokenize(x, str(out_dtype))',
           "#28 Dask: the layer name ignores the pooling options", BIGDATA),
    Mutant("poolcli/engine/lazy.py",
           'name = "poolcli-backward-" + tokenize(grad, x, whole.keywords())',
           'name = "poolcli-backward-" + tokenize(grad, x)',
           "#28 Dask: the backward layer name ignores the pooling options", BIGDATA),
    Mutant("poolcli/engine/lazy.py",
           "    real = da.isfinite(magnitude) & (magnitude > 0)",
           "    real = magnitude > 0",
           "#28 Dask: lp scaling counts inf among the magnitudes", BIGDATA),
    Mutant("poolcli/engine/lazy.py",
           "        slab = slabs(geometry, sizes, (geometry.out,), plan.pad_mode)[1 if start else 0]",
           "        slab = slabs(geometry, sizes, (geometry.out,), plan.pad_mode)[0]",
           "#28 Dask/inspector: region routing takes the slab before the region", INSPECT),
    Mutant("poolcli/batch/cluster.py",
           "min(path.stat().st_mtime for path in outputs) >= submitted",
           "max(path.stat().st_mtime for path in outputs) >= submitted",
           "#28 cluster batch: the rerun rule judges the newest output, not the oldest", BATCH28),
    Mutant("poolcli/batch/cluster.py",
           "    outputs = [path for path in job.outputs() if path.exists()]",
           "    outputs = [path for path in (job.target,) if path.exists()]",
           "#28 cluster batch: the rerun rule judges the image, not the compare figure", BATCH28),
    Mutant("poolcli/batch/cluster.py",
           "        for job in self.submitted:\n            sweep(job)",
           "        for job in self.pending.values():\n            sweep(job)",
           "#28 cluster batch: the sweep skips files a retry finished", BATCH28),
    Mutant("poolcli/io/atomic.py",
           "        found = [entry.path for entry in scan if pattern.fullmatch(entry.name)]",
           "        found = [entry.path for entry in scan if entry.name.endswith('.tmp')]",
           "#28 batch sweep: every *.tmp in the output folder goes", BATCH28),
    Mutant("poolcli/io/atomic.py",
           'r"[a-z0-9_]{8}(?:\\.scratch)?\\.tmp")',
           'r"[a-z0-9_.-]*(?:\\.scratch)?\\.tmp")',
           "#28 batch sweep: a user's .<name>.tmp counts as a temporary", BATCH28),
    Mutant("poolcli/batch/paths.py",
           "fnmatch.fnmatchcase(part, want) for part, want in zip(parts[-len(wanted):], wanted))",
           "fnmatch.fnmatchcase(part, want) for part, want in zip(parts[:len(wanted)], wanted))",
           "#28 batch: --glob with folders matched against the first parts of the path", BATCH28),
    Mutant("poolcli/batch/placement.py",
           "                if all(io.is_complete(path) for path in job.outputs()):",
           "                if io.is_complete(target):",
           "#28 batch: --skip-existing skips a file whose compare figure is cut or missing", BATCH28),
    Mutant("poolcli/io/complete.py",
           "        record = formats.by_suffix(path.suffix)\n",
           "        record = formats.by_suffix(path.suffix) if path.suffix.islower() else None\n",
           "#28 complete: an upper-case suffix is complete without a check", BATCH28),
    Mutant("poolcli/io/complete.py",
           "    return size - header.offset == header.nbytes\n",
           "    return size >= header.nbytes\n",
           "#28 complete: a .npy's length compared without its header", BATCH28),
    Mutant("poolcli/io/complete.py",
           "        ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)]",
           "        ends = [offset for offset, count in zip(page.dataoffsets, page.databytecounts)]",
           "#28 complete: a TIFF strip counted by where it starts, not where it ends", BATCH28),
    Mutant("poolcli/io/atomic.py",
           "    old = scratch / \".replaced\"\n",
           "    old = path.parent / f\".{path.name}.replaced\"\n",
           "#28 atomic: --overwrite of a store leaves the old one aside", BIGDATA),
    Mutant("poolcli/io/atomic.py",
           "            os.chmod(made, 0o777 & ~_current_umask())",
           "            pass",
           "#28 atomic: stores keep mkdtemp's private 0700", BIGDATA),
    Mutant("poolcli/io/atomic.py",
           "        _check_target(path, overwrite, inputs, folder)  # it may have appeared meanwhile",
           "        pass  # it may have appeared meanwhile",
           "#28 atomic: a store that appeared meanwhile is replaced", BIGDATA),
    Mutant("poolcli/io/atomic.py",
           "        elif target in real.parents:",
           "        elif target in real.parents[1:]:",
           "#28 atomic: --overwrite deletes a store that holds the input", BIGDATA),
    Mutant("poolcli/inspect/data.py",
           "    whole = exact.h == size[0] and exact.w == size[1]",
           "    whole = exact.h == size[0] or exact.w == size[1]",
           "#28 inspector: a region that spans one side is the whole", INSPECT),
    Mutant("poolcli/inspect/data.py",
           "    counts = divisor_counts(with_materialised_padding(part) if plan.pad_mode != \"zeros\" else part)[0]",
           "    counts = divisor_counts(part)[0]",
           "#28 inspector: divisors of edge/reflect padding from the unpadded plan", INSPECT),
    Mutant("poolcli/inspect/data.py",
           "    lo, hi = image_range(extremes) if is_image else value_range(extremes)",
           "    lo, hi = image_range(cut) if is_image else value_range(cut)",
           "#28 inspector: the colour range of the cut", INSPECT),
    Mutant("poolcli/inspect/data.py",
           "    first = 0 if lo <= 0 else max(0, (lo + g.pad_lo) // g.stride)",
           "    first = max(0, (lo + g.pad_lo) // g.stride)",
           "#28 inspector: outputs drawn on the padding before the region left out", INSPECT),
    Mutant("poolcli/inspect/data.py",
           "    first = 0 if lo <= 0 else max(0, (lo + g.pad_lo) // g.stride)",
           "    first = 0 if lo <= 0 else max(0, lo // g.stride)",
           "#28 inspector: the first output over the region found without the padding", INSPECT),
    Mutant("poolcli/inspect/data.py",
           "    first = min(first, last)  # cells past the last output",
           "    pass  # cells past the last output",
           "#28 inspector: a region past the last output holds no output (and fails)", INSPECT),
    Mutant("poolcli/inspect/data.py",
           "        rh, rw = min(rh, h - y), min(rw, w - x)",
           "        pass",
           "#28 inspector: a region past the edge is not cut to the input", INSPECT),
    Mutant("poolcli/inspect/data.py",
           "    return list(dict.fromkeys(channels))",
           "    return list(channels)",
           "#28 inspector: a channel named twice is embedded twice", INSPECT),
    Mutant("poolcli/inspect/data.py",
           "    planes = raw.reshape(-1, array.dtype.itemsize).T.tobytes()",
           "    planes = raw.tobytes()",
           "#28 inspector: arrays sent without their byte planes", INSPECT),
    Mutant("poolcli/inspect/data.py",
           "    if pad_mode == \"zeros\":\n        return None, None\n    head",
           "    if True:\n        return None, None\n    head",
           "#28 inspector: edge/reflect pads sent without the cells they copy", INSPECT),
]


def scratch_copy(worktree: bool, folder: Path) -> Path:
    """The repository without .git: HEAD through git archive, or the working tree as it is."""
    copy = folder / "repo"
    if worktree:
        ignore = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", ".hypothesis", "*.egg-info", ".venv")
        shutil.copytree(ROOT, copy, ignore=ignore, symlinks=True)
    else:
        copy.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(copy)], input=archive, check=True)
    return copy


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[bool, str]:
    """(passed, pytest's last line and the first failing test) for `tests` run against the copy's poolcli."""
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               *(f"tests/{name}" for name in tests)]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    failed = [line.split(" - ")[0].removeprefix("FAILED ") for line in lines if line.startswith("FAILED ")]
    summary = lines[-1] if lines else done.stderr.strip()[-200:]
    return done.returncode == 0, f"{summary}; by {failed[0]}" if failed else summary


def imports_the_copy(copy: Path) -> bool:
    env = dict(os.environ, PYTHONPATH=str(copy))
    done = subprocess.run([sys.executable, "-c", "import poolcli; print(poolcli.__file__)"], cwd=copy, env=env,
                          capture_output=True, text=True)
    return Path(done.stdout.strip()).resolve().is_relative_to(copy.resolve())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worktree", action="store_true", help="copy the working tree instead of HEAD")
    parser.add_argument("-k", action="append", default=[], help="only mutants whose description or file has this")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per test run")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.k or any(k in m.description or k in m.file for k in args.k)]

    with tempfile.TemporaryDirectory(prefix="poolcli-mutation-") as folder:
        copy = scratch_copy(args.worktree, Path(folder))
        if not imports_the_copy(copy):
            print("the scratch copy's poolcli is not the one imported; check PYTHONPATH", file=sys.stderr)
            return 2
        every_test = tuple(sorted({name for m in chosen for name in m.tests}))
        passed, summary = run_tests(copy, every_test, args.timeout * 3)
        if not passed:
            print(f"the unmutated code fails its tests ({summary}); nothing to measure", file=sys.stderr)
            return 2
        print(f"baseline: {summary}")
        results = []
        for number, mutant in enumerate(chosen, start=1):
            path = copy / mutant.file
            source = path.read_text()
            if source.count(mutant.original) != 1:
                results.append((mutant, "stale", f"original found {source.count(mutant.original)} times"))
            else:
                started = time.perf_counter()
                path.write_text(source.replace(mutant.original, mutant.mutated))
                try:
                    passed, summary = run_tests(copy, mutant.tests, args.timeout)
                finally:
                    path.write_text(source)
                verdict = "SURVIVED" if passed else "killed"
                results.append((mutant, verdict, f"{summary} ({time.perf_counter() - started:.0f} s)"))
            _, verdict, detail = results[-1]
            print(f"[{number:2d}/{len(chosen)}] {verdict:8s} {mutant.file}: {mutant.description} -- {detail}",
                  flush=True)

    killed = sum(verdict == "killed" for _, verdict, _ in results)
    measured = sum(verdict != "stale" for _, verdict, _ in results)
    print(f"\nscore: {killed}/{measured} killed", end="")
    stale = len(results) - measured
    print(f", {stale} stale" if stale else "")
    for mutant, verdict, _ in results:
        if verdict != "killed":
            print(f"  {verdict}: {mutant.file}: {mutant.description}")
    return 0 if killed == measured and not stale else 1


if __name__ == "__main__":
    raise SystemExit(main())
