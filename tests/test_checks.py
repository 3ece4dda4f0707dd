"""Direct tests of course_utils.checks and of the mask rules built on it."""
from __future__ import annotations

import pytest
import torch

from course_utils.checks import check_broadcastable, check_int, check_lengths, check_same_dtype, check_shape
from course_utils.functional import attention, check_mask, check_module_mask, masked_softmax


def test_check_shape_binds_letters_and_returns_them():
    bound = check_shape("queries", torch.zeros(2, 5, 8), ("B", "T", "Dq"))
    assert bound == {"B": 2, "T": 5, "Dq": 8}
    bound = check_shape("keys", torch.zeros(2, 7, 8), ("B", "S", "Dq"), bound)
    assert bound == {"B": 2, "T": 5, "Dq": 8, "S": 7}
    assert check_shape("x", torch.zeros(3, 4), (3, None)) == {}


@pytest.mark.parametrize("shape,expected,bound,message", [
    ((2, 7, 15), ("B", "S", "Dk"), {"B": 2, "Dk": 16}, "keys: expected shape (B=2, S, Dk=16), got (2, 7, 15)"),
    ((3, 7, 16), ("B", "S", "Dk"), {"B": 2}, "keys: expected shape (B=2, S, Dk), got (3, 7, 16)"),
    ((7,), ("B", "S"), {}, "keys: expected shape (B, S), got (7,)"),
    ((2, 3), (2, None, 4), {}, "keys: expected shape (2, *, 4), got (2, 3)"),
    ((4,), ("B",), {"B": 3}, "keys: expected shape (B=3,), got (4,)"),
])
def test_check_shape_names_argument_expected_and_got(shape, expected, bound, message):
    before = dict(bound)
    with pytest.raises(ValueError) as err:
        check_shape("keys", torch.zeros(shape), expected, bound)
    assert str(err.value) == message
    assert bound == before, "a failed check binds nothing"


def test_check_shape_repeated_letter_must_match_itself():
    check_shape("m", torch.zeros(3, 3), ("T", "T"))
    with pytest.raises(ValueError, match=r"m: expected shape \(T, T\), got \(3, 4\)"):
        check_shape("m", torch.zeros(3, 4), ("T", "T"))


def test_check_shape_rejects_non_tensors():
    with pytest.raises(TypeError, match=r"x: expected a torch.Tensor of shape \(B, T\), got list"):
        check_shape("x", [[1, 2]], ("B", "T"))


def test_check_broadcastable():
    check_broadcastable("mask", torch.zeros(1, 5), (2, 3, 5), "(B, T, S)")
    for shape in [(2, 3, 4), (4, 2, 3, 5), (3, 1, 5)]:
        with pytest.raises(ValueError) as err:
            check_broadcastable("mask", torch.zeros(shape), (2, 3, 5), "(B, T, S)")
        assert str(err.value) == f"mask: expected a shape broadcastable to (B, T, S) = (2, 3, 5), got {shape}"


def test_check_same_dtype_names_each_argument():
    q, k = torch.zeros(2), torch.zeros(2, dtype=torch.float16)
    assert check_same_dtype(queries=q, keys=q, values=q) == torch.float32
    with pytest.raises(TypeError) as err:
        check_same_dtype(queries=q, keys=k, values=q)
    assert str(err.value) == ("queries, keys and values: expected one dtype, "
                              "got queries float32, keys float16, values float32")


def test_check_mask_type_and_shape():
    with pytest.raises(TypeError, match=r"mask: expected a bool tensor .* got torch.float32"):
        check_mask(torch.ones(2, 3), (2, 3), "(T, S)")
    with pytest.raises(TypeError, match="got list"):
        check_mask([[True]], (2, 3), "(T, S)")


@pytest.mark.parametrize("B,T,S", [(2, 2, 5), (3, 3, 3), (4, 4, 1)])
def test_module_mask_with_batch_equal_to_queries_is_ambiguous(B, T, S):
    sizes = {"B": B, "T": T, "S": S}
    with pytest.raises(ValueError) as err:
        check_module_mask(torch.ones(B, S, dtype=torch.bool), sizes, "ACCEPTED")
    message = str(err.value)
    assert f"shape {(B, S)} is ambiguous" in message and "read as (T, S)" in message
    assert f"B={B}" in message and message.endswith("ACCEPTED")
    check_module_mask(torch.ones(1, T, S, dtype=torch.bool), sizes, "ACCEPTED")  # full rank: fine
    check_module_mask(torch.ones(B, 1, S, dtype=torch.bool), sizes, "ACCEPTED")
    check_module_mask(torch.ones(S, dtype=torch.bool), sizes, "ACCEPTED")


