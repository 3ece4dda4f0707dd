"""The running corpus: deterministic, aligned, and batched without surprises."""
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import data as D


@pytest.fixture(scope="module")
def corpus():
    return D.make_corpus(n_train=600, n_valid=60, n_test=200, seed=0)


def test_corpus_is_deterministic_for_a_seed():
    a = D.make_corpus(n_train=200, n_valid=20, n_test=50, seed=5)
    b = D.make_corpus(n_train=200, n_valid=20, n_test=50, seed=5)
    c = D.make_corpus(n_train=200, n_valid=20, n_test=50, seed=6)
    assert a.train == b.train and a.test == b.test
    assert a.train != c.train


def test_splits_are_disjoint(corpus):
    train = {p.src for p in corpus.train}
    assert not train & {p.src for p in corpus.test}
    assert not train & {p.src for p in corpus.valid}


def test_lengths_span_short_to_long(corpus):
    lengths = [len(p.src) for p in corpus.train]
    assert min(lengths) <= 6 and max(lengths) >= 45
    assert all(4 <= n <= 50 for n in lengths)
    buckets = D.bucket_by_length(corpus.train)
    assert all(len(group) >= 50 for group in buckets.values()), {k: len(v) for k, v in buckets.items()}


def test_vocabulary_is_small_and_complete(corpus):
    assert len(corpus.src_vocab) < 300 and len(corpus.tgt_vocab) < 300
    for pair in corpus.train + corpus.test:
        assert D.Vocab.unk_id not in corpus.src_vocab.encode(pair.src)
        assert D.Vocab.unk_id not in corpus.tgt_vocab.encode(pair.tgt)


def test_every_chinese_token_has_pinyin(corpus):
    for token in corpus.tgt_vocab.itos[len(D.Vocab.specials):]:
        pinyin = D.to_pinyin(token)
        assert pinyin != token, token
        assert all(ch == " " or (ch.isalpha() and ord(ch) < 0x2E80) for ch in pinyin), (token, pinyin)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), length=st.integers(4, 50))
def test_alignments_are_valid(seed, length):
    pair = D.generate_pair(random.Random(seed), length)
    assert len(pair.src) <= 50
    for s, t in pair.alignment:
        assert 0 <= s < len(pair.src) and 0 <= t < len(pair.tgt)
    aligned_src = {s for s, _ in pair.alignment}
    # articles align to nothing; every other source word is translated
    for i, word in enumerate(pair.src):
        assert (i in aligned_src) == (word not in D.ARTICLES), (i, word, pair)
    # every target word comes from somewhere
    assert all(pair.aligned_source()), pair
    # the aligned source word really translates to the target word
    lexicon = {en: zh for table in (D.AGENTS, D.THINGS, D.VERBS, D.ADJECTIVES, D.PLACES)
               for en, (zh, _) in table.items()}
    for s, t in pair.alignment:
        if pair.src[s] in lexicon:
            assert pair.tgt[t] == lexicon[pair.src[s]]


def test_time_words_move_to_the_front_and_places_before_the_verb():
    rng = random.Random(3)
    found_time = found_place = False
    for _ in range(300):
        pair = D.generate_pair(rng, 8)
        if "and" in pair.src:
            continue
        if pair.src[-1] in {"yesterday", "today", "once"}:
            found_time = True
            assert pair.tgt[0] == D.TIMES[(pair.src[-1],)][0]
        if "在" in pair.tgt:
            found_place = True
            verb = next(zh for en, (zh, _) in D.VERBS.items() if en in pair.src)
            assert pair.tgt.index("在") < pair.tgt.index(verb)
    assert found_time and found_place


def test_tiny_example():
    assert " ".join(D.TINY_EXAMPLE.src) == "Tom chase Jerry"
    assert " ".join(D.TINY_EXAMPLE.tgt) == "汤姆 追逐 杰瑞"


def test_vocab_round_trip(corpus):
    pair = corpus.train[0]
    ids = corpus.tgt_vocab.encode(pair.tgt, add_bos=True, add_eos=True)
    assert ids[0] == D.Vocab.bos_id and ids[-1] == D.Vocab.eos_id
    assert corpus.tgt_vocab.decode(ids + [D.Vocab.pad_id] * 3) == list(pair.tgt)


