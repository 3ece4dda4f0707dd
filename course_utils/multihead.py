"""Multi-head attention, equal to ``nn.MultiheadAttention(batch_first=True)``, with seams.

``MultiHeadAttention.forward`` is a short list of named steps, each a method a
subclass may override without copying ``forward``:

    project -> split_heads -> transform_qk -> (append to the KV cache)
            -> scores + score_bias -> masked softmax -> weighted values -> merge_heads -> out_proj

``transform_qk`` is where rotary positions go, ``score_bias`` where ALiBi or a
relative-position bias goes; ``KVCache`` carries the keys and values of the
steps decoded so far. ``num_kv_heads < num_heads`` gives grouped-query
attention. Re-exported from ``course_utils.attention``.

Shape letters: B batch, T queries, S keys / values, D model width, H heads,
Hkv key/value heads, Dh = D // H head width, L steps in a cache.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_utils.checks import check_int, check_same_dtype, check_shape
from course_utils.functional import check_module_mask, dot_scores, open_empty_rows, weigh

__all__ = ["KVCache", "MultiHeadAttention"]

MASK_SHAPES = ("(B or 1, H or 1, T or 1, S or 1), e.g. padding_mask(lengths) (B, 1, 1, S) or "
               "causal_mask(T, S)[None, None] (1, 1, T, S); (T, S) if B != T; (S,)")


def _sdpa_has_gqa() -> bool:
    """True where ``F.scaled_dot_product_attention`` takes ``enable_gqa`` (torch >= 2.5)."""
    try:
        F.scaled_dot_product_attention(torch.zeros(1, 2, 1, 1), torch.zeros(1, 1, 1, 1),
                                       torch.zeros(1, 1, 1, 1), enable_gqa=True)
    except TypeError:
        return False
    return True


SDPA_HAS_GQA = _sdpa_has_gqa()


class KVCache(NamedTuple):
    """Keys and values of the steps attended to so far, per key/value head. Introduced in notebook 07.

    Self-attention appends each step's keys and values; cross-attention
    (``static_kv=True``) computes the encoder's once and keeps them. Keys are
    stored after ``transform_qk`` (rotated, where a subclass rotates them).

    Shapes:
        k (B, Hkv, L, Dh), v (B, Hkv, L, Dh)
    """

    k: Tensor
    v: Tensor

    @property
    def length(self) -> int:
        """L, the number of steps held."""
        return self.k.shape[2]

    def reorder(self, index: Tensor) -> KVCache:
        """The cache of the sentences ``index`` (B',), picked or repeated (beam search)."""
        return KVCache(self.k.index_select(0, index), self.v.index_select(0, index))  # (B', Hkv, L, Dh)


class MultiHeadAttention(nn.Module):
    """H scaled dot-product attentions side by side on D / H wide slices.

    ``q_proj``, ``k_proj``, ``v_proj`` project the inputs, each head attends
    in its own Dh = D / H wide slice, ``out_proj`` mixes the heads again.
    Masks are bool, True = may attend (``nn.MultiheadAttention`` uses the
    opposite). ``dropout`` acts on the attention weights in training only.
    With the weights copied by ``load_from_torch`` the outputs equal those of
    ``nn.MultiheadAttention(d_model, num_heads, bias=bias, batch_first=True)``,
    except that a query with nothing to attend to gets a zero context, not NaN.

    ``num_kv_heads`` (a divisor of ``num_heads``, default ``num_heads``) gives
    grouped-query attention: ``k_proj`` and ``v_proj`` make only that many
    heads and query head h uses key/value head h // (num_heads // num_kv_heads),
    as ``F.scaled_dot_product_attention(enable_gqa=True)`` does.
    ``self.attention_weights`` holds the last explicit call's weights, detached,
    for plotting (None after a fused call); nothing in the course reads it.
    Introduced in notebook 06 (the cache in notebook 07, grouped-query heads in notebook 09).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 num_kv_heads: int | None = None) -> None:
        super().__init__()
        check_int("d_model", d_model, 1)
        check_int("num_heads", num_heads, 1)
        num_kv_heads = num_heads if num_kv_heads is None else check_int("num_kv_heads", num_kv_heads, 1)
        if d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        if num_heads % num_kv_heads != 0:
            raise ValueError(f"num_kv_heads: expected a divisor of num_heads={num_heads}, got {num_kv_heads}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.num_kv_heads = num_kv_heads
        self.dropout = float(dropout)
        kv_width = num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, kv_width, bias=bias)
        self.v_proj = nn.Linear(d_model, kv_width, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.attention_weights: Tensor | None = None

    # ------------------------------------------------------------ seams ---

    def split_heads(self, x: Tensor, num_heads: int) -> Tensor:
        """Cut the last dim into ``num_heads`` heads of width Dh.

        Shapes:
            x (B, L, n * Dh) -> (B, n, L, Dh)
        """
        B, L, _ = x.shape
        return x.view(B, L, num_heads, self.head_dim).transpose(1, 2)  # (B, L, n, Dh) -> (B, n, L, Dh)

    def merge_heads(self, x: Tensor) -> Tensor:
        """Put the heads side by side again.

        Shapes:
            x (B, H, T, Dh) -> (B, T, H * Dh)
        """
        B, H, T, Dh = x.shape
        return x.transpose(1, 2).reshape(B, T, H * Dh)  # (B, H, T, Dh) -> (B, T, H, Dh) -> (B, T, D)

    def transform_qk(self, q: Tensor, k: Tensor, q_pos: Tensor, k_pos: Tensor) -> tuple[Tensor, Tensor]:
        """Change queries and keys after the split, before the scores (identity here).

        Rotary positions override this. ``k`` holds the new keys only (cached
        ones were transformed when they were new).

        Shapes:
            q (B, H, T, Dh), k (B, Hkv, S_new, Dh), q_pos (T,), k_pos (S_new,) int64
            -> q (B, H, T, Dh), k (B, Hkv, S_new, Dh)
        """
        return q, k

    def score_bias(self, q_pos: Tensor, k_pos: Tensor) -> Tensor | None:
        """An additive bias on the scores before the softmax, or None (here).

        ALiBi and relative-position biases override this. Used on both paths.

        Shapes:
            q_pos (T,), k_pos (S,) int64, every key including cached ones
            -> None or a float tensor broadcastable to (B, H, T, S)
        """
        return None

    def expand_kv(self, x: Tensor) -> Tensor:
        """Repeat each key/value head for its group of query heads (grouped-query attention).

        Shapes:
            x (B, Hkv, L, Dh) -> (B, H, L, Dh), head h = x[:, h // (H // Hkv)]
        """
        group = self.num_heads // self.num_kv_heads
        return x if group == 1 else x.repeat_interleave(group, dim=1)  # (B, Hkv, L, Dh) -> (B, H, L, Dh)

    # ---------------------------------------------------------- forward ---

    def forward(self, query: Tensor, key: Tensor | None, value: Tensor | None, mask: Tensor | None = None,
                need_weights: bool = True, *, cache: KVCache | None = None, use_cache: bool = False,
                static_kv: bool = False, q_pos: Tensor | None = None, k_pos: Tensor | None = None
                ) -> tuple[Tensor, Tensor | None] | tuple[Tensor, Tensor | None, KVCache]:
        """Attend from each query step to the key/value steps, in every head.

        ``need_weights=True`` computes the weights explicitly and returns them;
        ``False`` uses the fused ``F.scaled_dot_product_attention`` and returns
        None for them. Both give the same output.

        Incremental decoding: with ``use_cache=True`` the call also returns a
        ``KVCache``. Self-attention appends the new keys and values to
        ``cache`` (None to start) and attends over all of them; positions
        default to q_pos = L..L+T-1 and k_pos = 0..L+T-1 (L cached steps), so
        a single new step needs no mask. Cross-attention (``static_kv=True``)
        computes keys and values from ``key``/``value`` when ``cache`` is None
        and reuses ``cache`` after (``key``/``value`` may then be None); q_pos
        defaults to 0..T-1 there.

        Shapes:
            query (B, T, D), key (B, S_new, D), value (B, S_new, D); S = L + S_new keys in all
            (S = L when a static cache is reused),
            mask bool, True = may attend, or None; accepted shapes (each dim its size or 1):
            (B, H, T, S), e.g. padding_mask(lengths) (B, 1, 1, S); (H, T, S) unless B == H > 1;
            (T, S), e.g. causal_mask(T, S), rejected when B == T > 1 (it could be a (B, S)
            padding mask: pass causal_mask(T, S)[None, None]); (S,).
            q_pos (T,), k_pos (S,) int64 or None; cache KVCache of (B, Hkv, L, Dh) or None
            -> output (B, T, D), weights (B, H, T, S) or None[, cache KVCache (B, Hkv, S, Dh)]
        """
        H, Hkv, Dh = self.num_heads, self.num_kv_heads, self.head_dim
        bound = check_shape("query", query, ("B", "T", "D"), {"D": self.d_model})
        B, T = bound["B"], bound["T"]
        if cache is not None and not use_cache:
            raise ValueError("cache: given with use_cache=False; pass use_cache=True to get the updated cache back")
        if cache is not None:
            if not isinstance(cache, KVCache):
                raise TypeError(f"cache: expected a KVCache or None, got {type(cache).__name__}")
            kb = check_shape("cache.k", cache.k, (B, Hkv, "L", Dh))
            check_shape("cache.v", cache.v, (B, Hkv, kb["L"], Dh))
        reuse = static_kv and cache is not None
        if reuse:
            check_same_dtype(query=query, **{"cache.k": cache.k, "cache.v": cache.v})
            S_new = 0
        else:
            check_shape("key", key, ("B", "S", "D"), bound)
            check_shape("value", value, ("B", "S", "D"), bound)
            check_same_dtype(query=query, key=key, value=value)
            S_new = bound["S"]
        if query.dtype != self.q_proj.weight.dtype:
            raise TypeError(f"query: dtype {query.dtype} differs from this module's weights "
                            f"({self.q_proj.weight.dtype}); convert one with .to(dtype)")
        L = 0 if cache is None or static_kv else cache.length  # steps already in a self-attention cache
        S = cache.length if reuse else L + S_new
        device = query.device
        q_pos = self._positions("q_pos", q_pos, (L if not static_kv else 0), T, device)
        k_pos = self._positions("k_pos", k_pos, 0, S, device)
        if mask is not None:
            check_module_mask(mask, {"B": B, "H": H, "T": T, "S": S}, MASK_SHAPES)

        q = self.split_heads(self.q_proj(query), H)  # (B, T, D) -> (B, H, T, Dh)
        if reuse:
            k_new = v_new = cache.k.new_empty(B, Hkv, 0, Dh)  # (B, Hkv, 0, Dh): nothing new
        else:
            k_new = self.split_heads(self.k_proj(key), Hkv)  # (B, S_new, Hkv * Dh) -> (B, Hkv, S_new, Dh)
            v_new = self.split_heads(self.v_proj(value), Hkv)  # (B, S_new, Hkv * Dh) -> (B, Hkv, S_new, Dh)
        q, k_new = self.transform_qk(q, k_new, q_pos, k_pos[S - S_new:])
        if reuse:
            k, v = cache.k, cache.v  # (B, Hkv, S, Dh)
        elif cache is not None:
            k, v = torch.cat([cache.k, k_new], 2), torch.cat([cache.v, v_new], 2)  # (B, Hkv, L + S_new, Dh)
        else:
            k, v = k_new, v_new  # (B, Hkv, S, Dh)
        bias = self.score_bias(q_pos, k_pos)  # None or broadcastable to (B, H, T, S)
        dropout_p = self.dropout if self.training else 0.0

        if need_weights:
            context, weights = self._explicit(q, k, v, mask, bias, dropout_p)  # (B, H, T, Dh), (B, H, T, S)
        else:
            context, weights = self._fused(q, k, v, mask, bias, dropout_p), None  # (B, H, T, Dh)
        self.attention_weights = None if weights is None else weights.detach()
        output = self.out_proj(self.merge_heads(context))  # (B, H, T, Dh) -> (B, T, D)
        if use_cache:
            return output, weights, KVCache(k, v)
        return output, weights

    # ------------------------------------------------------------ paths ---

    def _explicit(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None,
                  dropout_p: float) -> tuple[Tensor, Tensor]:
        """Scores, masked softmax and weighted values, spelled out; returns (context, weights)."""
        scores = dot_scores(q, self.expand_kv(k), self.head_dim ** -0.5)  # (B, H, T, Dh) @ (B, H, Dh, S) -> (B, H, T, S)
        if bias is not None:
            scores = scores.add_(bias)  # (B, H, T, S) + bias broadcast to it
        return weigh(scores, self.expand_kv(v), mask, dropout_p, scratch=True)  # (B, H, T, Dh), (B, H, T, S)

    def _fused(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None,
               dropout_p: float) -> Tensor:
        """``F.scaled_dot_product_attention`` with the course's mask rules; returns the context."""
        empty = None
        if mask is not None:
            # A query that may attend nowhere: CPU SDPA of torch 2.13 returns 0, older torch and
            # some GPU kernels NaN (pytorch/pytorch#103749). Open such rows, zero them after.
            mask, empty = open_empty_rows(mask)
        attn_mask = mask
        if bias is not None:
            bias = bias.to(q.dtype)
            attn_mask = bias if mask is None else torch.where(mask, bias, float("-inf"))  # broadcast to (.., T, S)
        if SDPA_HAS_GQA and self.num_kv_heads != self.num_heads:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                                     enable_gqa=True)  # (B, H, T, Dh)
        else:
            context = F.scaled_dot_product_attention(q, self.expand_kv(k), self.expand_kv(v),
                                                     attn_mask=attn_mask, dropout_p=dropout_p)  # (B, H, T, Dh)
        if empty is not None:
            context = context.masked_fill(empty, 0.0)  # (B, H, T, Dh), zero where nothing to attend to
        return context

    @staticmethod
    def _positions(name: str, pos: Tensor | None, start: int, n: int, device: torch.device) -> Tensor:
        if pos is None:
            return torch.arange(start, start + n, device=device)  # (n,)
        check_shape(name, pos, (n,))
        if pos.dtype != torch.int64:
            raise TypeError(f"{name}: expected int64 positions, got {pos.dtype}")
        return pos

    @torch.no_grad()
    def load_from_torch(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of ``mha`` into this module and return it.

        ``mha.in_proj_weight`` stacks [W_q; W_k; W_v] (3D, D). Use ``mha`` built
        with ``batch_first=True`` to get the same outputs. Only for
        ``num_kv_heads == num_heads``. Introduced in notebook 06.
        """
        if (mha.embed_dim, mha.num_heads) != (self.d_model, self.num_heads):
            raise ValueError(f"mha: embed_dim={mha.embed_dim}, num_heads={mha.num_heads}; this module "
                             f"has d_model={self.d_model}, num_heads={self.num_heads}")
        if self.num_kv_heads != self.num_heads:
            raise ValueError(f"mha: nn.MultiheadAttention has no grouped-query heads; this module has "
                             f"num_kv_heads={self.num_kv_heads} < num_heads={self.num_heads}")
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
