"""Choosing where tensors live: CPU first, a GPU when there. Introduced in notebook 00."""
from __future__ import annotations

import os
import platform

import torch


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
    """Return the device the course should use.

    ``prefer`` wins, else the environment variable ``COURSE_DEVICE``
    ("cpu", "cuda", "cuda:1", "mps"); otherwise the CUDA GPU with the most free
    memory, then Apple's MPS, then the CPU. Asking for a device that is not
    there raises a ValueError that names the devices that are.
    Introduced in notebook 00.
    """
    choice = prefer if prefer is not None else os.environ.get("COURSE_DEVICE", "").strip() or None
    if choice is None:
        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            best = max(range(torch.cuda.device_count()), key=_free_memory)
            return torch.device("cuda", best)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")

    source = "prefer" if prefer is not None else "COURSE_DEVICE"
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
    """One human-readable line about ``device`` (default: ``pick_device()``)."""
    device = pick_device() if device is None else torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device}: {props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"
    if device.type == "mps":
        return f"mps: Apple GPU ({platform.machine()}), torch {torch.__version__}"
    return (
        f"cpu: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
