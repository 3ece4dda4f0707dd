"""Choosing where tensors live (CPU first, a GPU when there) and how many CPU threads.

Threads: the course default is :data:`DEFAULT_THREADS` = 1 intra-op thread, set by
:func:`pick_device` (every lesson's first cell calls it) and overridden with the
environment variable ``COURSE_THREADS`` (``./course bench --threads N`` sets it).
One thread holds up on a busy laptop: with other work on the cores, the course's small
models trained 10-20x slower with 2 threads, 2-2.5x with 1 (measurements in
docs/CONVENTIONS.md). The thread count also fixes the order of floating-point
reductions, so stored outputs reproduce only under the same count.
Introduced in notebook 00.
"""
from __future__ import annotations

import os
import platform

import torch

DEFAULT_THREADS = 1
"""Intra-op CPU threads the course uses unless ``COURSE_THREADS`` says otherwise."""


def course_threads() -> int:
    """The number of intra-op CPU threads: ``COURSE_THREADS`` if set, else :data:`DEFAULT_THREADS`.

    Introduced in notebook 00.
    """
    raw = os.environ.get("COURSE_THREADS", "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"COURSE_THREADS: expected a whole number of threads >= 1, got {raw!r}")
    return threads


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (default :func:`course_threads`); return the number set.

    Introduced in notebook 00.
    """
    threads = course_threads() if threads is None else threads
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads: expected an int >= 1, got {threads!r}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def _available() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _free_memory(index: int) -> int:
    try:
        free, _total = torch.cuda.mem_get_info(index)
        return int(free)
    except Exception:  # a busy or odd device still counts, just last
        return -1


def pick_device(prefer: str | None = None) -> torch.device:
    """Return the device the course should use, and set the course's CPU threads.

    ``prefer`` wins, else the environment variable ``COURSE_DEVICE``
    ("cpu", "cuda", "cuda:1", "mps"); otherwise the CUDA GPU with the most free
    memory, then Apple's MPS, then the CPU. Asking for a device that is not
    there raises a ValueError that names the devices that are.
    It also sets torch's intra-op threads to :func:`course_threads` (1 unless
    ``COURSE_THREADS`` says otherwise). Introduced in notebook 00.
    """
    set_threads()
    choice = prefer if prefer is not None else os.environ.get("COURSE_DEVICE", "").strip() or None
    if choice is None:
        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            best = max(range(torch.cuda.device_count()), key=_free_memory)
            return torch.device("cuda", best)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")

    return _resolve(choice, "prefer" if prefer is not None else "COURSE_DEVICE")


def _resolve(choice: str | torch.device, source: str) -> torch.device:
    """The device named ``choice`` if it is here, else a ValueError naming ``source`` and what is."""
    try:
        device = torch.device(choice)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"{source}={choice!r} is not a device name; available: {', '.join(_available())}"
        ) from err
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = 0 if device.index is None else device.index
        if index < count:
            return torch.device("cuda", index)
    elif device.type == "mps" and _mps_available():
        return torch.device("mps")
    raise ValueError(
        f"{source}={choice!r} asks for a device that is not here; available: {', '.join(_available())}"
    )


def describe_device(device: torch.device | str | None = None) -> str:
    """One human-readable line about ``device`` (default: ``pick_device()``), with the
    CPU's thread count. A device that is not here raises the ValueError that
    :func:`pick_device` raises. Introduced in notebook 00.
    """
    device = pick_device() if device is None else _resolve(device, "device")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device}: {props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"
    if device.type == "mps":
        return f"mps: Apple GPU ({platform.machine()}), torch {torch.__version__}"
    threads = torch.get_num_threads()
    return (
        f"cpu: {platform.processor() or platform.machine()}, "
        f"{threads} thread{'s' * (threads != 1)}, torch {torch.__version__}"
    )
