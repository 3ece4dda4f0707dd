"""The sandbox one submission runs in: bubblewrap, resource limits, a throwaway user.

``Sandbox.command(files, plan)`` returns the argv that starts ``runner.py`` so that it sees:

* ``/usr`` (and the ``/bin``, ``/lib``, ``/lib64`` links), the Python installation and the
  virtual environment (at ``/venv``, so that no path of the repository exists inside), all
  read-only;
* ``/course/course_utils`` (read-only, on ``PYTHONPATH``): the course package and nothing
  else of the repository;
* ``/grader`` (read-only): ``runner.py``, ``codec.py`` and this run's plan (the student's own
  cells, the probes and their inputs);
* ``/submission``: a small tmpfs, its working directory, holding read-only copies of the
  regular files of its own ``hwNN/`` folder;
* a private ``/tmp`` (tmpfs), ``/proc`` and ``/dev``; no network (its own, empty, network
  namespace), its own PID, IPC and UTS namespaces, a new session (no terminal to write to).

Limits (``Limits``): address space, CPU seconds, processes (threads count), file size, no core
files. Run as root, the grader drops the sandbox to an otherwise unused uid per worker
(60000 + slot), which is what makes the process limit bite (the kernel never applies
``RLIMIT_NPROC`` to root). Without root, bubblewrap maps the instructor's own uid into a user
namespace and the process limit counts the instructor's other processes too.

When the runner exits, is killed, or its parent (the grader) dies, bubblewrap's PID namespace
goes with it, and with it everything the submission started, ``setsid`` or not.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE_UID = 60000


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or does not work here: grading refuses to run student code."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 4 * 1024**3  # address space per process (importing torch takes ~0.7 GB)
    cpu_seconds: int = 300  # per process
    processes: int = 64  # processes and threads of the sandbox's user
    file_bytes: int = 16 * 1024**2  # largest file it may write, its captured output included
    tmp_bytes: int = 64 * 1024**2  # each of /tmp and /submission (tmpfs, counted as memory)


VENV = "/venv"  # where a virtual environment appears in the sandbox (its real path may name the repository)


def _in_venv() -> bool:
    return sys.prefix != sys.base_prefix


def _python_paths() -> list[str]:
    """The Python installation's folders (the virtual environment's are bound at VENV instead)."""
    paths = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    if not _in_venv():
        paths.add(os.path.realpath(sys.prefix))
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            p = sysconfig.get_paths().get(key)
            if p and os.path.isdir(p):
                paths.add(os.path.realpath(p))
    # the interpreter a venv points at (sys.executable may be a chain of links)
    paths.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    # keep only the outermost of nested paths
    out = []
    for p in sorted(paths, key=len):
        if p.startswith("/usr/") or p == "/usr":
            continue
        if not any(p == q or p.startswith(q + os.sep) for q in out):
            out.append(p)
    return out


def _dirs_to(path: str, made: set[str]) -> list[str]:
    """``--perms 0755 --dir`` for each missing parent of ``path`` (bwrap would make them 0700)."""
    args, parts = [], Path(path).parts[1:-1]
    cur = ""
    for part in parts:
        cur += "/" + part
        if cur not in made and cur not in ("/usr", "/tmp", "/proc", "/dev"):
            made.add(cur)
            args += ["--perms", "0755", "--dir", cur]
    return args


class Sandbox:
    """Builds the bubblewrap command of one run; ``unsafe=True`` runs without it (trusted code only)."""

    def __init__(self, course_package: Path, limits: Limits | None = None, unsafe: bool = False):
        self.course_package = Path(course_package).resolve()
        self.limits = limits or Limits()
        self.unsafe = unsafe
        self.root = os.geteuid() == 0
        if not unsafe:
            check_bwrap()

    def command(self, slot: int, grader_dir: Path, files_dir: Path, files: list[str]) -> tuple[list[str], dict]:
        """(argv, env) that run ``grader_dir/runner.py grader_dir/plan.json`` with fd 3 as its channel."""
        lim = self.limits
        if self.unsafe:
            env = {**_env(), "PYTHONPATH": str(self.course_package.parent), "HOME": str(files_dir)}
            return [sys.executable, str(grader_dir / "runner.py"), str(grader_dir / "plan.json")], env
        made: set[str] = set()
        argv = ["bwrap", "--ro-bind", "/usr", "/usr"]
        for name in ("bin", "lib", "lib64", "sbin"):
            p = Path("/" + name)
            if p.is_symlink():
                argv += ["--symlink", os.readlink(p), "/" + name]
            elif p.is_dir():
                argv += ["--ro-bind", str(p), "/" + name]
        for f in ("/etc/ld.so.cache", "/etc/localtime"):
            if os.path.exists(f):
                argv += _dirs_to(f, made) + ["--ro-bind", f, f]
        for p in _python_paths():
            argv += _dirs_to(p + "/x", made) + ["--ro-bind", p, p]
        python = sys.executable
        if _in_venv():
            argv += ["--ro-bind", sys.prefix, VENV]
            python = f"{VENV}/bin/{os.path.basename(sys.executable)}"
        argv += ["--perms", "0755", "--dir", "/course", "--ro-bind", str(self.course_package), "/course/course_utils"]
        argv += ["--ro-bind", str(grader_dir), "/grader"]
        argv += ["--size", str(lim.tmp_bytes), "--perms", "1777", "--tmpfs", "/submission"]
        for name in files:
            argv += ["--ro-bind", str(files_dir / name), f"/submission/{name}"]
        argv += ["--size", str(lim.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                 "--die-with-parent", "--new-session", "--chdir", "/submission", "--clearenv"]
        for key, value in {**_env(), "PYTHONPATH": "/course", "HOME": "/submission"}.items():
            argv += ["--setenv", key, value]
        nproc = lim.processes
        if self.root:
            uid = BASE_UID + slot
            argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                     "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all"]
        else:
            argv[1:1] = ["--unshare-user", "--disable-userns"]
            nproc += _own_process_count()
            argv += ["--"]
        argv += ["prlimit", f"--as={lim.memory_bytes}", f"--cpu={lim.cpu_seconds}", f"--nproc={nproc}",
                 f"--fsize={lim.file_bytes}", "--core=0",
                 python, "/grader/runner.py", "/grader/plan.json"]
        return argv, {}

    def preexec(self):
        """Limits for the unsafe mode (no bubblewrap): the same rlimits, set in the child."""
        if not self.unsafe:
            return None
        lim = self.limits

        def apply():
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (lim.memory_bytes, lim.memory_bytes))
            resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_seconds, lim.cpu_seconds))
            resource.setrlimit(resource.RLIMIT_FSIZE, (lim.file_bytes, lim.file_bytes))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        return apply


def _env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "COURSE_THREADS": "1",
            "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/.mpl", "IPYTHONDIR": "/tmp/.ipython",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}


def _own_process_count() -> int:
    uid, n = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                n += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return n


_CHECKED: list[bool] = []


def check_bwrap() -> None:
    """Raise ``SandboxUnavailable`` with what to do, unless bubblewrap runs a trivial sandbox here."""
    if _CHECKED:
        return
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, and the grader never runs student code unsandboxed by "
            "itself. Install it (Debian/Ubuntu: apt-get install bubblewrap). For your own trusted notebooks "
            "only, --unsafe-no-sandbox runs them without it (docs/homework.md: never for submissions).")
    argv = ["bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev",
            "--unshare-pid", "--unshare-net", "--die-with-parent", "--", "/usr/bin/true"]
    if os.geteuid() != 0:
        argv[1:1] = ["--unshare-user"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SandboxUnavailable(f"bubblewrap is installed but could not start a sandbox: {err}") from None
    if done.returncode != 0:
        raise SandboxUnavailable("bubblewrap is installed but could not start a sandbox here "
                                 f"(exit {done.returncode}: {done.stderr.strip()[:300]}); user namespaces "
                                 "may be disabled (kernel.unprivileged_userns_clone) or this runs in a "
                                 "container that forbids them")
    _CHECKED.append(True)
