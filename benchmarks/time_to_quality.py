"""Time to quality: how long the attention GRU trains before it translates long sentences.

Trains the additive-attention GRU until it reaches ``--target`` exact match
(default 0.95) on the validation sentences of 30-39 source tokens, checking
every ``--every`` steps with the clock stopped, then reports its test score on
the held-out 30-39-token test sentences. The fixed-context model then trains
for the same number of seconds and is scored the same way.

    python -m benchmarks.time_to_quality            # ~2-3 minutes on 2 cores
    python -m benchmarks.time_to_quality --budget 60 --threads 2 --markdown

Seconds are wall-clock seconds of training (evaluation excluded) with
``--threads`` CPU threads; the process CPU time is printed beside them.
"""
from __future__ import annotations

import argparse
import time

import torch

import course_utils as cu
from course_utils.data import make_corpus
from course_utils.models import Seq2Seq, Seq2SeqConfig
from course_utils.train import evaluate, train


def long_subset(pairs, lo=30, hi=39):
    return [p for p in pairs if lo <= len(p.src) <= hi]


def run(budget: float, target: float, every: int, seed: int, device: torch.device) -> dict:
    cu.set_seed(seed)
    corpus = make_corpus(seed=seed)
    valid, test = long_subset(corpus.valid), long_subset(corpus.test)
    cfg = Seq2SeqConfig(len(corpus.src_vocab), len(corpus.tgt_vocab))
    results = {"n_valid": len(valid), "n_test": len(test), "device": cu.describe_device(device)}

    def exact(model, pairs):
        return evaluate(model.to(device), pairs, corpus.src_vocab, corpus.tgt_vocab).overall["exact_match"]

    curve = []

    def check(history):
        score = exact(model, valid)
        curve.append((round(history.seconds, 1), history.steps, score))
        return score >= target

    model = Seq2Seq.build(cfg, "additive").to(device)
    cpu0 = time.process_time()
    hist = train(model, corpus, steps=None, seconds=budget, seed=seed, device=device, progress=False,
                 callback=check, callback_every=every, desc="attention")
    reached = bool(curve) and curve[-1][2] >= target
    results["attention"] = {"seconds": hist.seconds, "steps": hist.steps, "reached": reached,
                            "valid_curve": curve, "test_exact_match": exact(model, test),
                            "cpu_seconds_incl_eval": time.process_time() - cpu0}
    same = hist.seconds if reached else budget
    cu.set_seed(seed)
    fixed = Seq2Seq.build(cfg).to(device)
    fhist = train(fixed, corpus, steps=None, seconds=same, seed=seed, device=device, progress=False,
                  desc="fixed context")
    results["fixed"] = {"seconds": fhist.seconds, "steps": fhist.steps, "test_exact_match": exact(fixed, test)}
    # the fixed-context model with the whole budget, for the claim "after the same 60 s"
    if same < budget:
        cu.set_seed(seed)
        fixed_full = Seq2Seq.build(cfg).to(device)
        ffull = train(fixed_full, corpus, steps=None, seconds=budget, seed=seed, device=device, progress=False)
        results["fixed_full_budget"] = {"seconds": ffull.seconds, "steps": ffull.steps,
                                        "test_exact_match": exact(fixed_full, test)}
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds at most")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--every", type=int, default=100, help="steps between checks")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--markdown", action="store_true", help="print a README table")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = cu.pick_device(args.device)
    rows = []
    for seed in args.seeds:
        r = run(args.budget, args.target, args.every, seed, device)
        a, f = r["attention"], r["fixed"]
        ff = r.get("fixed_full_budget", f)
        rows.append((seed, r["n_test"], a["seconds"], a["steps"], a["reached"], a["test_exact_match"],
                     f["test_exact_match"], ff["seconds"], ff["test_exact_match"]))
        if not args.markdown:
            print(r)
    print(f"\ndevice: {cu.describe_device(device)}; budget {args.budget:.0f} s; target {args.target} "
          f"exact match on valid 30-39-token sentences\n")
    print("| seed | test sentences 30-39 | attention: seconds to target | steps | reached | attention test EM "
          "| fixed context test EM (same seconds) | fixed context test EM (full budget) |")
    print("|---|---|---|---|---|---|---|---|")
    for seed, n, sec, steps, ok, aem, fem, ffs, ffem in rows:
        print(f"| {seed} | {n} | {sec:.1f} | {steps} | {'yes' if ok else 'no'} | {aem:.3f} | {fem:.3f} "
              f"| {ffem:.3f} ({ffs:.0f} s) |")


if __name__ == "__main__":
    main()
