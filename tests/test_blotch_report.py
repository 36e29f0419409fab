"""Blotch report (headstart.blotch.report): the length-reduction aggregate and the volatility statistic
against hand computations, the claim verdicts on synthetic evaluations with designed effects (and
with the effects reversed), claims whose inputs are missing, the figures and tables of the whole
job, and scripts/blotch_report.py run through a stand-in for Snakemake's ``snakemake`` object."""
from __future__ import annotations

import logging
import math
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

import headstart.io
from headstart.blotch import report
from headstart.io import read_table, write_table
from headstart.stats import holm

REPO = Path(__file__).resolve().parents[1]
N = 100                                     # problems per (run, temperature, split, level): 1 % steps
TARGET_LEN = 10
VARIANTS = {"cos": "cos", "vanilla": "vanilla", "direct": "direct", "fixed": "fixed"}
LEVELS = [0.0, 1 / 3, 2 / 3, 1.0]           # CoS intensities of levels 0..3
REDUCTION = {("cos", 0): 10, ("cos", 1): 40, ("cos", 2): 60, ("cos", 3): 80, ("vanilla", 0): 0,
             ("direct", 0): 100, ("fixed", 0): 40}
INTENSITY = {("cos", i): p for i, p in enumerate(LEVELS)} | {("vanilla", 0): 0.0, ("direct", 0): 0.0,
                                                            ("fixed", 0): 0.4}
CFG = {"alpha": 0.05, "margin": 5.0, "min_shortening": 50.0, "intensity": 0.0, "temperature": 0.6,
       "temperature_intensity": 0.0, "depth": None}
SEEDS = (0, 1, 2, 3)

# % correct per seed, (variant, level) -> list; T = 0 validation unless named otherwise.
GOOD = {
    ("vanilla", 0): [90, 91, 92, 90],
    ("cos", 0): [93, 94, 93, 95], ("cos", 1): [92, 92, 93, 91],
    ("cos", 2): [89, 89, 92, 89],           # Vanilla − (1, 2, 0, 1): within 5 pp, at 60 % shorter
    ("cos", 3): [78, 80, 79, 81],
    ("direct", 0): [50, 52, 49, 51], ("fixed", 0): [88, 89, 90, 88],
}
GOOD_T06 = {("vanilla", 0): [34, 36, 33, 35], ("cos", 0): [60, 58, 62, 61]}      # CoS drops 22.75 pp less
GOOD_OOD = {("vanilla", 0): [82, 80, 83, 81], ("cos", 0): [92, 93, 90, 92]}      # CoS + 10.25 pp
BAD = {**GOOD, ("cos", 2): [80, 79, 83, 80],                                   # Vanilla − 10.25 pp
       ("direct", 0): [85, 86, 84, 85]}                                        # above CoS level 3
BAD_T06 = {("vanilla", 0): [34, 36, 33, 35], ("cos", 0): [20, 22, 19, 21]}
BAD_OOD = {("vanilla", 0): [82, 80, 83, 81], ("cos", 0): [70, 72, 71, 69]}


def cell(variant: str, level: int, n_layers: int, seed: int, temperature: float, split: str, acc: int) -> pd.DataFrame:
    """N evaluation rows of one cell: the first ``acc`` right, every prediction of the cell's
    designed length (REDUCTION % shorter than the TARGET_LEN-token chain)."""
    pred_len = round(TARGET_LEN * (1 - REDUCTION[(variant, level)] / 100))
    correct = np.arange(N) < acc
    return pd.DataFrame({
        "variant": variant, "kind": VARIANTS[variant], "n_layers": n_layers, "seed": seed, "temperature": temperature,
        "split": split, "level": level, "intensity": INTENSITY[(variant, level)], "problem": [f"{i}+1" for i in range(N)],
        "target": "=1+2=3", "pred": np.where(correct, "=3", "=4"), "answer": 3, "correct": correct,
        "token_acc": np.where(correct, 1.0, 0.5), "target_len": TARGET_LEN, "pred_len": pred_len,
        "len_percent": 100.0 * (TARGET_LEN - pred_len) / TARGET_LEN})


