"""UP report (headstart.up.report, headstart.up.cost): final bits per set, the fine-tuning table, the claim
verdicts, and the wall-time cost from the training metrics and the sampling cost records."""
import pandas as pd
import pytest

from headstart.up import report


def metrics(step_values: dict[int, dict[str, float]], **info) -> pd.DataFrame:
    return pd.DataFrame([{"step": s, "metric": m, "value": v, **info}
                         for s, d in step_values.items() for m, v in d.items()])


def bits(b, half=0.05, name="wp"):
    return {f"{name}_bits": b, f"{name}_bits_lo": b - half, f"{name}_bits_hi": b + half}


def runs_table(finals: dict, sets=("wp",), half=0.001, source="lstm"):
    """A fine-tuning table from {(init, opt, frac, seed): final bits} (or {…: {set: bits}})."""
    out = []
    for (init, opt, frac, seed), value in finals.items():
        per_set = value if isinstance(value, dict) else {name: value for name in sets}
        vals = {k: v for name, b in per_set.items() for k, v in bits(b, half=half, name=name).items()}
        out.append(metrics({10: {**vals, "time_s": 1.0}}, source=source, init=init, opt=opt, frac=frac, seed=seed))
    return report.finetune_table(pd.concat(out, ignore_index=True))


def by_name(claims, *words):
    (hit,) = [c for c in claims if all(w in c.claim for w in words)]
    return hit


def test_p_value_agrees_with_the_interval():
    """p < 0.025 (one-sided) exactly when the 95% CI excludes the null, for 1..5 replicates."""
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 6))
        mean, half = float(rng.normal()), float(rng.uniform(0.01, 2))
        p = report._p_value(mean, half, n, "less")
        assert (p < 0.025) == (mean + half < 0)
        assert report._p_value(mean, half, n, "greater") == pytest.approx(1 - p)
        assert report._p_value(mean, half, n, "two-sided") == pytest.approx(2 * min(p, 1 - p))


def test_zero_shot_claims_per_set_and_replicate():
    pre = {s: metrics({20: {**bits(5.0 + 0.1 * s), **bits(7.99, name="dyck")}}) for s in (0, 1, 2)}
    zero = pd.concat([report.final_bits(df).assign(source="lstm", seed=s) for s, df in pre.items()]
                     + [report.final_bits(metrics({20: {**bits(7.5), **bits(6.0, name="dyck")}})).assign(source="uniform", seed=0)],
                     ignore_index=True)
    cl = report.zero_shot_claims(zero, main=["lstm"])
    wp, dyck = by_name(cl, "lstm", "on wp"), by_name(cl, "lstm", "on dyck")
    assert wp.n == 3 and wp.value == pytest.approx(5.1) and wp.verdict == "supported" and wp.role == "confirmatory"
    assert dyck.verdict == "inconclusive" and dyck.value == pytest.approx(7.99)       # CI straddles 8
    other = by_name(cl, "uniform")
    assert other.role == "exploratory" and "worst set (wp" in other.statistic and other.value == 7.5
    means = report.zero_means(zero).set_index(["source", "set"])
    assert means.loc[("lstm", "wp"), "n_seeds"] == 3
    assert means.loc[("lstm", "wp"), "hi"] - 5.1 == pytest.approx(report.seed_half_width([5.0, 5.1, 5.2], 0.05))


def test_finetune_claims_pair_by_replicate():
    """UP − scratch is paired by replicate (seed-to-seed spread of ±0.3 cancels), per fraction; reload vs
    reset is two-sided; each OOD set gets its claim; the OOD-gain and slope statistics are exact."""
    finals = {}
    for seed, shift in ((0, 0.0), (1, 0.3), (2, -0.3)):
        for frac, gain in ((1.0, 0.1), (0.1, 0.3), (0.01, 0.5)):       # UP's advantage grows as data shrink
            finals[("scratch", "reset", frac, seed)] = {"wp": 2.5 + shift, "tiny": 3.0 + shift}
            finals[("up", "reload", frac, seed)] = {"wp": 2.5 + shift - gain, "tiny": 3.0 + shift - 2 * gain}
            finals[("up", "reset", frac, seed)] = {"wp": 2.5 + shift - gain + 0.02 * (seed - 1), "tiny": 3.0 + shift}
    ft = runs_table(finals)
    cl = report.finetune_claims(ft, ood_sets=["tiny"])
    top = by_name(cl, "reload optimizer) beats scratch", "fraction 1")
    assert top.n == 3 and top.value == pytest.approx(-0.1) and top.verdict == "supported" and top.role == "confirmatory"
    assert by_name(cl, "reload optimizer) beats scratch", "fraction 0.1").role == "exploratory"
    both = by_name(cl, "keeping Adam's moments", "fraction 1")
    assert both.value == pytest.approx(0.0) and both.verdict == "inconclusive" and both.role == "exploratory"
    ood = by_name(cl, "out of distribution on tiny")
    assert ood.value == pytest.approx(-0.2) and ood.verdict == "supported"
    gain = by_name(cl, "larger out of distribution")
    assert gain.value == pytest.approx(0.1) and gain.verdict == "supported"             # 0.2 OOD − 0.1 on enwik8
    slope = by_name(cl, "reload optimizer) advantage over scratch grows")
    assert slope.value == pytest.approx(0.2) and slope.verdict == "supported" and slope.n == 3   # +0.2 bits per decade


