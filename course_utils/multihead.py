"""Multi-head attention, equal to ``nn.MultiheadAttention(batch_first=True)``.

Re-exported from ``course_utils.attention``. Shape letters: B batch, T queries,
S keys / values, D model width, H heads, Dh = D // H head width.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_utils.attention import _check_mask, _dot_scores, _open_empty_rows, _weigh
from course_utils.checks import check_shape

__all__ = ["MultiHeadAttention"]


class MultiHeadAttention(nn.Module):
    """H scaled dot-product attentions side by side on D / H wide slices.

    ``q_proj``, ``k_proj``, ``v_proj`` project the inputs, each head attends
    in its own Dh = D / H wide slice, ``out_proj`` mixes the heads again.
    Masks are bool, True = may attend (``nn.MultiheadAttention`` uses the
    opposite). ``dropout`` acts on the attention weights in training only.
    With the weights copied by ``load_from_torch`` the outputs equal those of
    ``nn.MultiheadAttention(d_model, num_heads, bias=bias, batch_first=True)``,
    except that a query with nothing to attend to gets a zero context, not NaN.
    Introduced in notebook 06.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.attention_weights: Tensor | None = None

    def forward(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None,
                need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """Attend from each query step to the key/value steps, in every head.

        ``need_weights=True`` computes the weights explicitly, returns them and
        keeps them, detached, in ``self.attention_weights``; ``False`` uses the
        fused ``F.scaled_dot_product_attention`` and returns None for them.

        Shapes:
            query (B, T, D), key (B, S, D), value (B, S, D),
            mask broadcastable to (B, H, T, S) (e.g. (B, 1, 1, S) padding, (T, S) causal) or None
            -> output (B, T, D), weights (B, H, T, S) or None
        """
        bound = check_shape("query", query, ("B", "T", "D"), {"D": self.d_model})
        check_shape("key", key, ("B", "S", "D"), bound)
        check_shape("value", value, ("B", "S", "D"), bound)
        B, T, S, H, Dh = bound["B"], bound["T"], bound["S"], self.num_heads, self.head_dim
        if mask is not None:
            _check_mask(mask, (B, H, T, S), "(B, H, T, S)")
        q = self.q_proj(query).view(B, T, H, Dh).transpose(1, 2)  # (B, T, D) -> (B, H, T, Dh)
        k = self.k_proj(key).view(B, S, H, Dh).transpose(1, 2)  # (B, S, D) -> (B, H, S, Dh)
        v = self.v_proj(value).view(B, S, H, Dh).transpose(1, 2)  # (B, S, D) -> (B, H, S, Dh)
        dropout_p = self.dropout if self.training else 0.0

        if need_weights:
            context, weights = _weigh(_dot_scores(q, k, Dh ** -0.5), v, mask, dropout_p, scratch=True)  # (B, H, T, Dh), (B, H, T, S)
            self.attention_weights = weights.detach()
        else:
            weights = empty = None
            if mask is not None:
                # A query that may attend nowhere: CPU SDPA of torch 2.13 returns 0, older torch and
                # some GPU kernels NaN (pytorch/pytorch#103749). Open such rows, zero them after.
                mask, empty = _open_empty_rows(mask)
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, H, T, Dh)
            if empty is not None:
                context = context.masked_fill(empty, 0.0)  # (B, H, T, Dh), zero where nothing to attend to
        merged = context.transpose(1, 2).reshape(B, T, self.d_model)  # (B, H, T, Dh) -> (B, T, H, Dh) -> (B, T, D)
        return self.out_proj(merged), weights

    @torch.no_grad()
    def load_from_torch(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of ``mha`` into this module and return it.

        ``mha.in_proj_weight`` stacks [W_q; W_k; W_v] (3D, D). Use ``mha`` built
        with ``batch_first=True`` to get the same outputs. Introduced in notebook 06.
        """
        if (mha.embed_dim, mha.num_heads) != (self.d_model, self.num_heads):
            raise ValueError(f"mha: embed_dim={mha.embed_dim}, num_heads={mha.num_heads}; this module "
                             f"has d_model={self.d_model}, num_heads={self.num_heads}")
        if mha.in_proj_weight is None or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("mha: kdim/vdim other than embed_dim, add_bias_kv and add_zero_attn "
                             "have no counterpart here")
        has_bias = mha.in_proj_bias is not None
        if has_bias != (self.q_proj.bias is not None):
            raise ValueError(f"mha: bias={has_bias}, this module has bias={not has_bias}")
        D = self.d_model
        for i, proj in enumerate((self.q_proj, self.k_proj, self.v_proj)):
            proj.weight.copy_(mha.in_proj_weight[i * D:(i + 1) * D])  # (D, D) slice of (3D, D)
            if has_bias:
                proj.bias.copy_(mha.in_proj_bias[i * D:(i + 1) * D])
        self.out_proj.weight.copy_(mha.out_proj.weight)
        if has_bias:
            self.out_proj.bias.copy_(mha.out_proj.bias)
        return self
