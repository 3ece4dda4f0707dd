"""Bad input to the attention code, tried as a careless user would (issue 10, item 11).

Each case ends in a clear error naming the argument, what it got and what it
expected, or in a documented result. The mask-shape cases and the
constructor checks of MultiHeadAttention are in test_multihead.py, the model
cases (src_lengths, max_len=0) in test_contract.py.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.attention import (
    AdditiveAttention,
    DotProductAttention,
    MultiHeadAttention,
    attention,
    causal_mask,
    masked_softmax,
)


@pytest.mark.parametrize("poison", [math.nan, math.inf, -math.inf])
def test_a_nan_or_inf_score_at_a_masked_position_does_not_poison_the_row(poison):
    scores = torch.randn(2, 3, 5)
    mask = torch.ones(2, 3, 5, dtype=torch.bool)
    mask[:, :, 1] = False
    clean = masked_softmax(scores, mask)
    scores[:, :, 1] = poison
    leaf = scores.clone().requires_grad_()
    weights = masked_softmax(leaf, mask)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights, clean)
    (weights * torch.randn(2, 3, 5)).sum().backward()
    assert torch.isfinite(leaf.grad).all() and (leaf.grad[:, :, 1] == 0).all()


def test_a_nan_score_in_a_fully_masked_row_gives_zeros():
    scores = torch.randn(1, 2, 4, requires_grad=True)
    poisoned = scores.detach().clone()
    poisoned[0, 1, 2] = math.nan
    poisoned.requires_grad_()
    mask = torch.tensor([[[True, True, False, False], [False, False, False, False]]])
    weights = masked_softmax(poisoned, mask)
    assert torch.equal(weights[0, 1], torch.zeros(4)) and torch.isfinite(weights).all()
    weights.sum().backward()
    assert torch.isfinite(poisoned.grad).all()


def test_the_attention_kernel_ignores_poisoned_masked_keys():
    q, k, v = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
    mask = torch.ones(6, dtype=torch.bool)
    mask[4:] = False
    clean, _ = attention(q, k, v, mask)
    k[:, 4] = math.inf  # a key at a masked position overflows every score it meets
    out, weights = attention(q, k, v, mask)
    torch.testing.assert_close(out, clean)
    assert torch.isfinite(weights).all()


@pytest.mark.parametrize("dim", [0, 1, 2, -3, -2, -1])
@pytest.mark.parametrize("mask_shape", [(4, 5), (5,), (1, 4, 5), (3, 4, 5)])
def test_masked_softmax_dim_counts_in_the_scores_dims_also_with_a_shorter_mask(dim, mask_shape):
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 4, 5, generator=g)
    mask = torch.rand(mask_shape, generator=g) < 0.6
    full = mask.expand(3, 4, 5)
    got = masked_softmax(scores, mask, dim=dim)
    want = masked_softmax(scores, full.clone(), dim=dim)  # the full-rank mask: no question which dim is which
    torch.testing.assert_close(got, want)
    reference = torch.softmax(scores.masked_fill(~full, -math.inf), dim).nan_to_num(0.0)
    torch.testing.assert_close(got, reference)


@pytest.mark.parametrize("dim", [3, -4, 1.0, None])
def test_masked_softmax_bad_dim_is_named(dim):
    with pytest.raises(ValueError, match=r"dim: expected an int in -3..2 for scores of shape \(3, 4, 5\)"):
        masked_softmax(torch.randn(3, 4, 5), torch.ones(5, dtype=torch.bool), dim=dim)


def test_float16_scores_above_65504_match_sdpa_on_the_explicit_path():
    q = torch.full((1, 2, 3, 8), 200.0, dtype=torch.float16)  # q . k / sqrt(8) = 113137 > 65504
    k = torch.full((1, 2, 4, 8), 200.0, dtype=torch.float16)
    k[..., 1, :] = -200.0
    v = torch.randn(1, 2, 4, 8).half()
    reference = F.scaled_dot_product_attention(q, k, v)
    out, weights = attention(q, k, v, causal_mask(3, 4))
    assert out.dtype == torch.float16 and weights.dtype == torch.float16
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(3, 4)))
    out, _ = attention(q, k, v)
    torch.testing.assert_close(out, reference)


def test_float16_multihead_explicit_equals_fused():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2).half().eval()
    with torch.no_grad():
        mha.q_proj.weight.mul_(400.0)  # scores far above float16's largest number
    x = torch.randn(2, 5, 16).half()
    explicit, _ = mha(x, x, x)
    fused, _ = mha(x, x, x, need_weights=False)
    assert torch.isfinite(explicit).all()
    torch.testing.assert_close(explicit, fused, atol=2e-3, rtol=2e-3)


def test_dtype_mismatch_names_each_argument():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    message = r"queries, keys and values: expected one dtype, got queries float32, keys float64, values float32"
    with pytest.raises(TypeError, match=message):
        attention(q, k.double(), v)
    for module in (DotProductAttention(), AdditiveAttention(4, 4, 3)):
        with pytest.raises(TypeError, match=message):
            module(q, k.double(), v)
    mha = MultiHeadAttention(4, 2)
    with pytest.raises(TypeError, match=r"query, key and value: expected one dtype, got query float32, "
                                        r"key float32, value float16"):
        mha(q, k, v.half())
    with pytest.raises(TypeError, match=r"query: dtype torch.float64 differs from this module's weights"):
        mha(q.double(), k.double(), v.double())
