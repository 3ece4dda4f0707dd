"""Decoding: greedy search, beam search and sampling, for every translation model of the course.

Introduced in notebook 07. The three decoders drive a model one step at a time
through the incremental half of the ``TranslationModel`` protocol
(``course_utils.protocols``), so they work unchanged for ``Seq2Seq`` (with or
without attention) and for the ``Transformer``:

    state = model.start_decoding(src, src_lengths, use_cache=use_cache)
    logits, weights, state = model.decode_step(state, prev_tokens)  # (B, V), (B, S) or None
    state = model.reorder_state(state, index)                       # beam search: pick / copy rows

``use_cache=True`` lets the Transformer keep the keys and values of earlier
steps (its KV cache); ``use_cache=False`` makes it recompute the whole prefix at
every step. Both give the same tokens; models without a cache ignore the flag.

Every decoder returns a :class:`DecodeResult` with

* ``tokens`` (B, L): the output, ``<eos>`` included, padded with ``model.pad_id``
  after it (a sequence cut off at ``max_len`` has no ``<eos>``; a model with a
  length limit of its own, ``TransformerConfig.max_len``, caps ``max_len``);
* ``scores`` (B,): the model's log-probability of each returned sequence, the
  sum of ``log p(y_t | y_<t, x)`` over its tokens, ``<eos>`` included. Greedy and
  sampling return that plain sum; beam search returns it divided by the length
  penalty of Wu et al. (2016), see :func:`length_normaliser`, and
  ``length_penalty=0`` gives the plain sum there too;
* ``weights`` (B, L, S): the attention weights of the returned sequence (zeros
  after its end), or None for a model without attention;
* ``lengths`` (B,): tokens per sequence, ``<eos>`` included.

Scores always use the model's own distribution (``log_softmax`` of its logits):
a temperature or a top-k / top-p filter changes which tokens ``sample`` draws,
not how the returned sequence is scored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_utils.checks import check_shape

__all__ = ["DecodeResult", "beam_search", "greedy", "length_normaliser", "sample", "score_sequences"]


@dataclass
class DecodeResult:
    """What a decoder returns (see the module docstring). Introduced in notebook 07.

    Shapes: tokens (B, L) int64, scores (B,) float32, weights (B, L, S) or None, lengths (B,) int64.
    """

    tokens: Tensor
    scores: Tensor
    weights: Tensor | None
    lengths: Tensor


# --------------------------------------------------------------------------- checks and helpers
def _check_inputs(src: Tensor, src_lengths: Tensor, max_len: int) -> int:
    bound = check_shape("src", src, ("B", "S"))
    check_shape("src_lengths", src_lengths, ("B",), bound)
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len: expected an int >= 1, got {max_len!r}")
    return bound["B"]


def _steps(model: nn.Module, max_len: int) -> int:
    """max_len, capped at the model's own limit where it has one (``TransformerConfig.max_len``)."""
    limit = getattr(getattr(model, "cfg", None), "max_len", None)
    return max_len if not isinstance(limit, int) else min(max_len, limit)


def _ids(model: nn.Module) -> tuple[int, int, int]:
    """(bos_id, eos_id, pad_id) of a model; pad_id defaults to 0, the course's <pad>."""
    return int(model.bos_id), int(model.eos_id), int(getattr(model, "pad_id", 0))


def length_normaliser(length: Tensor | int, alpha: float) -> Tensor | float:
    """GNMT's length penalty lp(L) = ((5 + L) / 6) ** alpha (Wu et al., 2016).

    Beam search ranks a finished hypothesis by ``log p(y | x) / lp(|y|)``, where
    ``|y|`` counts its tokens with ``<eos>``. ``alpha = 0`` gives lp = 1, no
    normalisation; larger alpha favours longer outputs. Introduced in notebook 07.
    """
    return ((5.0 + length) / 6.0) ** alpha


def _pad_after_end(tokens: Tensor, eos_id: int, pad_id: int) -> tuple[Tensor, Tensor]:
    """Replace what follows the first <eos> by pad_id; return (tokens, lengths).

    Shapes: tokens (B, L) -> tokens (B, L), lengths (B,) counting <eos> (L if there is none).
    """
    is_eos = tokens == eos_id  # (B, L)
    after = (is_eos.cumsum(1) - is_eos.long()) > 0  # (B, L): strictly after the first <eos>
    lengths = (~after).sum(1)  # (B,)
    return tokens.masked_fill(after, pad_id), lengths


