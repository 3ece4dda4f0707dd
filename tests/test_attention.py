"""Tests of course_utils.attention (and multihead): shapes, masks, weights, references.

Offline, CPU, float32, a few seconds. References are PyTorch's own
``nn.MultiheadAttention`` and ``F.scaled_dot_product_attention``.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_utils.attention import (
    AdditiveAttention,
    Attention,
    ConcatLinearAttention,
    DotProductAttention,
    GeneralAttention,
    MultiHeadAttention,
    PositionalEncoding,
    attention,
    causal_mask,
    masked_softmax,
    padding_mask,
)

B, T, S, DQ, DK, DV = 2, 5, 7, 6, 4, 3
ATOL = 1e-5
few = settings(max_examples=40, deadline=None)


def scoring_modules() -> dict[str, Attention]:
    """Every scoring attention, built for queries (B, T, DQ) and keys (B, S, DK)."""
    torch.manual_seed(0)
    return {
        "additive": AdditiveAttention(DQ, DK, hidden_dim=8),
        "general": GeneralAttention(DQ, DK),
        "concat": ConcatLinearAttention(DQ, DK),
        "dot": DotProductAttention(),  # needs Dk == Dq: fed DQ-wide keys below
        "dot_unscaled": DotProductAttention(scaled=False),
    }


def inputs_for(name: str, batch: int = B, t: int = T, s: int = S, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    dk = DQ if name.startswith("dot") else DK
    return (torch.randn(batch, t, DQ, generator=g), torch.randn(batch, s, dk, generator=g),
            torch.randn(batch, s, DV, generator=g))


@st.composite
def scores_and_masks(draw):
    """Random (b, t, s) scores and a random mask of one of the broadcastable shapes."""
    b, t, s = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(b, t, s, generator=g) * draw(st.sampled_from([1.0, 30.0]))
    shape = draw(st.sampled_from([(b, t, s), (b, 1, s), (t, s), (s,)]))
    if shape == (t, s) and b == t > 1:  # could be (B, S) as well: refused as ambiguous (test_checks)
        shape = (1, t, s)
    mask = torch.rand(shape, generator=g) < draw(st.sampled_from([0.2, 0.6, 1.0]))
    return scores, mask


# ------------------------------------------------------------ masked_softmax ---

@few
@given(scores_and_masks())
def test_masked_softmax_properties(case):
    scores, mask = case
    scores = scores.requires_grad_()
    scores_before, mask_before = scores.detach().clone(), mask.clone()
    weights = masked_softmax(scores, mask)
    full = mask.expand_as(weights)
    assert weights.shape == scores.shape
    assert torch.isfinite(weights).all()
    assert (weights[~full] == 0).all(), "masked positions must get exactly 0"
    sums = weights.sum(-1)
    has_key = full.any(-1)
    assert torch.allclose(sums[has_key], torch.ones_like(sums[has_key]), atol=ATOL)
    assert (sums[~has_key] == 0).all(), "a fully masked row must be all zeros"
    (weights * torch.randn_like(weights)).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[~full] == 0).all()
    assert torch.equal(scores.detach(), scores_before) and torch.equal(mask, mask_before)


def test_masked_softmax_matches_softmax_without_mask_and_other_dims():
    scores = torch.randn(3, 4, 5)
    assert torch.allclose(masked_softmax(scores), torch.softmax(scores, -1))
    mask = torch.rand(3, 4, 5) < 0.7
    mask[:, 0, :] = True  # every column keeps a key along dim 1
    expected = torch.softmax(scores.masked_fill(~mask, -math.inf), 1)
    assert torch.allclose(masked_softmax(scores, mask, dim=1), expected, atol=ATOL)


def test_masked_softmax_fully_masked_row_is_zero_with_finite_gradient():
    scores = torch.randn(2, 3, 4, requires_grad=True)
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[1, 2] = False
    weights = masked_softmax(scores, mask)
    assert torch.equal(weights[1, 2], torch.zeros(4))
    weights.pow(2).sum().backward()
    assert torch.isfinite(scores.grad).all() and torch.equal(scores.grad[1, 2], torch.zeros(4))


def test_masked_softmax_rejects_bad_masks():
    scores = torch.randn(2, 3, 4)
    with pytest.raises(ValueError) as err:
        masked_softmax(scores, torch.ones(2, 3, 5, dtype=torch.bool))
    assert all(part in str(err.value) for part in ("mask", "(2, 3, 5)", "(2, 3, 4)"))
    with pytest.raises(TypeError, match="mask.*bool"):
        masked_softmax(scores, torch.ones(2, 3, 4))


# -------------------------------------------------------- scoring attentions ---

@pytest.mark.parametrize("name", list(scoring_modules()))
@pytest.mark.parametrize("mask_shape", [None, (B, 1, S), (T, S), (B, T, S)])
def test_scoring_attention_shapes_weights_and_untouched_inputs(name, mask_shape):
    module = scoring_modules()[name]
    queries, keys, values = inputs_for(name)
    mask = None
    if mask_shape is not None:
        mask = torch.rand(mask_shape, generator=torch.Generator().manual_seed(1)) < 0.6
        mask[..., 0] = True  # every query keeps a key
    clones = [x.clone() for x in (queries, keys, values)] + ([mask.clone()] if mask is not None else [])
    context, weights = module(queries, keys, values, mask)
    assert context.shape == (B, T, DV) and weights.shape == (B, T, S)
    assert torch.allclose(weights.sum(-1), torch.ones(B, T), atol=ATOL)
    if mask is not None:
        assert (weights[~mask.expand(B, T, S)] == 0).all()
    assert torch.allclose(context, weights @ values, atol=ATOL)
    assert torch.equal(module.attention_weights, weights.detach())
    assert not module.attention_weights.requires_grad
    after = [queries, keys, values] + ([mask] if mask is not None else [])
    assert all(torch.equal(a, b) for a, b in zip(after, clones))


@pytest.mark.parametrize("name", list(scoring_modules()))
def test_scoring_attention_fully_masked_query_gives_zeros_and_finite_gradients(name):
    module = scoring_modules()[name]
    queries, keys, values = (x.requires_grad_() for x in inputs_for(name))
    mask = padding_mask([S, 0], S, ndim=3)  # (B, 1, S): the second sentence has no keys at all
    context, weights = module(queries, keys, values, mask)
    assert torch.equal(weights[1], torch.zeros(T, S)) and torch.equal(context[1], torch.zeros(T, DV))
    (context.sum() + weights.sum()).backward()
    grads = [queries.grad, keys.grad, values.grad] + [p.grad for p in module.parameters()]
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("scaled", [True, False])
def test_dot_product_attention_equals_sdpa(scaled):
    queries, keys, values = inputs_for("dot")
    mask = padding_mask([S, 3], S, ndim=3)  # (B, 1, S)
    context, _ = DotProductAttention(scaled=scaled)(queries, keys, values, mask)
    expected = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask,
                                              scale=None if scaled else 1.0)
    assert torch.allclose(context, expected, atol=ATOL)


def test_functional_attention_equals_sdpa_with_leading_dims():
    g = torch.Generator().manual_seed(3)
    q, k, v = torch.randn(2, 3, 5, 8, generator=g), torch.randn(2, 3, 7, 8, generator=g), torch.randn(2, 3, 7, 4, generator=g)
    mask = causal_mask(5, 7)
    for scale in (None, 0.3):
        context, weights = attention(q, k, v, mask, scale=scale)
        assert context.shape == (2, 3, 5, 4) and weights.shape == (2, 3, 5, 7)
        assert torch.allclose(context, F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale), atol=ATOL)


def test_additive_weights_follow_the_query():
    # Regression test for the concat-then-linear pitfall of notebook 03: a query-blind score gives one row for all queries.
    module = scoring_modules()["additive"]
    queries, keys, values = inputs_for("additive")
    _, weights = module(queries, keys, values)
    spread = (weights - weights[:, :1]).abs().amax(dim=(1, 2))  # (B,) largest gap to the first row
    assert (spread > 1e-3).all(), "additive attention must give different weights to different queries"


def test_concat_linear_weights_ignore_the_query():
    module = scoring_modules()["concat"]
    queries, keys, values = inputs_for("concat")
    _, weights = module(queries, keys, values)
    assert torch.allclose(weights, weights[:, :1].expand(B, T, S), atol=ATOL)
    _, other = module(torch.randn(B, T, DQ) * 10, keys, values)
    assert torch.allclose(other, weights, atol=ATOL), "any query gives the same weights"
    w_k = module.linear.weight[0, :DK]  # the part of the weight that sees the key
    assert torch.allclose(weights[:, 0], torch.softmax(keys @ w_k, -1), atol=ATOL)


def check_message(err: pytest.ExceptionInfo, name: str, got: tuple, expected: str) -> None:
    message = str(err.value)
    assert name in message and str(got) in message and expected in message, message


@pytest.mark.parametrize("name", ["additive", "general", "concat", "dot"])
def test_scoring_attention_bad_shapes_name_argument_got_and_expected(name):
    module = scoring_modules()[name]
    queries, keys, values = inputs_for(name)
    dk = DQ if name == "dot" else DK
    key_letter = "Dq" if name == "dot" else "Dk"
    bad_queries = torch.randn(B, T, DQ + 1)
    if name != "dot":  # dot-product attention takes any query width
        with pytest.raises(ValueError) as err:
            module(bad_queries, keys, values)
        check_message(err, "queries", (B, T, DQ + 1), f"(B, T, Dq={DQ})")
    cases = [
        ("keys", (queries, torch.randn(B, S, dk + 1), values), (B, S, dk + 1), f"(B={B}, S, {key_letter}={dk})"),
        ("keys", (queries, torch.randn(B + 1, S, dk), values), (B + 1, S, dk), f"(B={B}, S, {key_letter}={dk})"),
        ("values", (queries, keys, torch.randn(B, S + 1, DV)), (B, S + 1, DV), f"(B={B}, S={S}, Dv)"),
        ("queries", (queries[0], keys, values), (T, DQ), "(B, T, Dq"),
    ]
    for arg, args, got, expected in cases:
        with pytest.raises(ValueError) as err:
            module(*args)
        check_message(err, arg, got, expected)
    with pytest.raises(ValueError) as err:
        module(queries, keys, values, torch.ones(B, T, S + 1, dtype=torch.bool))
    check_message(err, "mask", (B, T, S + 1), f"(B, T, S) = {(B, T, S)}")
    with pytest.raises(TypeError, match="mask"):
        module(queries, keys, values, torch.ones(B, T, S))


def test_functional_attention_bad_shapes():
    q, k, v = torch.randn(2, 5, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 4)
    with pytest.raises(ValueError) as err:
        attention(q, torch.randn(2, 7, 9), v)
    check_message(err, "keys", (2, 7, 9), "(2, S, Dq=8)")
    with pytest.raises(ValueError) as err:
        attention(q, k, torch.randn(2, 6, 4))
    check_message(err, "values", (2, 6, 4), "(2, S=7, Dv)")
    with pytest.raises(ValueError) as err:
        attention(q, k, v, torch.ones(5, 6, dtype=torch.bool))
    check_message(err, "mask", (5, 6), "(..., T, S) = (2, 5, 7)")


# ------------------------------------------------------- MultiHeadAttention ---

def torch_pair(d_model: int, heads: int, bias: bool, seed: int):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, heads, bias=bias, batch_first=True)
    if bias:  # torch starts its biases at zero: make them count
        nn.init.normal_(theirs.in_proj_bias)
        nn.init.normal_(theirs.out_proj.bias)
    ours = MultiHeadAttention(d_model, heads, bias=bias).load_from_torch(theirs)
    return ours, theirs


@pytest.mark.parametrize("b,t,s,d_model,heads", [(2, 5, 7, 16, 4), (3, 6, 6, 24, 3), (1, 1, 4, 8, 1)])
@pytest.mark.parametrize("mask_kind", ["none", "padding", "causal"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_multihead_equals_torch(b, t, s, d_model, heads, mask_kind, bias, seed):
    ours, theirs = torch_pair(d_model, heads, bias, seed)
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(b, t, d_model, generator=g)
    key, value = (torch.randn(b, s, d_model, generator=g) for _ in range(2))
    if t == s and seed == 1:  # self-attention: torch takes its packed-projection path
        key = value = query
    mask, torch_masks = None, {}
    if mask_kind == "padding":
        lengths = torch.randint(1, s + 1, (b,), generator=g).tolist()
        mask = padding_mask(lengths, s)  # (B, 1, 1, S)
        torch_masks = {"key_padding_mask": ~padding_mask(lengths, s, ndim=2)}  # (B, S), True = ignore
    elif mask_kind == "causal":
        mask = causal_mask(t, s)  # (T, S)
        torch_masks = {"attn_mask": ~mask}
    clones = [x.clone() for x in (query, key, value)]
    expected, expected_weights = theirs(query, key, value, average_attn_weights=False, **torch_masks)
    for need_weights in (True, False):
        out, weights = ours(query, key, value, mask, need_weights=need_weights)
        assert out.shape == (b, t, d_model)
        assert torch.allclose(out, expected, atol=ATOL), f"need_weights={need_weights}"
        with torch.no_grad():  # without autograd the weights are computed in place
            out_no_grad, weights_no_grad = ours(query, key, value, mask, need_weights=need_weights)
        assert torch.equal(out_no_grad, out)
        if need_weights:
            assert weights.shape == (b, heads, t, s)
            assert torch.allclose(weights, expected_weights, atol=ATOL)
            assert torch.equal(weights_no_grad, weights)
            assert torch.equal(ours.attention_weights, weights.detach())
        else:
            assert weights is None
    assert all(torch.equal(x, c) for x, c in zip((query, key, value), clones))


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_fully_masked_query_gives_zeros_and_finite_gradients(need_weights):
    ours, _ = torch_pair(16, 4, True, 0)
    x = torch.randn(2, 5, 16, requires_grad=True)
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[0, :, 3] = False  # query 3 of sentence 0 may attend nowhere, in every head
    out, _ = ours(x, x, x, mask, need_weights=need_weights)
    # An empty context goes through out_proj alone: the output is its bias.
    assert torch.allclose(out[0, 3], ours.out_proj.bias, atol=ATOL)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in ours.parameters())


def test_multihead_explicit_and_fused_paths_agree_with_per_head_masks():
    ours, _ = torch_pair(16, 4, True, 2)
    x = torch.randn(2, 6, 16)
    mask = torch.rand(2, 4, 6, 6, generator=torch.Generator().manual_seed(0)) < 0.5  # some rows empty
    explicit, weights = ours(x, x, x, mask)
    fused, _ = ours(x, x, x, mask, need_weights=False)
    assert torch.allclose(explicit, fused, atol=ATOL)
    assert (weights[~mask] == 0).all()


def test_multihead_padding_does_not_change_outputs():
    ours, _ = torch_pair(16, 4, True, 3)
    query, key = torch.randn(2, 3, 16), torch.randn(2, 4, 16)
    padded = torch.cat([key, torch.randn(2, 5, 16) * 100], dim=1)  # (B, 9, D): junk after step 4
    keep = padding_mask([4, 4], 9)  # (B, 1, 1, 9)
    for need_weights in (True, False):
        plain, _ = ours(query, key, key, need_weights=need_weights)
        masked, _ = ours(query, padded, padded, keep, need_weights=need_weights)
        assert torch.allclose(plain, masked, atol=ATOL)


def test_multihead_self_attention_is_permutation_equivariant():
    ours, _ = torch_pair(16, 4, True, 4)
    x = torch.randn(2, 6, 16)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    out, _ = ours(x, x, x)
    out_perm, _ = ours(x[:, perm], x[:, perm], x[:, perm])
    assert torch.allclose(out[:, perm], out_perm, atol=ATOL)


def test_multihead_dropout_only_in_training():
    ours, theirs = torch_pair(16, 4, True, 5)
    dropping = MultiHeadAttention(16, 4, dropout=0.5).load_from_torch(theirs)
    x = torch.randn(2, 6, 16)
    for need_weights in (True, False):
        dropping.eval()
        assert torch.allclose(dropping(x, x, x, need_weights=need_weights)[0],
                              ours(x, x, x, need_weights=need_weights)[0], atol=ATOL)
        dropping.train()
        assert not torch.allclose(dropping(x, x, x, need_weights=need_weights)[0],
                                  ours(x, x, x, need_weights=need_weights)[0], atol=1e-3)
    _, weights = dropping(x, x, x)  # the returned weights are the distribution before dropout
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 6), atol=ATOL)


def test_multihead_bad_arguments():
    with pytest.raises(ValueError) as err:
        MultiHeadAttention(10, 4)
    assert "d_model=10" in str(err.value) and "num_heads=4" in str(err.value)
    ours = MultiHeadAttention(16, 4)
    x, y = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    cases = [
        ("query", (torch.randn(2, 5, 12), y, y), (2, 5, 12), "(B, T, D=16)"),
        ("key", (x, torch.randn(3, 7, 16), y), (3, 7, 16), "(B=2, S, D=16)"),
        ("value", (x, y, torch.randn(2, 6, 16)), (2, 6, 16), "(B=2, S=7, D=16)"),
        ("mask", (x, y, y, torch.ones(2, 1, 5, 6, dtype=torch.bool)), (2, 1, 5, 6), "(B, H, T, S) = (2, 4, 5, 7)"),
    ]
    for arg, args, got, expected in cases:
        for need_weights in (True, False):
            with pytest.raises(ValueError) as err:
                ours(*args, need_weights=need_weights)
            check_message(err, arg, got, expected)
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(16, 2).load_from_torch(nn.MultiheadAttention(16, 4, batch_first=True))
    with pytest.raises(ValueError, match="bias"):
        MultiHeadAttention(16, 4, bias=False).load_from_torch(nn.MultiheadAttention(16, 4, batch_first=True))


# ------------------------------------------------------ positions and masks ---

@pytest.mark.parametrize("d_model", [8, 7])
def test_positional_encoding_closed_form(d_model):
    module = PositionalEncoding(d_model, max_len=50)
    assert module.pe.shape == (50, d_model)
    for pos in (0, 1, 17, 49):
        for j in range(d_model):
            angle = pos / 10000 ** ((j - j % 2) / d_model)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(module.pe[pos, j].item() - expected) < 1e-6, (pos, j)
    x = torch.randn(3, 20, d_model)
    x_before = x.clone()
    assert torch.allclose(module(x), x + module.pe[:20])
    assert torch.equal(x, x_before)


def test_positional_encoding_errors():
    module = PositionalEncoding(8, max_len=10)
    with pytest.raises(ValueError) as err:
        module(torch.randn(2, 11, 8))
    assert "max_len=10" in str(err.value) and "(2, 11, 8)" in str(err.value)
    with pytest.raises(ValueError) as err:
        module(torch.randn(2, 5, 6))
    check_message(err, "x", (2, 5, 6), "(B, S, D=8)")


@pytest.mark.parametrize("t,s", [(4, None), (3, 5), (5, 3)])
def test_causal_mask_is_lower_triangular(t, s):
    mask = causal_mask(t, s)
    width = t if s is None else s
    assert mask.dtype == torch.bool and mask.shape == (t, width)
    for i in range(t):
        for j in range(width):
            assert mask[i, j].item() == (j <= i), (i, j)


# ---------------------------------------------------------------- benchmark ---

def test_benchmark_quick_run_prints_a_table(capsys):
    from benchmarks.bench_attention import main

    threads = torch.get_num_threads()
    rows = main(["--quick", "--threads", "1", "--repeats", "1", "--device", "cpu"])
    assert torch.get_num_threads() == threads, "the benchmark must give the thread count back"
    out = capsys.readouterr().out
    assert out.startswith("cpu:") and "| explicit | torch MHA, weights |" in out
    assert len(rows) == 4 and all(row["fwd ours"] > 0 and row["fwd+bwd ref"] > 0 for row in rows)
