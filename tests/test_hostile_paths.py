"""Hostile output paths, scheduler addresses and interrupted pyramids, through real ``python -m poolcli`` runs.

- An output is kept apart from every input by REAL path (symlinks, ``..``, absolute spellings
  resolved), both ways: never an input, never a folder that holds one, never inside an input store;
  refused before any work (exit 2, one line), nothing written.
- ``--scheduler`` is checked at once (a malformed address: exit 2 before any work); a peer that
  never answers, announces a frame of exabytes or answers HTTP is one line naming the address,
  exit 1, within a bound (only loopback servers, run here).
- An interrupted pyramid leaves no temporary; a SIGKILLed one's is swept by the next run of the
  same output, and a user's own ``*.tmp`` files are never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import hostile
import numpy as np
import pytest
from hostile import Run, run

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS, wait4 and /proc")
zarr = pytest.importorskip("zarr")

QUICK_SECONDS = 8.0  # a refusal before any work, on a busy machine
CONNECT_SECONDS = 2  # the connection timeout the scheduler tests set through Dask's config
BOUND_SECONDS = 15.0  # a scheduler that never answers is given up on within this, whatever its timeout


def tree(folder: Path) -> dict[str, bytes | None]:
    """Everything under `folder`, hidden files included: relative path -> bytes (None for a folder)."""
    return {p.relative_to(folder).as_posix(): (None if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*")) if not p.is_symlink()}


def temporaries(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(".*") if p.name.endswith(".tmp"))


def one_error_line(result: Run, *names: str) -> str:
    assert not result.timed_out, result
    assert "Traceback" not in result.err_text and "Exception ignored" not in result.err_text, result
    lines = result.err_lines
    assert len(lines) == 1 and lines[0].startswith("poolcli: error:"), result
    for name in names:
        assert name in lines[0], result
    return lines[0]


def zarr_array(path: Path, side: int = 64, chunk: int = 32, zarr_format: int = 2) -> Path:
    array = zarr.open_array(str(path), mode="w", shape=(side, side), chunks=(chunk, chunk), dtype="u1",
                            zarr_format=zarr_format)
    array[:] = (np.arange(side)[:, None] * 7 + np.arange(side)[None, :]).astype(np.uint8)
    return path


# ------------------------------------------------------------------ outputs apart from inputs


@pytest.fixture
def place(tmp_path) -> Path:
    """in.zarr (a store), holder.zarr/in.npy (a folder named like a store, holding an input),
    src/ (a batch source), sub/ (a folder), link -> . (a symlinked folder), store-link.zarr -> in.zarr."""
    zarr_array(tmp_path / "in.zarr")
    (tmp_path / "holder.zarr").mkdir()
    np.save(tmp_path / "holder.zarr" / "in.npy", np.arange(64 * 64, dtype=np.uint8).reshape(64, 64))
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.ones((8, 8), np.uint8))
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(".")
    (tmp_path / "store-link.zarr").symlink_to("in.zarr")
    return tmp_path


ABSOLUTE = "{place}/"  # formatted with the fixture's folder: an absolute spelling of a relative path
CASES = {
    # pool: an output that holds its input (a folder named .zarr around it), spelt four ways
    "pool-holder-absolute": ("pool", "holder.zarr/in.npy", "-o", ABSOLUTE + "holder.zarr", "--overwrite"),
    "pool-holder-dotdot": ("pool", "holder.zarr/in.npy", "-o", "sub/../holder.zarr", "--overwrite"),
    "pool-holder-symlinked-folder": ("pool", "holder.zarr/in.npy", "-o", "link/holder.zarr", "--overwrite"),
    "pool-input-spelt-through-link": ("pool", "link/holder.zarr/in.npy", "-o", "holder.zarr", "--overwrite"),
    # pool: an output inside an input store (a store, a file, a folder of outputs)
    "pool-store-inside-store": ("pool", "in.zarr", "-o", "in.zarr/sub.zarr"),
    "pool-file-inside-store": ("pool", "in.zarr", "-o", "link/in.zarr/sub.npy"),
    "pool-out-dir-is-the-store": ("pool", "in.zarr", "-d", "in.zarr"),
    "pool-output-is-a-link-to-the-input": ("pool", "in.zarr", "-o", "store-link.zarr", "--overwrite"),
    # pyramid: the same classes
    "pyramid-inside-its-input": ("pyramid", "in.zarr", "-o", "in.zarr/p.zarr", "--levels", "1"),
    "pyramid-inside-through-link": ("pyramid", "store-link.zarr", "-o", ABSOLUTE + "in.zarr/p.zarr", "--levels", "1"),
    "pyramid-over-its-input": ("pyramid", "in.zarr", "-o", "sub/../link/in.zarr", "--levels", "1", "--overwrite"),
    "pyramid-over-the-holder": ("pyramid", "holder.zarr/in.npy", "-o", ABSOLUTE + "holder.zarr", "--levels", "1",
                                "--overwrite"),
    # batch: OUT is SRC, however spelt
    "batch-out-is-src-dotdot": ("batch", "src", "-d", "sub/../src"),
    "batch-out-is-src-absolute": ("batch", "src", "-d", ABSOLUTE + "src"),
    "batch-out-is-src-through-link": ("batch", "link/src", "-d", "src"),
}


@pytest.mark.parametrize("case", CASES)
def test_an_output_never_is_holds_or_lies_inside_an_input(place, case):
    args = [arg.replace(ABSOLUTE, f"{place}/") for arg in CASES[case]]
    before = tree(place)
    result = run(*args, cwd=place)
    assert result.code == 2, result
    line = one_error_line(result)
    assert "never" in line or "SRC itself" in line, result
    assert result.seconds < QUICK_SECONDS, result
    assert tree(place) == before, "something was written, moved or removed"


def test_an_output_beside_an_input_store_is_fine(place):
    """The guard is about real paths, not names: a sibling of the store is written."""
    result = run("pool", "link/in.zarr", "-o", "in.zarr.npy", cwd=place)
    assert result.code == 0 and not result.err_lines, result
    assert (place / "in.zarr.npy").is_file() and not temporaries(place)


def test_overwriting_a_store_leaves_no_old_store_behind(place):
    first = run("pool", "in.zarr", "-o", "out.zarr", cwd=place)
    assert first.code == 0, first
    (place / "out.zarr" / "locked").mkdir()
    (place / "out.zarr" / "locked" / "part").write_bytes(b"x")
    (place / "out.zarr" / "locked").chmod(0o555)  # a read-only folder in the old store
    try:
        again = run("pool", "in.zarr", "-o", "out.zarr", "-m", "avg", "--overwrite", cwd=place)
    finally:
        for folder in place.rglob("locked"):
            folder.chmod(0o755)
    assert again.code == 0 and not again.err_lines, again
    assert not (place / "out.zarr" / "locked").exists()
    assert [p.name for p in place.iterdir() if p.name.startswith(".")] == []


# ------------------------------------------------------------------ --scheduler


@pytest.mark.parametrize("address", ["garbage", "http://127.0.0.1:8786", "tcp://", "tls://x", "127.0.0.1:99999",
                                     "tcp://127.0.0.1:8786/path", "tcp://host name:1"])
@pytest.mark.parametrize("command", ["pool", "pyramid", "batch"])
def test_a_malformed_scheduler_address_is_a_usage_error_before_any_work(tmp_path, address, command):
    source = zarr_array(tmp_path / "in.zarr")
    if command == "batch":
        (tmp_path / "src").mkdir()
        np.save(tmp_path / "src" / "a.npy", np.ones((8, 8), np.uint8))
        args = ["batch", "src", "-d", "out"]
    else:
        args = [command, source.name, "-o", "out.zarr", *(["--levels", "1"] if command == "pyramid" else [])]
    before = tree(tmp_path)
    result = run(*args, "--scheduler", address, cwd=tmp_path)
    assert result.code == 2, result
    one_error_line(result, "--scheduler", repr(address))
    assert result.seconds < QUICK_SECONDS, result
    assert tree(tmp_path) == before


@contextlib.contextmanager
def loopback_server(answer: bytes | None) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts every connection and sends `answer` (None: nothing),
    then holds the connection open without another word; yields its address."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)  # closing a socket does not wake a thread blocked in accept: poll instead
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)
            if answer is not None:
                with contextlib.suppress(OSError):
                    connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for connection in held:
            connection.close()


PEERS = {
    "never-answers": None,
    "huge-frame": struct.pack("<Q", 2**62),  # Dask's frame header: "2^62 bytes follow"
    "large-frame-then-silence": struct.pack("<Q", 2**36) + b"\0" * 64,
    "http": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello",
}


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("command", ["pool", "pyramid", "batch"])
def test_a_scheduler_that_is_no_scheduler_is_one_line_within_a_bound(tmp_path, peer, command):
    zarr_array(tmp_path / "in.zarr")
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.ones((8, 8), np.uint8))
    args = {"pool": ["pool", "in.zarr", "-o", "out.zarr"], "batch": ["batch", "src", "-d", "out"],
            "pyramid": ["pyramid", "in.zarr", "-o", "out.zarr", "--levels", "1"]}[command]
    env = hostile.child_env(DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=f"{CONNECT_SECONDS}s")
    with loopback_server(PEERS[peer]) as address:
        result = run(*args, "--scheduler", address, cwd=tmp_path, env=env)
    assert result.code == 1, result
    one_error_line(result, "--scheduler", address, "dask scheduler")
    assert result.seconds < CONNECT_SECONDS + QUICK_SECONDS, result
    assert result.rss_mb < 400, result
    assert not (tmp_path / "out.zarr").exists() and not temporaries(tmp_path)


@contextlib.contextmanager
def handshake_only_server() -> Iterator[str]:
    """A Dask comm listener on 127.0.0.1 (distributed's own) that finishes the handshake and then
    closes every connection without a word: it passes for a scheduler until asked anything."""
    import asyncio

    from distributed.comm import listen

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def hang_up(comm) -> None:
        await comm.close()

    async def start():
        listener = listen("tcp://127.0.0.1:0", hang_up)
        await listener.start()
        return listener

    listener = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield listener.contact_address
    finally:
        loop.call_soon_threadsafe(listener.stop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_a_peer_that_passes_the_handshake_then_hangs_up_is_one_line(tmp_path):
    pytest.importorskip("distributed")
    zarr_array(tmp_path / "in.zarr")
    env = hostile.child_env(DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=f"{CONNECT_SECONDS}s")
    with handshake_only_server() as address:
        result = run("pool", "in.zarr", "-o", "out.zarr", "--scheduler", address, cwd=tmp_path, env=env)
    assert result.code == 1, result
    one_error_line(result, "--scheduler", address)
    assert result.seconds < CONNECT_SECONDS + QUICK_SECONDS, result
    assert not (tmp_path / "out.zarr").exists() and not temporaries(tmp_path)


@pytest.mark.slow
def test_a_silent_scheduler_is_given_up_on_within_the_bound_by_default(tmp_path):
    zarr_array(tmp_path / "in.zarr")
    with loopback_server(None) as address:
        result = run("pool", "in.zarr", "-o", "out.zarr", "--scheduler", address, cwd=tmp_path, timeout=40)
    assert result.code == 1, result
    one_error_line(result, address, "no answer within")
    assert result.seconds < BOUND_SECONDS, result


# ------------------------------------------------------------------ interrupted pyramids


@pytest.fixture(scope="module")
def pyramid_input(tmp_path_factory) -> Path:
    """A 4096 x 4096 Zarr array (a few hundred KB on disk) whose pyramid in 64-wide chunks takes seconds."""
    return zarr_array(tmp_path_factory.mktemp("pyramid") / "big.zarr", side=4096, chunk=512)


PYRAMID_WAYS = {  # how its levels are written: chunk files straight, or through zarr's own writes
    "chunk-files": ["--chunk", "64"],
    "zarr-writes": ["--chunk", "100", "--zarr-format", "3"],
}
LONG_RUN = {"many-chunk-files": ["--chunk", "32"]}  # about four times as long: for tests that need the run alive


def start_pyramid(source: Path, folder: Path, way: str, err) -> subprocess.Popen:
    way_args = {**PYRAMID_WAYS, **LONG_RUN}[way]
    return hostile.start("pyramid", source, "-o", folder / "out.zarr", "--levels", "3", *way_args,
                         memory=None, stdout=subprocess.DEVNULL, stderr=err)


def running(process: subprocess.Popen) -> bool:
    """Whether `process` is still running, without reaping it (hostile.finish reaps it, with its rusage)."""
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def wait_for_scratch(process: subprocess.Popen, folder: Path, seconds: float = 15) -> bool:
    """Until the run's hidden scratch store appears (it is past start-up, writing); False if it ended first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and running(process):
        if temporaries(folder):
            return True
        time.sleep(0.005)
    return False


@pytest.mark.parametrize("way", PYRAMID_WAYS)
@pytest.mark.parametrize("moment", [0.0, 0.3, 0.8])
def test_ctrl_c_during_a_pyramid_leaves_nothing(tmp_path, pyramid_input, way, moment):
    with open(tmp_path / "stderr", "w+b") as err:
        process = start_pyramid(pyramid_input, tmp_path, way, err)
        writing = wait_for_scratch(process, tmp_path)
        time.sleep(moment)
        interrupted = running(process)
        if interrupted:
            os.kill(process.pid, signal.SIGINT)
        code, _, timed_out, _ = hostile.finish(process, 30)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    assert writing, f"the run ended (exit {code}) before it wrote anything: {stderr!r}"
    assert not timed_out, stderr
    time.sleep(0.5)  # a write that outlived the run would show by now
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "stderr")
    assert left in ([], ["out.zarr"]), f"left behind: {left}"
    if left:  # published before the signal came: whole
        levels = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
        assert [levels[str(k)].shape for k in range(4)] == [(4096 >> k, 4096 >> k) for k in range(4)]
    lines = [line for line in stderr.splitlines() if line.strip()]
    if interrupted and code == 130 and not lines:
        # The signal came after the command returned, as the interpreter shut down (Python puts back
        # the default action then): the run had finished, so its whole output must be there.
        assert left == ["out.zarr"], (code, left, stderr)
    elif interrupted and code == 130:
        assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in stderr, stderr
    else:  # it finished just before the signal
        assert code == 0 and left == ["out.zarr"], (code, left, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(6))