# --------------------------------------------------------------------------- teacher forcing
@torch.no_grad()
def score_sequences(model: nn.Module, src: Tensor, src_lengths: Tensor, tokens: Tensor) -> Tensor:
    """Sum of the log-probabilities of ``tokens`` under teacher forcing with ``model.forward``.

    The tokens up to and including the first ``<eos>`` count (all of them if there
    is none); what follows is ignored. This recomputes, in one parallel pass, the
    ``scores`` that :func:`greedy` and :func:`sample` return, and those of
    :func:`beam_search` with ``length_penalty=0``. Introduced in notebook 07.

    Shapes: src (B, S), src_lengths (B,), tokens (B, L) -> (B,) float32
    """
    b = check_shape("src", src, ("B", "S"))
    check_shape("tokens", tokens, ("B", "L"), b)
    bos_id, eos_id, pad_id = _ids(model)
    tokens, lengths = _pad_after_end(tokens, eos_id, pad_id)
    bos = torch.full_like(tokens[:, :1], bos_id)  # (B, 1)
    logits, _ = model(src, src_lengths, torch.cat([bos, tokens[:, :-1]], dim=1))  # (B, L, V)
    logp = F.log_softmax(logits.float(), dim=-1).gather(-1, tokens[..., None])[..., 0]  # (B, L)
    counted = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]  # (B, L)
    return (logp.double() * counted).sum(1).float()  # (B,)


# --------------------------------------------------------------------------- one token at a time
def _one_token_at_a_time(model: nn.Module, src: Tensor, src_lengths: Tensor, max_len: int, use_cache: bool,
                         choose) -> DecodeResult:
    """Decode left to right, ``choose(logits, logp)`` (both (B, V)) -> (B,) picking each next token.

    ``scores`` sums the model's own log-probabilities of the chosen tokens
    (``<eos>`` included); after its ``<eos>`` a sentence gets padding, zero
    weights and no more score. Used by :func:`greedy` and :func:`sample`.
    """
    B = src.shape[0]
    bos_id, eos_id, pad_id = _ids(model)
    state = model.start_decoding(src, src_lengths, use_cache=use_cache)
    prev = torch.full((B,), bos_id, dtype=torch.long, device=src.device)  # (B,)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)  # (B,)
    score = torch.zeros(B, dtype=torch.float64, device=src.device)  # (B,): float64 keeps sums exact enough
    tokens, weights = [], []
    for _ in range(_steps(model, max_len)):
        logits, w, state = model.decode_step(state, prev)  # (B, V), (B, S) or None
        logits = logits.float()
        logp = F.log_softmax(logits, dim=-1)  # (B, V): the model's own distribution, for the score
        nxt = choose(logits, logp)  # (B,)
        score += logp.gather(1, nxt[:, None])[:, 0].double().masked_fill(done, 0.0)
        tokens.append(nxt.masked_fill(done, pad_id))
        if w is not None:
            weights.append(w.float().masked_fill(done[:, None], 0.0))  # (B, S)
        done = done | (nxt == eos_id)
        prev = nxt
        if bool(done.all()):
            break
    out, lengths = _pad_after_end(torch.stack(tokens, 1), eos_id, pad_id)  # (B, L)
    return DecodeResult(out, score.float(), torch.stack(weights, 1) if weights else None, lengths)


# --------------------------------------------------------------------------- greedy
@torch.no_grad()
def greedy(model: nn.Module, src: Tensor, src_lengths: Tensor, max_len: int,
           use_cache: bool = True) -> DecodeResult:
    """Always take the most likely next token, until ``<eos>`` or ``max_len`` tokens.

    ``scores`` is the plain sum of the log-probabilities of the returned tokens
    (``<eos>`` included), no length normalisation. Ties go to the lower token id.
    Introduced in notebook 07.

    Shapes: src (B, S), src_lengths (B,) -> DecodeResult (tokens (B, L), L <= max_len)
    """
    _check_inputs(src, src_lengths, max_len)
    return _one_token_at_a_time(model, src, src_lengths, max_len, use_cache,
                                lambda logits, logp: logp.argmax(-1))  # (B,): the first maximum


