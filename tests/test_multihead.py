"""MultiHeadAttention's seams: grouped-query heads, the KV cache, positions hooks, mask rules.

The reference for every cached or grouped result is the plain full pass of
the same module (or of an equivalent one with repeated key/value heads).
"""
from __future__ import annotations

import pytest
import torch

from course_utils import multihead
from course_utils.attention import (
    AdditiveAttention,
    DotProductAttention,
    KVCache,
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    sliding_window_mask,
)

ATOL = 1e-5
D, H = 16, 4


def make(seed: int = 0, heads: int = H, kv_heads: int | None = None, cls=MultiHeadAttention) -> MultiHeadAttention:
    torch.manual_seed(seed)
    module = cls(D, heads, num_kv_heads=kv_heads).eval()
    with torch.no_grad():  # nudge every weight and bias so that a wrong head or slice shows
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return module


def data(seed: int, B: int = 2, T: int = 6, S: int | None = None) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    S = T if S is None else S
    return torch.randn(B, T, D, generator=g), torch.randn(B, S, D, generator=g)


def repeated_kv_twin(gqa: MultiHeadAttention) -> MultiHeadAttention:
    """A plain MultiHeadAttention whose kv heads are gqa's, each repeated for its query group."""
    full = MultiHeadAttention(D, gqa.num_heads).eval()
    group, Dh = gqa.num_heads // gqa.num_kv_heads, gqa.head_dim
    with torch.no_grad():
        for name in ("q_proj", "out_proj"):
            getattr(full, name).load_state_dict(getattr(gqa, name).state_dict())
        for name in ("k_proj", "v_proj"):
            small, big = getattr(gqa, name), getattr(full, name)
            w = small.weight.view(gqa.num_kv_heads, Dh, D).repeat_interleave(group, 0)  # (H, Dh, D)
            big.weight.copy_(w.reshape(gqa.num_heads * Dh, D))  # (H * Dh, D)
            big.bias.copy_(small.bias.view(gqa.num_kv_heads, Dh).repeat_interleave(group, 0).reshape(-1))  # (H * Dh,)
    return full


# ------------------------------------------------------------------ GQA ---

@pytest.mark.parametrize("kv_heads", [1, 2])
@pytest.mark.parametrize("mask_kind", ["none", "padding", "causal"])
@pytest.mark.parametrize("sdpa_gqa", [True, False])
def test_grouped_query_attention_equals_mha_with_repeated_kv_heads(kv_heads, mask_kind, sdpa_gqa, monkeypatch):
    if sdpa_gqa and not multihead.SDPA_HAS_GQA:
        pytest.skip("this torch has no enable_gqa")
    monkeypatch.setattr(multihead, "SDPA_HAS_GQA", sdpa_gqa)  # False: the repeat_interleave fallback
    gqa = make(1, kv_heads=kv_heads)
    assert gqa.k_proj.weight.shape == (kv_heads * D // H, D)
    full = repeated_kv_twin(gqa)
    x, mem = data(2, T=5, S=7)
    mask = {"none": None, "padding": padding_mask([7, 3], 7), "causal": causal_mask(5, 7)}[mask_kind]
    for need_weights in (True, False):
        ours, w = gqa(x, mem, mem, mask, need_weights=need_weights)
        ref, w_ref = full(x, mem, mem, mask, need_weights=need_weights)
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=1e-5)
        if need_weights:
            assert w.shape == (2, H, 5, 7)
            torch.testing.assert_close(w, w_ref, atol=ATOL, rtol=1e-5)


def test_query_head_h_uses_kv_head_h_div_group():
    gqa = make(3, heads=4, kv_heads=2)
    x, _ = data(3)
    _, weights = gqa(x, x, x)
    q = gqa.split_heads(gqa.q_proj(x), 4)  # (B, 4, T, Dh)
    k = gqa.split_heads(gqa.k_proj(x), 2)  # (B, 2, T, Dh)
    for h in range(4):
        expected = torch.softmax(q[:, h] @ k[:, h // 2].transpose(1, 2) / gqa.head_dim ** 0.5, -1)  # (B, T, T)
        torch.testing.assert_close(weights[:, h], expected, atol=ATOL, rtol=1e-5)


def test_num_kv_heads_equal_to_num_heads_is_the_plain_module():
    torch.manual_seed(4)
    plain = MultiHeadAttention(D, H)
    torch.manual_seed(4)
    same = MultiHeadAttention(D, H, num_kv_heads=H)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), same.state_dict().values()))
    x, mem = data(4, S=9)
    for need_weights in (True, False):
        a, wa = plain(x, mem, mem, need_weights=need_weights)
        b, wb = same(x, mem, mem, need_weights=need_weights)
        assert torch.equal(a, b) and (wa is None or torch.equal(wa, wb))


