"""Encoder-decoder RNNs: the fixed-context bottleneck and its attention fix.

* :class:`Encoder`: a bidirectional GRU over packed sequences, so padding never
  changes the encoding.
* :class:`FixedContextDecoder`: every step sees the same single context vector
  (Cho et al., 2014): the translator who may take no notes. Notebook 01.
* :class:`AttentionDecoder`: every step asks an attention module for a fresh
  context over all encoder states. Any module with the course's attention
  signature plugs in (additive, dot, general, ...). Notebook 03.
* :class:`Seq2Seq`: teacher-forced ``forward`` and ``greedy_decode``.

Both decoders run their GRU over the whole (teacher-forced) target at once and
attend afterwards, the arrangement of Luong et al. (2015): the query for output
step t is the decoder state h_t. This keeps training fast on a laptop CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_utils import attention as att
from course_utils.checks import check_shape
from course_utils.data import length_mask


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
    pad_id: int = 0

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
    """Encoder + decoder with teacher forcing and greedy decoding. Introduced in notebook 01."""

    def __init__(self, encoder: Encoder, decoder: nn.Module, bos_id: int = 1, eos_id: int = 2) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.bos_id, self.eos_id = bos_id, eos_id

    @classmethod
    def build(cls, cfg: Seq2SeqConfig, attention: str | nn.Module | None = None) -> Seq2Seq:
        """A fixed-context model (``attention=None``) or an attention model."""
        decoder = FixedContextDecoder(cfg) if attention is None else AttentionDecoder(cfg, attention)
        return cls(Encoder(cfg), decoder)

    @property
    def has_attention(self) -> bool:
        return self.decoder.has_attention

    def _memory(self, src: torch.Tensor, src_lengths: torch.Tensor) -> dict:
        states, final = self.encoder(src, src_lengths)
        src_mask = length_mask(src_lengths.to(src.device), src.shape[1])  # (B, S)
        return self.decoder.start(states, final, src_mask)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced pass.

        Shapes:
            src (B, S), src_lengths (B,), tgt_in (B, T) = <bos> y
            -> logits (B, T, V), weights (B, T, S) or None
        """
        b = check_shape("src", src, ("B", "S"))
        check_shape("tgt_in", tgt_in, ("B", "T"), b)
        logits, weights, _ = self.decoder(tgt_in, self._memory(src, src_lengths))
        return logits, weights

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, src_lengths: torch.Tensor, max_len: int = 60
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Translate by always taking the most likely next word.

        Shapes:
            src (B, S), src_lengths (B,) -> tokens (B, L), weights (B, L, S) or None,
            with L <= max_len; positions after <eos> hold <eos>.
        """
        check_shape("src", src, ("B", "S"))
        memory = self._memory(src, src_lengths)
        y = torch.full((src.shape[0], 1), self.bos_id, dtype=torch.long, device=src.device)  # (B, 1)
        hidden, tokens, weights = None, [], []
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)  # (B,)
        for _ in range(max_len):
            logits, w, hidden = self.decoder(y, memory, hidden)  # (B, 1, V)
            y = logits.argmax(-1).masked_fill(done[:, None], self.eos_id)  # (B, 1)
            tokens.append(y)
            if w is not None:
                weights.append(w)
            done = done | (y[:, 0] == self.eos_id)
            if bool(done.all()):
                break
        return torch.cat(tokens, 1), (torch.cat(weights, 1) if weights else None)  # (B, L), (B, L, S)
