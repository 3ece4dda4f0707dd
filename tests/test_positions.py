"""Position schemes of notebook 08: rotary, ALiBi, relative bias, learned embedding."""
from __future__ import annotations

import math

import pytest
import torch

from course_utils.positions import (
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


# ------------------------------------------------- inside MultiHeadAttention ---

from course_utils.multihead import MultiHeadAttention  # noqa: E402
from course_utils.positional_attention import (  # noqa: E402
    POSITION_SCHEMES,
    PositionalAttention,
    absolute_positions,
    self_attention,
)
from course_utils.functional import causal_mask  # noqa: E402


def _in_attention(scheme, D=16, H=4, causal=False):
    torch.manual_seed(0)
    mha = self_attention(scheme, D, H, causal=causal)
    if scheme == "relative":
        with torch.no_grad():
            mha.position_bias.bias.weight.normal_()
    return mha.eval()


def test_positional_attention_without_positions_is_multihead_attention():
    torch.manual_seed(0)
    plain = MultiHeadAttention(16, 4)
    pa = PositionalAttention(16, 4)
    pa.load_state_dict(plain.state_dict())
    x = torch.randn(2, 7, 16)
    assert torch.equal(pa(x, x, x)[0], plain(x, x, x)[0])
    with pytest.raises(ValueError, match="head_dim=4"):
        PositionalAttention(16, 4, rotary=RotaryEmbedding(8))
    with pytest.raises(ValueError, match="positions"):
        self_attention("sinusoidal-ish", 16, 4)
    with pytest.raises(ValueError, match="positions"):
        absolute_positions("alibi ", 16, 10)


@pytest.mark.parametrize("scheme", ["relative", "alibi", "rotary"])
def test_attention_sees_offsets_only(scheme):
    """Moving the whole sentence by a constant changes nothing: the scheme is relative."""
    mha = _in_attention(scheme)
    x = torch.randn(2, 9, 16)
    out0, w0 = mha(x, x, x, q_pos=torch.arange(9), k_pos=torch.arange(9))
    out5, w5 = mha(x, x, x, q_pos=torch.arange(9) + 5, k_pos=torch.arange(9) + 5)
    assert torch.allclose(out0, out5, atol=1e-5) and torch.allclose(w0, w5, atol=1e-6)


@pytest.mark.parametrize("scheme", ["relative", "alibi", "rotary"])
def test_explicit_and_fused_paths_agree(scheme):
    mha = _in_attention(scheme)
    x = torch.randn(3, 8, 16)
    mask = torch.tensor([8, 5, 2])[:, None] > torch.arange(8)[None, :]  # (B, S)
    mask = mask[:, None, None, :]  # (B, 1, 1, S)
    a, _ = mha(x, x, x, mask, need_weights=True)
    b, _ = mha(x, x, x, mask, need_weights=False)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("scheme", ["relative", "alibi", "rotary"])
def test_cached_decoding_equals_uncached(scheme):
    """Step by step with a KV cache (keys stored rotated) == the whole causal pass."""
    mha = _in_attention(scheme, causal=True)
    T = 10
    x = torch.randn(2, T, 16)
    full, w_full = mha(x, x, x, causal_mask(T)[None, None])
    cache, outs = None, []
    for t in range(T):
        step = x[:, t:t + 1]
        out, w, cache = mha(step, step, step, cache=cache, use_cache=True)
        assert w.shape == (2, 4, 1, t + 1)
        assert torch.allclose(w[:, :, 0], w_full[:, :, t, : t + 1], atol=1e-5), f"step {t}: weights differ"
        outs.append(out)
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)
    if scheme == "rotary":  # the cache holds the rotated keys: position t turned by t
        k = mha.split_heads(mha.k_proj(x), 4)  # (B, H, T, Dh)
        assert torch.allclose(cache.k, mha.rotary(k, torch.arange(T)), atol=1e-5)


@pytest.mark.parametrize("scheme", POSITION_SCHEMES)
def test_transformer_takes_the_scheme_from_its_config(scheme):
    from course_utils.transformer import Transformer, TransformerConfig

    torch.manual_seed(0)
    model = Transformer(TransformerConfig(11, 13, d_model=16, num_heads=4, num_layers=1, d_ff=32,
                                          positions=scheme)).eval()
    src = torch.randint(3, 11, (3, 7))
    src[2, 4:] = 0
    lengths = torch.tensor([7, 7, 4])
    tgt_in = torch.randint(3, 13, (3, 5))
    logits, w = model(src, lengths, tgt_in)
    assert logits.shape == (3, 5, 13) and w.shape == (3, 5, 7)
    short, _ = model(src[2:, :4], lengths[2:], tgt_in[2:])  # padding changes nothing
    assert torch.allclose(logits[2:], short, atol=1e-5)
    pos_params = sum(p.numel() for n, p in model.named_parameters() if "position" in n or n.startswith("pos."))
    want = {"learned": 128 * 16, "relative": 2 * 16 * 4}.get(scheme, 0)  # max_len x D; buckets x H per self-attention
    assert pos_params == want, f"{scheme}: {pos_params} position parameters"
    if scheme == "none":  # no positions: permuting the source words permutes nothing the decoder sees
        perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
        out_perm, _ = model(src[:2, perm], lengths[:2], tgt_in[:2])
        assert torch.allclose(out_perm, logits[:2], atol=1e-5)


def test_default_config_is_unchanged():
    from course_utils.transformer import Transformer, TransformerConfig

    cfg = TransformerConfig(11, 13)
    assert cfg.positions == "sinusoidal"
    from course_utils.positions import PositionalEncoding

    assert isinstance(Transformer(cfg).pos, PositionalEncoding)
