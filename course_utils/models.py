"""Encoder-decoder RNNs: the fixed-context bottleneck and its attention fix.

* :class:`Encoder`: a bidirectional GRU over packed sequences, so padding never
  changes the encoding.
* :class:`FixedContextDecoder`: every step sees the same single context vector
  (Cho et al., 2014): the translator who may take no notes. Notebook 01.
* :class:`AttentionDecoder`: every step asks an attention module for a fresh
  context over all encoder states. Any module with the course's attention
  signature plugs in (additive, dot, general, ...). Notebook 03.
* :class:`Seq2Seq`: teacher-forced ``forward``, one-step ``decode_step`` and
  ``greedy_decode`` (the ``course_utils.protocols.TranslationModel`` contract).

Both decoders run their GRU over the whole (teacher-forced) target at once and
attend afterwards, the arrangement of Luong et al. (2015): the query for output
step t is the decoder state h_t. This keeps training fast on a laptop CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_utils import scoring as att
from course_utils.checks import check_lengths, check_shape
from course_utils.data import Vocab
from course_utils.functional import padding_mask
from course_utils.protocols import greedy_decode


@dataclass
class Seq2SeqConfig:
    """Sizes of a GRU encoder-decoder. Introduced in notebook 01.

    The encoder has ``hidden_dim`` units per direction, so its states and the
    decoder's are ``2 * hidden_dim`` wide.
    """

    src_vocab: int
    tgt_vocab: int
    emb_dim: int = 64
    hidden_dim: int = 64
    dropout: float = 0.0
    pad_id: int = Vocab.pad_id

    @property
    def state_dim(self) -> int:
        return 2 * self.hidden_dim


class Encoder(nn.Module):
    """Bidirectional GRU encoder over packed sequences. Introduced in notebook 01."""

    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.src_vocab, cfg.emb_dim, padding_idx=cfg.pad_id)
        self.rnn = nn.GRU(cfg.emb_dim, cfg.hidden_dim, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Shapes:
            src (B, S) token ids, src_lengths (B,)
            -> states (B, S, 2*Hd) (zeros at padding), final (B, 2*Hd)
        """
        b = check_shape("src", src, ("B", "S"))
        check_shape("src_lengths", src_lengths, ("B",), b)
        emb = self.dropout(self.embed(src))  # (B, S, E)
        packed = pack_padded_sequence(emb, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, h_n = self.rnn(packed)  # h_n: (2, B, Hd)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])  # (B, S, 2*Hd)
        final = torch.cat([h_n[0], h_n[1]], dim=-1)  # (B, 2*Hd): forward's last, backward's first
        return states, final


class FixedContextDecoder(nn.Module):
    """GRU decoder that sees one context vector c at every step. Introduced in notebook 01.

    Input at step t: [embedding of y_{t-1}; c]; output from [h_t; c].
    """

    has_attention = False

    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        d = cfg.state_dim
        self.embed = nn.Embedding(cfg.tgt_vocab, cfg.emb_dim, padding_idx=cfg.pad_id)
        self.init = nn.Linear(d, d)
        self.rnn = nn.GRU(cfg.emb_dim + d, d, batch_first=True)
        self.out = nn.Sequential(nn.Linear(2 * d, d), nn.Tanh(), nn.Linear(d, cfg.tgt_vocab))
        self.dropout = nn.Dropout(cfg.dropout)

    def start(self, states: torch.Tensor, final: torch.Tensor, src_mask: torch.Tensor) -> dict:
        """Decoder memory from the encoder: here only the context c = final (B, D)."""
        return {"context": final, "hidden": torch.tanh(self.init(final))[None]}  # hidden (1, B, D)

    def forward(self, tgt_in: torch.Tensor, memory: dict, hidden: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Run the decoder over ``tgt_in``.

        Shapes:
            tgt_in (B, T) -> logits (B, T, V), weights None, hidden (1, B, D)
        """
        c = memory["context"]  # (B, D)
        hidden = memory["hidden"] if hidden is None else hidden
        emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
        c_t = c[:, None, :].expand(-1, tgt_in.shape[1], -1)  # (B, T, D)
        h, hidden = self.rnn(torch.cat([emb, c_t], dim=-1), hidden)  # (B, T, D)
        return self.out(torch.cat([h, c_t], dim=-1)), None, hidden  # (B, T, V)


def make_attention(kind: str | nn.Module, dim: int) -> nn.Module:
    """An attention module for queries, keys and values of width ``dim``.

    ``kind``: "additive", "dot", "scaled_dot", "general", "concat" (the query-blind
    pitfall of notebook 03) or a ready module. Introduced in notebook 03.
    """
    if isinstance(kind, nn.Module):
        return kind
    table = {
        "additive": lambda: att.AdditiveAttention(dim, dim, max(dim // 2, 1)),
        "dot": lambda: att.DotProductAttention(scaled=False),
        "scaled_dot": lambda: att.DotProductAttention(scaled=True),
        "general": lambda: att.GeneralAttention(dim, dim),
        "concat": lambda: att.ConcatLinearAttention(dim, dim),
    }
    if kind not in table:
        raise ValueError(f"attention: expected one of {sorted(table)} or an nn.Module, got {kind!r}")
    return table[kind]()


class AttentionDecoder(nn.Module):
    """GRU decoder with a fresh attention context for every output word. Introduced in notebook 03.

    Query = decoder state h_t (B, T, D); keys = values = encoder states (B, S, D);
    the output is predicted from tanh(W [h_t; c_t]).
    """

    has_attention = True

    def __init__(self, cfg: Seq2SeqConfig, attention: str | nn.Module = "additive") -> None:
        super().__init__()
        d = cfg.state_dim
        self.embed = nn.Embedding(cfg.tgt_vocab, cfg.emb_dim, padding_idx=cfg.pad_id)
        self.init = nn.Linear(d, d)
        self.rnn = nn.GRU(cfg.emb_dim, d, batch_first=True)
        self.attention = make_attention(attention, d)
        self.combine = nn.Linear(2 * d, d)
        self.out = nn.Linear(d, cfg.tgt_vocab)
        self.dropout = nn.Dropout(cfg.dropout)

    def start(self, states: torch.Tensor, final: torch.Tensor, src_mask: torch.Tensor) -> dict:
        return {"states": states, "mask": src_mask[:, None, :],  # mask (B, 1, S)
                "hidden": torch.tanh(self.init(final))[None]}  # hidden (1, B, D)

    def forward(self, tgt_in: torch.Tensor, memory: dict, hidden: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the decoder over ``tgt_in``.

        Shapes:
            tgt_in (B, T) -> logits (B, T, V), weights (B, T, S), hidden (1, B, D)
        """
        hidden = memory["hidden"] if hidden is None else hidden
        emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
        h, hidden = self.rnn(emb, hidden)  # (B, T, D)
        context, weights = self.attention(h, memory["states"], memory["states"], memory["mask"])
        mixed = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))  # (B, T, D)
        return self.out(self.dropout(mixed)), weights, hidden  # (B, T, V), (B, T, S)


