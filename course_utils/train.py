"""Training and evaluation for the course's translation models.

* :func:`train`: Adam, gradient clipping, a tqdm bar, and a budget in steps
  (deterministic: what notebooks use) or in wall-clock seconds (benchmarks).
* :func:`evaluate`: token accuracy, exact match and BLEU, overall and bucketed
  by source length, plus how often attention finds the gold-aligned word.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from course_utils.checks import check_int
from course_utils.data import Batch, Corpus, Pair, Vocab, bucket_by_length, iterate_batches, make_batch

LENGTH_EDGES = (4, 10, 20, 30, 40, 51)


def progress_bar(iterable=None, **kwargs):
    """A tqdm bar: a widget in JupyterLab, plain text when ``COURSE_PROGRESS=text``.

    Headless runs (``./course bench``) set ``COURSE_PROGRESS=text`` so that the outputs
    stored in a notebook show the finished bar instead of a widget frozen at 0 %. A text
    bar is drawn only when it starts and when it ends (nobody watches it), so a stored
    notebook keeps two short lines per bar, not hundreds of redraws.
    Use it like ``tqdm``: ``for step in progress_bar(range(n), desc="training"): ...``.
    Introduced in notebook 01.
    """
    if os.environ.get("COURSE_PROGRESS", "").lower() == "text":
        from tqdm.std import tqdm
        kwargs["mininterval"] = float("inf")
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)


@dataclass
class History:
    """What :func:`train` did. Introduced in notebook 01."""

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / max(self.seconds, 1e-9)


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Mean cross-entropy over real target tokens; padding counts for nothing.

    Shapes: logits (B, T, V), targets (B, T) -> scalar. Introduced in notebook 01.
    """
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),  # (B*T, V)
                                       targets.reshape(-1), ignore_index=pad_id)  # (B*T,)