def evals(t0: dict, t06: dict | None, ood: dict | None, n_layers: int = 2, seeds=SEEDS) -> pd.DataFrame:
    """Cells of every (variant, level) at T = 0 (validation and OOD) and T = 0.6; cells the effect
    dicts do not name get the T = 0 validation accuracy (OOD: minus 20) so every table is full."""
    frames = []
    for (v, lv), accs in t0.items():
        for i, s in enumerate(seeds):
            cells = {(0.0, "val"): accs[i], (0.0, "ood"): (ood or {}).get((v, lv), [a - 20 for a in accs])[i]}
            if t06 is not None:
                cells[(0.6, "val")] = t06.get((v, lv), accs)[i]
                cells[(0.6, "ood")] = accs[i] - 30
            if ood is None:
                cells = {k: a for k, a in cells.items() if k[1] != "ood"}
            frames += [cell(v, lv, n_layers, s, t, split, a) for (t, split), a in cells.items()]
    return pd.concat(frames, ignore_index=True)


def full() -> pd.DataFrame:
    """The designed effects at 2 layers (the deepest: the default main depth), reversed at 1 layer."""
    return pd.concat([evals(GOOD, GOOD_T06, GOOD_OOD, 2), evals(BAD, BAD_T06, BAD_OOD, 1)], ignore_index=True)


def by(claims, word):
    (hit,) = [c for c in claims if word in c.claim]
    return hit


def run_claims(ev: pd.DataFrame, scale: str = "paper", **cfg):
    return report.claims(report.run_table(ev), VARIANTS, {**CFG, **cfg}, scale)


# ------------------------------------------------------------------------------------------ statistics

def test_length_reduction_by_hand():
    # rows with pred_len -1 (no '=') are left out: (5 + 15) / (10 + 30) → 50 % shorter
    assert report.length_reduction([5, -1, 15], [10, 20, 30]) == pytest.approx(50.0)
    assert report.length_reduction([12, 8], [10, 10]) == pytest.approx(0.0)
    assert report.length_reduction([0, 0], [7, 3]) == pytest.approx(100.0)     # the answer alone
    assert report.length_reduction([14], [10]) == pytest.approx(-40.0)          # longer than the chain
    assert math.isnan(report.length_reduction([-1, -1], [10, 10]))
    # aggregated (not the mean of len_percent): 1 − (2 + 10) / (4 + 20) = 50 %, mean of per-row % = 37.5 %
    ev = cell("cos", 1, 2, 0, 0.0, "val", 50).iloc[:3].copy()
    ev["target_len"], ev["pred_len"] = [4, 20, 9], [2, 10, -1]
    r = report.run_table(ev).iloc[0]
    assert r["length_reduction_pct"] == pytest.approx(50.0) and r["n_problems"] == 3
    assert r["correct_pct"] == pytest.approx(100.0) and r["token_acc_pct"] == pytest.approx(100.0)


def test_summary_means_intervals_and_rows():
    runs = report.run_table(full())
    s = report.summary_table(runs, VARIANTS)
    assert len(s) == 2 * 2 * 2 * 7          # depths × temperatures × splits × (4 CoS levels + 3 variants)
    row = s[(s["variant"] == "cos") & (s["level"] == 2) & (s["n_layers"] == 2) & (s["temperature"] == 0.0)
            & (s["split"] == "val")].iloc[0]
    half = st.t.ppf(0.975, 3) * np.std([89, 89, 92, 89], ddof=1) / 2
    assert row["correct_pct"] == pytest.approx(89.75) and row["n_seeds"] == 4 and row["n_problems"] == N
    assert (row["correct_ci_low"], row["correct_ci_high"]) == pytest.approx((89.75 - half, 89.75 + half))
    assert row["length_reduction_pct"] == pytest.approx(60.0) and row["intensity"] == pytest.approx(2 / 3)
    assert row["token_acc_pct"] == pytest.approx(100 * (0.8975 + 0.5 * 0.1025))
    direct = s[(s["variant"] == "direct") & (s["split"] == "val")]
    assert (direct["length_reduction_pct"] == 100.0).all()
    # the upper end of an accuracy interval is cut to 100
    assert (s["correct_ci_high"] <= 100.0).all()
    order = s[(s["n_layers"] == 2) & (s["split"] == "val") & (s["temperature"] == 0.0)]["variant"].tolist()
    assert order == ["cos"] * 4 + ["vanilla", "direct", "fixed"]


