"""A long pooling call in memory, from the outside: a progress bar on a terminal (a real pty),
none elsewhere, and Ctrl-C (a real SIGINT) stops it at once, exit 130, one line, nothing left.

Each run is a real `python -m poolcli` subprocess. The bar waits POOLCLI_PROGRESS_AFTER seconds
(2 by default) before it shows; the tests set 0 so that a short job shows it too.
"""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hostile import child_env

INTERRUPTED = "poolcli: error: interrupted; no partial output was left behind"


def _array(folder: Path, side: int) -> Path:
    path = folder / "maps.npy"
    np.save(path, np.random.default_rng(0).random((side, side), dtype=np.float32))
    return path


def _command(source: Path, window: int) -> list:
    return [sys.executable, "-m", "poolcli", "pool", str(source), "-o", str(source.with_name("small.npy")),
            "-m", "median", "-k", str(window), "-s", "1"]


def _on_a_terminal(command, env, until=None, timeout=60.0):
    """Run `command` with stdout and stderr on a pty; returns (process, everything it drew). With
    `until`, send SIGINT once the screen shows that text and return when it ends."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary, env=env,
                               start_new_session=True)
    os.close(secondary)
    screen, sent, deadline = b"", None, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([primary], [], [], 0.1)[0]:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the child closed its end
                    break
                if not chunk:
                    break
                screen += chunk
            if until is not None and sent is None and until.encode() in screen:
                process.send_signal(signal.SIGINT)
                sent = time.monotonic()
            if process.poll() is not None and not select.select([primary], [], [], 0.1)[0]:
                break
    finally:
        os.close(primary)
        if process.poll() is None:
            process.kill()
        process.wait()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))  # colours and cursor moves
    return process, text, None if sent is None else time.monotonic() - sent


def test_a_long_job_on_a_terminal_shows_a_progress_bar(tmp_path):
    source = _array(tmp_path, 300)
    process, screen, _ = _on_a_terminal(_command(source, 9), child_env(POOLCLI_PROGRESS_AFTER="0", COLUMNS="100"))
    assert process.returncode == 0, screen
    assert "pooling maps.npy" in screen and "%" in screen, screen
    assert source.with_name("small.npy").is_file()


def test_no_progress_bar_where_stderr_is_not_a_terminal(tmp_path):
    source = _array(tmp_path, 300)
    done = subprocess.run(_command(source, 9), capture_output=True, text=True,
                          env=child_env(POOLCLI_PROGRESS_AFTER="0"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.count("\n") == 1 and "maps.npy ->" in done.stdout


@pytest.mark.parametrize("threads", ["1", "2"])
def test_ctrl_c_stops_a_long_job_at_once_and_cleanly(tmp_path, threads):
    """A median that runs for minutes (worker threads or not): SIGINT ends it within seconds."""
    source = _array(tmp_path, 2000)
    env = child_env(POOLCLI_PROGRESS_AFTER="0", POOLCLI_THREADS=threads, COLUMNS="100")
    process, screen, seconds = _on_a_terminal(_command(source, 40), env, until="pooling maps.npy")
    assert seconds is not None, f"the bar never showed: {screen}"
    assert process.returncode == 130, screen
    assert seconds < 5.0, f"{seconds:.1f} s to stop"
    assert INTERRUPTED in screen and "Traceback" not in screen, screen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.npy"]  # no output, no temporary file


def test_ctrl_c_without_a_terminal_exits_130_with_one_line(tmp_path):
    source = _array(tmp_path, 2000)
    process = subprocess.Popen(_command(source, 40), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=child_env(POOLCLI_THREADS="2"))
    time.sleep(4.0)  # started, pooling
    assert process.poll() is None, "the job ended before the signal: make it longer"
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert time.monotonic() - started < 5.0
    assert stderr == INTERRUPTED + "\n" and stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.npy"]
