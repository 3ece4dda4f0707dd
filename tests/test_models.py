"""Seq2seq models: shapes, padding invariance, decoding, training and evaluation."""
import pytest
import torch

from course_utils import data as D
from course_utils import models as M
from course_utils import train as TR

KINDS = [None, "additive", "dot", "scaled_dot", "general", "concat"]


@pytest.fixture(scope="module")
def corpus():
    return D.make_corpus(n_train=400, n_valid=20, n_test=60, seed=1)


def build(corpus, attention, seed=0):
    torch.manual_seed(seed)
    cfg = M.Seq2SeqConfig(len(corpus.src_vocab), len(corpus.tgt_vocab), emb_dim=16, hidden_dim=12)
    return M.Seq2Seq.build(cfg, attention).eval()


@pytest.mark.parametrize("attention", KINDS)
def test_shapes(corpus, attention):
    model = build(corpus, attention)
    batch = D.make_batch(corpus.train[:5], corpus.src_vocab, corpus.tgt_vocab)
    logits, weights = model(batch.src, batch.src_lengths, batch.tgt_in)
    B, S = batch.src.shape
    T = batch.tgt_in.shape[1]
    assert logits.shape == (B, T, len(corpus.tgt_vocab))
    if attention is None:
        assert weights is None and not model.has_attention
    else:
        assert weights.shape == (B, T, S)
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, T))
        assert (weights * ~batch.src_mask[:, None, :]).abs().max() == 0  # no weight on padding


@pytest.mark.parametrize("attention", KINDS)
def test_extra_padding_changes_no_output(corpus, attention):
    model = build(corpus, attention)
    pairs = corpus.train[:4]
    batch = D.make_batch(pairs, corpus.src_vocab, corpus.tgt_vocab)
    pad = torch.zeros(len(pairs), 9, dtype=torch.long)
    logits, weights = model(batch.src, batch.src_lengths, batch.tgt_in)
    logits2, weights2 = model(torch.cat([batch.src, pad], 1), batch.src_lengths, torch.cat([batch.tgt_in, pad], 1))
    T, S = batch.tgt_in.shape[1], batch.src.shape[1]
    mask = batch.tgt_out != 0  # real target positions
    torch.testing.assert_close(logits2[:, :T][mask], logits[mask], atol=1e-5, rtol=1e-5)
    if weights is not None:
        torch.testing.assert_close(weights2[:, :T, :S][mask], weights[mask], atol=1e-6, rtol=1e-5)
        assert weights2[:, :, S:].abs().max() == 0


@pytest.mark.parametrize("attention", [None, "additive"])
def test_sentence_alone_equals_sentence_in_a_batch(corpus, attention):
    model = build(corpus, attention)
    pairs = corpus.train[:6]
    batch = D.make_batch(pairs, corpus.src_vocab, corpus.tgt_vocab)
    alone = D.make_batch(pairs[2:3], corpus.src_vocab, corpus.tgt_vocab)
    tok_b, _ = model.greedy_decode(batch.src, batch.src_lengths, 20)
    tok_a, _ = model.greedy_decode(alone.src, alone.src_lengths, 20)
    n = tok_a.shape[1]
    assert torch.equal(tok_b[2, :n], tok_a[0])


@pytest.mark.parametrize("attention", [None, "additive"])
def test_greedy_decode_matches_teacher_forcing_on_its_own_output(corpus, attention):
    model = build(corpus, attention)
    batch = D.make_batch(corpus.train[:3], corpus.src_vocab, corpus.tgt_vocab)
    tokens, weights = model.greedy_decode(batch.src, batch.src_lengths, max_len=7)
    assert tokens.shape[0] == 3 and tokens.shape[1] <= 7
    tgt_in = torch.cat([torch.full((3, 1), D.Vocab.bos_id), tokens[:, :-1]], 1)
    logits, tf_weights = model(batch.src, batch.src_lengths, tgt_in)
    still_going = torch.ones(3, dtype=torch.bool)
    for t in range(tokens.shape[1]):
        assert torch.equal(logits[still_going, t].argmax(-1), tokens[still_going, t])
        still_going &= tokens[:, t] != D.Vocab.eos_id
    if attention is not None:
        assert weights.shape == (3, tokens.shape[1], batch.src.shape[1])
        torch.testing.assert_close(weights[:, 0], tf_weights[:, 0])


def test_bad_shapes_are_explained(corpus):
    model = build(corpus, "additive")
    src = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match=r"tgt_in: expected shape \(B=2, T\), got \(3, 4\)"):
        model(src, torch.tensor([5, 3]), torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"src_lengths: expected shape \(B=2,\), got \(3,\)"):
        model(src, torch.tensor([5, 3, 1]), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"src: expected shape \(B, S\), got \(5,\)"):
        model.greedy_decode(src[0], torch.tensor([5]))
    with pytest.raises(ValueError, match="attention"):
        M.make_attention("cosine", 8)


def test_sequence_loss_ignores_padding():
    logits = torch.randn(2, 4, 7)
    targets = torch.tensor([[3, 4, 2, 0], [5, 2, 0, 0]])
    loss = TR.sequence_loss(logits, targets)
    changed = logits.clone()
    changed[0, 3] += 100.0  # a padding position
    changed[1, 2:] -= 50.0
    assert torch.equal(TR.sequence_loss(changed, targets), loss)
    manual = torch.nn.functional.cross_entropy(logits[targets != 0], targets[targets != 0])
    torch.testing.assert_close(loss, manual)


