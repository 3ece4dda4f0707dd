"""Training speed with 1 and 2 intra-op threads, with and without a competing busy loop.

    python -m benchmarks.threads [--steps 25] [--rounds 2]

Trains lesson 01's fixed-context model (batch 64) for a few steps and prints steps per
second for each thread count, first as the machine is, then with a busy loop (a second
Python process spinning on one core) beside it. The figures chose the course's default of
1 thread (docs/CONVENTIONS.md, "Threads"). Wall-clock figures: they depend on the machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch

from course_utils.data import make_corpus
from course_utils.models import Seq2Seq, Seq2SeqConfig
from course_utils.train import train


def steps_per_second(corpus, threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Seq2Seq.build(Seq2SeqConfig(len(corpus.src_vocab), len(corpus.tgt_vocab)))
    train(model, corpus, steps=3, progress=False)  # warm-up
    return train(model, corpus, steps=steps, progress=False).steps_per_second


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    corpus = make_corpus(n_train=2000, n_valid=10, n_test=10, seed=0)
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, load {os.getloadavg()[0]:.1f}")
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            time.sleep(0.5)
            for _ in range(args.rounds):
                for threads in (1, 2):
                    rate = steps_per_second(corpus, threads, args.steps)
                    print(f"busy loop {'yes' if busy else 'no '}  {threads} thread(s): {rate:6.2f} steps/s  "
                          f"(load {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
