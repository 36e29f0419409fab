"""T-JEPA masking: vectorised vs per-sample masks, and the share of a training step spent on masking.

(a) For each strategy of ``--set``, masks per second of the vectorised
:func:`~headstart.jepa.masking.make_masks` and of the per-sample Python
:func:`~headstart.jepa.masking.make_masks_reference` on the same draws (the masks must be equal:
exit 1 otherwise), at ``--batch`` x ``--length``; with ``--repeat-ngram n`` also
:func:`~headstart.jepa.masking.drop_repeated_targets` vs its reference, and the share of target
blocks that repeat a context n-gram (and are dropped) on TinyStories (``--text``) as bytes and
as tokens of a 4096-id byte-level BPE.
Lengths: log-normal, median 0.78 x ``--length``, sigma 0.36 (the GPT-2 token counts of the
TinyStories sample: median 189, 17 % of stories >= 256 tokens), clipped to [``--min-length``,
``--length``]; token ids Zipf-distributed.

(b) :meth:`MaskingConfig.build` for all strategies of the set (on ``--mask-device``, default the
training device, where ``headstart.jepa.train`` builds them: inside the loss, on the batch's device) against a full T-JEPA training step of the paper model
(JEPAConfig defaults: 8 layers, 12 heads, 384 dims, predictor 8 x 384; ``--vocab`` tokens; every strategy's loss,
backward, gradient clipping, AdamW, EMA update) on ``--device`` with ``--step-batch`` x
``--length`` (default ``--batch``; a CPU needs a smaller one). Medians over the rounds; the share
is masking / (masking + step) at the step's batch, and the last line is exactly

    masking share of a training step: 1.90 %

    OMP_NUM_THREADS=1 python benchmarks/jepa_masking.py --step-batch 4      # CPU, about 2 minutes
    python benchmarks/jepa_masking.py --device cuda --repeat-ngram 3       # the paper batch on a GPU
    python benchmarks/jepa_masking.py --device cuda --mask-device cpu      # masks built on the CPU instead
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from headstart.jepa.masking import (  # noqa: E402
    STRATEGY_SETS,
    Masks,
    MaskingConfig,
    draw_keys,
    drop_repeated_targets,
    drop_repeated_targets_reference,
    make_masks,
    make_masks_reference,
    mask_generator,
    repeat_counts,
)
from headstart.data.synthetic import stories  # noqa: E402
from headstart.tokenize.bpe_train import train_bpe  # noqa: E402
from headstart.jepa.model import JEPA, JEPAConfig  # noqa: E402
from headstart.train.device import describe_device, pick_device  # noqa: E402

DEFAULT_TEXT = (Path(__file__).resolve().parents[2] / "shared" / "data" / "tinystories"
                / "TinyStories-train.first2MiB.txt")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", default="readme", choices=sorted(STRATEGY_SETS))
    p.add_argument("--repeat-ngram", type=int, default=0, help="MaskingConfig.repeat_ngram (0 = off)")
    p.add_argument("--batch", type=int, default=64, help="masking batch (the paper config: 64)")
    p.add_argument("--length", type=int, default=256, help="longest sequence (the paper config: 256)")
    p.add_argument("--min-length", type=int, default=64)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=5, help="rounds of the vectorised masking (median)")
    p.add_argument("--step-batch", type=int, default=None, help="training-step batch (default --batch)")
    p.add_argument("--steps", type=int, default=2, help="timed training steps (after one warm-up step)")
    p.add_argument("--device", default="auto", help="device of the training step")
    p.add_argument("--mask-device", default=None, help="device of MaskingConfig.build in (b) (default: --device, as training)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text", type=Path, default=DEFAULT_TEXT,
                   help="TinyStories text for the repeat statistic (absent: synthetic stories)")
    p.add_argument("--text-docs", type=int, default=512, help="stories for the repeat statistic")
    return p.parse_args(argv)


def batch(n: int, args, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Zipf-distributed token ids (B, max length), right-padded with 0, and the lengths (B,)."""
    median = 0.78 * args.length
    z = torch.randn(n, generator=gen, dtype=torch.float64)
    lengths = torch.exp(torch.log(torch.tensor(median)) + 0.36 * z).round().long().clamp(args.min_length, args.length)
    zipf = 1.0 / torch.arange(1, args.vocab + 1, dtype=torch.float64)
    ids = torch.multinomial(zipf, n * int(lengths.max()), replacement=True, generator=gen).view(n, -1)
    ids[torch.arange(ids.shape[1])[None, :] >= lengths[:, None]] = 0
    return ids, lengths


