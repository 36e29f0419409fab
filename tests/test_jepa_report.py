"""JEPA report (headstart.jepa.report): the probe table on hand-made probe rows (means, t intervals,
paired differences), the ablations table, the claim verdicts on synthetic monitor rows (healthy,
collapsing, RankMe falling beyond the margin), the training figure and the whole report job."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from headstart.io import read_table, write_table
from headstart.jepa import report

WIDTH = 64
CFG = {"alpha": 0.05, "min_rank_fraction": 0.25, "max_rank_drop": 0.05, "max_cosine": 0.9}
N_DEV = 10
LABELS = [1] * 6 + [0] * 4                  # majority class: 6 of 10


def probe_rows(encoder: str, seed: int, n_correct: int) -> pd.DataFrame:
    """N_DEV dev rows of which the first ``n_correct`` are right."""
    correct = np.arange(N_DEV) < n_correct
    label = np.array(LABELS)
    return pd.DataFrame({"idx": np.arange(N_DEV), "label": label, "pred": np.where(correct, label, 1 - label),
                         "correct": correct, "encoder": encoder, "seed": seed})


ACC = {"jepa:main": (7, 8, 9), "random": (5, 5, 6), "mlm": (6, 7, 7), "bag": (6, 6, 6), "jepa:tokens": (6, 7, 9)}


def all_probes(acc: dict = ACC) -> pd.DataFrame:
    return pd.concat([probe_rows(e, s, n) for e, ns in acc.items() for s, n in enumerate(ns)], ignore_index=True)


def monitors(seed: int, rank, cosine, objective: str = "jepa", variant: str = "main", steps=None,
             val_loss=None, dim_std=0.5) -> pd.DataFrame:
    """Tidy monitor rows of one run: ``rank``/``cosine`` are functions of the fraction of training done."""
    steps = list(range(0, 1001, 100)) if steps is None else steps
    out = []
    for s in steps:
        f = s / steps[-1]
        vals = {"rankme": rank(f), "cosine": cosine(f), "dim_std": dim_std,
                "val_loss": 1.0 - 0.5 * f if val_loss is None else val_loss, "train_loss": 1.1 - 0.5 * f}
        out += [{"step": s, "metric": m, "value": float(v), "objective": objective, "variant": variant,
                 "seed": seed} for m, v in vals.items()]
    return pd.DataFrame(out)


def healthy(seed: int, **kw) -> pd.DataFrame:
    """RankMe 1 and cosine 0.95 at init (step 0, excluded), then ≈ 0.6·WIDTH, flat; cosine 0.3."""
    return monitors(seed, lambda f: 1.0 if f == 0 else WIDTH * (0.6 + 0.01 * seed * f),
                    lambda f: 0.95 if f == 0 else 0.3, **kw)


def by(claims, word):
    (hit,) = [c for c in claims if word in c.claim]
    return hit


def test_probe_table_means_intervals_and_paired_differences():
    t = report.probe_table(all_probes())
    main = t[(t["encoder"] == "jepa:main")].set_index("vs")
    assert list(main.index) == ["random", "mlm", "bag"]
    half = st.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)            # accuracies 0.7, 0.8, 0.9: sd 0.1
    r = main.loc["random"]
    assert r["accuracy"] == pytest.approx(0.8) and r["n_seeds"] == 3
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.8 - half, 1.0))   # the upper end cut to 100 %
    # vs random: differences 0.2, 0.3, 0.3: mean 0.2667, sd 0.0577, t = 8
    sd = np.std([0.2, 0.3, 0.3], ddof=1)
    assert r["diff"] == pytest.approx(0.8 / 3) and r["n_pairs"] == 3
    assert r["diff_ci_high"] - r["diff"] == pytest.approx(st.t.ppf(0.975, 2) * sd / math.sqrt(3))
    assert r["p"] == pytest.approx(2 * st.t.sf((0.8 / 3) / (sd / math.sqrt(3)), 2))
    assert main.loc["bag", "diff"] == pytest.approx(0.2)
    assert t["encoder"].tolist()[:4] == ["jepa:main"] * 3 + ["jepa:tokens"]
    assert t.set_index("encoder").loc["jepa:tokens", "vs"] == "random"
    rand = t[t["encoder"] == "random"].iloc[0]
    assert rand["vs"] == "" and math.isnan(rand["diff"])
    maj = t.iloc[-1]
    assert maj["encoder"].startswith("majority") and maj["accuracy"] == pytest.approx(0.6)
    md = report.probe_markdown(t, N_DEV, "smoke")
    assert "pre-training seeds" in md and f"{N_DEV} dev sentences" in md and "SMOKE" in md
    assert "80.0 [" in md and "+26.7 [" in md


def test_ablations_table_pairs_variants_with_main():
    rows = pd.concat([healthy(s) for s in range(3)]
                     + [monitors(s, lambda f: WIDTH * 0.4, lambda f: 0.5, variant="tokens", val_loss=2.0 + s)
                        for s in range(3)], ignore_index=True)
    t = report.ablations_table(rows, all_probes(), ["main", "tokens", "r_only"], WIDTH).set_index("variant")
    tok = t.loc["tokens"]
    assert tok["diff"] == pytest.approx((-0.1 - 0.1 + 0.0) / 3) and tok["n_pairs"] == 3   # (6,7,9) − (7,8,9)
    assert tok["final_val_loss"] == pytest.approx(3.0) and tok["final_rankme_frac"] == pytest.approx(0.4)
    assert tok["final_cosine"] == pytest.approx(0.5)
    assert math.isnan(t.loc["main", "diff"]) and t.loc["main", "final_rankme_frac"] == pytest.approx(0.61)
    assert t.loc["r_only", "n_seeds"] == 0 and math.isnan(t.loc["r_only", "accuracy"])
    assert "not comparable across variants" in report.ablations_markdown(t.reset_index())


def test_claims_healthy_run_is_supported_and_probe_claims_are_paired():
    rows = pd.concat([healthy(s) for s in range(3)], ignore_index=True)
    cl = report.claims(rows, all_probes(), WIDTH, CFG, "paper")
    col = by(cl, "without collapse")
    assert col.verdict == "supported" and col.n == 3 and col.value == pytest.approx(0.6)   # step 0 not counted
    assert math.isnan(col.p_value) and math.isnan(col.ci_low) and "0.25" in col.rule
    rnd = by(cl, "randomly initialised")
    assert rnd.value == pytest.approx(0.8 / 3) and rnd.verdict == "supported" and rnd.role == "confirmatory"
    sd = np.std([0.2, 0.3, 0.3], ddof=1)
    assert rnd.p_value == pytest.approx(st.t.sf((0.8 / 3) / (sd / math.sqrt(3)), 2))      # one-sided
    mlm = by(cl, "MLM")
    assert "observed: JEPA higher" in mlm.claim and mlm.value == pytest.approx(0.4 / 3)
    assert mlm.verdict in ("supported", "inconclusive") and mlm.role == "confirmatory"
    bag = by(cl, "bag-of-embeddings")
    assert bag.role == "exploratory" and math.isnan(bag.p_holm) and bag.value == pytest.approx(0.2)
    assert not math.isnan(rnd.p_holm) and not math.isnan(mlm.p_holm) and math.isnan(col.p_holm)
    small, large = sorted([rnd.p_value, mlm.p_value])          # Holm over a family of two
    holm = {small: min(1.0, 2 * small), large: max(min(1.0, 2 * small), large)}
    assert (rnd.p_holm, mlm.p_holm) == pytest.approx((holm[rnd.p_value], holm[mlm.p_value]))
    assert all("[smoke run]" in c.claim for c in report.claims(rows, all_probes(), WIDTH, CFG, "smoke"))


def test_claims_mlm_lower_and_missing_baselines():
    acc = {"jepa:main": (6, 6, 7), "mlm": (8, 9, 9)}
    cl = report.claims(pd.concat([healthy(s) for s in range(3)]), all_probes(acc), WIDTH, CFG)
    mlm = by(cl, "MLM")
    assert "observed: JEPA lower" in mlm.claim and mlm.value < 0
    assert len(cl) == 2                             # no random or bag probes: those claims are left out


def test_collapse_verdicts():
    collapsing = pd.concat([monitors(s, lambda f: WIDTH * max(0.02, 0.6 - f), lambda f: 0.3 + 0.69 * f)
                            for s in range(3)])
    c = by(report.claims(collapsing, all_probes(), WIDTH, CFG), "without collapse")
    assert c.verdict == "not supported" and c.value == pytest.approx(0.02)
    # RankMe stays above 25 % of D but falls by ≈ 0.3·D over the second half, in every seed
    falling = pd.concat([monitors(s, lambda f, s=s: WIDTH * (0.8 - 0.6 * max(0.0, f - 0.5) + 0.01 * s), lambda f: 0.3)
                         for s in range(3)])
    stats = report.collapse_stats(falling, WIDTH)
    assert stats["drops"][0] == pytest.approx(-0.3) and stats["min_rank_frac"] == pytest.approx(0.5)
    assert by(report.claims(falling, all_probes(), WIDTH, CFG), "without collapse").verdict == "not supported"
    # a high cosine alone violates the bound
    aligned = pd.concat([monitors(s, lambda f: WIDTH * 0.6, lambda f: 0.95) for s in range(3)])
    assert by(report.claims(aligned, all_probes(), WIDTH, CFG), "without collapse").verdict == "not supported"
    # the seeds disagree about a drop near the margin: inconclusive
    mixed = pd.concat([monitors(s, lambda f, d=d: WIDTH * (0.6 + d * max(0.0, 2 * f - 1)), lambda f: 0.3)
                       for s, d in enumerate((0.0, -0.05, -0.1))])
    assert by(report.claims(mixed, all_probes(), WIDTH, CFG), "without collapse").verdict == "inconclusive"
    # one seed: no interval for the drop
    one = healthy(0)
    assert by(report.claims(one, all_probes(), WIDTH, CFG), "without collapse").verdict == "inconclusive"


def _runs() -> pd.DataFrame:
    jepa = [healthy(s) for s in range(3)]
    mlm = [monitors(s, lambda f: WIDTH * (0.3 + 0.2 * f), lambda f: 0.6 - 0.2 * f, objective="mlm",
                    variant="mlm", val_loss=5.0, dim_std=0.8) for s in range(3)]
    tok = [monitors(s, lambda f: WIDTH * 0.4, lambda f: 0.5, variant="tokens") for s in range(3)]
    return pd.concat(jepa + mlm + tok, ignore_index=True)


def test_training_figure_writes_png_and_pdf(tmp_path):
    png, pdf = tmp_path / "t.png", tmp_path / "t.pdf"
    report.training_figure(_runs(), str(png), str(pdf), WIDTH)
    assert png.stat().st_size > 10_000 and pdf.read_bytes()[:5] == b"%PDF-"


def test_write_report_writes_every_output(tmp_path):
    metric_paths, probe_paths = [], []
    for (obj, var, seed), g in _runs().groupby(["objective", "variant", "seed"]):
        p = tmp_path / "m" / f"{var}_s{seed}.parquet"
        write_table(g, p)
        metric_paths.append(str(p))
    for (enc, seed), g in all_probes().groupby(["encoder", "seed"]):
        p = tmp_path / "p" / f"{enc.replace(':', '_')}_s{seed}.parquet"
        write_table(g, p)
        probe_paths.append(str(p))
    names = {"png": "j.png", "pdf": "j.pdf", "probe_md": "p.md", "probe_csv": "p.csv", "ablations_md": "a.md",
             "ablations_csv": "a.csv", "claims": "claims.csv", "training": "training.csv"}
    out = {k: str(tmp_path / "out" / v) for k, v in names.items()}
    params = {"claims": CFG, "width": WIDTH, "variants": ["main", "tokens"], "scale": "smoke"}
    cl = report.write_report(metric_paths, probe_paths, out, params)
    assert all((tmp_path / "out" / v).stat().st_size > 0 for v in names.values())
    assert len(read_table(out["training"])) == len(_runs())
    claims = read_table(out["claims"])
    assert len(claims) == len(cl) == 4 and set(claims["study"]) == {"jepa"}
    assert read_table(out["ablations_csv"])["variant"].tolist() == ["main", "tokens"]
    bad = tmp_path / "bad.parquet"
    write_table(pd.DataFrame({"step": [0], "value": [1.0]}), bad)
    with pytest.raises(ValueError, match="bad.parquet"):
        report.write_report([str(bad)], probe_paths, out, params)
    with pytest.raises(ValueError, match="more than one file"):
        report.write_report(metric_paths, probe_paths + probe_paths[:1], out, params)