# --------------------------------------------------------------------------- beam search
@torch.no_grad()
def beam_search(model: nn.Module, src: Tensor, src_lengths: Tensor, beam_size: int, max_len: int,
                length_penalty: float = 1.0, use_cache: bool = True) -> DecodeResult:
    """Keep the ``beam_size`` most likely prefixes at every step; return the best finished one.

    At each step every live prefix is extended by every token; the candidates are
    ranked by their summed log-probability ``log p(y_1..y_t | x)``. Among the
    ``2 * beam_size`` best:

    * a candidate that ends in ``<eos>`` and ranks among the first ``beam_size``
      is *finished*: it is put aside, with the score
      ``log p(y | x) / lp(|y|)``, ``lp(L) = ((5 + L) / 6) ** length_penalty``
      (Wu et al., 2016; ``|y|`` counts ``<eos>``; ``length_penalty=0`` is no
      normalisation, the plain sum), and never extended again;
    * the first ``beam_size`` candidates that do not end in ``<eos>`` are the live
      prefixes of the next step, so the beam stays full.

    A sentence is done once ``beam_size`` hypotheses have finished (the stopping
    rule of common toolkits); the search ends when every sentence is done or
    after ``max_len`` tokens. The result is the finished hypothesis with the best
    normalised score; a sentence with none falls back to its best live prefix,
    cut off at ``max_len``. With ``beam_size=1`` this is exactly :func:`greedy`.
    Introduced in notebook 07.

    Shapes: src (B, S), src_lengths (B,) -> DecodeResult (tokens (B, L), L <= max_len)
    """
    B = _check_inputs(src, src_lengths, max_len)
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size: expected an int >= 1, got {beam_size!r}")
    if not float(length_penalty) >= 0.0:
        raise ValueError(f"length_penalty: expected a number >= 0, got {length_penalty!r}")
    alpha, k, device = float(length_penalty), beam_size, src.device
    bos_id, eos_id, pad_id = _ids(model)
    rows = torch.arange(B, device=device)[:, None] * k  # (B, 1): first row of each sentence's beams

    state = model.start_decoding(src, src_lengths, use_cache=use_cache)
    state = model.reorder_state(state, torch.arange(B, device=device).repeat_interleave(k))  # B*k rows
    beam_score = torch.full((B, k), float("-inf"), dtype=torch.float64, device=device)  # (B, k)
    beam_score[:, 0] = 0.0  # k copies of the empty prefix: only one of them may grow at step 1
    prev = torch.full((B * k,), bos_id, dtype=torch.long, device=device)  # (B*k,)
    history = torch.zeros(B * k, 0, dtype=torch.long, device=device)  # (B*k, t): tokens of each live prefix
    w_history: Tensor | None = None  # (B*k, t, S): their attention weights
    finished: list[list[tuple[float, float, Tensor, Tensor | None]]] = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=device)  # (B,)

    for t in range(_steps(model, max_len)):
        logits, w, state = model.decode_step(state, prev)  # (B*k, V), (B*k, S) or None
        V = logits.shape[-1]
        logp = F.log_softmax(logits.float(), dim=-1).double()  # (B*k, V)
        cand = (beam_score[:, :, None] + logp.view(B, k, V)).view(B, k * V)  # (B, k*V)
        n_cand = min(2 * k, k * V)
        best = cand.sort(dim=-1, descending=True, stable=True)  # ties: lower (beam, token) first
        top_score, top = best.values[:, :n_cand], best.indices[:, :n_cand]  # (B, 2k)
        parent = rows + top // V  # (B, 2k): row of the prefix each candidate extends
        token = top % V  # (B, 2k)
        is_eos = token == eos_id  # (B, 2k)
        rank = torch.arange(n_cand, device=device)  # (2k,)

        # finished: <eos> among the first k candidates, of a sentence still searching
        ends = is_eos & (rank < k) & torch.isfinite(top_score) & ~done[:, None]  # (B, 2k)
        for b, r in ends.nonzero().tolist():
            p = int(parent[b, r])
            seq = torch.cat([history[p], token[b, r:r + 1]])  # (t + 1,)
            seq_w = None
            if w is not None:
                seq_w = w[p:p + 1].float() if w_history is None else torch.cat([w_history[p], w[p:p + 1].float()])
            raw = float(top_score[b, r])
            finished[b].append((raw / float(length_normaliser(t + 1, alpha)), raw, seq, seq_w))

        # live: the first k candidates that do not end in <eos> (there are at least k of them,
        # since each prefix has one <eos> extension); a done sentence keeps dead beams
        keep = (is_eos.long() * n_cand + rank).sort(dim=-1, stable=True).indices[:, :k]  # (B, k)
        beam_score = top_score.gather(1, keep)  # (B, k)
        parent, token = parent.gather(1, keep).view(-1), token.gather(1, keep).view(-1)  # (B*k,)
        done = done | torch.tensor([len(f) >= k for f in finished], device=device)
        beam_score = beam_score.masked_fill(done[:, None], float("-inf"))
        history = torch.cat([history[parent], token[:, None]], dim=1)  # (B*k, t + 1)
        if w is not None:
            step_w = w.float()[parent][:, None]  # (B*k, 1, S)
            w_history = step_w if w_history is None else torch.cat([w_history[parent], step_w], dim=1)
        if bool(done.all()):
            break
        state = model.reorder_state(state, parent)
        prev = token

    # a sentence with nothing finished: its best live prefix, cut off at max_len
    for b in range(B):
        if not finished[b]:
            p = b * k + int(beam_score[b].argmax())
            raw = float(beam_score[b].max())
            finished[b].append((raw / float(length_normaliser(history.shape[1], alpha)), raw, history[p],
                                None if w_history is None else w_history[p]))
    chosen = [max(f, key=lambda h: h[0]) for f in finished]  # the first of equal scores
    L = max(len(h[2]) for h in chosen)
    tokens = torch.full((B, L), pad_id, dtype=torch.long, device=device)  # (B, L)
    weights = None if w_history is None else torch.zeros(B, L, w_history.shape[-1], device=device)  # (B, L, S)
    for b, (_, _, seq, seq_w) in enumerate(chosen):
        tokens[b, :len(seq)] = seq
        if weights is not None:
            weights[b, :len(seq)] = seq_w
    scores = torch.tensor([h[0] for h in chosen], dtype=torch.float32, device=device)  # (B,)
    lengths = torch.tensor([len(h[2]) for h in chosen], dtype=torch.long, device=device)  # (B,)
    return DecodeResult(tokens, scores, weights, lengths)


