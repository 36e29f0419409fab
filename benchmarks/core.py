"""Training-step throughput of our GPT against Hugging Face's GPT2LMHeadModel, side by side.

Both models have the same config and the same weights (ours is converted from the HF model), see
the same batches and take full training steps (forward, cross-entropy, backward, AdamW step) in the
same process, alternating ours, hf, ours, hf, ... for ``--repeats`` rounds after a warmup; the
reported number is the median tokens/s of each. The last line is exactly

    ratio ours/hf tokens/s: 1.23x

``--mfu``: GPT-2 124M, bf16 autocast, torch.compile, on a CUDA GPU; reports model FLOPs
utilisation (6N + 12 L C T FLOPs per token) against the GPU's dense bf16 peak.

    python benchmarks/core.py                       # small CPU config, well under 2 minutes
    python benchmarks/core.py --device cuda --dtype bfloat16 --compile --n-layer 12 --n-head 12 --d-model 768 --seq-len 1024 --batch 16
    python benchmarks/core.py --mfu
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from headstart.models.hf import from_hf  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks, FLOP/s, matched on torch.cuda.get_device_name().
PEAK_BF16 = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),      # SXM (e.g. "NVIDIA H100 80GB HBM3")
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A10G", 70e12),
    ("L4", 121e12),
]


def peak_flops(device_name: str) -> float | None:
    for key, peak in PEAK_BF16:
        if key in device_name:
            return peak
    return None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5, help="rounds of (ours, hf); the median is reported")
    p.add_argument("--steps", type=int, default=3, help="training steps per timed round")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="float32, or bf16/fp16 autocast (fp32 master weights)")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mfu", action="store_true",
                   help="GPT-2 124M, bf16 autocast, torch.compile, CUDA only: report MFU of ours (and hf)")
    return p.parse_args(argv)


def build_models(args):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(args.seed)
    conf = GPT2Config(vocab_size=args.vocab, n_positions=args.seq_len, n_embd=args.d_model, n_layer=args.n_layer,
                      n_head=args.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      bos_token_id=0, eos_token_id=0)
    hf = GPT2LMHeadModel(conf).to(args.device).train()
    ours = from_hf(hf).train()
    return ours, hf


def make_step(model, is_hf: bool, args):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    fwd = torch.compile(model) if args.compile else model
    amp = (torch.autocast(device_type=torch.device(args.device).type, dtype=getattr(torch, args.dtype))
           if args.dtype != "float32" else nullcontext())

    def step(x, y):
        with amp:
            out = fwd(input_ids=x)
            logits = out.logits if is_hf else out
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure(args) -> dict[str, list[float]]:
    ours, hf = build_models(args)
    steps = {"ours": make_step(ours, False, args), "hf": make_step(hf, True, args)}
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randint(0, args.vocab, (args.batch, args.seq_len), generator=g).to(args.device)
    y = torch.randint(0, args.vocab, (args.batch, args.seq_len), generator=g).to(args.device)
    for name, step in steps.items():
        for _ in range(args.warmup):
            step(x, y)
    sync(args.device)
    tokens = args.batch * args.seq_len * args.steps
    results: dict[str, list[float]] = {"ours": [], "hf": []}
    for _ in range(args.repeats):
        for name, step in steps.items():  # alternate: ours, hf, ours, hf, ...
            sync(args.device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            sync(args.device)
            results[name].append(tokens / (time.perf_counter() - t0))
    results["flops_per_token"] = [float(ours.flops_per_token(args.seq_len))]
    return results


def report(args, results) -> float:
    med = {k: statistics.median(results[k]) for k in ("ours", "hf")}
    threads = torch.get_num_threads() if args.device == "cpu" else None
    print(f"config: n_layer={args.n_layer} n_head={args.n_head} d_model={args.d_model} seq_len={args.seq_len} "
          f"vocab={args.vocab} batch={args.batch} dtype={args.dtype} compile={args.compile} device={args.device}"
          + (f" threads={threads}" if threads else "")
          + f" repeats={args.repeats} steps={args.steps} torch={torch.__version__}")
    print(f"{'impl':<6} {'median tok/s':>14} {'min tok/s':>12} {'max tok/s':>12}")
    for k in ("ours", "hf"):
        print(f"{k:<6} {med[k]:>14.1f} {min(results[k]):>12.1f} {max(results[k]):>12.1f}")
    if torch.device(args.device).type == "cuda":
        name = torch.cuda.get_device_name()
        peak = peak_flops(name)
        fpt = results["flops_per_token"][0]
        for k in ("ours", "hf"):
            achieved = fpt * med[k]
            mfu = f"{100 * achieved / peak:.1f}%" if peak else "n/a (unknown peak)"
            print(f"{k:<6} {achieved / 1e12:.1f} TFLOP/s, MFU {mfu} of {name}"
                  + (f" (peak {peak / 1e12:.0f} TFLOP/s bf16 dense)" if peak else ""))
    ratio = med["ours"] / med["hf"]
    print(f"ratio ours/hf tokens/s: {ratio:.2f}x")
    return ratio


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.mfu:
        if not torch.cuda.is_available():
            print("--mfu needs a CUDA GPU (GPT-2 124M, bf16 autocast, torch.compile); none found, nothing measured.")
            return 0
        args.n_layer, args.n_head, args.d_model, args.seq_len, args.vocab = 12, 12, 768, 1024, 50304
        args.device, args.dtype, args.compile = "cuda", "bfloat16", True
        if args.batch == 8:
            args.batch = 16
        args.warmup = max(args.warmup, 3)  # compilation happens in the warmup
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    report(args, measure(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
