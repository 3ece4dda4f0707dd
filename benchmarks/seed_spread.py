"""How much lesson 03's figures move with the seed: the table the lesson shows.

Runs lesson 03's main experiment (the additive-attention GRU, 500 Adam steps at learning rate 0.01,
the last 100 of them cooling down, on the whole corpus, batch 64; evaluated on the first 750 test pairs) for each seed and writes
``benchmarks/seed_spread_03.json``: exact match by length, the alignment share, where the strongest
weight of the reordered words lands (on the gold word, or one word off), and where 在's lands.

    COURSE_THREADS=1 python -m benchmarks.seed_spread --seeds 0-15 --contrast 99   # about 90 s a run, 1 thread

``--contrast SEED`` also trains that seed with and without the cool-down (``cooldown=0``) and stores
both rows under "contrast": the run that showed why the lesson cools down.

The lesson reads the JSON; ``tests/test_seed_spread.py`` checks that its settings are the lesson's
and that it was written by this version of this script (``script_sha256``).
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import time
from pathlib import Path

import torch

import course_utils as cu
from course_utils.data import PLACES, PREPOSITIONS, TIMES, VERBS, make_batch, make_corpus
from course_utils.models import Seq2Seq, Seq2SeqConfig
from course_utils.train import evaluate, train

OUT = Path(__file__).with_name("seed_spread_03.json")
SETTINGS = {"steps": 500, "lr": 0.01, "cooldown": 100, "test_pairs": 750, "attention": "additive"}
TIME_WORDS = {zh for zh, _ in TIMES.values()}
PLACE_WORDS = {zh for zh, _ in PLACES.values()}
POSTPOSITIONS = {zh for zh, _ in PREPOSITIONS.values()}
VERB_WORDS = {zh for zh, _ in VERBS.values()}


def script_sha256() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@torch.no_grad()
def teacher_forced_weights(model, pairs, src_vocab, tgt_vocab):
    model.eval()
    out = []
    for k in range(0, len(pairs), 256):
        chunk = pairs[k : k + 256]
        b = make_batch(chunk, src_vocab, tgt_vocab)
        _, w = model(b.src, b.src_lengths, b.tgt_in)  # (B, T+1, S)
        out += [w[i, : len(p.tgt) + 1, : len(p.src)] for i, p in enumerate(chunk)]
    return out


def landing(pairs, weights, wanted) -> dict[str, float]:
    """Where the strongest weight of the target words chosen by ``wanted`` lands, relative to the
    first gold source word: on a gold word, one word before it, one word after the last, elsewhere."""
    count = collections.Counter()
    for p, w in zip(pairs, weights):
        gold = p.aligned_source()
        for t, word in enumerate(p.tgt):
            if gold[t] and wanted(word):
                best = int(w[t].argmax())
                count["gold" if best in gold[t] else "one before" if best == min(gold[t]) - 1
                      else "one after" if best == max(gold[t]) + 1 else "elsewhere"] += 1
    n = sum(count.values())
    return {k: count[k] / n for k in ("gold", "one before", "one after", "elsewhere")}


def zai_landing(pairs, weights) -> dict[str, float]:
    """Where 在's strongest weight lands in "VERB OBJECT PREP the PLACE"."""
    count = collections.Counter()
    for p, w in zip(pairs, weights):
        gold = p.aligned_source()
        for t, word in enumerate(p.tgt):
            if word == "在":
                prep, place = gold[t][0], gold[t + 1][0]
                verb = gold[next(u for u in range(t + 1, len(p.tgt)) if p.tgt[u] in VERB_WORDS)][0]
                best = int(w[t].argmax())
                count["the verb" if best == verb else "the object" if verb < best < prep else
                      "the preposition" if best == prep else "the article" if prep < best < place else
                      "the place noun" if best == place else "elsewhere"] += 1
    n = sum(count.values())
    return {k: count[k] / n for k in ("the verb", "the object", "the preposition", "the article",
                                      "the place noun", "elsewhere")}


def one_seed(seed: int, cooldown: int = SETTINGS["cooldown"]) -> dict:
    cu.set_seed(seed)
    corpus = make_corpus(seed=seed)
    src_vocab, tgt_vocab = corpus.src_vocab, corpus.tgt_vocab
    cfg = Seq2SeqConfig(len(src_vocab), len(tgt_vocab))
    torch.manual_seed(seed)
    model = Seq2Seq.build(cfg, SETTINGS["attention"])
    t0 = time.perf_counter()
    hist = train(model, corpus, steps=SETTINGS["steps"], lr=SETTINGS["lr"], seed=seed, progress=False,
                 cooldown=cooldown)
    seconds = time.perf_counter() - t0
    test = corpus.test[: SETTINGS["test_pairs"]]
    weights = teacher_forced_weights(model, test, src_vocab, tgt_vocab)
    rep = evaluate(model, test, src_vocab, tgt_vocab)
    return {
        "seed": seed,
        "cooldown": cooldown,
        "final_loss": sum(hist.losses[-50:]) / 50,
        "train_seconds": round(seconds, 1),
        "exact_match": rep.metric("exact_match"),
        "alignment": rep.overall["alignment"],
        "time words": landing(test, weights, lambda w: w in TIME_WORDS),
        "place nouns": landing(test, weights, lambda w: w in PLACE_WORDS),
        "postpositions": landing(test, weights, lambda w: w in POSTPOSITIONS),
        "zai": zai_landing(test, weights),
    }


def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-15", help="e.g. 0-15 or 0,4,7")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--contrast", type=int, help="a seed to train with and without the cool-down")
    args = ap.parse_args()
    cu.pick_device()  # sets the thread count the course uses
    contrast = {}
    if args.contrast is not None:
        contrast = {"with": one_seed(args.contrast), "without": one_seed(args.contrast, cooldown=0)}
        print(f"seed {args.contrast}: EM 30-39 {contrast['with']['exact_match']['30-39']:.2f} with the cool-down, "
              f"{contrast['without']['exact_match']['30-39']:.2f} without", flush=True)
    rows = []
    for seed in parse_seeds(args.seeds):
        rows.append(one_seed(seed))
        r = rows[-1]
        print(f"seed {seed:>2}: EM 30-39 {r['exact_match']['30-39']:.2f}, 40-50 {r['exact_match']['40-50']:.2f}; "
              f"place nouns on gold {r['place nouns']['gold']:.2f}, one before {r['place nouns']['one before']:.2f}; "
              f"在 on verb {r['zai']['the verb']:.2f}, preposition {r['zai']['the preposition']:.2f} "
              f"({r['train_seconds']:.0f} s)", flush=True)
        result = {"settings": SETTINGS, "script_sha256": script_sha256(), "torch": torch.__version__,
                  "threads": torch.get_num_threads(), "rows": rows, "contrast": contrast}
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")  # after every seed
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
