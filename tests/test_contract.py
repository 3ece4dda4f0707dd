"""One contract, every translation model: course_utils.protocols.TranslationModel.

Run over Seq2Seq with a fixed context, Seq2Seq with attention and the
Transformer; each test is written once against the protocol.
"""
from __future__ import annotations

import inspect

import pytest
import torch

from course_utils.data import Vocab
from course_utils.models import Seq2Seq, Seq2SeqConfig
from course_utils.protocols import TranslationModel, greedy_decode
from course_utils.transformer import Transformer, TransformerConfig

V_SRC, V_TGT = 23, 19
FAMILIES = ["fixed", "additive", "transformer"]


def build(family: str, seed: int = 0):
    torch.manual_seed(seed)
    if family == "transformer":
        model = Transformer(TransformerConfig(V_SRC, V_TGT, d_model=16, num_heads=4, num_layers=2, d_ff=32,
                                              max_len=40))
    else:
        cfg = Seq2SeqConfig(V_SRC, V_TGT, emb_dim=8, hidden_dim=8)
        model = Seq2Seq.build(cfg, None if family == "fixed" else family)
    return model.eval()


def batch(seed: int = 0, B: int = 4, S: int = 7, T: int = 5):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([S, S - 2, 1, S - 1][:B])
    src = torch.randint(4, V_SRC, (B, S), generator=g)
    src[torch.arange(S)[None, :] >= lengths[:, None]] = Vocab.pad_id
    tgt_in = torch.randint(4, V_TGT, (B, T), generator=g)
    tgt_in[:, 0] = Vocab.bos_id
    return src, lengths, tgt_in


@pytest.fixture(params=FAMILIES)
def model(request):
    return build(request.param)


def test_the_protocol_and_its_attributes(model):
    assert isinstance(model, TranslationModel)
    assert isinstance(inspect.getattr_static(type(model), "has_attention"), property)
    assert (model.bos_id, model.eos_id, model.pad_id) == (Vocab.bos_id, Vocab.eos_id, Vocab.pad_id)
    assert model.has_attention == (not isinstance(model, Seq2Seq) or model.decoder.has_attention)


def test_forward_shapes_and_differentiable_weights(model):
    src, lengths, tgt_in = batch()
    logits, weights = model(src, lengths, tgt_in)
    assert logits.shape == (4, 5, V_TGT)
    if not model.has_attention:
        assert weights is None
        return
    assert weights.shape == (4, 5, 7) and weights.requires_grad, "weights are returned with their graph"
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 5))
    pad = torch.arange(7)[None, :] >= lengths[:, None]  # (B, S)
    assert (weights.masked_select(pad[:, None, :]) == 0).all()
    weights[:, :, 0].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_decode_steps_equal_the_teacher_forced_pass(model):
    src, lengths, tgt_in = batch(1)
    logits, weights = model(src, lengths, tgt_in)
    for use_cache in (True, False):
        state = model.start_decoding(src, lengths, use_cache=use_cache)
        for t in range(tgt_in.shape[1]):
            step_logits, w, state = model.decode_step(state, tgt_in[:, t])
            assert step_logits.shape == (4, V_TGT)
            torch.testing.assert_close(step_logits, logits[:, t], atol=1e-5, rtol=1e-5)
            if weights is None:
                assert w is None
            else:
                torch.testing.assert_close(w, weights[:, t], atol=1e-5, rtol=1e-5)


def test_greedy_decode_is_decode_step_argmax(model):
    src, lengths, _ = batch(2)
    tokens, weights = model.greedy_decode(src, lengths, max_len=8)
    assert tokens.dtype == torch.long and tokens.shape[0] == 4 and 1 <= tokens.shape[1] <= 8
    state, prev = model.start_decoding(src, lengths), torch.full((4,), model.bos_id)
    done = torch.zeros(4, dtype=torch.bool)
    for t in range(tokens.shape[1]):
        logits, w, state = model.decode_step(state, prev)
        prev = logits.argmax(-1).masked_fill(done, model.eos_id)
        assert torch.equal(prev, tokens[:, t])
        if weights is not None:
            torch.testing.assert_close(w, weights[:, t])
        done |= prev == model.eos_id
    after_eos = (tokens == model.eos_id).int().cumsum(1) > 0  # the first <eos> and every step after it
    assert (tokens[after_eos] == model.eos_id).all(), "positions after <eos> hold <eos>"
    assert (weights is None) == (not model.has_attention)
    if weights is not None:
        assert weights.shape == (4, tokens.shape[1], 7)


