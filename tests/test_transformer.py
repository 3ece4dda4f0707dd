"""The tiny Transformer of notebook 06: shapes, masks, greedy decoding, shape errors."""
from __future__ import annotations

import pytest
import torch

from course_utils.data import make_batch, make_corpus
from course_utils.train import attention_alignment, evaluate, translate
from course_utils.transformer import Transformer, TransformerConfig

V_SRC, V_TGT, PAD = 23, 19, 0


def small_model(seed: int = 0, norm_first: bool = True, **kw) -> Transformer:
    torch.manual_seed(seed)
    cfg = TransformerConfig(V_SRC, V_TGT, d_model=16, num_heads=4, num_layers=2, d_ff=32,
                            max_len=40, norm_first=norm_first, **kw)
    return Transformer(cfg).eval()


def random_batch(seed: int, B: int = 3, S: int = 7, T: int = 6) -> tuple[torch.Tensor, ...]:
    """Tokens 4.. (no specials) with lengths S, S-2, ..., padding after each length."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([max(1, S - 2 * i) for i in range(B)])
    src = torch.randint(4, V_SRC, (B, S), generator=g)
    src[torch.arange(S)[None, :] >= lengths[:, None]] = PAD
    tgt_in = torch.randint(4, V_TGT, (B, T), generator=g)
    tgt_in[:, 0] = 1  # <bos>
    return src, lengths, tgt_in


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shapes_and_kept_weights(seed, norm_first):
    model = small_model(seed, norm_first)
    src, lengths, tgt_in = random_batch(seed)
    logits, weights = model(src, lengths, tgt_in)
    assert logits.shape == (3, 6, V_TGT)
    assert weights.shape == (3, 6, 7)
    assert model.has_attention
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 6))
    enc, dec_self, cross = model.attention_maps(src, lengths, tgt_in)
    assert [w.shape for w in cross] == [(3, 4, 6, 7)] * 2
    assert [w.shape for w in dec_self] == [(3, 4, 6, 6)] * 2
    assert [w.shape for w in enc] == [(3, 4, 7, 7)] * 2
    torch.testing.assert_close(weights, cross[-1].mean(1))
    # padding gets exactly zero weight, in the encoder and in the cross-attention
    pad = (torch.arange(7)[None, :] >= lengths[:, None])  # (B, S)
    assert (cross[-1].masked_select(pad[:, None, None, :]) == 0).all()
    assert (enc[0].masked_select(pad[:, None, None, :]) == 0).all()
    # causal: no weight on later target positions
    assert (dec_self[0].triu(1) == 0).all()


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_extra_source_padding_changes_nothing(seed, norm_first):
    model = small_model(seed, norm_first)
    src, lengths, tgt_in = random_batch(seed)
    logits, weights = model(src, lengths, tgt_in)
    padded = torch.cat([src, torch.full((3, 5), PAD)], dim=1)  # (B, S + 5)
    logits2, weights2 = model(padded, lengths, tgt_in)
    torch.testing.assert_close(logits2, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights2[..., :7], weights, atol=1e-6, rtol=1e-5)
    assert (weights2[..., 7:] == 0).all()


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_extra_target_padding_and_batch_neighbours_change_nothing(seed, norm_first):
    model = small_model(seed, norm_first)
    src, lengths, tgt_in = random_batch(seed)
    logits, _ = model(src, lengths, tgt_in)
    longer = torch.cat([tgt_in, torch.full((3, 4), PAD)], dim=1)  # (B, T + 4)
    logits2, _ = model(src, lengths, longer)
    torch.testing.assert_close(logits2[:, :6], logits, atol=1e-5, rtol=1e-5)
    # the last (shortest) sentence alone, without its neighbours' padding
    n = int(lengths[-1])
    alone, _ = model(src[-1:, :n], lengths[-1:], tgt_in[-1:])
    torch.testing.assert_close(alone, logits[-1:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_causal_a_later_target_token_does_not_change_earlier_logits(seed, norm_first):
    model = small_model(seed, norm_first)
    src, lengths, tgt_in = random_batch(seed)
    logits, _ = model(src, lengths, tgt_in)
    k = 3
    changed = tgt_in.clone()
    changed[:, k] = 4 + (changed[:, k] - 4 + 1) % (V_TGT - 4)  # another real token
    logits2, _ = model(src, lengths, changed)
    torch.testing.assert_close(logits2[:, :k], logits[:, :k], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(logits2[:, k], logits[:, k]), "position k itself must see its own token"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_decode_equals_step_by_step_argmax(seed):
    model = small_model(seed)
    src, lengths, _ = random_batch(seed)
    tokens, weights = model.greedy_decode(src, lengths, max_len=9)
    assert tokens.shape[0] == 3 and 1 <= tokens.shape[1] <= 9
    assert weights.shape == (3, tokens.shape[1], 7)
    # step by step, the slow way: teacher-forced passes over the growing prefix
    ys = torch.full((3, 1), model.bos_id)
    done = torch.zeros(3, dtype=torch.bool)
    for _ in range(tokens.shape[1]):
        logits, w = model(src, lengths, ys)
        nxt = logits[:, -1].argmax(-1).masked_fill(done, model.eos_id)
        ys = torch.cat([ys, nxt[:, None]], 1)
        done |= nxt == model.eos_id
    assert torch.equal(ys[:, 1:], tokens)
    torch.testing.assert_close(w, weights)  # the last pass holds every step's weights
    # a teacher-forced pass over the decoded words predicts those same words
    logits, _ = model(src, lengths, ys[:, :-1])
    first_eos = (tokens == model.eos_id).int().cumsum(1) <= 1  # up to and including <eos>
    assert torch.equal(logits.argmax(-1)[first_eos], tokens[first_eos])


def test_greedy_decode_respects_max_len():
    model = small_model(0)
    src, lengths, _ = random_batch(0)
    tokens, weights = model.greedy_decode(src, lengths, max_len=3)
    assert tokens.shape[1] <= 3 and weights.shape[1] == tokens.shape[1]


def test_bad_shapes_name_the_argument_and_shapes():
    model = small_model(0)
    src, lengths, tgt_in = random_batch(0)
    with pytest.raises(ValueError, match=r"src: expected shape \(B, S\), got \(7,\)"):
        model(src[0], lengths, tgt_in)
    with pytest.raises(ValueError, match=r"tgt_in: expected shape \(B=3, T\), got \(2, 6\)"):
        model(src, lengths, tgt_in[:2])
    with pytest.raises(ValueError, match=r"src_lengths: expected shape \(B=3,\), got \(2,\)"):
        model(src, lengths[:2], tgt_in)
    with pytest.raises(ValueError, match=r"src_lengths: expected values in 1..S=7 .*\(3, 7\)"):
        model(src, lengths + 1, tgt_in)
    long_src = torch.full((1, 41), 5)
    with pytest.raises(ValueError, match=r"src: expected at most max_len=40 steps, got \(1, 41\)"):
        model(long_src, torch.tensor([41]), tgt_in[:1])
    with pytest.raises(ValueError, match=r"tgt_in: expected at most max_len=40 steps, got \(3, 41\)"):
        model(src, lengths, torch.ones(3, 41, dtype=torch.long))


def test_works_with_the_course_training_helpers():
    corpus = make_corpus(n_train=8, n_valid=2, n_test=6, max_len=12, seed=0)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(len(corpus.src_vocab), len(corpus.tgt_vocab), d_model=16,
                                          num_heads=2, num_layers=1, d_ff=16)).eval()
    hyps, attn = translate(model, corpus.test, corpus.src_vocab, corpus.tgt_vocab)
    assert len(hyps) == 6
    batch = make_batch(corpus.test, corpus.src_vocab, corpus.tgt_vocab)
    tokens, _ = model.greedy_decode(batch.src, batch.src_lengths, max_len=batch.src.shape[1] + 5)
    for pair, words, w in zip(corpus.test, hyps, attn):
        # one row per decoded word and <eos> (cut at the decoded length), one column per source word
        assert w.shape == (min(len(words) + 1, tokens.shape[1]), len(pair.src))
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[0]))  # no weight on padding
    align = attention_alignment(model, corpus.test, corpus.src_vocab, corpus.tgt_vocab)
    _, teacher = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, S)
    for i, (pair, (hits, counted)) in enumerate(zip(corpus.test, align)):
        gold = pair.aligned_source()
        assert counted == sum(1 for g in gold if g), "target words with a gold alignment are counted"
        assert hits == sum(int(teacher[i, t].argmax()) in g for t, g in enumerate(gold) if g)
    report = evaluate(model, corpus.test, corpus.src_vocab, corpus.tgt_vocab)
    assert "alignment" in report.overall and report.overall["n"] == 6
    logits, weights = model(batch.src, batch.src_lengths, batch.tgt_in)
    assert weights.shape == (6, batch.tgt_in.shape[1], batch.src.shape[1])