def test_budget_and_walltime_claims():
    runs = []
    for seed in (0, 1):
        for pre, final in ((0, 3.0), (2, 2.5), (4, 2.9)):
            runs.append(metrics({40 - 10 * pre: {**bits(final + 0.1 * seed, half=0.01), "time_s": 5.0}}, source="lstm",
                                pre_units=pre, total_units=6, unit_steps=10, seed=seed))
    cost = {("lstm", 0): {"pre_s_per_step": 0.5, "batch_size": 4, "sample_s_per_row": 0.25}}
    bt = report.budget_table(pd.concat(runs, ignore_index=True), cost)
    assert len(bt) == 6
    row = bt.set_index(["pre_units", "seed"]).loc[(2, 0)]
    assert row["time_s"] == 5.0 + 20 * 0.5 and row["time_with_sampling_s"] == 5.0 + 10 + 20 * 4 * 0.25
    assert bt.set_index(["pre_units", "seed"]).loc[(2, 1), "time_s"] == 5.0            # no cost known for seed 1
    two, four = report.budget_claims(bt)
    assert "2/6" in two.statistic and two.value == pytest.approx(-0.5) and two.n == 2 and two.verdict == "supported"
    assert "4/6" in four.statistic and four.value == pytest.approx(-0.1)
    means = report.budget_means(bt)
    assert means.set_index("pre_units").loc[2, "bits"] == pytest.approx(2.55)
    ft = runs_table({("up", "reload", 1.0, s): 2.0 + 0.1 * s for s in (0, 1)})
    wt_runs = pd.concat([metrics({50: bits(2.3 + 0.1 * s, half=0.001)}, source="lstm", seed=s, walltime_s=12.0,
                                 walltime_capped=False, devices="cpu") for s in (0, 1)], ignore_index=True)
    wt = report.walltime_table(wt_runs)
    assert wt["steps"].tolist() == [50, 50]
    (claim,) = report.walltime_claims(ft, wt)
    assert claim.value == pytest.approx(-0.3) and claim.verdict == "supported" and "cpu" in claim.claim


def test_ablation_claims():
    zero = pd.concat([report.final_bits(metrics({5: bits(b)})).assign(source=src, seed=0)
                      for src, b in (("fixed", 6.0), ("sampled", 5.0))], ignore_index=True)
    ft = pd.concat([runs_table({("up", "reload", 1.0, 0): b}, half=0.05, source=src)
                    for src, b in (("fixed", 3.0), ("sampled", 3.01))], ignore_index=True)
    zs, tuned = report.ablation_claims(zero, ft, {"temperature": ["fixed", "sampled"]})
    assert zs.verdict == "supported" and zs.value == -1.0 and zs.role == "exploratory"
    assert tuned.verdict == "inconclusive" and tuned.value == pytest.approx(0.01)


def test_holm_decides_the_confirmatory_family():
    """Holm over the four confirmatory p-values (0.01, 0.04, 0.03, 0.9) adjusts them to (0.04, 0.09, 0.09,
    0.9): only the first stays supported; exploratory claims and claims without a p-value keep their own
    verdict."""
    import math

    from headstart.claims import Claim, apply_holm

    mk = lambda name, p, role="confirmatory", v="supported": Claim("up", name, "d", -1.0, -2.0, -0.1, 3, v, "r",
                                                                   p_value=p, role=role)
    out = apply_holm([mk("a", 0.01), mk("b", 0.04), mk("c", 0.03), mk("x", 0.001, "exploratory"),
                      mk("bound", math.nan), mk("d", 0.9, v="not supported")])
    got = {c.claim: c for c in out}
    assert got["a"].p_holm == pytest.approx(0.04) and got["a"].verdict == "supported"     # 4 in the family: 0.01·4
    assert got["b"].verdict == "inconclusive" and got["c"].verdict == "inconclusive"
    assert got["x"].verdict == "supported" and math.isnan(got["x"].p_holm)
    assert got["bound"].verdict == "supported" and got["d"].verdict == "not supported"
    assert "over the 4 confirmatory claims" in got["a"].rule and "p_Holm = 0.04" in got["a"].rule