def test_ctrl_c_during_a_pyramid_leaves_nothing_again_and_again(tmp_path, pyramid_input, attempt):
    test_ctrl_c_during_a_pyramid_leaves_nothing(tmp_path, pyramid_input, list(PYRAMID_WAYS)[attempt % 2],
                                                0.15 * attempt)


def test_a_killed_pyramids_scratch_is_swept_by_the_next_run_and_nothing_else(tmp_path, pyramid_input):
    with open(tmp_path / "stderr", "w+b") as err:
        process = start_pyramid(pyramid_input, tmp_path, "many-chunk-files", err)
        assert wait_for_scratch(process, tmp_path), "the run ended before it wrote anything"
        time.sleep(0.05)
        assert running(process), "the run ended before it was killed; make it longer"
        os.killpg(process.pid, signal.SIGKILL)
        hostile.finish(process, 10)
    left = temporaries(tmp_path)
    assert len(left) == 1 and left[0].startswith(".out.zarr.poolcli-"), left
    users = {name: name.encode() for name in
             ("foo.tmp", "out.zarr.tmp", ".out.zarr.tmp", ".out.zarr.mybackup.tmp", ".out.zarr.poolcli-mine.tmp")}
    for name, data in users.items():
        (tmp_path / name).write_bytes(data)
    time.sleep(1.1)  # a sweep leaves alone what is younger than a second (its writer may not hold it yet)
    again = run("pyramid", pyramid_input, "-o", tmp_path / "out.zarr", "--levels", "1", cwd=tmp_path)
    assert again.code == 0 and not again.err_lines, again
    assert not (tmp_path / left[0]).exists(), ("the killed run's scratch store was not swept",
                                               time.time() - (tmp_path / left[0]).lstat().st_mtime,
                                               sorted(os.listdir(tmp_path / left[0])), again)
    for name, data in users.items():
        assert (tmp_path / name).read_bytes() == data, f"a user's file {name} was touched"


