"""The running example's data, one import away (a facade).

The pieces live in their own modules; every name importable from here before
stays importable:

* :mod:`course_utils.lexicon`: the word tables, pinyin, :func:`words` (``words("time")``);
* :mod:`course_utils.pairs`: :class:`Pair`, ``TINY_EXAMPLE``, :func:`bucket_by_length`;
* :mod:`course_utils.corpus`: the grammar, :func:`generate_pair`, :func:`make_corpus`;
* :mod:`course_utils.batching`: :class:`Vocab`, :class:`Batch`, :func:`make_batch`,
  :func:`iterate_batches`, :func:`length_mask`;
* :mod:`course_utils.tsv`: :func:`load_tsv_pairs` for real corpora.

Introduced in notebook 00.
"""
from course_utils.batching import (BOS, EOS, PAD, UNK, Batch, Vocab, iterate_batches, length_mask,
                                   make_batch)
from course_utils.corpus import SHORTEST, Corpus, generate_pair, lexicon_vocabs, make_corpus
from course_utils.lexicon import (ADJECTIVES, AGENTS, AND, ARTICLES, KINDS, PINYIN, PLACES, PREPOSITIONS,
                                  THINGS, TIMES, VERBS, ZAI, to_pinyin, words)
from course_utils.pairs import TINY_EXAMPLE, Pair, bucket_by_length
from course_utils.tsv import cache_path, load_tsv_pairs

__all__ = [
    "ADJECTIVES", "AGENTS", "AND", "ARTICLES", "BOS", "Batch", "Corpus", "EOS", "KINDS", "PAD", "PINYIN",
    "PLACES", "PREPOSITIONS", "Pair", "SHORTEST", "THINGS", "TIMES", "TINY_EXAMPLE", "UNK", "VERBS", "Vocab",
    "ZAI", "bucket_by_length", "cache_path", "generate_pair", "iterate_batches", "length_mask",
    "lexicon_vocabs", "load_tsv_pairs", "make_batch", "make_corpus", "to_pinyin", "words",
]
