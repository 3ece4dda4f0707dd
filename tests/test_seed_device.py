"""Seeding and device choice."""
import random

import numpy as np
import pytest
import torch

import course_utils as cu
from course_utils import device as dev


def test_set_seed_reads_course_seed(monkeypatch):
    monkeypatch.setenv("COURSE_SEED", "17")
    assert cu.set_seed() == 17
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    assert cu.set_seed(17) == 17
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    monkeypatch.delenv("COURSE_SEED")
    assert cu.set_seed() == cu.DEFAULT_SEED
    assert cu.set_seed(5) == 5


def test_set_seed_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("COURSE_SEED", "seven")
    with pytest.raises(ValueError, match="COURSE_SEED"):
        cu.set_seed()
    with pytest.raises(TypeError):
        cu.set_seed(1.5)


def test_pick_device_defaults_to_what_is_there(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    assert cu.pick_device() == torch.device("cpu")
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert cu.pick_device() == torch.device("mps")


def test_pick_device_prefers_the_gpu_with_most_free_memory(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    free = {0: 2 << 30, 1: 9 << 30, 2: 5 << 30}
    monkeypatch.setattr(dev, "_free_memory", lambda i: free[i])
    assert cu.pick_device() == torch.device("cuda", 1)
    assert cu.pick_device("cpu") == torch.device("cpu")


def test_course_device_wins_and_prefer_wins_over_it(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert cu.pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("COURSE_DEVICE", "cuda:1")
    assert cu.pick_device() == torch.device("cuda", 1)
    assert cu.pick_device("cuda") == torch.device("cuda", 0)


def test_an_absent_device_is_explained(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    monkeypatch.setenv("COURSE_DEVICE", "cuda:1")
    with pytest.raises(ValueError, match=r"COURSE_DEVICE='cuda:1'.*available: cpu"):
        cu.pick_device()
    with pytest.raises(ValueError, match=r"prefer='mps'.*available: cpu"):
        cu.pick_device("mps")
    with pytest.raises(ValueError, match="not a device name"):
        cu.pick_device("tpu7")


def test_describe_device_is_one_line():
    line = cu.describe_device("cpu")
    assert line.startswith("cpu:") and "\n" not in line and torch.__version__ in line


@pytest.mark.parametrize("seed", [2**64, -1, 10**30])
def test_a_seed_torch_cannot_take_is_a_clear_error(monkeypatch, seed):
    with pytest.raises(ValueError, match=rf"seed: expected an integer in 0\.\.2\*\*64 - 1, got {seed}"):
        cu.set_seed(seed)
    monkeypatch.setenv("COURSE_SEED", str(seed))
    with pytest.raises(ValueError, match="COURSE_SEED: expected an integer in 0"):
        cu.set_seed()


def test_the_largest_seeds_work():
    assert cu.set_seed(2**64 - 1) == 2**64 - 1 and torch.initial_seed() == 2**64 - 1
    assert cu.set_seed(2**32 + 5) == 2**32 + 5  # NumPy gets it modulo 2**32


@pytest.mark.parametrize("name, match", [("cuda", r"device='cuda' asks for a device that is not here; available: cpu"),
                                         ("cuda:3", "device='cuda:3' asks for a device"),
                                         ("bogus", r"device='bogus' is not a device name; available: cpu")])
def test_describe_device_explains_an_absent_device_like_pick_device(monkeypatch, name, match):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    with pytest.raises(ValueError, match=match):
        cu.describe_device(name)
    with pytest.raises(ValueError, match=match.replace("device=", "prefer=")):
        cu.pick_device(name)


def test_threads_default_to_one_and_course_threads_overrides(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("COURSE_THREADS", raising=False)
        monkeypatch.delenv("COURSE_DEVICE", raising=False)
        torch.set_num_threads(2)
        cu.pick_device()
        assert cu.DEFAULT_THREADS == 1 and torch.get_num_threads() == 1
        assert "1 thread," in cu.describe_device("cpu")
        monkeypatch.setenv("COURSE_THREADS", "2")
        cu.pick_device("cpu")
        assert torch.get_num_threads() == 2 and "2 threads" in cu.describe_device("cpu")
        for bad in ("0", "two", "-1"):
            monkeypatch.setenv("COURSE_THREADS", bad)
            with pytest.raises(ValueError, match=f"COURSE_THREADS: expected a whole number of threads >= 1, got '{bad}'"):
                cu.pick_device()
        with pytest.raises(ValueError, match="threads: expected an int >= 1"):
            cu.set_threads(0)
    finally:
        torch.set_num_threads(before)

