"""tiled_attention equals F.scaled_dot_product_attention and never holds more than one block of scores."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from course_utils.tiled import tiled_attention


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("T,S", [(1, 1), (7, 7), (13, 13), (33, 33), (5, 11), (11, 5), (100, 100)])
@pytest.mark.parametrize("blocks", [(1, 1), (3, 5), (8, 8), (16, 7), (64, 64), (128, 3)])
def test_equals_sdpa(causal, T, S, blocks):
    g = torch.Generator().manual_seed(T * 100 + S)
    q, k, v = (torch.randn(2, 3, n, d, generator=g) for n, d in ((T, 8), (S, 8), (S, 6)))
    got = tiled_attention(q, k, v, causal=causal, block_q=blocks[0], block_k=blocks[1])
    want = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert got.shape == want.shape == (2, 3, T, 6)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


@pytest.mark.parametrize("lead", [(), (4,), (2, 2, 3)])
def test_any_leading_dims_and_scale(lead):
    q, k, v = torch.randn(*lead, 9, 4), torch.randn(*lead, 10, 4), torch.randn(*lead, 10, 4)
    got = tiled_attention(q, k, v, block_q=4, block_k=3, scale=0.3)
    want = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert torch.allclose(got, want, atol=1e-5)


def test_gradients_match():
    q, k, v = (torch.randn(2, 17, 8, requires_grad=True) for _ in range(3))
    tiled_attention(q, k, v, causal=True, block_q=5, block_k=4).square().sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    F.scaled_dot_product_attention(q, k, v, is_causal=True).square().sum().backward()
    for got, t in zip(grads, (q, k, v)):
        assert torch.allclose(got, t.grad, atol=1e-4)


def test_large_scores_do_not_overflow():
    q, k, v = torch.randn(1, 20, 4) * 30, torch.randn(1, 20, 4) * 30, torch.randn(1, 20, 4)
    got = tiled_attention(q, k, v, block_q=6, block_k=6)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, F.scaled_dot_product_attention(q, k, v), atol=1e-4)


class _LargestTensor(TorchDispatchMode):
    """The largest number of elements of any tensor an operation creates."""

    def __enter__(self):
        self.largest = 0
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and func is not torch.ops.aten.new_zeros.default:
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("causal", [False, True])
def test_holds_one_block_of_scores(causal):
    T, Dh, bq, bk = 256, 4, 16, 32
    q, k, v = (torch.randn(1, T, Dh) for _ in range(3))
    with torch.no_grad(), _LargestTensor() as meter:
        tiled_attention(q, k, v, causal=causal, block_q=bq, block_k=bk)
    assert meter.largest <= max(bq * bk, bq * Dh), meter.largest  # never a (T, S) table: T * T = 65536
    with torch.no_grad(), _LargestTensor() as meter:
        torch.softmax(q @ k.transpose(-2, -1), -1) @ v
    assert meter.largest == T * T


def test_causal_skips_blocks_above_the_diagonal():
    T, Dh, block = 128, 8, 16
    q, k, v = (torch.randn(1, T, Dh) for _ in range(3))
    flops = {}
    for causal in (False, True):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            tiled_attention(q, k, v, causal=causal, block_q=block, block_k=block)
        flops[causal] = counter.get_total_flops()
    n = T // block  # blocks per side: n * n visited without the mask, n (n + 1) / 2 with it
    assert flops[False] == 4 * T * T * Dh
    assert flops[True] == flops[False] * (n + 1) // (2 * n)


@pytest.mark.parametrize("kwargs,match", [
    ({"block_q": 0}, "block_q"), ({"block_k": 2.5}, "block_k"), ({"block_q": True}, "block_q")])
def test_bad_blocks(kwargs, match):
    x = torch.randn(1, 4, 2)
    with pytest.raises(ValueError, match=match):
        tiled_attention(x, x, x, **kwargs)


def test_bad_shapes_name_the_argument():
    q = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match="k: expected shape"):
        tiled_attention(q, torch.randn(2, 6, 7), torch.randn(2, 6, 7))
    with pytest.raises(ValueError, match="v: expected shape"):
        tiled_attention(q, torch.randn(2, 6, 8), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="q: expected"):
        tiled_attention(torch.randn(5), q, q)