def timed(fn: Callable[[], object], rounds: int, sync: Callable[[], None] = lambda: None,
          warm: bool = True) -> tuple[float, object]:
    """Median seconds of ``rounds`` calls (after one warm-up call when ``warm``), and the last result."""
    if warm:
        fn()
        sync()
    times, out = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def equal(a: Masks, b: Masks) -> bool:
    return all(getattr(a, f).shape == getattr(b, f).shape and torch.equal(getattr(a, f), getattr(b, f))
               for f in Masks.__dataclass_fields__)


def repeat_statistic(args, strategies) -> None:
    """Share of target blocks with a context repeat (flagged) and dropped (a sample keeps one) on
    ``--text-docs`` stories, as bytes and as tokens of a byte-level BPE of 4096 ids trained on the
    whole text (the study's tokenizer: jepa.data.vocab_size)."""
    if args.text.is_file():
        text, source = args.text.read_text(encoding="utf-8"), args.text.name
    else:
        text, source = stories(4 * args.text_docs, seed=args.seed), "synthetic stories"
    bpe = train_bpe(text, 4096)
    stories_ = [d.strip() for d in text.split("<|endoftext|>") if d.strip()]
    for name, encode in (("bytes", lambda d: list(d.encode())), ("BPE 4096", bpe.encode)):
        docs = [ids[:args.length] for ids in map(encode, stories_) if len(ids) >= args.min_length][:args.text_docs]
        lengths = torch.tensor([len(d) for d in docs])
        ids = torch.zeros(len(docs), int(lengths.max()), dtype=torch.long)
        for i, d in enumerate(docs):
            ids[i, :len(d)] = torch.tensor(d)
        print(f"    repeat statistic, n = {args.repeat_ngram}: {len(docs)} stories of {source} as {name} "
              f"(mean length {lengths.float().mean():.0f} of {args.length}); share of target blocks")
        gen, total = mask_generator(args.seed, 0), [0, 0, 0]
        for st in strategies:
            m = make_masks(lengths, st, gen)
            blocks = int(m.n_blocks.sum())
            flagged = int((repeat_counts(m, ids, args.repeat_ngram) > 0).sum())
            dropped = blocks - int(drop_repeated_targets(m, ids, args.repeat_ngram).n_blocks.sum())
            total = [total[0] + blocks, total[1] + flagged, total[2] + dropped]
            print(f"      {st.name:<6} {blocks:>6} blocks: {flagged / blocks:6.1%} repeat, "
                  f"{dropped / blocks:6.1%} dropped")
        print(f"      all    {total[0]:>6} blocks: {total[1] / total[0]:6.1%} repeat, "
              f"{total[2] / total[0]:6.1%} dropped")


