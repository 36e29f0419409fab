"""Generation throughput of our cached ``generate`` against Hugging Face ``generate``, side by side.

Both models are the same random-init GPT-2 (ours converted from HF's), fed the same prompts, and
decode greedily with a KV cache (HF: ``do_sample=False, use_cache=True``) for ``--new-tokens``
tokens, no EOS, in the same process, alternating ours, hf, ours uncached, ... for ``--repeats``
rounds after a warmup; the reported number is the median new tokens/s of each. All three outputs
are checked to be the same tokens: the script prints its report either way and exits with status
1 when they differ. Torch uses ``--threads`` CPU threads (default 1). The last line is exactly

    ratio ours/hf tokens/s: 1.23x

    python benchmarks/sampling.py                   # GPT-2 shape, 4 layers x 256, vocab 50257, CPU, 1 thread
    python benchmarks/sampling.py --threads 4
    python benchmarks/sampling.py --device cuda --batch 32 --new-tokens 256
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from headstart.reference.samplers import PAD, hf_sampler_model  # noqa: E402
from headstart.sampling import generate  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5, help="rounds of (ours, hf, ours uncached); the median is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed generations per implementation first")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (torch.set_num_threads)")
    return p.parse_args(argv)


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure(args) -> dict[str, list[float]]:
    hf, ours = hf_sampler_model(args.seed, args.n_layer, args.n_head, args.d_model, args.vocab,
                                args.prompt_len + args.new_tokens)
    hf, ours = hf.to(args.device), ours.to(args.device)
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(1, args.vocab, (args.batch, args.prompt_len), generator=g).to(args.device)
    mask = torch.ones_like(ids)
    n = args.new_tokens
    runs = {
        "ours": lambda: generate(ours, ids, n, temperature=0.0),
        "hf": lambda: hf.generate(ids, attention_mask=mask, do_sample=False, use_cache=True, max_new_tokens=n,
                                  min_new_tokens=n, pad_token_id=PAD),
        "ours_nocache": lambda: generate(ours, ids, n, temperature=0.0, use_cache=False),
    }
    outputs = {name: run() for name, run in runs.items()}
    for _ in range(args.warmup - 1):
        for run in runs.values():
            run()
    same = torch.equal(outputs["ours"], outputs["hf"]) and torch.equal(outputs["ours"], outputs["ours_nocache"])
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():  # alternate
            sync(args.device)
            t0 = time.perf_counter()
            run()
            sync(args.device)
            results[name].append(args.batch * n / (time.perf_counter() - t0))
    results["same_tokens"] = [float(same)]
    return results


def report(args, results) -> float:
    names = ("ours", "hf", "ours_nocache")
    med = {k: statistics.median(results[k]) for k in names}
    print(f"config: n_layer={args.n_layer} n_head={args.n_head} d_model={args.d_model} vocab={args.vocab} "
          f"batch={args.batch} prompt_len={args.prompt_len} new_tokens={args.new_tokens} device={args.device} "
          f"threads={torch.get_num_threads()} repeats={args.repeats} torch={torch.__version__}")
    print(f"same tokens (ours, hf, ours uncached): {bool(results['same_tokens'][0])}")
    print(f"{'impl':<13} {'median tok/s':>14} {'min tok/s':>12} {'max tok/s':>12}")
    for k in names:
        print(f"{k:<13} {med[k]:>14.1f} {min(results[k]):>12.1f} {max(results[k]):>12.1f}")
    print(f"ratio ours cached/uncached tokens/s: {med['ours'] / med['ours_nocache']:.2f}x")
    ratio = med["ours"] / med["hf"]
    print(f"ratio ours/hf tokens/s: {ratio:.2f}x")
    return ratio


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    results = measure(args)
    report(args, results)
    if not results["same_tokens"][0]:
        print("error: ours, hf and ours uncached generated different tokens", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
