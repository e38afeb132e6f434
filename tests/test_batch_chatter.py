"""Batch workers hold descriptor 2 on their sink for their whole life (io.decoder_chatter_held);
POOLCLI_CHATTER_PER_CALL=1 turns that off. Twin test: both give the same bytes, the same
refusals (libjpeg's warnings about a cut JPEG are still seen) and the same stderr."""

import os
import subprocess
import sys

import hostile
import numpy as np
from PIL import Image


def _folder(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    rng = np.random.default_rng(3)
    for i in range(4):
        photo = rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8)
        Image.fromarray(photo).save(source / f"p{i}.png")
        Image.fromarray(photo).save(source / f"j{i}.jpg", quality=90)
    hostile.jpeg_cut_with_eoi(source)  # decodes with libjpeg's warnings only: they refuse it
    return source


def _batch(source, out, per_call):
    env = dict(os.environ, POOLCLI_CHATTER_PER_CALL="1" if per_call else "0")
    return subprocess.run([sys.executable, "-m", "poolcli", "batch", str(source), "-d", str(out), "-m", "avg",
                           "-k", "2", "--jobs", "2", "--quiet"], capture_output=True, text=True, env=env, timeout=60)


def test_held_and_per_call_chatter_give_the_same_run(tmp_path):
    source = _folder(tmp_path)
    runs = {per_call: _batch(source, tmp_path / f"out{int(per_call)}", per_call) for per_call in (False, True)}
    for done in runs.values():
        assert done.returncode == 1, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and "cut_eoi.jpg" in lines[0] and "(libjpeg: " in lines[0], done.stderr
    assert runs[False].stderr.replace("out0", "outX") == runs[True].stderr.replace("out1", "outX")
    held, per_call = tmp_path / "out0", tmp_path / "out1"
    names = sorted(p.name for p in held.iterdir())
    assert names == sorted(p.name for p in per_call.iterdir()) and len(names) == 8, names
    for name in names:
        assert (held / name).read_bytes() == (per_call / name).read_bytes(), name
