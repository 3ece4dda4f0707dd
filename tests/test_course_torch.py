"""`./course` picks the PyTorch build a newcomer needs: the CPU build on Linux without an NVIDIA
GPU (from PyTorch's CPU index, falling back to PyPI where that index is not reachable), and says
which it chose and why. The shell functions are run with a stub interpreter: nothing is installed."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (ROOT / "course").read_text()


def functions() -> str:
    """The torch-install part of `course` (and the helpers it calls), as bash source."""
    out = [re.search(r"^TORCH_CPU_INDEX=.*$", SCRIPT, re.M).group(0)]
    for name in ("say", "die", "pip_install", "torch_choice", "install_torch"):
        one_line = re.search(rf"^{name}\(\) {{.*}}$", SCRIPT, re.M)
        block = one_line or re.search(rf"^{name}\(\) {{\n.*?^}}$", SCRIPT, re.M | re.S)
        assert block, f"course has no function {name}()"
        out.append(block.group(0))
    return "\n".join(out)


def run(tmp_path: Path, call: str, *, index_ok: bool = True, pip_ok: bool = True, nvidia: bool = False,
        env: dict | None = None) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "pip.log"
    stub = tmp_path / "python"
    stub.write_text("#!/bin/sh\n"
                    f'if [ "$1" = -c ]; then exit {0 if index_ok else 1}; fi\n'
                    f'echo "$@" >> {log}\nexit {0 if pip_ok else 1}\n')
    stub.chmod(0o755)
    if nvidia:
        fake = bin_dir / "nvidia-smi"
        fake.write_text("#!/bin/sh\necho 'GPU 0: fake'\n")
        fake.chmod(0o755)
    full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), **(env or {})}
    src = f"set -euo pipefail\nVPY={stub}\n{functions()}\n{call}\n"
    return subprocess.run(["bash", "-c", src], capture_output=True, text=True, env=full_env, timeout=30)


def pip_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "pip.log"
    return log.read_text().splitlines() if log.exists() else []


def no_gpu_here() -> bool:
    import shutil
    return shutil.which("nvidia-smi", path="/usr/bin:/bin") is None and not os.path.exists("/proc/driver/nvidia/version")


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="the choice is about Linux")
@pytest.mark.skipif(not no_gpu_here(), reason="this machine has an NVIDIA GPU or driver")
def test_linux_without_gpu_installs_the_cpu_build(tmp_path):
    out = run(tmp_path, "install_torch")
    assert out.returncode == 0, out.stderr
    calls = pip_calls(tmp_path)
    assert len(calls) == 1 and "--index-url https://download.pytorch.org/whl/cpu" in calls[0], calls
    assert "CPU build" in out.stderr and "without an NVIDIA GPU" in out.stderr, out.stderr


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="the choice is about Linux")
@pytest.mark.skipif(not no_gpu_here(), reason="this machine has an NVIDIA GPU or driver")
def test_unreachable_cpu_index_falls_back_to_pypi(tmp_path):
    out = run(tmp_path, "install_torch", index_ok=False)
    assert out.returncode == 0, out.stderr
    calls = pip_calls(tmp_path)
    assert len(calls) == 1 and "--index-url" not in calls[0] and "torch>=2.2" in calls[0], calls
    assert "not reachable" in out.stderr and "falling back" in out.stderr, out.stderr


@pytest.mark.skipif(not no_gpu_here(), reason="this machine has an NVIDIA GPU or driver")
def test_failed_cpu_install_falls_back_to_pypi(tmp_path):
    out = run(tmp_path, "install_torch", env={"COURSE_TORCH": "cpu"}, pip_ok=False)
    calls = pip_calls(tmp_path)
    assert len(calls) == 2 and "--index-url" in calls[0] and "--index-url" not in calls[1], calls
    assert "falling back" in out.stderr, out.stderr


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="the choice is about Linux")
def test_gpu_machine_keeps_the_default_build(tmp_path):
    out = run(tmp_path, "install_torch", nvidia=True)
    assert out.returncode == 0, out.stderr
    calls = pip_calls(tmp_path)
    assert len(calls) == 1 and "--index-url" not in calls[0], calls
    assert "NVIDIA GPU" in out.stderr and "PyPI" in out.stderr, out.stderr


def test_choice_can_be_forced_and_bad_values_are_named(tmp_path):
    assert run(tmp_path, "torch_choice", env={"COURSE_TORCH": "default"}).stdout.startswith("default:")
    assert run(tmp_path, "torch_choice", nvidia=True, env={"COURSE_TORCH": "cpu"}).stdout.startswith("cpu:")
    bad = run(tmp_path, "torch_choice", env={"COURSE_TORCH": "gpu"})
    assert bad.returncode != 0 and "COURSE_TORCH must be 'cpu' or 'default', got 'gpu'" in bad.stderr
