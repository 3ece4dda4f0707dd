"""Position schemes of notebook 08: rotary, ALiBi, relative bias, learned embedding."""
from __future__ import annotations

import math

import pytest
import torch

from course_utils.positions_extra import (
    ALiBi,
    LearnedPositionalEmbedding,
    RelativePositionBias,
    RotaryEmbedding,
    alibi_slopes,
    relative_position_bucket,
    rotate_half,
)


@pytest.mark.parametrize("head_dim", [2, 8, 16, 64])
def test_rotary_score_depends_only_on_offset(head_dim):
    rope = RotaryEmbedding(head_dim)
    g = torch.Generator().manual_seed(head_dim)
    q, k = torch.randn(head_dim, generator=g, dtype=torch.float64), torch.randn(head_dim, generator=g, dtype=torch.float64)
    P = 60
    pos = torch.arange(P)
    rq = rope(q.expand(P, head_dim), pos)  # (P, Dh): q at every position
    rk = rope(k.expand(P, head_dim), pos)
    scores = rq @ rk.T  # (P, P): q at m, k at n
    for offset in (-7, -1, 0, 3, 20):
        diag = torch.diagonal(scores, offset=offset)  # all pairs with n - m = offset
        assert torch.allclose(diag, diag[0].expand_as(diag), atol=1e-9), f"offset {offset}: score moves with m"
    assert not torch.allclose(torch.diagonal(scores, 0)[0], torch.diagonal(scores, 5)[0]), "offset must matter"


def test_rotary_keeps_norms_and_position_zero_is_identity():
    rope = RotaryEmbedding(32)
    x = torch.randn(2, 4, 50, 32)  # (B, H, T, Dh)
    pos = torch.arange(50)
    y = rope(x, pos)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-4), "rotation must keep every norm"
    assert torch.equal(rope(x[..., :1, :], torch.zeros(1, dtype=torch.long)), x[..., :1, :]), "position 0: identity"
    x0 = x.clone()
    rope(x, pos)
    assert torch.equal(x, x0), "the input is not modified"