def main(argv=None) -> int:
    args = parse_args(argv)
    gen = torch.Generator().manual_seed(args.seed)
    ids, lengths = batch(args.batch, args, gen)
    strategies = STRATEGY_SETS[args.set]
    info = describe_device("cpu")
    print(f"masks: CPU ({info['cpu']}, {info['cpu_count']} CPUs, torch threads {torch.get_num_threads()}, "
          f"torch {torch.__version__})")
    print(f"config: set {args.set} ({len(strategies)} strategies), overlap forbid, last token corrected, "
          f"repeat_ngram {args.repeat_ngram}; batch {args.batch}, lengths {int(lengths.min())}..{int(lengths.max())} "
          f"(mean {lengths.float().mean():.0f}) of {args.length}; vocab {args.vocab}")

    # (a) vectorised vs reference, same draws
    ok = True
    print("(a) masks/s  strategy  vectorised  reference  ratio" + ("  | (same for drop_repeated_targets)"
                                                                  if args.repeat_ngram else ""))
    for st in strategies:
        draws = draw_keys(lengths, gen)
        t_vec, fast = timed(lambda: make_masks(lengths, st, draws=draws), args.rounds)
        t_ref, slow = timed(lambda: make_masks_reference(lengths.tolist(), st, draws), 1, warm=False)
        same = equal(fast, slow)
        ok &= same
        line = f"    {st.name:<6} {1 / t_vec:>10,.1f} {1 / t_ref:>10,.2f} {t_ref / t_vec:>7,.0f}x"
        if args.repeat_ngram:
            t_dv, d_fast = timed(lambda: drop_repeated_targets(fast, ids, args.repeat_ngram), args.rounds)
            t_dr, d_slow = timed(lambda: drop_repeated_targets_reference(fast, ids, args.repeat_ngram), 1,
                                 warm=False)
            same_d = equal(d_fast, d_slow)
            ok &= same_d
            line += (f"  | drop repeats {1 / t_dv:>8,.1f} {1 / t_dr:>8,.2f} {t_dr / t_dv:>6,.0f}x"
                     f"{'' if same_d else '  MISMATCH'}")
        print(line + ("" if same else "  MISMATCH"))
    if not ok:
        print("vectorised and reference masks differ")
        return 1
    if args.repeat_ngram:
        repeat_statistic(args, strategies)

    # (b) masking vs a training step
    cfg = MaskingConfig(set=args.set, repeat_ngram=args.repeat_ngram)
    step_batch = args.step_batch or args.batch
    s_ids, s_lengths = ids[:step_batch], lengths[:step_batch]
    if step_batch > args.batch:
        s_ids, s_lengths = batch(step_batch, args, gen)
    s_ids = s_ids[:, :int(s_lengths.max())]
    mdev = pick_device(args.mask_device or args.device)
    msync = torch.cuda.synchronize if mdev.type == "cuda" else (lambda: None)
    on = {k: x.to(mdev) for k, x in (("ids", ids), ("lengths", lengths), ("s_ids", s_ids), ("s_lengths", s_lengths))}
    t_mask_paper, _ = timed(lambda: cfg.build(on["ids"], on["lengths"], mask_generator(args.seed, 0)),
                            args.rounds, msync)
    t_mask, masks = timed(lambda: cfg.build(on["s_ids"], on["s_lengths"], mask_generator(args.seed, 1)),
                          args.rounds, msync)

    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    net = JEPA(JEPAConfig(vocab_size=args.vocab, block_size=args.length)).to(device)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.95),
                            weight_decay=0.04)
    x = s_ids.to(device)
    attn = torch.arange(x.shape[1], device=device)[None, :] < s_lengths.to(device)[:, None]
    dev_masks = [Masks(**{f: getattr(m, f).to(device) for f in Masks.__dataclass_fields__}) for m in masks]
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step():
        opt.zero_grad(set_to_none=True)
        with amp:
            loss, _ = net.loss(x, attn, dev_masks)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        net.update_target(0.996)

    t_step, _ = timed(step, args.steps, sync)
    dinfo = describe_device(device)
    share = t_mask / (t_mask + t_step)
    print(f"(b) training step on {dinfo.get('gpu_name', dinfo['cpu'])} ({device}): paper model (8 x 384, predictor "
          f"8 x 384, {sum(p.numel() for p in net.parameters()) / 1e6:.1f}M parameters incl. the target encoder), "
          f"batch {step_batch} x {int(s_lengths.max())} tokens, {len(strategies)} strategies, "
          f"{'bf16 autocast' if device.type == 'cuda' else 'fp32'}: median {t_step:.3f} s over {args.steps} steps")
    minfo = describe_device(mdev)
    print(f"    MaskingConfig.build, all {len(strategies)} strategies on {minfo.get('gpu_name', minfo['cpu'])} "
          f"({mdev}): {t_mask * 1e3:.1f} ms at batch "
          f"{step_batch}, {t_mask_paper * 1e3:.1f} ms at batch {args.batch}")
    if step_batch != args.batch:
        est = t_mask_paper / (t_mask_paper + t_step * args.batch / step_batch)
        print(f"    estimate at batch {args.batch} (step time scaled linearly from batch {step_batch}): "
              f"{100 * est:.2f} %")
    print(f"masking share of a training step: {100 * share:.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