def test_training_reduces_the_loss_and_is_reproducible(corpus):
    short = [p for p in corpus.train if len(p.src) < 12]
    runs = []
    for _ in range(2):
        model = build(corpus, "additive", seed=3)
        runs.append(TR.train(model, corpus, steps=80, batch_size=16, pairs=short, progress=False))
    assert runs[0].losses == runs[1].losses
    first, last = sum(runs[0].losses[:5]) / 5, sum(runs[0].losses[-5:]) / 5
    assert last < first * 0.8, (first, last)
    assert runs[0].steps == 80 and runs[0].seconds > 0


def test_time_budget_stops_training(corpus):
    model = build(corpus, None)
    history = TR.train(model, corpus, steps=None, seconds=0.3, batch_size=8, progress=False)
    assert 0.3 <= history.seconds < 5 and history.steps >= 1
    with pytest.raises(ValueError, match="budget"):
        TR.train(model, corpus, steps=None, seconds=None)


def test_evaluate_scores_a_perfect_and_a_wrong_translator(corpus, monkeypatch):
    model = build(corpus, "additive")
    pairs = corpus.test[:30]
    perfect = {p.src: list(p.tgt) for p in pairs}
    monkeypatch.setattr(TR, "translate", lambda m, ps, sv, tv, bs=256: ([perfect[p.src] for p in ps], []))
    rep = TR.evaluate(model, pairs, corpus.src_vocab, corpus.tgt_vocab)
    assert rep.overall["exact_match"] == 1.0 and rep.overall["token_accuracy"] == 1.0
    assert rep.overall["bleu"] == pytest.approx(1.0)
    assert sum(v["n"] for v in rep.by_length.values()) == 30
    assert 0.0 <= rep.overall["alignment"] <= 1.0
    monkeypatch.setattr(TR, "translate", lambda m, ps, sv, tv, bs=256: ([["鱼"] for p in ps], []))
    rep = TR.evaluate(model, pairs, corpus.src_vocab, corpus.tgt_vocab)
    assert rep.overall["exact_match"] == 0.0 and rep.overall["bleu"] < 0.05
    assert "exact_match" in rep.table()


def test_alignment_score_counts_hits():
    pair = D.Pair(("the", "cat", "ate"), ("猫", "吃了"), ((1, 0), (2, 1)))

    class Oracle(torch.nn.Module):
        has_attention = True

        def __init__(self, rows):
            super().__init__()
            self.rows = rows
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, src, lengths, tgt_in):
            w = torch.tensor(self.rows, dtype=torch.float)[None]  # (1, T, S)
            return None, w

    vocab_s, vocab_t = D.Vocab(pair.src), D.Vocab(pair.tgt)
    right = Oracle([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    wrong = Oracle([[1, 0, 0], [0, 0, 1], [1, 0, 0]])
    assert TR.attention_alignment(right, [pair], vocab_s, vocab_t) == [(2, 2)]
    assert TR.attention_alignment(wrong, [pair], vocab_s, vocab_t) == [(1, 2)]


def test_callback_can_stop_training_and_its_time_is_not_counted(corpus):
    import time as _time

    model = build(corpus, None)
    calls = []

    def slow_check(history):
        calls.append(history.steps)
        _time.sleep(0.5)
        return history.steps >= 6

    tick = _time.perf_counter()
    history = TR.train(model, corpus, steps=50, batch_size=4, progress=False, callback=slow_check,
                       callback_every=3)
    wall = _time.perf_counter() - tick
    assert calls == [3, 6] and history.steps == 6
    assert wall - history.seconds >= 1.0  # the two 0.5 s pauses are not training time


def test_progress_bar_is_text_when_asked(monkeypatch):
    import tqdm.auto
    import tqdm.std

    monkeypatch.setenv("COURSE_PROGRESS", "text")
    bar = TR.progress_bar(total=3, disable=True)
    assert type(bar) is tqdm.std.tqdm
    monkeypatch.delenv("COURSE_PROGRESS")
    bar = TR.progress_bar(total=3, disable=True)
    assert type(bar) is tqdm.auto.tqdm and tqdm.auto.tqdm is not tqdm.std.tqdm  # the widget-capable class
    assert list(TR.progress_bar(range(3), disable=True)) == [0, 1, 2]


def test_text_progress_bar_draws_only_its_start_and_end(corpus, monkeypatch, capsys):
    # A stored notebook keeps every redraw of a text bar: 40 steps must not mean 40 frames.
    monkeypatch.setenv("COURSE_PROGRESS", "text")
    torch.manual_seed(0)
    cfg = M.Seq2SeqConfig(len(corpus.src_vocab), len(corpus.tgt_vocab), emb_dim=8, hidden_dim=8)
    TR.train(M.Seq2Seq.build(cfg), corpus, steps=40, batch_size=4, desc="tiny")
    frames = [f for f in capsys.readouterr().err.replace("\n", "\r").split("\r") if f.strip()]
    assert len(frames) == 2, f"expected the 0 % and the final frame, got {len(frames)}: {frames}"
    assert "40/40" in frames[-1] and "loss=" in frames[-1], frames[-1]


def test_plot_history_accepts_a_history(corpus):
    import matplotlib

    matplotlib.use("Agg")
    from course_utils.plotting import plot_history

    history = TR.History(losses=[3.0, 2.0, 1.5], steps=3, seconds=0.1)
    ax = plot_history(history)
    assert list(ax.lines[0].get_ydata()) == [3.0, 2.0, 1.5]
    assert list(ax.lines[0].get_xdata()) == [1.0, 2.0, 3.0]