def test_volatility_by_hand():
    assert report.volatility([0, 10, 30, 20, 40]) == pytest.approx((5 + 15 + 15) / 3)
    assert report.volatility([0, 10, 20, 30, 40]) == pytest.approx(0.0)
    assert math.isnan(report.volatility([10, 20]))
    curve = curves({("vanilla", 2, 0): [0, 0.1, 0.3, 0.2, 0.4], ("vanilla", 2, 1): [0, 0.1, 0.2, 0.3, 0.4],
                    ("cos", 2, 0): [0.1, 0.2]})
    vol = report.volatility_table(report.curve_table(curve), VARIANTS)
    assert vol["variant"].tolist() == ["vanilla"]             # 2 validations: no inner point
    r = vol.iloc[0]
    vals = [35 / 3, 0.0]
    half = st.t.ppf(0.975, 1) * np.std(vals, ddof=1) / math.sqrt(2)
    assert r["volatility_pp"] == pytest.approx(35 / 6) and r["n_seeds"] == 2 and r["n_evals"] == 5
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((35 / 6 - half, 35 / 6 + half))
    assert report.curve_table(curve[curve["metric"] == "train_loss"]).empty     # no validation rows


def curves(runs: dict) -> pd.DataFrame:
    """Tidy curve rows: (variant, n_layers, seed) -> val_correct per validation (one per epoch, 10 steps each)."""
    out = []
    for (v, n, s), accs in runs.items():
        for e, a in enumerate(accs, start=1):
            out += [{"step": 10 * e, "metric": m, "value": float(x), "variant": v, "n_layers": n, "seed": s}
                    for m, x in (("epoch", e), ("val_correct", a), ("val_token_acc", 0.5), ("lr", 1e-3))]
            out.append({"step": 10 * e - 5, "metric": "train_loss", "value": 1.0 / e, "variant": v, "n_layers": n,
                        "seed": s})
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------ claims

def test_claims_designed_effects_are_supported():
    cl = run_claims(full())
    assert len(cl) == 4 and {c.study for c in cl} == {"blotch"} and all(c.role == "confirmatory" for c in cl)
    ni = by(cl, "within 5 pp of Vanilla")
    assert ni.verdict == "supported" and ni.value == pytest.approx(-1.0) and ni.n == 4
    assert "2 layers" in ni.claim and "level 2" in ni.rule and "60.0 %" in ni.rule
    d = np.array([-1, -2, 0, -1], dtype=float)
    t = (d.mean() + 5) / (d.std(ddof=1) / 2)
    assert ni.p_value == pytest.approx(st.t.sf(t, 3))          # one-sided, H0: Δ ≤ −margin
    assert ni.ci_low == pytest.approx(-1 - st.t.ppf(0.975, 3) * d.std(ddof=1) / 2)
    direct = by(cl, "Direct at every intensity")
    assert direct.verdict == "supported" and direct.value == pytest.approx(79.5 - 50.5)   # level 3, the smallest
    ps = [st.ttest_rel(GOOD[("cos", lv)], GOOD[("direct", 0)], alternative="greater").pvalue for lv in range(4)]
    assert direct.p_value == pytest.approx(max(ps)) and "4 of 4" in direct.rule
    temp = by(cl, "loses less accuracy")
    assert temp.verdict == "supported" and temp.value == pytest.approx(33.5 - 56.25)
    ood = by(cl, "out-of-distribution")
    assert ood.verdict == "supported" and ood.value == pytest.approx(10.25)
    highest = by(run_claims(full(), temperature_intensity=None), "loses less accuracy")
    top = full()[lambda r: r.variant == "cos"].intensity.max()
    assert f"(intensity {top:.3g})" in highest.claim          # null: the highest evaluated intensity
    assert f"same {N} out-of-distribution problems" in ood.n_what and f"same {N} validation" in ni.n_what
    p = [c.p_value for c in cl]
    assert [c.p_holm for c in cl] == pytest.approx(list(holm(p)))
    assert all(math.isfinite(c.p_holm) and c.p_holm < 0.05 for c in cl)
    assert all("[smoke run]" in c.claim for c in run_claims(full(), "smoke"))
    assert not any("[" in c.claim for c in cl)


