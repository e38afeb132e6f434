"""What a photo or dataset file carries comes through pooling (issue 26): EXIF, XMP, ICC and
resolution kept (and `--strip`), GIF transparency, 16 -> 8 bits, HWC arrays, `--json` beside an
image on stdout, PyTorch's divisor_override. Real files, real subprocesses where the terminal matters.
"""

import io as bytes_io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
GRAY = SAMPLES / "camera.png"


def poolcli(*args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "poolcli", *map(str, args)], input=stdin, capture_output=True,
                          timeout=60)


# ------------------------------------------------------------------ --json beside an image on stdout


def test_json_goes_to_stderr_when_stdout_carries_the_image():
    done = poolcli("pool", GRAY, "-o", "-", "--json", "-m", "avg")
    assert done.returncode == 0, done.stderr
    image = Image.open(bytes_io.BytesIO(done.stdout))
    image.load()  # the whole of stdout is the PNG, nothing after it
    assert done.stdout.endswith(b"IEND\xaeB`\x82")
    assert image.size == (256, 256)
    record = json.loads(done.stderr)
    assert record["status"] == "done" and record["output_shape"] == [256, 256, 1]


def test_json_of_a_failed_input_on_stdout_mode_goes_to_stderr(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    done = poolcli("pool", bad, "-o", "-", "--json")
    assert done.returncode == 1 and done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert lines[0].startswith("poolcli: error:") and json.loads(lines[1])["status"] == "failed"