def test_rotate_half_equals_complex_multiplication():
    Dh, T = 16, 12
    rope = RotaryEmbedding(Dh, base=500.0)
    x = torch.randn(3, T, Dh, dtype=torch.float64)
    pos = torch.arange(5, 5 + T)
    z = torch.complex(x[..., : Dh // 2], x[..., Dh // 2:])  # pair i = (x_i, x_{i + Dh/2})
    theta = 500.0 ** (-torch.arange(0, Dh, 2, dtype=torch.float64) / Dh)  # (Dh/2,)
    turned = z * torch.polar(torch.ones(T, Dh // 2, dtype=torch.float64), pos[:, None] * theta)  # (3, T, Dh/2)
    want = torch.cat([turned.real, turned.imag], dim=-1)
    assert torch.allclose(rope(x, pos), want, atol=1e-10)
    assert torch.equal(rotate_half(rotate_half(x)), -x), "two quarter turns are a half turn"


def test_rotary_rejects_bad_input():
    rope = RotaryEmbedding(8)
    with pytest.raises(ValueError, match="head_dim"):
        RotaryEmbedding(7)
    with pytest.raises(ValueError, match="Dh=8"):
        rope(torch.randn(2, 5, 6), torch.arange(5))
    with pytest.raises(ValueError, match="positions"):
        rope(torch.randn(2, 5, 8), torch.arange(4))
    with pytest.raises(ValueError, match="integer positions"):
        rope(torch.randn(2, 5, 8), torch.arange(5.0))


def test_alibi_slopes_power_of_two():
    assert torch.equal(alibi_slopes(8), torch.tensor([2.0 ** -i for i in range(1, 9)]))
    assert torch.allclose(alibi_slopes(16), torch.tensor([2.0 ** (-i / 2) for i in range(1, 17)]))
    assert torch.equal(alibi_slopes(1), torch.tensor([2.0 ** -8]))


@pytest.mark.parametrize("H", [3, 5, 6, 7, 12, 20])
def test_alibi_slopes_rule_for_other_head_counts(H):
    p = 2 ** math.floor(math.log2(H))
    want = [2.0 ** (-8 * i / p) for i in range(1, p + 1)] + [2.0 ** (-8 * i / (2 * p)) for i in range(1, 2 * p + 1, 2)][: H - p]
    got = alibi_slopes(H)
    assert got.shape == (H,)
    assert torch.allclose(got, torch.tensor(want), rtol=1e-6)


def test_alibi_slopes_six_and_twelve_heads_written_out():
    assert torch.allclose(alibi_slopes(6), torch.tensor([2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8, 2.0 ** -1, 2.0 ** -3]))
    assert torch.allclose(alibi_slopes(12), torch.tensor([2.0 ** -i for i in range(1, 9)]
                                                         + [2.0 ** -0.5, 2.0 ** -1.5, 2.0 ** -2.5, 2.0 ** -3.5]))
    with pytest.raises(ValueError, match="num_heads"):
        alibi_slopes(0)


def test_alibi_bias_is_minus_slope_times_distance():
    bias = ALiBi(4)(torch.arange(3, 6), torch.arange(7))  # (H, T, S)
    assert bias.shape == (4, 3, 7)
    want = -alibi_slopes(4)[:, None, None] * (torch.arange(7)[None, :] - torch.arange(3, 6)[:, None]).abs()
    assert torch.allclose(bias, want.float())
    assert (bias[:, torch.arange(3), torch.arange(3, 6)] == 0).all(), "no penalty for the word itself"


def test_relative_buckets():
    rel = torch.arange(-200, 201)
    b = relative_position_bucket(rel, num_buckets=16, max_distance=32)
    assert b.min() >= 0 and b.max() <= 15
    assert b[200 + torch.arange(4)].tolist() == [0, 9, 10, 11], "keys after the query: upper half"
    assert b[200 - torch.arange(4)].tolist() == [0, 1, 2, 3], "keys before it: lower half"
    # small distances: one bucket each, separate for both directions (bucket 0 is the query itself)
    small = relative_position_bucket(torch.arange(-3, 4), num_buckets=16, max_distance=32)
    assert len(set(small.tolist())) == 7
    # monotone in distance on each side, everything from max_distance on shares the last bucket
    right, left = b[200:], b[:201].flip(0)
    assert (right[1:] >= right[:-1]).all() and (left[1:] >= left[:-1]).all()
    assert (right[32:] == right[32]).all() and (left[32:] == left[32]).all()
    causal = relative_position_bucket(rel, num_buckets=16, max_distance=32, bidirectional=False)
    assert (causal[201:] == 0).all(), "one-way buckets: keys after the query count as offset 0"


def test_relative_bias_shape_and_start():
    rpb = RelativePositionBias(4, num_buckets=16, max_distance=32)
    bias = rpb(torch.arange(5), torch.arange(9))
    assert bias.shape == (4, 5, 9) and (bias == 0).all(), "starts at zero"
    with torch.no_grad():
        rpb.bias.weight.copy_(torch.randn(16, 4))
    bias = rpb(torch.arange(10), torch.arange(10))
    assert torch.allclose(torch.diagonal(bias, 2, dim1=1, dim2=2), bias[:, :1, 2:3].expand(4, 8, 1)[..., 0]), \
        "the bias depends on the offset only"


def test_learned_embedding():
    emb = LearnedPositionalEmbedding(8, max_len=20)
    x = torch.zeros(2, 5, 8)
    assert torch.equal(emb(x), emb.embedding.weight[:5].expand(2, 5, 8))
    assert torch.equal(emb(x, torch.arange(3, 8)), emb.embedding.weight[3:8].expand(2, 5, 8))
    with pytest.raises(ValueError, match="max_len=20"):
        emb(torch.zeros(1, 3, 8), torch.arange(18, 21))
