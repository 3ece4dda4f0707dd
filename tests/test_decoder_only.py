"""The decoder-only translator: one sequence, masks from positions, padding-proof, cached == uncached."""
import pytest
import torch

from course_utils.decoder_only import DecoderOnly, DecoderOnlyConfig, sequence_mask

V_SRC, V_TGT = 11, 13


def make(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = DecoderOnlyConfig(V_SRC, V_TGT, d_model=16, num_heads=4, num_layers=2, d_ff=32, max_len=64, **kw)
    return DecoderOnly(cfg).eval()


def batch(seed=0, lengths=(5, 3, 7), T=6):
    g = torch.Generator().manual_seed(seed)
    S = max(lengths)
    src = torch.randint(4, V_SRC, (len(lengths), S), generator=g)
    lengths = torch.tensor(lengths)
    src[torch.arange(S)[None, :] >= lengths[:, None]] = 0  # padding
    tgt_in = torch.randint(4, V_TGT, (len(lengths), T), generator=g)
    tgt_in[:, 0] = 1  # <bos> = <sep>
    return src, lengths, tgt_in


VARIANTS = [{}, {"prefix": True}, {"window": 3}, {"num_kv_heads": 2}, {"num_kv_heads": 1, "window": 4, "prefix": True}]


@pytest.mark.parametrize("kw", VARIANTS)
def test_shapes_and_weights(kw):
    model = make(**kw)
    src, lengths, tgt_in = batch()
    logits, weights = model(src, lengths, tgt_in)
    assert logits.shape == (3, 6, V_TGT) and weights.shape == (3, 6, 7)
    assert weights.requires_grad, "weights stay differentiable"
    assert (weights[1, :, 3:] == 0).all(), "padded source columns get zero weight"
    assert (weights.sum(-1) <= 1 + 1e-6).all()
    assert model.has_attention and (model.bos_id, model.eos_id, model.pad_id) == (1, 2, 0)


@pytest.mark.parametrize("kw", VARIANTS)
def test_padding_never_changes_an_output(kw):
    model = make(**kw)
    src, lengths, tgt_in = batch()
    with torch.no_grad():
        full, w_full = model(src, lengths, tgt_in)
        for i in range(3):
            n = int(lengths[i])
            alone, w_alone = model(src[i:i + 1, :n], lengths[i:i + 1], tgt_in[i:i + 1, :4])
            assert torch.allclose(full[i, :4], alone[0], atol=1e-5)
            assert torch.allclose(w_full[i, :4, :n], w_alone[0], atol=1e-6)


@pytest.mark.parametrize("prefix", [False, True])
def test_causal_and_prefix(prefix):
    model = make(prefix=prefix)
    src, lengths, tgt_in = batch(lengths=(7, 7, 7))
    other = tgt_in.clone()
    other[:, 3:] = 5
    later_src = src.clone()
    later_src[:, 6] = 4 if int(src[0, 6]) != 4 else 5
    with torch.no_grad():
        h, _ = model.run(src, lengths, tgt_in)
        h_tgt, _ = model.run(src, lengths, other)
        h_src, _ = model.run(later_src, lengths, tgt_in)
    assert torch.allclose(h[:, :10], h_tgt[:, :10], atol=1e-6), "no step sees a later target word"
    seen = (h[:, :6] - h_src[:, :6]).abs().amax()
    assert (seen > 1e-4) == prefix, "only the prefix LM lets source word 7 reach source words 1-6"


def test_sequence_mask_window_and_prefix():
    pos = torch.arange(6)[None]  # (1, 6)
    valid = torch.ones(1, 6, dtype=torch.bool)
    m = sequence_mask(pos, pos, valid, window=3)[0, 0]
    want = torch.tensor([[t - 3 < s <= t for s in range(6)] for t in range(6)])
    assert torch.equal(m, want), "step t sees t - window + 1 .. t"
    is_src = torch.tensor([[True, True, True, False, False, False]])
    p = sequence_mask(pos, pos, valid, is_src, is_src)[0, 0]
    assert p[:3, :3].all() and not p[:3, 3:].any() and torch.equal(p[3:], torch.ones(6, 6).tril().bool()[3:])


def test_gqa_projections():
    model = make(num_kv_heads=2)
    attn = model.blocks[0].attn
    assert attn.k_proj.out_features == attn.v_proj.out_features == 2 * 4  # 2 kv heads of Dh = 4
    assert attn.q_proj.out_features == 16


@pytest.mark.parametrize("kw", VARIANTS)
def test_cached_decoding_equals_uncached(kw):
    model = make(**kw)
    src, lengths, tgt_in = batch()
    with torch.no_grad():
        s1 = model.start_decoding(src, lengths, use_cache=True)
        s0 = model.start_decoding(src, lengths, use_cache=False)
        teacher, w_teacher = model(src, lengths, tgt_in)
        for t in range(tgt_in.shape[1]):
            l1, w1, s1 = model.decode_step(s1, tgt_in[:, t])
            l0, w0, s0 = model.decode_step(s0, tgt_in[:, t])
            assert torch.allclose(l1, l0, atol=1e-5) and torch.allclose(w1, w0, atol=1e-5)
            assert torch.allclose(l1, teacher[:, t], atol=1e-5) and torch.allclose(w1, w_teacher[:, t], atol=1e-5)
        assert all(c.k.shape == (3, kw.get("num_kv_heads", 4), 7 + 6, 4) for c in s1.caches)
    tok1, w1 = model.greedy_decode(src, lengths, max_len=8)
    tok0, w0 = model.greedy_decode(src, lengths, max_len=8, use_cache=False)
    assert torch.equal(tok1, tok0) and torch.allclose(w1, w0, atol=1e-5)


def test_the_protocol_and_the_lesson_07_decoders():
    import inspect

    from course_utils.decoding import beam_search, greedy
    from course_utils.protocols import TranslationModel

    model = make(num_kv_heads=2, prefix=True)
    assert isinstance(model, TranslationModel)
    assert isinstance(inspect.getattr_static(DecoderOnly, "has_attention"), property)
    src, lengths, _ = batch()
    tokens, weights = model.greedy_decode(src, lengths, max_len=8)
    result = greedy(model, src, lengths, max_len=8)
    same = tokens.shape == result.tokens.shape and all(
        torch.equal(tokens[i, :n], result.tokens[i, :n]) for i, n in enumerate(result.lengths.tolist()))
    assert same, "course_utils.decoding.greedy reads the same tokens through decode_step"
    one_beam = beam_search(model, src, lengths, beam_size=1, max_len=8)
    assert torch.equal(one_beam.tokens, result.tokens), "a beam of 1 is greedy, through reorder_state"
    beams = beam_search(model, src, lengths, beam_size=3, max_len=8)
    assert beams.tokens.shape[0] == 3 and torch.isfinite(beams.scores).all()
    assert model.greedy_decode(src, lengths, max_len=0)[0].shape == (3, 0)


def test_reorder_state():
    model = make(num_kv_heads=2)
    src, lengths, tgt_in = batch()
    index = torch.tensor([2, 2, 0])
    with torch.no_grad():
        s = model.start_decoding(src, lengths)
        _, _, s = model.decode_step(s, tgt_in[:, 0])
        s = model.reorder_state(s, index)
        logits, _, _ = model.decode_step(s, tgt_in[index, 1])
        ref = model(src[index], lengths[index], tgt_in[index, :2])[0][:, 1]
    assert torch.allclose(logits, ref, atol=1e-5)


def test_trains_with_the_course_loop():
    from course_utils.data import make_corpus
    from course_utils.train import train
    corpus = make_corpus(n_train=200, n_valid=10, n_test=10, max_len=8)
    torch.manual_seed(0)
    model = DecoderOnly(DecoderOnlyConfig(len(corpus.src_vocab), len(corpus.tgt_vocab), d_model=32,
                                          num_layers=2, d_ff=64))
    hist = train(model, corpus, steps=30, batch_size=32, progress=False)
    assert sum(hist.losses[-5:]) / 5 < 0.8 * sum(hist.losses[:5]) / 5


def test_bad_input():
    model = make()
    src, lengths, tgt_in = batch()
    with pytest.raises(ValueError, match="src_lengths"):
        model(src, torch.tensor([5, 0, 7]), tgt_in)
    with pytest.raises(ValueError, match="tgt_in"):
        model(src, lengths, tgt_in[:2])
    with pytest.raises(ValueError, match="max_len"):
        model(src, lengths, torch.ones(3, 60, dtype=torch.long))
    with pytest.raises(ValueError, match="window"):
        DecoderOnlyConfig(3, 3, window=0)
