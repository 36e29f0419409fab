"""One epoch of the growth study's models: trained as one batched ensemble vs one after another.

The same ``--models`` replicates (default 100, d_model 96, the faithful track: float64, batch 64,
Adam, one epoch over the 10,000 training strings and a dev evaluation) are trained through
:func:`headstart.growth.protocol.run` three ways, alternating in one process:

* ``sequential``: one model per pass, one after another (``chunk=1``);
* ``ensemble``: all models in ONE batched pass (``chunk=0``);
* ``auto``: the workflow's default on this device (all at once on a GPU, passes of
  ``protocol.CPU_CHUNK`` members on a CPU).

All three give the same accuracies (printed as a check). Wall time is the median over
``--repeats``; the last line is exactly

    speed-up ensemble/sequential: 2.50x

Data: the course files in ``--data`` (default ``../shared/data/lettercounting`` when present) or
random strings of the same size (speed does not depend on the text).

    python benchmarks/growth.py                         # CPU, 100 models: about 8 minutes on 2 cores
    python benchmarks/growth.py --models 20 --lines 2000 # a quick look
    python benchmarks/growth.py --device cuda --repeats 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from headstart.data import lettercount  # noqa: E402
from headstart.growth import protocol  # noqa: E402
from headstart.train.device import describe_device, pick_device  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lettercounting"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", type=int, default=100)
    p.add_argument("--d-model", type=int, default=96)
    p.add_argument("--track", choices=protocol.TRACKS, default="faithful")
    p.add_argument("--lines", type=int, default=10_000, help="training strings per epoch")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p.parse_args(argv)


def load_data(args):
    train_f, dev_f = args.data / "lettercounting-train.txt", args.data / "lettercounting-dev.txt"
    if train_f.is_file() and dev_f.is_file():
        (x, y), dev, source = lettercount.load(train_f), lettercount.load(dev_f), str(args.data)
        reps = -(-args.lines // len(x))
        x, y = x.repeat(reps, 1)[: args.lines], y.repeat(reps, 1)[: args.lines]
        return (x, y), dev, source
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 27, (args.lines + 1000, 20), generator=g)
    y = lettercount.labels(x)
    return (x[: args.lines], y[: args.lines]), (x[args.lines:], y[args.lines:]), "random strings"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    train, dev, source = load_data(args)
    settings = {"epochs_small": 1, "epochs_large": 0, "batch_size": args.batch}
    if args.track == "corrected":
        settings["dtype"] = "float32"
    reps = list(range(args.models))
    auto = protocol.chunk_size("auto", device, args.models)
    ways = {"sequential": 1, "ensemble": 0, "auto": auto}

    def once(chunk):
        t = time.perf_counter()
        df = protocol.run(args.track, args.d_model, "scratch", "reset", reps, train, dev,
                          settings=settings, device=str(device), chunk=chunk)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, df

    protocol.run(args.track, args.d_model, "scratch", "reset", reps[:2], (train[0][:256], train[1][:256]), dev,
                 settings=settings, device=str(device), chunk=0)   # warm-up
    times = {k: [] for k in ways}
    accs = {}
    for _ in range(args.repeats):
        for name, chunk in ways.items():
            dt, df = once(chunk)
            times[name].append(dt)
            accs[name] = df.sort_values("replicate")["accuracy"].to_numpy()
    med = {k: statistics.median(v) for k, v in times.items()}
    dev_info = describe_device(device)
    print(f"device: {dev_info.get('gpu_name', dev_info['cpu'])} ({dev_info['cpu_count']} CPUs), torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"config: {args.models} models, track {args.track}, d_model {args.d_model}, batch {args.batch}, "
          f"{len(train[0])} training strings ({source}), one epoch + dev evaluation, {args.repeats} repeat(s)")
    print(f"{'way':<11} {'members/pass':>12} {'median s':>10} {'ms/model-step':>14}")
    steps = -(-len(train[0]) // args.batch)
    for name, chunk in ways.items():
        print(f"{name:<11} {chunk or args.models:>12} {med[name]:>10.2f} {1000 * med[name] / steps / args.models:>14.2f}")
    diff = max(abs(accs[k] - accs["sequential"]).max() for k in accs)
    print(f"max |accuracy difference| between the ways: {diff:.2e}")
    print(f"speed-up auto ({auto} per pass)/sequential: {med['sequential'] / med['auto']:.2f}x")
    print(f"speed-up ensemble/sequential: {med['sequential'] / med['ensemble']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