def test_module_mask_unambiguous_lower_rank_is_accepted():
    check_module_mask(torch.ones(5, 7, dtype=torch.bool), {"B": 2, "T": 5, "S": 7}, "A")  # (T, S), B != T
    check_module_mask(torch.ones(1, 7, dtype=torch.bool), {"B": 5, "T": 5, "S": 7}, "A")  # leading 1
    check_module_mask(torch.ones(1, 1, dtype=torch.bool), {"B": 1, "T": 1, "S": 1}, "A")  # B == T == 1
    with pytest.raises(ValueError, match=r"broadcastable to \(B, T, S\) = \(2, 5, 7\), got \(2, 7\); accepted: A"):
        check_module_mask(torch.ones(2, 7, dtype=torch.bool), {"B": 2, "T": 5, "S": 7}, "A")


def test_module_mask_batch_equal_to_heads():
    sizes = {"B": 4, "H": 4, "T": 3, "S": 5}
    for shape in [(4, 3, 5), (4, 1, 5)]:
        with pytest.raises(ValueError, match=r"ambiguous: a 3-D mask is read as \(H, T, S\)"):
            check_module_mask(torch.ones(shape, dtype=torch.bool), sizes, "A")
    check_module_mask(torch.ones(4, 1, 1, 5, dtype=torch.bool), sizes, "A")


def test_check_lengths():
    src = torch.zeros(3, 5, dtype=torch.long)
    assert check_lengths(src, torch.tensor([5, 1, 3])) == {"B": 3, "S": 5}
    cases = [
        (torch.tensor([5, 0, 3]), ValueError, r"src_lengths: expected values in 1..S=5 for src of shape \(3, 5\), "
                                              r"got \[5, 0, 3\]"),
        (torch.tensor([6, 1, 3]), ValueError, r"expected values in 1..S=5"),
        (torch.tensor([-1, 1, 3]), ValueError, r"expected values in 1..S=5"),
        (torch.tensor([5, 1]), ValueError, r"src_lengths: expected shape \(B=3,\), got \(2,\)"),
        (torch.tensor([5.0, 1.0, 3.0]), TypeError, r"src_lengths: expected integer lengths, got dtype torch.float32"),
    ]
    for lengths, error, match in cases:
        with pytest.raises(error, match=match):
            check_lengths(src, lengths)
    with pytest.raises(ValueError, match=r"src: expected at least one sentence, got shape \(0, 5\)"):
        check_lengths(torch.zeros(0, 5, dtype=torch.long), torch.zeros(0, dtype=torch.long))


def test_check_int():
    assert check_int("n", 3, 1) == 3 and check_int("n", 0) == 0
    for bad in (-1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match=r"n: expected an int >= 0 \(how many\), got "):
            check_int("n", bad, 0, "how many")


@pytest.mark.parametrize("B,T,S", [(2, 2, 5), (3, 3, 3)])
def test_functional_mask_with_batch_equal_to_queries_is_refused_not_misread(B, T, S):
    # A (B, S) padding mask against (B, T, S) scores would broadcast as (T, S) when B == T:
    # sentence t's mask applied to query t of every sentence. It must raise instead.
    q, k, v = torch.randn(B, T, 4), torch.randn(B, S, 4), torch.randn(B, S, 4)
    per_sentence = torch.ones(B, S, dtype=torch.bool)
    per_sentence[0, 1:] = False
    for call in (lambda m: attention(q, k, v, m), lambda m: masked_softmax(torch.randn(B, T, S), m)):
        with pytest.raises(ValueError, match=rf"mask: shape \({B}, {S}\) is ambiguous against"):
            call(per_sentence)
        call(per_sentence[:, None, :])                       # (B, 1, S): what was meant
        call(per_sentence[None])                             # (1, T, S) when shared: also fine
        call(torch.ones(S, dtype=torch.bool))                # (S,) is never ambiguous
    context, weights = attention(q, k, v, per_sentence[:, None, :])
    assert weights[0, :, 1:].abs().sum() == 0 and torch.allclose(weights.sum(-1), torch.ones(B, T))
    # With B != T the 2-D mask is a shared (T, S) mask, as in PyTorch.
    attention(torch.randn(B + 1, T, 4), torch.randn(B + 1, S, 4), torch.randn(B + 1, S, 4),
              torch.ones(T, S, dtype=torch.bool))