def train(model: nn.Module, corpus: Corpus, steps: int | None = 1000, seconds: float | None = None,
          batch_size: int = 64, lr: float = 5e-3, clip: float = 1.0, device: torch.device | str | None = None,
          seed: int = 0, progress: bool = True, pairs: Sequence[Pair] | None = None,
          desc: str = "training", callback: Callable[[History], bool | None] | None = None,
          callback_every: int = 100, cooldown: int = 0) -> History:
    """Train ``model`` (a :class:`~course_utils.models.Seq2Seq` or any module with the
    same ``forward(src, src_lengths, tgt_in) -> (logits, weights)``) on ``corpus.train``
    (or ``pairs``) until ``steps`` updates or ``seconds`` of wall-clock time, whichever
    comes first. Returns the loss history. Introduced in notebook 01.

    ``callback(history)`` runs every ``callback_every`` steps (e.g. to evaluate);
    the clock stops while it runs, so ``history.seconds`` counts training only, and
    training ends early when it returns True. The model is in eval mode during it.
    ``steps=0`` (or ``seconds=0``) returns an empty History without a step; an empty
    ``pairs`` (or ``corpus.train``) raises ValueError, as would waiting forever.

    ``cooldown=N`` lowers the learning rate linearly over the last N of the ``steps``
    (step i of the budget uses ``lr * min(1, (steps - i) / N)``, the last one lr / N);
    the steps before are exactly those of ``cooldown=0``. A high constant rate ends
    wherever its last loss spike happens to be; a cool-down ends every run settled.
    Introduced in notebook 03.
    """
    if steps is None and seconds is None:
        raise ValueError("train: give a budget, steps or seconds (both are None)")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 0):
        raise ValueError(f"steps: expected None or an int >= 0, got {steps!r}")
    if seconds is not None and not seconds >= 0:
        raise ValueError(f"seconds: expected None or a number >= 0, got {seconds!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    check_int("cooldown", cooldown, 0, "steps at the end with a falling learning rate")
    if cooldown and (steps is None or cooldown > steps):
        raise ValueError(f"cooldown: expected at most steps={steps} steps (it counts the last steps of the "
                         f"steps budget), got {cooldown}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    data = list(corpus.train if pairs is None else pairs)
    if not data:
        raise ValueError("pairs: expected at least one training pair, got none"
                         + (" (corpus.train is empty)" if pairs is None else ""))
    history = History()
    if steps == 0 or seconds == 0:
        model.eval()
        return history
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    bar = progress_bar(total=steps if steps is not None else None, desc=desc, disable=not progress,
                       unit="step", mininterval=0.5)
    start, epoch, paused = time.perf_counter(), 0, 0.0
    while True:
        for batch in iterate_batches(data, corpus.src_vocab, corpus.tgt_vocab, batch_size, True, seed + epoch):
            batch = batch.to(device)
            logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)
            loss = sequence_loss(logits, batch.tgt_out, corpus.tgt_vocab.pad_id)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            if cooldown:
                for group in opt.param_groups:  # history.steps = the index of this step
                    group["lr"] = lr * min(1.0, (steps - history.steps) / cooldown)
            opt.step()
            history.losses.append(loss.item())
            history.steps += 1
            history.seconds = time.perf_counter() - start - paused
            bar.update(1)
            if history.steps % 20 == 0:
                bar.set_postfix(loss=f"{sum(history.losses[-20:]) / 20:.3f}", refresh=False)
            stop = False
            if callback is not None and history.steps % callback_every == 0:
                tick = time.perf_counter()
                model.eval()
                stop = bool(callback(history))
                model.train()
                paused += time.perf_counter() - tick
            if stop or (steps is not None and history.steps >= steps) or (seconds is not None and history.seconds >= seconds):
                bar.close()
                model.eval()
                return history
        epoch += 1


# --------------------------------------------------------------------------- evaluation
@dataclass
class EvalReport:
    """Scores overall and by source-length bucket. Introduced in notebook 01.

    ``overall`` and every ``by_length[bucket]`` map metric names ("exact_match",
    "token_accuracy", "bleu", and "alignment" for attention models) to values;
    ``by_length[bucket]["n"]`` counts the sentences in that bucket.
    """

    overall: dict[str, float]
    by_length: dict[str, dict[str, float]]
    examples: list[tuple[Pair, list[str]]] = field(default_factory=list, repr=False)

    def metric(self, name: str) -> dict[str, float]:
        """``{bucket: value}`` for one metric, buckets in length order (for plotting)."""
        return {k: v[name] for k, v in self.by_length.items() if v.get("n", 0) > 0}

    def table(self, metrics: Sequence[str] = ("n", "token_accuracy", "exact_match", "bleu")) -> str:
        """A small fixed-width text table."""
        rows = [f"{'length':>8} " + " ".join(f"{m:>14}" for m in metrics)]
        for k, v in list(self.by_length.items()) + [("all", self.overall)]:
            rows.append(f"{k:>8} " + " ".join(
                f"{v.get(m, float('nan')):>14.0f}" if m == "n" else f"{v.get(m, float('nan')):>14.3f}"
                for m in metrics))
        return "\n".join(rows)


def bleu(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU in [0, 1] over pre-tokenised sentences (sacrebleu, no re-tokenisation).

    Introduced in notebook 01.
    """
    import sacrebleu  # imported lazily: only evaluation needs it

    if len(hypotheses) == 0:
        return float("nan")
    score = sacrebleu.corpus_bleu([" ".join(h) for h in hypotheses], [[" ".join(r) for r in references]],
                                  tokenize="none", force=True)
    return score.score / 100.0


@torch.no_grad()
def translate(model: nn.Module, pairs: Sequence[Pair], src_vocab: Vocab, tgt_vocab: Vocab,
              batch_size: int = 256) -> tuple[list[list[str]], list[torch.Tensor | None]]:
    """Greedy translations of ``pairs`` and each one's (L, S_i) attention weights (or None).

    Introduced in notebook 01.
    """
    model.eval()
    device = next(model.parameters()).device
    hyps, attn = [], []
    for k in range(0, len(pairs), batch_size):
        batch = make_batch(pairs[k:k + batch_size], src_vocab, tgt_vocab).to(device)
        tokens, weights = model.greedy_decode(batch.src, batch.src_lengths, max_len=batch.src.shape[1] + 5)
        for i, pair in enumerate(batch.pairs):
            words = tgt_vocab.decode(tokens[i].tolist())
            hyps.append(words)
            attn.append(None if weights is None else weights[i, : len(words) + 1, : len(pair.src)].cpu())
    return hyps, attn


@torch.no_grad()
def attention_alignment(model: nn.Module, pairs: Sequence[Pair], src_vocab: Vocab, tgt_vocab: Vocab,
                        batch_size: int = 256) -> list[tuple[int, int]]:
    """For each pair, (hits, counted): target words whose strongest teacher-forced
    attention weight lands on one of their gold-aligned source words. Target words
    with no alignment are not counted. Introduced in notebook 03.
    """
    model.eval()
    device = next(model.parameters()).device
    out = []
    for k in range(0, len(pairs), batch_size):
        batch: Batch = make_batch(pairs[k:k + batch_size], src_vocab, tgt_vocab).to(device)
        _, weights = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, S)
        if weights is None:
            raise ValueError("attention_alignment: the model returns no attention weights")
        best = weights.argmax(-1).cpu()  # (B, T): output step t predicts target word t
        for i, pair in enumerate(batch.pairs):
            gold = pair.aligned_source()
            counted = [t for t in range(len(pair.tgt)) if gold[t]]
            hits = sum(int(best[i, t]) in gold[t] for t in counted)
            out.append((hits, len(counted)))
    return out


def _scores(pairs: Sequence[Pair], hyps: Sequence[list[str]], align: Sequence[tuple[int, int]] | None
            ) -> dict[str, float]:
    if not pairs:
        return {"n": 0}
    refs = [list(p.tgt) + ["<eos>"] for p in pairs]
    outs = [h + ["<eos>"] for h in hyps]
    correct = sum(sum(a == b for a, b in zip(r, o)) for r, o in zip(refs, outs))
    scores = {
        "n": len(pairs),
        "token_accuracy": correct / sum(len(r) for r in refs),
        "exact_match": sum(list(p.tgt) == h for p, h in zip(pairs, hyps)) / len(pairs),
        "bleu": bleu(hyps, [p.tgt for p in pairs]),
    }
    if align is not None:
        scores["alignment"] = sum(h for h, _ in align) / max(1, sum(c for _, c in align))
    return scores


def evaluate(model: nn.Module, pairs: Sequence[Pair], src_vocab: Vocab, tgt_vocab: Vocab,
             edges: Sequence[int] = LENGTH_EDGES, batch_size: int = 256, keep_examples: int = 0) -> EvalReport:
    """Greedy-decode ``pairs`` and score them overall and by source length.

    Introduced in notebook 01.
    """
    pairs = list(pairs)
    hyps, _ = translate(model, pairs, src_vocab, tgt_vocab, batch_size)
    has_attention = getattr(model, "has_attention", False)
    align = attention_alignment(model, pairs, src_vocab, tgt_vocab, batch_size) if has_attention else None
    index = {id(p): i for i, p in enumerate(pairs)}
    by_length = {}
    for key, group in bucket_by_length(pairs, edges).items():
        ids = [index[id(p)] for p in group]
        by_length[key] = _scores(group, [hyps[i] for i in ids], None if align is None else [align[i] for i in ids])
    return EvalReport(_scores(pairs, hyps, align), by_length, list(zip(pairs, hyps))[:keep_examples])