def test_claims_reversed_effects_are_not_supported():
    cl = run_claims(full(), depth=1)        # the reversed effects live at 1 layer
    ni = by(cl, "within 5 pp of Vanilla")
    assert ni.verdict == "not supported" and ni.value == pytest.approx(-10.25) and "1 layer," in ni.claim
    direct = by(cl, "Direct at every intensity")
    assert direct.verdict == "not supported" and direct.value == pytest.approx(79.5 - 85.0)
    assert "2 of 4" in direct.rule          # levels 0 and 1 beat Direct, 2 and 3 fall below it
    assert by(cl, "loses less accuracy").verdict == "not supported"
    assert by(cl, "out-of-distribution").verdict == "not supported"
    assert by(cl, "out-of-distribution").value == pytest.approx(70.5 - 81.5)


def test_claim_one_needs_a_shortening_intensity():
    cl = run_claims(full(), min_shortening=90.0)
    ni = by(cl, "≥ 90 %")
    assert ni.verdict == "not supported" and ni.value == pytest.approx(80.0) and "not met" in ni.rule
    assert math.isnan(ni.p_value) and math.isnan(ni.p_holm)
    # the lowest qualifying intensity is chosen: with 35 % it is level 1 (40 % shorter, 91.5 % correct)
    low = by(run_claims(full(), min_shortening=35.0), "≥ 35 %")
    assert "level 1" in low.rule and low.value == pytest.approx(92.0 - 90.75)


def test_claims_with_missing_inputs_are_inconclusive_not_dropped():
    ev = evals(GOOD, None, None)                 # no T = 0.6, no OOD rows
    cl = run_claims(ev)
    assert len(cl) == 4
    for word, reason in (("loses less", "no T = 0.6 validation rows"), ("out-of-distribution", "no out-of-distribution")):
        c = by(cl, word)
        assert c.verdict == "inconclusive" and reason in c.rule and c.n == 0 and math.isnan(c.value)
    assert by(cl, "within 5 pp").verdict == "supported"
    # no Direct variant: claim 2 says so
    no_direct = run_claims(ev[ev["variant"] != "direct"])
    assert "no Direct variant" in by(no_direct, "Direct at every").rule
    # an intensity the CoS model was not evaluated at
    odd = run_claims(full(), intensity=0.5)
    assert "not evaluated at intensity 0.5" in by(odd, "out-of-distribution").rule
    # CoS without T = 0 validation rows (the others have them)
    no_cos0 = run_claims(full()[lambda e: ~((e["variant"] == "cos") & (e["temperature"] == 0.0) & (e["split"] == "val"))])
    assert "no T = 0 validation rows of CoS" in by(no_cos0, "within 5 pp").rule
    assert "no seed with T = 0 validation rows" in by(no_cos0, "Direct at every").rule
    # a depth that was not evaluated
    assert all("no evaluation at depth 7" in c.rule for c in run_claims(full(), depth=7))


def test_claims_with_one_seed_are_inconclusive():
    one = evals(GOOD, GOOD_T06, GOOD_OOD, seeds=(0,))
    cl = run_claims(one)
    assert len(cl) == 4 and all(c.verdict == "inconclusive" for c in cl)
    assert all("too few" in c.rule and c.n == 1 for c in cl)
    assert by(cl, "within 5 pp").value == pytest.approx(89 - 90)


# ------------------------------------------------------------------------------------------ the job

OUT_NAMES = {"accuracy_length_png": "al.png", "accuracy_length_pdf": "al.pdf", "epochs_png": "ep.png",
             "epochs_pdf": "ep.pdf", "volatility_png": "vol.png", "volatility_pdf": "vol.pdf", "ood_md": "ood.md",
             "ood_csv": "ood.csv", "summary_md": "summary.md", "summary_csv": "summary.csv", "claims": "claims.csv"}


