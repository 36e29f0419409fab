"""Zero-shot scoring: all positions of strided windows vs the original's random-targets protocol.

A small byte-level GPT is trained for ``--train-steps`` steps on the first part of the data (the
enwik8 prefix in ``--data`` when present, else built-in synthetic text), then the held-out rest is
scored both ways with the same model: ``bits_all_positions`` (every target with ≥ context/2 bytes of
history, one forward pass per window) and ``bits_random_targets`` (``--samples`` random targets,
one forward pass each, the original's protocol with the short-context bug fixed). Printed: both
means with 95% CIs (they must overlap), the forward passes each used, and the passes each would
need for the same CI width (passes × width², since width ∝ 1/sqrt(passes)). The last line is exactly

    forward passes for equal CI width, random targets / all positions: 120.0x
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from headstart.data import synthetic  # noqa: E402
from headstart.data.bytes import sample_batch  # noqa: E402
from headstart.models.gpt import GPT, GPTConfig  # noqa: E402
from headstart.train.device import pick_device  # noqa: E402
from headstart.up.evaluate import bits_all_positions, bits_random_targets  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "enwik8" / "enwik8.prefix"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--eval-bytes", type=int, default=1_000_000)
    p.add_argument("--train-bytes", type=int, default=3_000_000)
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--device", default="auto")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = pick_device(args.device)
    if args.data.is_file():
        raw, source = np.fromfile(args.data, dtype=np.uint8), str(args.data)
    else:
        raw, source = np.frombuffer(synthetic.byte_text(args.train_bytes + args.eval_bytes, seed=0), np.uint8), "synthetic"
    train, test = raw[: args.train_bytes], raw[args.train_bytes: args.train_bytes + args.eval_bytes]
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=args.layers, n_head=max(1, args.width // 64), n_embd=args.width,
                          vocab_size=256, block_size=args.context)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        x, y = sample_batch(train, 16, args.context, gen)
        loss = F.cross_entropy(model(x.to(device)).transpose(1, 2), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    print(f"data: {source}; model: GPT {args.layers} x {args.width}, context {args.context}, trained "
          f"{args.train_steps} steps in {time.perf_counter() - t0:.0f} s (last loss {loss.item() / np.log(2):.2f} bits); "
          f"scored on {len(test):,} held-out bytes, device {device}")
    res = {}
    for name, fn in (("all_positions", lambda: bits_all_positions(model, test, args.context, batch_size=32)),
                     ("random_targets", lambda: bits_random_targets(model, test, args.context,
                                                                    n_samples=args.samples, batch_size=64))):
        t = time.perf_counter()
        res[name] = fn()
        res[name]["seconds"] = time.perf_counter() - t
    for name, r in res.items():
        width = r["ci_high"] - r["ci_low"]
        print(f"{name:<15} {r['bits']:.4f} bits/byte, 95% CI [{r['ci_low']:.4f}, {r['ci_high']:.4f}] (width {width:.4f}), "
              f"{r['n_scored']:,} targets, {r['forward_passes']:,} forward passes, {r['seconds']:.1f} s")
    a, r = res["all_positions"], res["random_targets"]
    overlap = a["ci_low"] <= r["ci_high"] and r["ci_low"] <= a["ci_high"]
    print(f"CIs overlap: {'yes' if overlap else 'NO'}")
    need = {k: v["forward_passes"] * (v["ci_high"] - v["ci_low"]) ** 2 for k, v in res.items()}
    ratio = need["random_targets"] / need["all_positions"]
    per_pass = a["n_scored"] / a["forward_passes"]
    print(f"bytes scored per all-positions pass: {per_pass:.0f}; worth {ratio:.1f} independent bytes "
          f"(design effect of a window {per_pass / ratio:.1f}: neighbouring bytes share their difficulty)")
    print(f"forward passes for equal CI width, random targets / all positions: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
