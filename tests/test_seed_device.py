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