class Seq2Seq(nn.Module):
    """Encoder + decoder with teacher forcing and greedy decoding. Introduced in notebook 01.

    Follows ``course_utils.protocols.TranslationModel``: ``bos_id`` / ``eos_id``
    default to the vocabulary's (``Vocab``), ``pad_id`` is the config's;
    ``start_decoding`` / ``decode_step`` / ``reorder_state`` decode one word at a
    time (the GRU's hidden state is all there is to keep, so ``use_cache`` changes nothing).
    """

    def __init__(self, encoder: Encoder, decoder: nn.Module, bos_id: int = Vocab.bos_id,
                 eos_id: int = Vocab.eos_id) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, encoder.cfg.pad_id

    @classmethod
    def build(cls, cfg: Seq2SeqConfig, attention: str | nn.Module | None = None) -> Seq2Seq:
        """A fixed-context model (``attention=None``) or an attention model."""
        decoder = FixedContextDecoder(cfg) if attention is None else AttentionDecoder(cfg, attention)
        return cls(Encoder(cfg), decoder)

    @property
    def has_attention(self) -> bool:
        """True when ``forward`` and ``greedy_decode`` return attention weights."""
        return self.decoder.has_attention

    def _memory(self, src: torch.Tensor, src_lengths: torch.Tensor) -> dict:
        check_lengths(src, src_lengths)
        states, final = self.encoder(src, src_lengths)
        src_mask = padding_mask(src_lengths.to(src.device), src.shape[1], ndim=2)  # (B, S)
        return self.decoder.start(states, final, src_mask)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced pass.

        Shapes:
            src (B, S), src_lengths (B,) in 1..S, tgt_in (B, T) = <bos> y
            -> logits (B, T, V), weights (B, T, S) or None (differentiable)
        """
        b = check_shape("src", src, ("B", "S"))
        check_shape("tgt_in", tgt_in, ("B", "T"), b)
        logits, weights, _ = self.decoder(tgt_in, self._memory(src, src_lengths))
        return logits, weights

    def start_decoding(self, src: torch.Tensor, src_lengths: torch.Tensor, use_cache: bool = True) -> dict:
        """The decoder's memory of the source, batch-first, for ``decode_step``.

        Shapes:
            src (B, S), src_lengths (B,) -> {"hidden": (B, 1, D), and "context" (B, D)
            or "states" (B, S, D) with "mask" (B, 1, S)}
        """
        memory = self._memory(src, src_lengths)
        hidden = memory.pop("hidden").transpose(0, 1)  # (1, B, D) -> (B, 1, D): batch first
        return {**memory, "hidden": hidden}

    def decode_step(self, state: dict, prev_tokens: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
        """Feed one token per sentence; return the next word's logits, the weights and the new state.

        Shapes:
            prev_tokens (B,) -> logits (B, V), weights (B, S) or None, state
        """
        check_shape("prev_tokens", prev_tokens, (state["hidden"].shape[0],))
        memory = {k: v for k, v in state.items() if k != "hidden"}
        hidden = state["hidden"].transpose(0, 1).contiguous()  # (B, 1, D) -> (1, B, D)
        logits, weights, hidden = self.decoder(prev_tokens[:, None], memory, hidden)  # (B, 1, V), (B, 1, S)
        new = {**memory, "hidden": hidden.transpose(0, 1)}  # (1, B, D) -> (B, 1, D)
        return logits[:, 0], (None if weights is None else weights[:, 0]), new  # (B, V), (B, S)

    def reorder_state(self, state: dict, index: torch.Tensor) -> dict:
        """The state of the sentences ``index`` (B',), picked or repeated (beam search)."""
        return {k: v.index_select(0, index) for k, v in state.items()}

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, src_lengths: torch.Tensor, max_len: int = 60
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Translate by always taking the most likely next word (``protocols.greedy_decode``).

        Shapes:
            src (B, S), src_lengths (B,) -> tokens (B, L), weights (B, L, S) or None,
            with L <= max_len (``max_len=0``: (B, 0) and (B, 0, S)); positions after <eos> hold <eos>.
        """
        return greedy_decode(self, src, src_lengths, max_len)