def test_a_live_runs_scratch_is_never_swept(tmp_path, pyramid_input):
    """A sweep for the same output (as the next run does) leaves a live run's scratch store alone."""
    from poolcli import io

    with open(tmp_path / "stderr", "w+b") as err:
        first = start_pyramid(pyramid_input, tmp_path, "many-chunk-files", err)
        assert wait_for_scratch(first, tmp_path), "the run ended before it wrote anything"
        scratch = temporaries(tmp_path)
        io.sweep_temporaries(tmp_path / "out.zarr", min_age=0)  # no age limit: only its lock protects it
        kept = [name for name in scratch if (tmp_path / name).exists()]
        live = running(first)
        code, _, _, _ = hostile.finish(first, 30)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    assert live, "the run ended before the sweep; make it longer"
    assert kept == scratch, "a live run's scratch store was swept"
    assert code == 0 and not stderr.strip(), stderr
    assert temporaries(tmp_path) == []
    assert zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["3"].shape == (512, 512)


def test_ctrl_c_while_replacing_a_store_keeps_the_old_one_whole(tmp_path, pyramid_input):
    first = run("pyramid", pyramid_input, "-o", tmp_path / "out.zarr", "--levels", "2", cwd=tmp_path)
    assert first.code == 0, first
    before = tree(tmp_path / "out.zarr")
    with open(tmp_path.parent / f"{tmp_path.name}-stderr", "w+b") as err:
        process = hostile.start("pyramid", pyramid_input, "-o", tmp_path / "out.zarr", "--levels", "3",
                                *PYRAMID_WAYS["chunk-files"], "--overwrite", memory=None,
                                stdout=subprocess.DEVNULL, stderr=err)
        assert wait_for_scratch(process, tmp_path), "the run ended before it wrote anything"
        time.sleep(0.3)
        interrupted = running(process)
        if interrupted:
            os.kill(process.pid, signal.SIGINT)
        code, _, _, _ = hostile.finish(process, 30)
        err.seek(0)
        stopped_in_time = bool(err.read().strip())  # else the signal came as a finished run shut down
    assert temporaries(tmp_path) == []
    if interrupted and code == 130 and stopped_in_time:
        assert tree(tmp_path / "out.zarr") == before, "the old store was changed by an interrupted replacement"
    else:  # finished before the signal (exit 0), or as it shut down (Python's default action then)
        assert code in (0, 130) and zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["3"].shape == (512, 512)
