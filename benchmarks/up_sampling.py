"""Tokens/s of the UP LSTM source: batched random LSTMs vs the faithful per-call generator.

``faithful``: the original's way, one random 4-layer LSTM per call generating ``--rows`` rows of 512
tokens step by step with ``nn.LSTM``, on CPU. ``batched``: ``--n-models`` random LSTMs per call
with the same rows per LSTM, as one computation with stacked weights on ``--device``. Both produce
the same number of tokens (``--tokens``), alternate in one process, and the median of
``--repeats`` rounds is reported. The last line is exactly

    speed-up batched/faithful tokens/s: 3.10x

    python benchmarks/up_sampling.py                      # CPU, a few minutes on 2 cores
    python benchmarks/up_sampling.py --device cuda --n-models 256
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from headstart.train.device import describe_device, pick_device  # noqa: E402
from headstart.up.lstm import LSTMConfig, LSTMSource  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=104, help="rows per LSTM (the original: 104 per call)")
    p.add_argument("--n-models", type=int, default=8, help="LSTMs per batched call")
    p.add_argument("--tokens", type=int, default=8 * 104 * 512, help="tokens per measurement and way")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="device of the batched generator (faithful: CPU)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = pick_device(args.device)
    faithful = LSTMSource(LSTMConfig(impl="faithful", rows_per_call=args.rows), seed=0)
    batched = LSTMSource(LSTMConfig(impl="batched", n_models=args.n_models,
                                    rows_per_call=args.rows * args.n_models), seed=0, device=device)
    per_call = {"faithful": args.rows * 512, "batched": args.rows * args.n_models * 512}
    calls = {k: max(1, round(args.tokens / v)) for k, v in per_call.items()}
    sources = {"faithful": faithful, "batched": batched}

    def run(name):
        src = sources[name]
        t = time.perf_counter()
        for _ in range(calls[name]):
            src.step()
        if src.device.type == "cuda":
            torch.cuda.synchronize()
        return calls[name] * per_call[name] / (time.perf_counter() - t)

    batched.step()   # warm-up (allocations, CUDA context)
    rates = {k: [] for k in sources}
    for _ in range(args.repeats):
        for name in sources:
            rates[name].append(run(name))
    med = {k: statistics.median(v) for k, v in rates.items()}
    info = describe_device(device)
    print(f"device: batched on {info.get('gpu_name', info['cpu'])}, faithful on CPU ({info['cpu_count']} CPUs, "
          f"torch threads {torch.get_num_threads()}, torch {torch.__version__})")
    print(f"config: LSTM 4 x 128, context 512, greedy; {args.rows} rows per LSTM; batched {args.n_models} LSTMs "
          f"per call; {calls['faithful'] * per_call['faithful']:,} tokens per way and round, {args.repeats} rounds")
    for name in sources:
        print(f"{name:<9} median {med[name]:>12,.0f} tok/s  (min {min(rates[name]):,.0f}, max {max(rates[name]):,.0f})")
    print(f"speed-up batched/faithful tokens/s: {med['batched'] / med['faithful']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
