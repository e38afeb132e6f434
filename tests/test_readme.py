"""The README's promises: its Python example runs, and CI runs its test command."""

import re
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_python_example_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    code = re.search(r"## Python API\n\n```python\n(.*?)```", README, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["y"].shape == (8, 64, 56, 56)
    assert namespace["small"].shape == (256, 256, 3) and namespace["small"].dtype == np.uint8


def test_ci_runs_the_quick_start_test_command():
    quick_start = re.search(r"## Quick start\n\n```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(quick_start) == 2
    test_command = quick_start[1].split("&&")[-1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_ci_installs_with_the_quick_start_install_step():
    quick_start = re.search(r"## Quick start\n\n```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    install_step = quick_start[1].split("&&")[0].strip()
    assert (ROOT / install_step).is_file(), "the test command's install step is a script of the repository"
    assert install_step in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_install_script_finds_everything_the_suite_runs_with():
    """Where the suite runs, the script's own check finds everything installed (so it would install
    nothing); `--check` never installs, so running it cannot move an editable install."""
    done = subprocess.run([str(ROOT / "scripts" / "install-test-deps"), "--check"], capture_output=True, text=True,
                          timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
