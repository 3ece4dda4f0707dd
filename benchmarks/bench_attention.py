"""Time the course's attention against PyTorch's own, in one run.

    python -m benchmarks.bench_attention [--quick] [--threads N] [--device cpu]
                                         [--sizes 8x512x256x4 ...] [--mask none|causal|padding]

Self-attention on x (B, T, D), forward (under no_grad, modules in eval mode,
so ``nn.MultiheadAttention`` may take its fused fast path) and forward +
backward (x and all weights require grad). Rows:

- ``MultiHeadAttention`` explicit path vs ``nn.MultiheadAttention(need_weights=True,
  average_attn_weights=False)``;
- ``MultiHeadAttention(need_weights=False)`` (fused) vs ``nn.MultiheadAttention(need_weights=False)``
  and vs a minimal ``F.linear`` + ``F.scaled_dot_product_attention`` + out projection;
- the bare kernel: ``attention()`` vs ``F.scaled_dot_product_attention`` on (B, H, T, Dh).

Calls of the compared functions are interleaved (warm-up, then ``--repeats``
rounds) and the median is reported, so a load that comes and goes touches both
sides alike. Ratio = ours / reference: below 1 means ours is faster.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import course_utils
from course_utils.attention import MultiHeadAttention, attention, causal_mask, padding_mask

Size = tuple[int, int, int, int]  # B, T, D, H
DEFAULT_SIZES: list[Size] = [(8, T, D, H) for T in (128, 512, 1024) for D, H in ((256, 4), (768, 12))]
QUICK_SIZES: list[Size] = [(2, 32, 32, 4)]


def parse_size(text: str) -> Size:
    """'8x512x256x4' -> (B=8, T=512, D=256, H=4)."""
    try:
        B, T, D, H = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected BxTxDxH, e.g. 8x512x256x4") from None
    if D % H:
        raise argparse.ArgumentTypeError(f"size {text!r}: D={D} is not divisible by H={H}")
    return B, T, D, H


def time_group(fns: dict[str, Callable[[], None]], device: torch.device,
               warmup: int, repeats: int) -> dict[str, float]:
    """Median milliseconds of each function, calls interleaved round by round."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            seconds[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(times) for name, times in seconds.items()}


def forward_only(fn: Callable[[], Tensor]) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            fn()
    return run


def forward_backward(fn: Callable[[], Tensor], leaves: list[Tensor]) -> Callable[[], None]:
    def run() -> None:
        for leaf in leaves:
            leaf.grad = None
        out = fn()
        out.backward(torch.ones_like(out))
    return run


def bench_size(size: Size, device: torch.device, mask_kind: str, warmup: int, repeats: int) -> list[dict]:
    """Rows of the table for one size: every pair timed forward and forward + backward."""
    B, T, D, H = size
    Dh = D // H
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(D, H, batch_first=True).to(device).eval()
    ours = MultiHeadAttention(D, H).to(device).eval().load_from_torch(theirs)
    x = torch.randn(B, T, D, device=device, requires_grad=True)
    q, k, v = (torch.randn(B, H, T, Dh, device=device, requires_grad=True) for _ in range(3))

    # One mask, in both conventions: ours True = may attend, torch's True = may NOT attend.
    mask, torch_masks = None, {}
    if mask_kind == "causal":
        causal = causal_mask(T, device=device)  # (T, T)
        mask, torch_masks = causal[None, None], {"attn_mask": ~causal}  # ours (1, 1, T, T): never read as (B, S)
    elif mask_kind == "padding":
        lengths = torch.randint(T // 2, T + 1, (B,), device=device)
        mask = padding_mask(lengths, T)  # (B, 1, 1, S)
        torch_masks = {"key_padding_mask": ~padding_mask(lengths, T, ndim=2)}  # (B, S), True = ignore

    def minimal() -> Tensor:  # the least one can write with PyTorch's fused kernel
        qh, kh, vh = (F.linear(x, proj.weight, proj.bias).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
                      for proj in (ours.q_proj, ours.k_proj, ours.v_proj))
        context = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)  # (B, H, T, Dh)
        return F.linear(context.transpose(1, 2).reshape(B, T, D), ours.out_proj.weight, ours.out_proj.bias)

    fns = {
        "explicit": lambda: ours(x, x, x, mask)[0],
        "torch MHA, weights": lambda: theirs(x, x, x, need_weights=True, average_attn_weights=False,
                                             **torch_masks)[0],
        "fused": lambda: ours(x, x, x, mask, need_weights=False)[0],
        "torch MHA, no weights": lambda: theirs(x, x, x, need_weights=False, **torch_masks)[0],
        "F.linear + SDPA": minimal,
        "attention()": lambda: attention(q, k, v, mask)[0],
        "F.sdpa": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
    }
    # Each group computes one thing, its first member ours: check that before timing it.
    groups = [("explicit", "torch MHA, weights"), ("fused", "torch MHA, no weights", "F.linear + SDPA"),
              ("attention()", "F.sdpa")]
    with torch.no_grad():
        for first, *others in groups:
            for name in others:
                torch.testing.assert_close(fns[name](), fns[first](), atol=1e-4, rtol=1e-4,
                                           msg=lambda m, name=name: f"{name}: {m}")

    leaves = [x, q, k, v, *ours.parameters(), *theirs.parameters()]
    ms: dict[str, dict[str, float]] = {"fwd": {}, "fwd+bwd": {}}
    for group in groups:
        ms["fwd"].update(time_group({n: forward_only(fns[n]) for n in group}, device, warmup, repeats))
        ms["fwd+bwd"].update(time_group({n: forward_backward(fns[n], leaves) for n in group},
                                        device, warmup, repeats))
    return [{"size": f"{B}x{T}x{D}x{H}", "ours": a, "reference": b,
             **{f"{mode} {side}": ms[mode][name] for mode in ms for side, name in (("ours", a), ("ref", b))}}
            for a, *references in groups for b in references]


def markdown_table(rows: list[dict]) -> str:
    lines = ["| B x T x D x H | ours | reference | fwd ours ms | fwd ref ms | fwd ratio "
             "| fwd+bwd ours ms | fwd+bwd ref ms | fwd+bwd ratio |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        cells = [row["size"], row["ours"], row["reference"]]
        for mode in ("fwd", "fwd+bwd"):
            a, b = row[f"{mode} ours"], row[f"{mode} ref"]
            cells += [f"{a:.2f}", f"{b:.2f}", f"{a / b:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one tiny size, few repeats: a smoke test")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: all)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: course_utils.pick_device)")
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=None, metavar="BxTxDxH")
    parser.add_argument("--mask", choices=("none", "causal", "padding"), default="none")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7, quick 2)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)

    threads = torch.get_num_threads()  # before pick_device(), which applies the course's thread default
    device = course_utils.pick_device(args.device)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    repeats = args.repeats or (2 if args.quick else 7)
    warmup = 1 if args.quick else args.warmup
    torch.set_num_threads(args.threads)
    try:  # the test suite calls main() in its own process: give the thread count back
        rows = [row for size in sizes for row in bench_size(size, device, args.mask, warmup, repeats)]
        print(course_utils.describe_device(device))
    finally:
        torch.set_num_threads(threads)
    print(f"self-attention, mask={args.mask}, median of {repeats} interleaved rounds after {warmup} "
          f"warm-up; ratio = ours / reference\n")
    print(markdown_table(rows))
    return rows


if __name__ == "__main__":
    main()
