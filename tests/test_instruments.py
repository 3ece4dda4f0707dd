"""course_utils.instruments: the counts lessons assert on are exact; timers return positive times."""
import pytest
import torch
from torch import nn

from course_utils.instruments import TensorMemory, best_ms, count_flops, graph_depth, median_ms


def test_count_flops_is_two_per_multiply_add():
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    assert count_flops(torch.matmul, a, b) == 2 * 3 * 4 * 5
    lin = nn.Linear(8, 6, bias=False)
    with torch.no_grad():
        assert count_flops(lambda: lin(torch.randn(10, 8))) == 2 * 10 * 8 * 6
    assert count_flops(torch.relu, a) == 0  # element-wise work is not counted


def test_graph_depth_counts_the_longest_chain():
    x = torch.randn(3, requires_grad=True)
    assert graph_depth(x * 2) == 2  # MulBackward -> AccumulateGrad
    y = x
    for _ in range(10):
        y = y * 2
    assert graph_depth(y) == 11
    assert graph_depth(y + x * 3) == 12  # the longer of the two branches
    gru = nn.GRU(4, 4, batch_first=True)
    short, long = (graph_depth(gru(torch.randn(1, n, 4, requires_grad=True))[0][:, -1].sum()) for n in (4, 8))
    assert long > short, "a GRU's chain grows with the sequence"
    with pytest.raises(ValueError, match="no grad_fn"):
        graph_depth(torch.randn(3))
    with pytest.raises(TypeError, match="tensor"):
        graph_depth([1, 2])


def test_tensor_memory_counts_new_storages_once_and_not_the_inputs():
    x = torch.randn(256, 256)  # 256 KiB input, not counted
    with TensorMemory() as meter:
        y = x @ x  # 256 KiB
        v = y.view(-1)  # a view: no new storage
        z = y + 1  # 256 KiB
    assert meter.peak == 2 * 256 * 256 * 4
    del v, z
    with TensorMemory() as meter:
        for _ in range(3):
            t = torch.ones(1024)  # each freed before the next is made... or just after
            del t
    assert meter.peak <= 2 * 1024 * 4


def test_tensor_memory_counts_whole_tables():
    q, k = torch.randn(64, 8), torch.randn(64, 8)
    with TensorMemory(table=64 * 64) as meter:
        torch.softmax(q @ k.T, dim=-1)  # two (64, 64) tensors: the scores and the weights
        q @ k[:16].T  # a (64, 16) block: not a whole table
    assert meter.tables == 2
    with TensorMemory() as meter:
        q @ k.T
    assert meter.tables == 0, "without table=, nothing is counted"


def test_timers_give_positive_milliseconds_and_check_their_arguments():
    calls = []
    fn = lambda n: calls.append(n) or sum(range(n))  # noqa: E731
    assert best_ms(fn, 1000, repeats=3, warmup=2) > 0 and len(calls) == 5
    assert median_ms(fn, 1000, repeats=3) >= 0
    with pytest.raises(ValueError, match="repeats: expected an int >= 1, got 0"):
        best_ms(fn, 10, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        median_ms(fn, 10, warmup=-1)
