"""PyTorch's CPU attention on the shapes of `attend bench attention`.

torch.nn.functional.scaled_dot_product_attention on q, k, v of shape
[1, batch*heads, N, head_dim] (f32), for the patterns dense, causal
(is_causal=True) and windowW (a boolean mask of |i - j| <= W, which is how a
PyTorch user writes a window). Forward only under torch.inference_mode, or
forward + backward of sum(out * dout). Each row is the median of repeats
that together last at least --min-seconds (and at least 3). Prints one
JSON document. Run by scripts/bench-torch-attention.sh.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def timed(fn, min_seconds):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1024,4096")
    ap.add_argument("--patterns", default="dense,causal,window256")
    ap.add_argument("--batch-heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--forward-only", action="store_true")
    ap.add_argument("--min-seconds", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        shape = (1, args.batch_heads, n, args.head_dim)
        q, k, v = (torch.randn(shape) for _ in range(3))
        dout = torch.randn(shape)
        for pattern in args.patterns.split(","):
            kwargs = {}
            if pattern == "causal":
                kwargs["is_causal"] = True
            elif pattern.startswith("window"):
                w = int(pattern[len("window"):])
                i = torch.arange(n)
                kwargs["attn_mask"] = (i[:, None] - i[None, :]).abs() <= w
            elif pattern != "dense":
                raise SystemExit(f"unknown pattern {pattern}")

            def forward():
                with torch.inference_mode():
                    F.scaled_dot_product_attention(q, k, v, **kwargs)

            qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

            def forward_backward():
                out = F.scaled_dot_product_attention(qg, kg, vg, **kwargs)
                (out * dout).sum().backward()
                qg.grad = kg.grad = vg.grad = None

            passes = [("forward", forward)]
            if not args.forward_only:
                passes.append(("forward+backward", forward_backward))
            for name, fn in passes:
                seconds, reps = timed(fn, args.min_seconds)
                rows.append({"pattern": pattern, "seq": n, "pass": name, "seconds": seconds, "reps": reps})
    doc = {"bench": "attention", "implementation": f"pytorch {torch.__version__} sdpa", "threads": args.threads,
           "batch_heads": args.batch_heads, "head_dim": args.head_dim, "rows": rows}
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
