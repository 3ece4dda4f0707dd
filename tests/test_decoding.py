"""course_utils.decoding: greedy, beam search and sampling on every translation model.

Properties checked on untrained models and on briefly trained ones:

* ``beam_search(beam_size=1)`` gives ``greedy``'s tokens and scores;
* with ``length_penalty=0`` every returned score is the sum of the token
  log-probabilities recomputed by teacher forcing (``score_sequences``, which
  uses the model's ``forward``); with ``length_penalty > 0`` it is that sum
  divided by GNMT's lp(L);
* the Transformer gives the same tokens, scores and weights with and without its
  KV cache, for greedy, beam search and sampling with a fixed generator;
* padding after <eos>, attention weights of the returned sequence, batch
  invariance (decoding a sentence alone or in a batch gives the same result).

On a hand-built step function with known probabilities, beam search finds what
an exhaustive search finds, keeps hypotheses that end early, and sampling
follows the (filtered) distribution.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from course_utils.data import make_batch, make_corpus
from course_utils.decoding import (DecodeResult, beam_search, greedy, length_normaliser, sample,
                                   score_sequences)
from course_utils.models import Seq2Seq, Seq2SeqConfig
from course_utils.train import train
from course_utils.transformer import Transformer, TransformerConfig

MAX_LEN = 24


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(n_train=600, n_valid=10, n_test=60, seed=7)


def _build(kind: str, corpus) -> torch.nn.Module:
    torch.manual_seed(3)
    V_src, V_tgt = len(corpus.src_vocab), len(corpus.tgt_vocab)
    if kind == "transformer":
        return Transformer(TransformerConfig(V_src, V_tgt, d_model=32, num_heads=4, num_layers=2, d_ff=64))
    cfg = Seq2SeqConfig(V_src, V_tgt, emb_dim=16, hidden_dim=16)
    return Seq2Seq.build(cfg, None if kind == "fixed" else "additive")


KINDS = ["fixed", "additive", "transformer"]


@pytest.fixture(scope="module", params=[(k, t) for k in KINDS for t in (False, True)],
                ids=[f"{k}-{'trained' if t else 'untrained'}" for k in KINDS for t in (False, True)])
def model(request, corpus):
    kind, trained = request.param
    m = _build(kind, corpus)
    if trained:  # a few steps: peaked distributions, sentences that end
        short = [p for p in corpus.train if len(p.src) < 12]
        train(m, corpus, steps=40, lr=1e-2, seed=0, progress=False, pairs=short, batch_size=32)
    return m.eval()


@pytest.fixture(scope="module")
def batch(corpus):
    pairs = sorted(corpus.test, key=lambda p: len(p.src))[::6][:8]  # lengths from short to long
    return make_batch(pairs, corpus.src_vocab, corpus.tgt_vocab)


def _ends(result: DecodeResult, eos_id: int, pad_id: int) -> None:
    """Tokens stop at the first <eos>, padded after it; lengths count <eos>."""
    B, L = result.tokens.shape
    for b in range(B):
        row = result.tokens[b].tolist()
        n = int(result.lengths[b])
        assert 1 <= n <= L
        if eos_id in row:
            assert row.index(eos_id) == n - 1, "lengths count the tokens up to the first <eos>"
        else:
            assert n == L
        assert all(t == pad_id for t in row[n:]), "padded with pad_id after <eos>"
        if result.weights is not None:
            assert torch.all(result.weights[b, n:] == 0), "no weights after the end"


# --------------------------------------------------------------------------- real models
def test_greedy_matches_the_models_own_greedy_decode(model, batch):
    res = greedy(model, batch.src, batch.src_lengths, MAX_LEN)
    own, own_w = model.greedy_decode(batch.src, batch.src_lengths, max_len=MAX_LEN)
    for b in range(len(batch)):
        n = int(res.lengths[b])
        assert res.tokens[b, :n].tolist() == own[b, :n].tolist()
        if own_w is not None:
            assert torch.allclose(res.weights[b, :n], own_w[b, :n], atol=1e-5)
    assert (res.weights is None) == (not model.has_attention)
    _ends(res, model.eos_id, getattr(model, "pad_id", 0))


def test_beam_of_one_is_greedy(model, batch):
    g = greedy(model, batch.src, batch.src_lengths, MAX_LEN)
    for alpha in (0.0, 1.0):
        b1 = beam_search(model, batch.src, batch.src_lengths, beam_size=1, max_len=MAX_LEN, length_penalty=alpha)
        assert torch.equal(b1.tokens, g.tokens), f"beam_size=1 must give greedy's tokens (length_penalty={alpha})"
        assert torch.equal(b1.lengths, g.lengths)
        want = g.scores / length_normaliser(g.lengths.float(), alpha)
        assert torch.allclose(b1.scores, want, atol=1e-5)
        if g.weights is not None:
            assert torch.allclose(b1.weights, g.weights, atol=1e-6)


@pytest.mark.parametrize("beam_size", [2, 4])
def test_beam_scores_are_teacher_forced_log_probabilities(model, batch, beam_size):
    res = beam_search(model, batch.src, batch.src_lengths, beam_size=beam_size, max_len=MAX_LEN, length_penalty=0.0)
    forced = score_sequences(model, batch.src, batch.src_lengths, res.tokens)
    assert torch.allclose(res.scores, forced, atol=1e-4, rtol=1e-5), (res.scores, forced)
    _ends(res, model.eos_id, getattr(model, "pad_id", 0))
    normalised = beam_search(model, batch.src, batch.src_lengths, beam_size, MAX_LEN, length_penalty=0.6)
    raw = score_sequences(model, batch.src, batch.src_lengths, normalised.tokens)
    assert torch.allclose(normalised.scores, raw / length_normaliser(normalised.lengths.float(), 0.6), atol=1e-4)


def test_greedy_and_sample_scores_are_teacher_forced_log_probabilities(model, batch):
    g = greedy(model, batch.src, batch.src_lengths, MAX_LEN)
    assert torch.allclose(g.scores, score_sequences(model, batch.src, batch.src_lengths, g.tokens), atol=1e-4)
    gen = torch.Generator().manual_seed(11)
    s = sample(model, batch.src, batch.src_lengths, MAX_LEN, temperature=1.5, top_k=5, generator=gen)
    assert torch.allclose(s.scores, score_sequences(model, batch.src, batch.src_lengths, s.tokens), atol=1e-4), \
        "sample scores with the model's own distribution, not the tempered, filtered one"
    _ends(s, model.eos_id, getattr(model, "pad_id", 0))


def test_weights_are_those_of_the_returned_sequence(model, batch):
    if not model.has_attention:
        assert beam_search(model, batch.src, batch.src_lengths, 3, MAX_LEN).weights is None
        return
    res = beam_search(model, batch.src, batch.src_lengths, 3, MAX_LEN)
    bos = torch.full_like(res.tokens[:, :1], model.bos_id)
    _, forced = model(batch.src, batch.src_lengths, torch.cat([bos, res.tokens[:, :-1]], 1))  # (B, L, S)
    assert res.weights.shape == forced.shape
    for b in range(len(batch)):
        n = int(res.lengths[b])
        assert torch.allclose(res.weights[b, :n], forced[b, :n], atol=1e-5)
        S = int(batch.src_lengths[b])
        assert torch.allclose(res.weights[b, :n].sum(-1), torch.ones(n), atol=1e-5)
        assert torch.all(res.weights[b, :n, S:] == 0), "padding gets no weight"


def test_batch_and_single_sentence_decode_alike(model, batch):
    full = beam_search(model, batch.src, batch.src_lengths, 3, MAX_LEN)
    for b in (0, len(batch) - 1):
        S = int(batch.src_lengths[b])
        one = beam_search(model, batch.src[b:b + 1, :S], batch.src_lengths[b:b + 1], 3, MAX_LEN)
        n = int(one.lengths[0])
        assert full.tokens[b, :n].tolist() == one.tokens[0, :n].tolist()
        assert abs(float(full.scores[b]) - float(one.scores[0])) < 1e-4


@pytest.mark.parametrize("decoder", ["greedy", "beam", "sample"])
def test_kv_cache_changes_nothing(model, batch, decoder):
    runs = {}
    for use_cache in (True, False):
        if decoder == "greedy":
            runs[use_cache] = greedy(model, batch.src, batch.src_lengths, MAX_LEN, use_cache=use_cache)
        elif decoder == "beam":
            runs[use_cache] = beam_search(model, batch.src, batch.src_lengths, 4, MAX_LEN, use_cache=use_cache)
        else:
            gen = torch.Generator().manual_seed(5)
            runs[use_cache] = sample(model, batch.src, batch.src_lengths, MAX_LEN, top_p=0.9,
                                     generator=gen, use_cache=use_cache)
    cached, recomputed = runs[True], runs[False]
    assert torch.equal(cached.tokens, recomputed.tokens), "the cache must not change a token"
    assert torch.allclose(cached.scores, recomputed.scores, atol=1e-5)
    if cached.weights is not None:
        assert torch.allclose(cached.weights, recomputed.weights, atol=1e-5), "nor a weight"


def test_sampling_with_a_fixed_generator_repeats(model, batch):
    a = sample(model, batch.src, batch.src_lengths, MAX_LEN, generator=torch.Generator().manual_seed(1))
    b = sample(model, batch.src, batch.src_lengths, MAX_LEN, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.tokens, b.tokens)
    g = greedy(model, batch.src, batch.src_lengths, MAX_LEN)
    for kwargs in ({"top_k": 1}, {"top_p": 1e-6}):
        s = sample(model, batch.src, batch.src_lengths, MAX_LEN, generator=torch.Generator().manual_seed(2), **kwargs)
        assert torch.equal(s.tokens, g.tokens), f"{kwargs} leaves only the most likely token: greedy"


# --------------------------------------------------------------------------- a hand-built model
class TableModel(torch.nn.Module):
    """A 'translator' whose next-token distribution is a fixed function of the prefix.

    Tokens: 0 <pad>, 1 <bos>, 2 <eos>, 3.. words. ``table(prefix) -> probabilities``.
    Follows the incremental protocol; the state is the prefix itself (B, t).
    """

    bos_id, eos_id, pad_id = 1, 2, 0
    has_attention = False

    def __init__(self, table, V: int) -> None:
        super().__init__()
        self.table, self.V = table, V

    def start_decoding(self, src, src_lengths, use_cache=True):
        return src.new_zeros(src.shape[0], 0)

    def decode_step(self, state, prev):
        state = torch.cat([state, prev[:, None]], 1)
        probs = torch.tensor([self.table(tuple(r[1:])) for r in state.tolist()])  # (B, V)
        return probs.log(), None, state

    def reorder_state(self, state, index):
        return state[index]

    def forward(self, src, src_lengths, tgt_in):
        logits = torch.stack([self.decode_step(tgt_in[:, :t], tgt_in[:, t])[0] for t in range(tgt_in.shape[1])], 1)
        return logits, None


def _random_table(seed: int, V: int):
    g = torch.Generator().manual_seed(seed)
    cache = {}

    def table(prefix):
        if prefix not in cache:
            p = torch.rand(V, generator=g) ** 3
            p[:2] = 0.0  # never <pad> or <bos>
            cache[prefix] = (p / p.sum()).tolist()
        return cache[prefix]
    return table


def _exhaustive(table, V: int, max_len: int, alpha: float):
    best = (-math.inf, None)
    for n in range(1, max_len + 1):
        for words in itertools.product(range(3, V), repeat=n - 1):
            seq = words + (2,)
            logp = sum(math.log(table(seq[:i])[seq[i]]) for i in range(n))
            best = max(best, (logp / length_normaliser(n, alpha), seq))
    return best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_wide_beam_finds_the_best_sequence(seed, alpha):
    V, max_len = 5, 4  # 3 words: 1 + 3 + 9 + 27 finished sequences of at most 4 tokens
    table = _random_table(seed, V)
    model = TableModel(table, V)
    src = torch.zeros(1, 1, dtype=torch.long)
    # 128 beams hold every prefix, and all 27 + 81 candidates of the last step rank within them
    res = beam_search(model, src, torch.ones(1, dtype=torch.long), beam_size=128, max_len=max_len,
                      length_penalty=alpha)
    score, seq = _exhaustive(table, V, max_len, alpha)
    assert tuple(res.tokens[0, :int(res.lengths[0])].tolist()) == seq
    assert math.isclose(float(res.scores[0]), score, abs_tol=1e-5)


def test_greedy_misses_what_beam_finds_and_early_ends_are_kept():
    # first word: "a" (0.6) or "b" (0.4); after "a" the model hesitates, after "b" it is sure
    probs = {(): {3: 0.6, 4: 0.4}, (3,): {3: 0.35, 4: 0.35, 2: 0.3}, (4,): {2: 0.9, 3: 0.1}}

    def table(prefix):
        p = [0.0] * 5
        for tok, v in probs.get(prefix, {2: 1.0}).items():
            p[tok] = v
        return p
    model = TableModel(table, 5)
    src, lengths = torch.zeros(2, 1, dtype=torch.long), torch.ones(2, dtype=torch.long)
    g = greedy(model, src, lengths, max_len=5)
    assert g.tokens[0].tolist()[:3] == [3, 3, 2]  # a a <eos>: 0.6 * 0.35 * 1.0 = 0.21
    b = beam_search(model, src, lengths, beam_size=2, max_len=5, length_penalty=0.0)
    assert b.tokens[0].tolist() == [4, 2], "b <eos> (0.4 * 0.9 = 0.36) ended at step 2 and must be kept"
    assert math.isclose(float(b.scores[0]), math.log(0.36), abs_tol=1e-6)
    assert torch.equal(b.tokens[0], b.tokens[1]), "every sentence of a batch is searched alike"
    assert b.lengths.tolist() == [2, 2]


def test_max_len_cuts_off_and_returns_the_best_prefix():
    model = TableModel(lambda prefix: [0.0, 0.0, 0.05, 0.7, 0.25], 5)  # <eos> is unlikely
    src, lengths = torch.zeros(1, 1, dtype=torch.long), torch.ones(1, dtype=torch.long)
    g = greedy(model, src, lengths, max_len=3)
    assert g.tokens.tolist() == [[3, 3, 3]] and g.lengths.tolist() == [3]
    b = beam_search(model, src, lengths, beam_size=1, max_len=3)
    assert torch.equal(b.tokens, g.tokens)
    b3 = beam_search(model, src, lengths, beam_size=3, max_len=3, length_penalty=0.0)
    # <eos> at step 1 (p = 0.05) ranks within the top 3 and is the only hypothesis that ends:
    # a finished hypothesis is preferred to prefixes cut off at max_len
    assert b3.tokens.tolist() == [[2]] and b3.lengths.tolist() == [1]
    assert math.isclose(float(b3.scores[0]), math.log(0.05), abs_tol=1e-6)


def test_sampling_follows_the_filtered_distribution():
    p = [0.0, 0.0, 0.1, 0.5, 0.25, 0.15]  # <eos> 0.1 and three words, at every step
    model = TableModel(lambda prefix: p, 6)
    n = 4000
    src, lengths = torch.zeros(n, 1, dtype=torch.long), torch.ones(n, dtype=torch.long)

    def first(**kw):
        res = sample(model, src, lengths, max_len=1, generator=torch.Generator().manual_seed(0), **kw)
        return torch.bincount(res.tokens[:, 0], minlength=6).double() / n

    assert torch.allclose(first(), torch.tensor(p, dtype=torch.float64), atol=0.03)
    top2 = torch.tensor([0, 0, 0, 0.5, 0.25, 0], dtype=torch.float64) / 0.75
    assert torch.allclose(first(top_k=2), top2, atol=0.03), "top-k keeps the k most likely tokens, renormalised"
    nucleus = torch.tensor([0, 0, 0, 0.5, 0.25, 0.15], dtype=torch.float64) / 0.9
    assert torch.allclose(first(top_p=0.8), nucleus, atol=0.03), "top-p: the fewest tokens with mass >= p"
    sharp = torch.tensor(p, dtype=torch.float64) ** 2
    assert torch.allclose(first(temperature=0.5), sharp / sharp.sum(), atol=0.03), "temperature 1/2 squares p"


@pytest.mark.parametrize("call, name", [
    (lambda m, s, n: greedy(m, s, n, 0), "max_len"),
    (lambda m, s, n: beam_search(m, s, n, 0, 5), "beam_size"),
    (lambda m, s, n: beam_search(m, s, n, 2, 5, length_penalty=-1.0), "length_penalty"),
    (lambda m, s, n: sample(m, s, n, 5, temperature=0.0), "temperature"),
    (lambda m, s, n: sample(m, s, n, 5, top_k=0), "top_k"),
    (lambda m, s, n: sample(m, s, n, 5, top_p=1.5), "top_p"),
    (lambda m, s, n: greedy(m, s[0], n, 5), "src"),
    (lambda m, s, n: greedy(m, s, n[:1], 5), "src_lengths"),
])
def test_bad_arguments_are_named(call, name):
    model = TableModel(lambda prefix: [0.0, 0.0, 0.5, 0.5], 4)
    src, lengths = torch.zeros(2, 1, dtype=torch.long), torch.ones(2, dtype=torch.long)
    with pytest.raises(ValueError, match=name):
        call(model, src, lengths)


def test_decoding_stops_at_the_transformers_own_length_limit(corpus, batch):
    torch.manual_seed(0)
    short = Transformer(TransformerConfig(len(corpus.src_vocab), len(corpus.tgt_vocab), d_model=16, num_heads=2,
                                          num_layers=1, d_ff=32, max_len=batch.src.shape[1])).eval()
    for res in (greedy(short, batch.src, batch.src_lengths, 500),
                beam_search(short, batch.src, batch.src_lengths, 2, 500),
                sample(short, batch.src, batch.src_lengths, 500, generator=torch.Generator().manual_seed(0))):
        assert res.tokens.shape[1] <= batch.src.shape[1], "max_len is capped at TransformerConfig.max_len"