def inputs(tmp_path: Path) -> tuple[list[str], list[str]]:
    """The synthetic evaluations and curves, one file per run (and temperature), as the workflow writes them."""
    eval_paths, curve_paths = [], []
    for (v, n, s, t), g in full().groupby(["variant", "n_layers", "seed", "temperature"]):
        p = tmp_path / "eval" / v / f"L{n}" / f"s{s}" / f"T{t}.parquet"
        write_table(g, p)
        eval_paths.append(str(p))
    rng = np.random.default_rng(0)
    runs = {(v, n, s): np.clip(np.linspace(0, 0.9, 8) + rng.normal(0, 0.05 if v == "vanilla" else 0.01, 8), 0, 1)
            for v in VARIANTS for n in (1, 2) for s in SEEDS}
    for (v, n, s), g in curves(runs).groupby(["variant", "n_layers", "seed"]):
        p = tmp_path / "train" / v / f"L{n}" / f"s{s}" / "curve.parquet"
        write_table(g, p)
        curve_paths.append(str(p))
    return curve_paths, eval_paths


def test_write_report_rejects_bad_inputs(tmp_path):
    curve_paths, eval_paths = inputs(tmp_path)
    out = {k: str(tmp_path / "out" / v) for k, v in OUT_NAMES.items()}
    params = {"claims": CFG, "variants": VARIANTS, "scale": "smoke"}
    # a variant the params do not know, a kind that disagrees, a file given twice, a table lacking columns
    with pytest.raises(ValueError, match="lacks"):
        report.write_report(curve_paths, eval_paths, out, {**params, "variants": {"cos": "cos"}})
    with pytest.raises(ValueError, match="kind"):
        report.write_report(curve_paths, eval_paths, out, {**params, "variants": {**VARIANTS, "fixed": "vanilla"}})
    with pytest.raises(ValueError, match="more than one file"):
        report.write_report(curve_paths, eval_paths + eval_paths[:1], out, params)
    bad = tmp_path / "bad.parquet"
    write_table(pd.DataFrame({"step": [0], "value": [1.0]}), bad)
    with pytest.raises(ValueError, match="bad.parquet"):
        report.write_report([str(bad)], eval_paths, out, params)
    with pytest.raises(ValueError, match="scale"):
        report.write_report(curve_paths, eval_paths, out, {**params, "scale": "huge"})
    assert not (tmp_path / "out").exists()                  # nothing written before the inputs are checked


class _Named(dict):
    """Snakemake's named lists: keys as attributes, ``items()``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e


def test_script_writes_every_output(tmp_path, monkeypatch):
    """scripts/blotch_report.py with the rule's input/output/params keys: every figure, table and claim."""
    curve_paths, eval_paths = inputs(tmp_path)
    out = _Named({k: str(tmp_path / "job" / v) for k, v in OUT_NAMES.items()})
    smk = SimpleNamespace(input=_Named(curves=curve_paths, evals=eval_paths, code="src"), output=out,
                          params=_Named(claims=CFG, variants=VARIANTS, scale="smoke"), log=[], threads=1)
    monkeypatch.setattr(headstart.io, "setup_job", lambda s: logging.getLogger("test"))
    runpy.run_path(str(REPO / "scripts" / "blotch_report.py"), init_globals={"snakemake": smk})
    for k in ("accuracy_length_png", "epochs_png", "volatility_png"):
        assert Path(out[k]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Path(out[k]).stat().st_size > 10_000
        assert Path(out[k.replace("png", "pdf")]).read_bytes()[:5] == b"%PDF-"
    claims = read_table(out.claims)
    assert len(claims) == 4 and set(claims["study"]) == {"blotch"}
    assert claims["verdict"].tolist() == ["supported"] * 4
    assert all("[smoke run]" in c for c in claims["claim"])
    summary = read_table(out.summary_csv)
    assert len(summary) == 56 and summary["split"].tolist()[:28] == ["val"] * 28   # validation first
    ood = read_table(out.ood_csv)
    assert len(ood) == 4 * 2 and set(ood["n_layers"]) == {2}                 # 4 variants × 2 temperatures
    cos = ood[(ood["variant"] == "cos") & (ood["temperature"] == 0.0)].iloc[0]
    assert cos["intensity"] == 0.0 and cos["correct_pct"] == pytest.approx(91.75)
    md = Path(out.ood_md).read_text()
    assert "SMOKE" in md and "T = 0.6" in md and "91.8 [" in md
    text = Path(out.summary_md).read_text()
    assert "Volatility" in text and text.count("\n| ") >= 56 + 8             # 56 cells, 4 variants × 2 depths
