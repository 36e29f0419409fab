"""Tables, figure and claims of the reference study, from its tidy results."""
from __future__ import annotations

import numpy as np
import pandas as pd

from headstart import plotting
from headstart.claims import Claim, bound_verdict, equivalence_verdict
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
                     equivalence_verdict(lo, hi, margin), f"95% t CI within ±{margin:g} bpb"))
    return out
