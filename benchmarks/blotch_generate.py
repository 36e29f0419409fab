"""Blotch evaluation: batched KV-cached greedy generation vs re-encoding the whole prefix each step.

The original validated by ``freedom_fwd``: every new token re-runs the model over the whole prefix
(spec blotch.md §7.6). Ours (:func:`headstart.blotch.evaluate.generate_solutions`) feeds one token
per step from the KV cache. Both run here on the same model and problems, batched alike
(``--batch``), greedy, stopping when every row has produced ``E``. The two must generate the same
solutions: checked in float64 (exit 1 otherwise), since in float32 the last bits of the two
computations differ and a random model's near-ties can flip an argmax (the float32 agreement is
printed too). Reported: problems per second of each (median of ``--rounds``), and the
last line is exactly

    KV-cache speed-up: 12.3x

The model is a trained one (``--model results/blotch/train/<variant>/L<n>/s<seed>/model.pt``, with
its problem set ``--problems``), or by default a fresh model of the paper's shape (Llama-style,
d 128, 4 heads, ``--layers`` layers) on problems of the CPU-scale task (``--max-num`` 100, up to 3
numbers, sums only; ``--max-num 5000 --max-mult-num 7 --p-mult 0.25`` is the paper's, whose rows
reach 869 tokens). A random model rarely stops early, so it generates the whole row: the longest case.

    OMP_NUM_THREADS=2 python benchmarks/blotch_generate.py                # CPU, about two minutes
    python benchmarks/blotch_generate.py --device cuda --batch 500 --n 500 --max-num 5000 --max-mult-num 7 --p-mult 0.25
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from headstart.blotch.evaluate import generate_solutions  # noqa: E402
from headstart.blotch.hyps import BlotchHyps  # noqa: E402
from headstart.blotch.model import BlotchModel, load_model  # noqa: E402
from headstart.data.arithmetic import ArithmeticConfig, make_problem_set, read_problem_set  # noqa: E402
from headstart.train.device import describe_device, pick_device  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a trained model.pt (default: a fresh paper-shape model)")
    ap.add_argument("--problems", help="its problems.json (default: drawn at the paper's settings)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--n", type=int, default=100, help="problems per round")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-num", type=int, default=100)
    ap.add_argument("--max-mult-num", type=int, default=None)
    ap.add_argument("--p-mult", type=float, default=0.0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = pick_device(args.device)
    torch.manual_seed(0)
    if args.model:
        model, _ = load_model(args.model)
        problems = read_problem_set(args.problems)["val"] if args.problems else None
        if problems is None:
            ap.error("--model needs --problems")
    else:
        env = ArithmeticConfig(max_num=args.max_num, max_ents=3, p_mult=args.p_mult, max_mult_num=args.max_mult_num,
                               init_samples=args.n, val_samples=args.n, enumerate_below=0, data_seed=0)
        ps = make_problem_set(env)
        problems = ps["val"]
        model = BlotchModel(BlotchHyps(n_layers=args.layers), ps["seq_len"], ps["prob_len"])
    problems = list(problems)[:args.n]
    model.to(device).eval()
    print(f"device: {describe_device(device)}; {len(problems)} problems, batch {args.batch}; model "
          f"{model.hyps.arch} d{model.hyps.d_model} x {model.hyps.n_layers} layers; rows of {model.seq_len} tokens")

    def timed(use_cache: bool) -> tuple[float, list[str]]:
        times, out = [], []
        for _ in range(args.rounds):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = generate_solutions(model, problems, batch_size=args.batch, use_cache=use_cache)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return statistics.median(times), out

    t_ref, ref = timed(False)
    t_ours, ours = timed(True)
    same32 = sum(a == b for a, b in zip(ref, ours))
    print(f"re-encode every step (the original's freedom_fwd): {len(problems) / t_ref:9.1f} problems/s")
    print(f"KV cache (ours):                                   {len(problems) / t_ours:9.1f} problems/s")
    model.double()
    ref64 = generate_solutions(model, problems, batch_size=args.batch, use_cache=False)
    ours64 = generate_solutions(model, problems, batch_size=args.batch, use_cache=True)
    same = sum(a == b for a, b in zip(ref64, ours64))
    print(f"same solutions: {same}/{len(problems)} in float64 ({same32}/{len(problems)} in float32); "
          f"mean length {statistics.mean(map(len, ours)):.1f} tokens")
    if same != len(problems):
        print("FAIL: the two generations differ in float64")
        return 1
    print(f"KV-cache speed-up: {t_ref / t_ours:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