def test_gqa_has_no_torch_twin():
    with pytest.raises(ValueError, match="num_kv_heads"):
        make(0, kv_heads=2).load_from_torch(torch.nn.MultiheadAttention(D, H, batch_first=True))
    with pytest.raises(ValueError, match=r"num_kv_heads: expected a divisor of num_heads=4, got 3"):
        MultiHeadAttention(D, H, num_kv_heads=3)


# ------------------------------------------------------------- KV cache ---

@pytest.mark.parametrize("kv_heads", [None, 2])
@pytest.mark.parametrize("need_weights", [True, False])
def test_cached_self_attention_step_by_step_equals_the_full_causal_pass(kv_heads, need_weights):
    mha = make(5, kv_heads=kv_heads)
    x, _ = data(5, B=3, T=7)
    full, w_full = mha(x, x, x, causal_mask(7)[None, None])
    cache = None
    for t in range(7):
        step = x[:, t:t + 1]  # (B, 1, D)
        out, w, cache = mha(step, step, step, need_weights=need_weights, cache=cache, use_cache=True)
        assert isinstance(cache, KVCache) and cache.length == t + 1
        assert cache.k.shape == (3, kv_heads or H, t + 1, D // H)
        torch.testing.assert_close(out[:, 0], full[:, t], atol=ATOL, rtol=1e-5)
        if need_weights:
            torch.testing.assert_close(w[:, :, 0], w_full[:, :, t, : t + 1], atol=ATOL, rtol=1e-5)
        else:
            assert w is None


def test_cache_in_chunks_with_an_offset_causal_mask():
    mha = make(6)
    x, _ = data(6, B=2, T=7)
    full, _ = mha(x, x, x, causal_mask(7)[None, None])
    first, _, cache = mha(x[:, :3], x[:, :3], x[:, :3], causal_mask(3)[None, None], use_cache=True)
    rest = x[:, 3:]
    offset = torch.ones(4, 7, dtype=torch.bool).tril(3)[None, None]  # (1, 1, 4, 7): query 3+i sees keys 0..3+i
    second, _, cache = mha(rest, rest, rest, offset, cache=cache, use_cache=True)
    torch.testing.assert_close(torch.cat([first, second], 1), full, atol=ATOL, rtol=1e-5)
    assert cache.length == 7


@pytest.mark.parametrize("need_weights", [True, False])
def test_cross_attention_static_cache_is_computed_once(need_weights):
    mha = make(7, kv_heads=2)
    y, memory = data(7, B=2, T=5, S=8)
    pad = padding_mask([8, 5], 8)  # (B, 1, 1, S)
    full, w_full = mha(y, memory, memory, pad)
    cache, first = None, None
    for t in range(5):
        kv = memory if cache is None else None  # after the first step the memory is not needed
        out, w, cache = mha(y[:, t:t + 1], kv, kv, pad, need_weights=need_weights, cache=cache,
                            use_cache=True, static_kv=True)
        first = cache if first is None else first
        assert cache.k is first.k and cache.length == 8  # reused, never appended
        torch.testing.assert_close(out[:, 0], full[:, t], atol=ATOL, rtol=1e-5)
        if need_weights:
            torch.testing.assert_close(w[:, :, 0], w_full[:, :, t], atol=ATOL, rtol=1e-5)


def test_kv_cache_reorder_picks_rows():
    mha = make(8)
    x, _ = data(8, B=3, T=4)
    _, _, cache = mha(x, x, x, causal_mask(4)[None, None], use_cache=True)
    picked = cache.reorder(torch.tensor([2, 0, 0]))
    assert torch.equal(picked.k[0], cache.k[2]) and torch.equal(picked.v[2], cache.v[0])
    assert picked.k.shape == (3, H, 4, D // H)


def test_cache_misuse_is_explained():
    mha = make(9)
    x, _ = data(9, B=2, T=3)
    _, _, cache = mha(x, x, x, use_cache=True)
    with pytest.raises(ValueError, match="use_cache=True"):
        mha(x, x, x, cache=cache)
    with pytest.raises(ValueError, match=r"cache.k: expected shape \(2, 4, L, 4\), got \(1, 4, 3, 4\)"):
        mha(x[:1].expand(2, -1, -1), x[:2], x[:2], cache=cache.reorder(torch.tensor([0])), use_cache=True)
    with pytest.raises(TypeError, match="KVCache"):
        mha(x, x, x, cache=(cache.k, cache.v), use_cache=True)


# ----------------------------------------------------------------- seams ---

class Scaled(MultiHeadAttention):
    """A toy position transform: q and k scaled by 1 + position / 10; records what it is given."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[list[int], list[int]]] = []

    def transform_qk(self, q, k, q_pos, k_pos):
        self.seen.append((q_pos.tolist(), k_pos.tolist()))
        return q * (1 + q_pos[:, None] / 10), k * (1 + k_pos[:, None] / 10)  # (B, H, T, Dh), (B, Hkv, S, Dh)


class Distance(MultiHeadAttention):
    """An ALiBi-like bias: minus a per-head slope times the distance to the key."""

    def score_bias(self, q_pos, k_pos):
        slopes = torch.arange(1, self.num_heads + 1, dtype=torch.float32) / 4  # (H,)
        distance = (q_pos[:, None] - k_pos[None, :]).abs().float()  # (T, S)
        return -slopes[:, None, None] * distance  # (H, T, S)


@pytest.mark.parametrize("cls", [Scaled, Distance])
@pytest.mark.parametrize("kv_heads", [None, 2])
def test_subclass_seams_change_the_output_and_agree_with_the_cache(cls, kv_heads):
    base, sub = make(10, kv_heads=kv_heads), make(10, kv_heads=kv_heads, cls=cls)
    x, _ = data(10, B=2, T=6)
    causal = causal_mask(6)[None, None]
    plain, _ = base(x, x, x, causal)
    full, w_full = sub(x, x, x, causal)
    fused, _ = sub(x, x, x, causal, need_weights=False)
    assert not torch.allclose(plain, full, atol=1e-3), "the seam must change the output"
    torch.testing.assert_close(fused, full, atol=ATOL, rtol=1e-5)
    if cls is Scaled:
        assert sub.seen == [(list(range(6)), list(range(6)))] * 2
        sub.seen.clear()
    cache = None
    for t in range(6):
        step = x[:, t:t + 1]
        out, w, cache = sub(step, step, step, cache=cache, use_cache=True)
        torch.testing.assert_close(out[:, 0], full[:, t], atol=ATOL, rtol=1e-5)
        torch.testing.assert_close(w[:, :, 0], w_full[:, :, t, : t + 1], atol=ATOL, rtol=1e-5)
    if cls is Scaled:  # step t: the query at position t, the one new key at position t
        assert sub.seen == [([t], [t]) for t in range(6)]


def test_split_and_merge_heads_are_inverse():
    mha = make(11)
    x = torch.randn(2, 5, D)
    heads = mha.split_heads(x, H)
    assert heads.shape == (2, H, 5, D // H)
    assert torch.equal(heads[:, 1], x[:, :, 4:8])
    assert torch.equal(mha.merge_heads(heads), x)


# -------------------------------------------------------- sliding window ---

@pytest.mark.parametrize("T,window", [(6, 1), (6, 3), (5, 5), (4, 9)])
def test_sliding_window_mask_sees_exactly_the_last_window_steps(T, window):
    mask = sliding_window_mask(T, window)
    assert mask.dtype == torch.bool and mask.shape == (T, T)
    for t in range(T):
        assert [s for s in range(T) if mask[t, s]] == list(range(max(0, t - window + 1), t + 1)), t


def test_sliding_window_mask_on_both_paths():
    mha = make(12)
    x, _ = data(12, B=2, T=7)
    mask = sliding_window_mask(7, 3)[None, None]  # (1, 1, T, T)
    explicit, weights = mha(x, x, x, mask)
    fused, _ = mha(x, x, x, mask, need_weights=False)
    torch.testing.assert_close(fused, explicit, atol=ATOL, rtol=1e-5)
    assert (weights[~mask.expand_as(weights)] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, H, 7))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="window"):
            sliding_window_mask(5, bad)


# ------------------------------------------------------------ mask rules ---

@pytest.mark.parametrize("b", [1, 2, 3, 4])
@pytest.mark.parametrize("t", [1, 2, 3, 4])
@pytest.mark.parametrize("s", [1, 3, 4])
def test_a_batch_by_keys_mask_is_never_read_as_queries_by_keys(b, t, s):
    mha = make(13)
    g = torch.Generator().manual_seed(b * 100 + t * 10 + s)
    query, memory = torch.randn(b, t, D, generator=g), torch.randn(b, s, D, generator=g)
    keep = padding_mask(torch.randint(1, s + 1, (b,), generator=g), s, ndim=2)  # (B, S)
    for need_weights in (True, False):
        right, _ = mha(query, memory, memory, keep[:, None, None, :], need_weights=need_weights)
        try:
            got, _ = mha(query, memory, memory, keep, need_weights=need_weights)
        except ValueError as err:
            assert "accepted" in str(err) and "(B or 1, H or 1, T or 1, S or 1)" in str(err)
        else:
            torch.testing.assert_close(got, right, atol=ATOL, rtol=1e-5)
    if b == t > 1:
        with pytest.raises(ValueError, match=r"ambiguous.*batch size B=" + str(b)):
            mha(query, memory, memory, keep)
    for module in (DotProductAttention(), AdditiveAttention(D, D, 8)):  # the single-head rule
        right, _ = module(query, memory, memory, keep[:, None, :])
        try:
            got, _ = module(query, memory, memory, keep)
        except ValueError as err:
            assert "accepted" in str(err) and "(B or 1, T or 1, S or 1)" in str(err)
        else:
            torch.testing.assert_close(got, right, atol=ATOL, rtol=1e-5)
        if b == t > 1:
            with pytest.raises(ValueError, match="ambiguous"):
                module(query, memory, memory, keep)


def test_three_dim_masks_with_batch_equal_to_heads_are_rejected():
    mha = make(14)  # H = 4
    x, mem = data(14, B=4, T=3, S=5)
    for shape in [(4, 3, 5), (4, 1, 5)]:  # (B, T, S) and (B, 1, S) with B == H
        with pytest.raises(ValueError) as err:
            mha(x, mem, mem, torch.ones(shape, dtype=torch.bool))
        message = str(err.value)
        assert "ambiguous" in message and str(shape) in message and "(B or 1, H or 1, T or 1, S or 1)" in message
    mha(x, mem, mem, torch.ones(1, 3, 5, dtype=torch.bool))  # a leading 1 is unambiguous
    x2, mem2 = data(14, B=2, T=3, S=5)
    mha(x2, mem2, mem2, torch.ones(4, 3, 5, dtype=torch.bool))  # (H, T, S) with B != H


def test_masks_of_the_wrong_rank_are_rejected():
    mha = make(15)
    x, mem = data(15, B=2, T=3, S=5)
    with pytest.raises(ValueError, match=r"mask: expected 1 to 4 dims .* got 5 dims"):
        mha(x, mem, mem, torch.ones(2, 1, 1, 3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask: expected 1 to 3 dims .* got 4 dims"):
        DotProductAttention()(x, mem, mem, torch.ones(2, 1, 3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask: expected 1 to 4 dims .* got 0 dims"):
        mha(x, mem, mem, torch.tensor(True))


# ------------------------------------------------------------ padding_mask ---

def test_padding_mask_layouts():
    lengths = torch.tensor([3, 1, 0])
    flat = padding_mask(lengths, 4, ndim=2)
    assert flat.tolist() == [[True, True, True, False], [True, False, False, False], [False] * 4]
    assert torch.equal(padding_mask(lengths, 4, ndim=3), flat[:, None, :])
    assert torch.equal(padding_mask(lengths, 4), flat[:, None, None, :])
    assert padding_mask(lengths).shape == (3, 1, 1, 3)  # max_len defaults to the longest
    assert padding_mask([2, 2], ndim=2).all()
    assert padding_mask(torch.zeros(0, dtype=torch.long), 5).shape == (0, 1, 1, 5)


def test_padding_mask_bad_inputs():
    with pytest.raises(ValueError, match=r"lengths: expected values <= max_len=3, got \[4, 1\]"):
        padding_mask(torch.tensor([4, 1]), 3)
    with pytest.raises(ValueError, match=r"lengths: expected values >= 0, got \[-1, 2\]"):
        padding_mask(torch.tensor([-1, 2]), 3)
    with pytest.raises(ValueError, match="ndim"):
        padding_mask(torch.tensor([1]), 3, ndim=5)
    with pytest.raises(TypeError, match="lengths: expected integer"):
        padding_mask(torch.tensor([1.0, 2.0]), 3)
    with pytest.raises(ValueError, match=r"lengths: expected shape \(B,\), got \(2, 1\)"):
        padding_mask(torch.tensor([[1], [2]]), 3)


# ------------------------------------------------------ constructor checks ---

@pytest.mark.parametrize("kwargs,match", [
    ({"d_model": 16, "num_heads": 0}, r"num_heads: expected an int >= 1, got 0"),
    ({"d_model": 16, "num_heads": -4}, r"num_heads: expected an int >= 1, got -4"),
    ({"d_model": 16, "num_heads": 4.0}, r"num_heads: expected an int >= 1, got 4.0"),
    ({"d_model": 0, "num_heads": 1}, r"d_model: expected an int >= 1, got 0"),
    ({"d_model": 16, "num_heads": 4, "dropout": -0.1}, r"dropout: expected a probability in \[0, 1\), got -0.1"),
    ({"d_model": 16, "num_heads": 4, "dropout": 1.0}, r"dropout: expected a probability in \[0, 1\), got 1.0"),
    ({"d_model": 16, "num_heads": 4, "num_kv_heads": 0}, r"num_kv_heads: expected an int >= 1, got 0"),
])
def test_constructor_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(**kwargs)


def test_need_weights_false_leaves_no_stale_weights():
    mha = make(16)
    x, _ = data(16)
    _, w = mha(x, x, x)
    assert torch.equal(mha.attention_weights, w.detach())
    _, none = mha(x, x, x, need_weights=False)
    assert none is None and mha.attention_weights is None