def test_wall_times_come_from_metrics_and_cost_records(tmp_path):
    """Pre-training time: ``time_s`` at the run's last logged step; sampling time and rows: the shards'
    JSON cost records summed per source; the budget and curve costs are their arithmetic."""
    import json

    from headstart.up import cost

    pre = metrics({10: {"time_s": 4.0, "train_loss": 3.0}, 20: {"time_s": 9.0, **bits(5.0)}}, source="lstm")
    assert cost.pretrain_wall(pre) == (9.0, 20)
    assert cost.pretrain_wall(metrics({0: bits(5.0)})) == (0.0, 0)            # zero steps: no time_s rows
    paths = []
    for i, (src, wall, rows) in enumerate((("lstm", 3.0, 100), ("lstm", 5.0, 100), ("ndfa", 1.0, 50))):
        paths.append(tmp_path / f"shard{i}.json")
        paths[-1].write_text(json.dumps({"source": src, "shard": i, "wall_s": wall, "rows": rows}))
    sampling = cost.sampling_totals(cost.read_cost_records(paths))
    assert sampling == {"lstm": {"wall_s": 8.0, "rows": 200.0}, "ndfa": {"wall_s": 1.0, "rows": 50.0}}
    offsets = cost.curve_offsets({"lstm": 9.0, "pointwise": 2.0}, sampling)
    assert offsets == {"lstm": (9.0, 8.0), "pointwise": (2.0, 0.0)}
    costs = cost.budget_costs({"lstm": (9.0, 20), "pointwise": (2.0, 0)}, sampling, batch_size=4)
    assert costs["lstm"] == {"pre_s_per_step": 0.45, "batch_size": 4, "sample_s_per_row": 0.04}
    assert costs["pointwise"] == {"pre_s_per_step": 0.0, "batch_size": 4, "sample_s_per_row": 0.0}
    # 2 units of 10 steps: 20 pre-training steps (0.45 s each) consuming 20 × 4 rows (0.04 s each)
    without, with_sampling = cost.split_wall_times(2, 10, 5.0, costs["lstm"])
    assert without == pytest.approx(5.0 + 9.0) and with_sampling == pytest.approx(5.0 + 9.0 + 3.2)
    assert cost.split_wall_times(0, 10, 5.0, costs["lstm"]) == (5.0, 5.0)
    assert cost.split_wall_times(2, 10, 5.0, {}) == (5.0, 5.0)                 # no cost known: fine-tuning only
    assert cost.sample_s_per_row(1.0, 0) == 0.0


def test_cost_records_that_do_not_fit_name_the_file(tmp_path):
    from headstart.up import cost

    with pytest.raises(FileNotFoundError, match="shard0.json"):
        cost.read_cost_records([tmp_path / "shard0.json"])
    bad = tmp_path / "shard1.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="shard1.json.*not JSON"):
        cost.read_cost_records([bad])
    bad.write_text('{"source": "lstm", "rows": 3}')
    with pytest.raises(ValueError, match=r"shard1.json.*\['wall_s'\]"):
        cost.read_cost_records([bad])


def test_temperature_sweep_picks_the_lowest_synthetic_bits_and_flags_the_config():
    runs = {t: report.final_bits(metrics({9: {**bits(b1, name="dyck"), **bits(b2, name="toy"), **bits(1.0)}}))
            for t, b1, b2 in ((0.25, 3.0, 5.0), (0.5, 2.0, 4.0), (1.0, 2.5, 4.5))}
    table = report.temperature_sweep_table(runs, ["dyck", "toy"])
    assert table.loc[table["best"], "temperature"].tolist() == [0.5]
    assert table.set_index("temperature").loc[0.5, "synthetic_bits"] == pytest.approx(3.0)
    assert table["wp_bits"].tolist() == [1.0, 1.0, 1.0] and (table["n_sets"] == 2).all()   # wp is not a criterion
    assert "is the sweep's best" in report.temperature_sweep_markdown(table, "tf", 0.5)
    assert "not the sweep's best (0.5)" in report.temperature_sweep_markdown(table, "tf", 0.25)