# --------------------------------------------------------------------------- sampling
def _filter_logits(logits: Tensor, top_k: int | None, top_p: float | None) -> Tensor:
    """Set to -inf every logit outside the top-k tokens and outside the nucleus of mass top_p.

    The nucleus (Holtzman et al., 2020) is the smallest set of most likely tokens
    whose probabilities sum to at least ``top_p``; it always holds the most likely one.
    Shapes: logits (B, V) -> (B, V)
    """
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        probs, order = F.softmax(logits, dim=-1).sort(dim=-1, descending=True)  # (B, V)
        before = probs.cumsum(-1) - probs  # (B, V): mass of the more likely tokens
        drop = torch.zeros_like(before, dtype=torch.bool).scatter(1, order, before >= top_p)  # (B, V)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def sample(model: nn.Module, src: Tensor, src_lengths: Tensor, max_len: int, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
           use_cache: bool = True) -> DecodeResult:
    """Draw each next token at random from the model's distribution, reshaped.

    The logits are divided by ``temperature`` (below 1 sharper, above 1 flatter),
    then only the ``top_k`` most likely tokens (Fan et al., 2018) and only the
    nucleus of probability mass ``top_p`` (Holtzman et al., 2020) are kept. Each
    step draws one uniform number per sentence from ``generator`` (inverse-CDF
    sampling), so a fixed generator gives the same tokens with and without the
    cache. ``scores`` is the plain sum of the log-probabilities of the returned
    tokens under the *unmodified* model (temperature 1, no filter).
    Introduced in notebook 07.

    Shapes: src (B, S), src_lengths (B,) -> DecodeResult (tokens (B, L), L <= max_len)
    """
    B = _check_inputs(src, src_lengths, max_len)
    if not float(temperature) > 0.0:
        raise ValueError(f"temperature: expected a number > 0 (use greedy() for the limit 0), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k: expected None or an int >= 1, got {top_k!r}")
    if top_p is not None and not 0.0 < float(top_p) <= 1.0:
        raise ValueError(f"top_p: expected None or a number in (0, 1], got {top_p!r}")
    device = src.device

    def draw(logits: Tensor, logp: Tensor) -> Tensor:  # inverse-CDF sampling, one uniform number per sentence
        probs = F.softmax(_filter_logits(logits / temperature, top_k, top_p), dim=-1)  # (B, V)
        cdf = probs.cumsum(-1)  # (B, V)
        u = 1.0 - torch.rand(B, generator=generator, device=device if generator is None else generator.device)
        return (cdf < u.to(device)[:, None] * cdf[:, -1:]).sum(-1)  # (B,): first token whose cdf reaches u

    return _one_token_at_a_time(model, src, src_lengths, max_len, use_cache, draw)