def test_cached_and_uncached_decoding_agree(model):
    src, lengths, _ = batch(3)
    cached, w_cached = greedy_decode(model, src, lengths, max_len=10, use_cache=True)
    plain, w_plain = greedy_decode(model, src, lengths, max_len=10, use_cache=False)
    assert torch.equal(cached, plain)
    if w_cached is not None:
        torch.testing.assert_close(w_cached, w_plain, atol=1e-5, rtol=1e-5)


def test_reorder_state_picks_and_repeats_sentences(model):
    src, lengths, tgt_in = batch(4)
    index = torch.tensor([2, 0, 0])
    state = model.reorder_state(model.start_decoding(src, lengths), index)
    alone = model.start_decoding(src[index], lengths[index])
    for t in range(3):
        a, wa, state = model.decode_step(state, tgt_in[index, t])
        b, wb, alone = model.decode_step(alone, tgt_in[index, t])
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        if wa is not None:
            torch.testing.assert_close(wa, wb, atol=1e-5, rtol=1e-5)
    state = model.reorder_state(state, torch.tensor([1]))  # also after some steps (caches filled)
    alone = model.reorder_state(alone, torch.tensor([1]))
    a, _, _ = model.decode_step(state, torch.tensor([5]))
    b, _, _ = model.decode_step(alone, torch.tensor([5]))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_max_len_zero_gives_empty_results(model):
    src, lengths, _ = batch(5)
    model.greedy_decode(src, lengths, max_len=4)  # an earlier call must leave nothing behind
    tokens, weights = model.greedy_decode(src, lengths, max_len=0)
    assert tokens.shape == (4, 0) and tokens.dtype == torch.long
    assert (weights is None) if not model.has_attention else (weights.shape == (4, 0, 7))
    for bad in (-1, 2.5, None):
        with pytest.raises(ValueError, match="max_len: expected an int >= 0"):
            model.greedy_decode(src, lengths, max_len=bad)


@pytest.mark.parametrize("lengths,match", [
    ([7, 0, 3, 1], r"src_lengths: expected values in 1..S=7 .* got \[7, 0, 3, 1\]"),
    ([7, -2, 3, 1], r"src_lengths: expected values in 1..S=7"),
    ([8, 2, 3, 1], r"src_lengths: expected values in 1..S=7"),
])
def test_bad_source_lengths_are_explained(model, lengths, match):
    src, _, tgt_in = batch(6)
    for call in (lambda: model(src, torch.tensor(lengths), tgt_in),
                 lambda: model.greedy_decode(src, torch.tensor(lengths)),
                 lambda: model.start_decoding(src, torch.tensor(lengths))):
        with pytest.raises(ValueError, match=match):
            call()


def test_an_empty_batch_is_explained(model):
    with pytest.raises(ValueError, match=r"src: expected at least one sentence, got shape \(0, 7\)"):
        model(torch.zeros(0, 7, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="src_lengths: expected integer lengths"):
        model.greedy_decode(torch.zeros(2, 7, dtype=torch.long), torch.tensor([7.0, 3.0]))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("norm_first", [True, False])
def test_transformer_kv_cache_equals_recomputation_over_long_outputs(seed, norm_first):
    torch.manual_seed(seed)
    model = Transformer(TransformerConfig(V_SRC, V_TGT, d_model=16, num_heads=4, num_layers=2, d_ff=32,
                                          max_len=40, norm_first=norm_first)).eval()
    with torch.no_grad():
        model.out.bias[model.eos_id] = -1e4  # never stop: every sentence decodes all 30 steps
    src, lengths, _ = batch(seed)
    cached, w_cached = model.greedy_decode(src, lengths, max_len=30)
    plain, w_plain = model.greedy_decode(src, lengths, max_len=30, use_cache=False)
    assert cached.shape == (4, 30) and torch.equal(cached, plain)
    torch.testing.assert_close(w_cached, w_plain, atol=1e-5, rtol=1e-5)
    state = model.start_decoding(src, lengths)
    for t in range(3):
        _, _, state = model.decode_step(state, cached[:, t])
    assert [c.length for pair in state.caches for c in pair] == [3, 7] * 2  # self grows, cross holds S
    assert model.greedy_decode(src, lengths, max_len=60)[0].shape == (4, 40), "at most cfg.max_len steps"
    state, prev = model.start_decoding(src, lengths), torch.full((4,), model.bos_id)
    for _ in range(40):
        _, _, state = model.decode_step(state, prev)
    with pytest.raises(ValueError, match="step 41 is past max_len=40"):
        model.decode_step(state, prev)
