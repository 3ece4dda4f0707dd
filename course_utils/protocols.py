"""The contract every translation model of the course follows, and greedy decoding on top of it.

``Seq2Seq`` (fixed context or any attention), the ``Transformer`` and the
decoder-only model all satisfy :class:`TranslationModel`, so training,
evaluation, plotting and ``course_utils.decoding`` (greedy, beam search,
sampling) work with any of them. One shared test checks every family
(``tests/test_contract.py``).

Shape letters: B batch, S source steps, T target steps, L decoded steps,
V target vocabulary.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from course_utils.checks import check_int

__all__ = ["TranslationModel", "greedy_decode"]


@runtime_checkable
class TranslationModel(Protocol):
    """A model that translates a padded batch of source sentences. Introduced in notebook 06.

    * ``bos_id``, ``eos_id``, ``pad_id``: the target vocabulary's special ids;
    * ``has_attention`` (a property): whether weights come back (else None);
    * ``forward``: teacher-forced logits and weights, the weights
      differentiable (never detached);
    * ``greedy_decode``: the most likely word at every step, built on
      ``decode_step`` (see :func:`greedy_decode`);
    * incremental decoding: ``start_decoding`` encodes the source into a
      state (an object whose tensors are batch-first), ``decode_step`` feeds
      one token per sentence, ``reorder_state`` picks or repeats sentences
      of a state (beam search). ``use_cache=True`` lets a model keep what it
      has computed (the Transformer's KV cache); the results are the same.

    Shapes:
        forward: src (B, S), src_lengths (B,), tgt_in (B, T) -> logits (B, T, V), weights (B, T, S) or None
        greedy_decode: src (B, S), src_lengths (B,) -> tokens (B, L), weights (B, L, S) or None, L <= max_len
        decode_step: prev_tokens (B,) -> logits (B, V), weights (B, S) or None, state
        reorder_state: index (B',) -> state of B' sentences
    """

    bos_id: int
    eos_id: int
    pad_id: int

    @property
    def has_attention(self) -> bool: ...

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor | None]: ...

    def greedy_decode(self, src: Tensor, src_lengths: Tensor, max_len: int = 60
                      ) -> tuple[Tensor, Tensor | None]: ...

    def start_decoding(self, src: Tensor, src_lengths: Tensor, use_cache: bool = True) -> Any: ...

    def decode_step(self, state: Any, prev_tokens: Tensor) -> tuple[Tensor, Tensor | None, Any]: ...

    def reorder_state(self, state: Any, index: Tensor) -> Any: ...


def check_max_len(max_len: object) -> int:
    """``max_len`` as an int >= 0, or a ValueError naming it."""
    return check_int("max_len", max_len, 0, "the most tokens to decode")


@torch.no_grad()
def greedy_decode(model: TranslationModel, src: Tensor, src_lengths: Tensor, max_len: int = 60,
                  use_cache: bool = True) -> tuple[Tensor, Tensor | None]:
    """Translate by always taking the most likely next word, one ``decode_step`` at a time.

    Starts every sentence with ``bos_id`` and stops when all have produced
    ``eos_id`` or after ``max_len`` tokens; a finished sentence is fed and
    given ``eos_id`` from then on. ``max_len=0`` gives no tokens: (B, 0) and
    weights (B, 0, S). The weights of step t are those the model used to
    predict token t. Runs without autograd. Introduced in notebook 01 (as ``Seq2Seq.greedy_decode``).

    Shapes:
        src (B, S), src_lengths (B,) -> tokens (B, L) int64, weights (B, L, S) or None, L <= max_len;
        positions after <eos> hold <eos>
    """
    max_len = check_max_len(max_len)
    state = model.start_decoding(src, src_lengths, use_cache=use_cache)
    B, S = src.shape
    prev = torch.full((B,), model.bos_id, dtype=torch.long, device=src.device)  # (B,)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)  # (B,)
    tokens, weights = [], []
    for _ in range(max_len):
        logits, w, state = model.decode_step(state, prev)  # (B, V), (B, S) or None
        prev = logits.argmax(-1).masked_fill(done, model.eos_id)  # (B,)
        tokens.append(prev)
        if w is not None:
            weights.append(w)
        done = done | (prev == model.eos_id)
        if bool(done.all()):
            break
    out = torch.stack(tokens, 1) if tokens else torch.empty(B, 0, dtype=torch.long, device=src.device)  # (B, L)
    if not model.has_attention:
        return out, None
    if not weights:
        return out, torch.zeros(B, 0, S, device=src.device)  # (B, 0, S)
    return out, torch.stack(weights, 1)  # L x (B, S) -> (B, L, S)