def test_batches_are_padded_with_lengths(corpus):
    pairs = corpus.train[:7]
    batch = D.make_batch(pairs, corpus.src_vocab, corpus.tgt_vocab)
    B, S = batch.src.shape
    assert B == 7 and S == max(len(p.src) for p in pairs)
    assert batch.src_lengths.tolist() == [len(p.src) for p in pairs]
    assert batch.tgt_in.shape == batch.tgt_out.shape
    assert (batch.tgt_in[:, 0] == D.Vocab.bos_id).all()
    for i, p in enumerate(pairs):
        n = len(p.tgt)
        assert batch.tgt_out[i, n] == D.Vocab.eos_id
        assert (batch.src[i, len(p.src):] == D.Vocab.pad_id).all()
        assert batch.src_mask[i].sum() == len(p.src)
    assert torch.equal(batch.tgt_in[:, 1:], torch.where(batch.tgt_out[:, :-1] == D.Vocab.eos_id,
                                                        D.Vocab.pad_id, batch.tgt_out[:, :-1]))


def test_iterate_batches_covers_every_pair_once(corpus):
    seen = [p for b in D.iterate_batches(corpus.train, corpus.src_vocab, corpus.tgt_vocab, 32, seed=1)
            for p in b.pairs]
    assert sorted(seen, key=lambda p: p.src) == sorted(corpus.train, key=lambda p: p.src)
    assert len(seen) == len(corpus.train)


def test_empty_batch_is_a_clear_error(corpus):
    with pytest.raises(ValueError, match="pairs"):
        D.make_batch([], corpus.src_vocab, corpus.tgt_vocab)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("max_len", [0, 1, 2])
def test_a_max_len_the_grammar_cannot_write_is_a_clear_error(max_len):
    with pytest.raises(ValueError, match=r"max_len: expected at least 3.*got " + str(max_len)):
        D.make_corpus(n_train=5, n_valid=0, n_test=0, min_len=1, max_len=max_len)
    with pytest.raises(ValueError, match="max_len"):
        D.generate_pair(random.Random(0), max_len=max_len)


@pytest.mark.slow  # about 8 s: 2,000 fruitless draws of a 3-word sentence
def test_more_sentences_than_the_grammar_writes_is_a_clear_error():
    # 3 source tokens: a name, a verb, a name (4 x 14 x 4 = 224 sentences at most)
    with pytest.raises(ValueError, match=r"distinct sentences of 3\.\.3 source tokens"):
        D.make_corpus(n_train=300, n_valid=0, n_test=0, min_len=3, max_len=3)
    small = D.make_corpus(n_train=20, n_valid=0, n_test=0, min_len=3, max_len=3)
    assert all(len(p.src) == 3 for p in small.train) and len(set(p.src for p in small.train)) == 20


@pytest.mark.parametrize("kwargs, name", [({"min_len": 10, "max_len": 5}, "min_len"),
                                          ({"n_train": -1}, "n_train"), ({"n_test": 2.5}, "n_test")])
def test_make_corpus_rejects_impossible_requests(kwargs, name):
    with pytest.raises(ValueError, match=name):
        D.make_corpus(**{"n_train": 5, "n_valid": 0, "n_test": 0, **kwargs})


@pytest.mark.parametrize("ids", [[-1], [4, 5, 10_000], [1, -2, 2]])
def test_vocab_decode_rejects_ids_outside_the_vocabulary(corpus, ids):
    vocab = corpus.tgt_vocab
    bad = next(i for i in ids if not 0 <= i < len(vocab))
    with pytest.raises(ValueError, match=rf"ids: expected token ids in 0\.\.{len(vocab) - 1}.*got {bad} at position"):
        vocab.decode(ids)


def test_words_looks_up_each_kind_of_the_lexicon():
    assert D.words("time") == [zh for zh, _ in D.TIMES.values()]
    assert "昨天" in D.words("time") and "last night" in D.words("time", "en")
    assert D.words("noun") == D.words("agent") + D.words("thing")
    assert D.words("preposition") == ["里", "旁边", "后面", "下面", "外面"]
    assert D.words("zai") == ["在"] and D.words("and") == ["然后"] and D.words("and", "en") == ["and"]
    assert D.words("verb", "en") == list(D.VERBS)
    for kind in D.KINDS:
        assert all(w in D.PINYIN for w in D.words(kind)), kind
    with pytest.raises(ValueError, match="kind: expected one of agent, thing"):
        D.words("nouns")
    with pytest.raises(ValueError, match="language"):
        D.words("verb", "fr")


def test_the_facade_keeps_every_name_and_points_at_the_modules():
    from course_utils import batching, corpus, lexicon, pairs, tsv

    for name in D.__all__:
        assert hasattr(D, name), name
    assert D.Pair is pairs.Pair and D.Vocab is batching.Vocab and D.make_corpus is corpus.make_corpus
    assert D.load_tsv_pairs is tsv.load_tsv_pairs and D.to_pinyin is lexicon.to_pinyin
