"""Position information for attention, which by itself ignores word order.

``PositionalEncoding`` adds the fixed sinusoidal code of "Attention Is All You
Need" to the embeddings. Positions that act inside attention instead (rotary,
ALiBi, relative biases) plug into ``MultiHeadAttention``'s ``transform_qk`` /
``score_bias`` seams and live here too. Re-exported from
``course_utils.attention``.

Shape letters: B batch, S steps, D model width.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from course_utils.checks import check_shape

__all__ = ["PositionalEncoding"]


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal position code of "Attention Is All You Need".

    pe[pos, 2i] = sin(pos / 10000^(2i/D)), pe[pos, 2i+1] = cos(pos / 10000^(2i/D)),
    kept in the buffer ``pe`` (max_len, D). Introduced in notebook 05.
    """

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (max_len, 1)
        inv_freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (ceil(D/2),)
        angle = position * inv_freq  # (max_len, ceil(D/2))
        pe = torch.empty(max_len, d_model, dtype=torch.float64)
        pe[:, 0::2] = torch.sin(angle)
        pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
        self.register_buffer("pe", pe.to(torch.get_default_dtype()), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Add positions offset..offset+S-1 to a batch of sequences.

        ``offset`` > 0 continues a sequence (one decoding step at position
        ``offset``, say).

        Shapes:
            x (B, S, D) with offset + S <= max_len -> (B, S, D)
        """
        bound = check_shape("x", x, ("B", "S", "D"), {"D": self.d_model})
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset: expected an int >= 0, got {offset!r}")
        end = offset + bound["S"]
        if end > self.max_len:
            raise ValueError(f"x: {bound['S']} steps from offset {offset}, more than max_len={self.max_len} "
                             f"of this PositionalEncoding, got {tuple(x.shape)}")
        return self.dropout(x + self.pe[offset:end].to(x.dtype))  # (B, S, D) + (S, D)
