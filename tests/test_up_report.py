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


def test_final_bits_and_claims():
    pre = metrics({10: {**bits(7.0), **bits(2.0, name="dyck")}, 20: {**bits(5.0), **bits(7.99, name="dyck")}})
    zero = report.final_bits(pre).assign(source="lstm")
    assert set(zero["set"]) == {"wp", "dyck"} and (zero["step"] == 20).all()
    markov = pd.DataFrame([{"set": "wp", "kind": "in_context", "order": 1, "lam": 0.1, "val_bits": 4.9,
                            "test_bits": 4.81, "best": True}])
    runs = []
    for init, opt, final in (("up", "reload", 2.0), ("up", "reset", 2.52), ("scratch", "reset", 2.5)):
        runs.append(metrics({0: {**bits(final + 1), "time_s": 0.0}, 10: {**bits(final), "time_s": 1.0}},
                            source="lstm", init=init, opt=opt, frac=1.0))
    ft = report.finetune_table(pd.concat(runs, ignore_index=True))
    assert set(ft["set"]) == {"wp"} and len(ft) == 6
    cl = {c.claim: c for c in report.claims(zero, markov, ft)}
    chance = next(c for k, c in cl.items() if "better than chance" in k)
    assert chance.verdict == "inconclusive" and chance.value == 7.99          # dyck CI straddles 8
    markov_claim = next(c for k, c in cl.items() if "in-context Markov" in k)
    assert markov_claim.verdict == "not supported"                             # 5.0 > 4.81
    reload = next(c for k, c in cl.items() if "reload" in k)
    reset = next(c for k, c in cl.items() if "reset optimizer" in k)
    assert reload.verdict == "supported" and reset.verdict == "inconclusive"
    md = report.ood_markdown(ft)
    assert "2.000 [1.950, 2.050]" in md


def test_budget_table_times_and_claim():
    runs = []
    for pre, final in ((0, 3.0), (2, 2.5), (4, 2.9)):
        runs.append(metrics({40 - 10 * pre: {**bits(final), "time_s": 5.0}}, source="lstm", pre_units=pre,
                            total_units=6, unit_steps=10))
    cost = {"lstm": {"pre_s_per_step": 0.5, "batch_size": 4, "sample_s_per_row": 0.25}}
    bt = report.budget_table(pd.concat(runs, ignore_index=True), cost)
    assert bt["pre_units"].tolist() == [0, 2, 4]
    row = bt.set_index("pre_units").loc[2]
    assert row["time_s"] == 5.0 + 20 * 0.5 and row["time_with_sampling_s"] == 5.0 + 10 + 20 * 4 * 0.25
    (claim,) = report.budget_claims(bt)
    assert claim.verdict == "supported" and claim.value == -0.5 and "2/6" in claim.statistic


def test_ablation_claims():
    zero = pd.concat([report.final_bits(metrics({5: bits(b)})).assign(source=src)
                      for src, b in (("fixed", 6.0), ("sampled", 5.0))], ignore_index=True)
    ft = report.finetune_table(pd.concat([
        metrics({0: {**bits(b + 1), "time_s": 0.0}, 10: {**bits(b), "time_s": 1.0}},
                source=src, init="up", opt="reload", frac=1.0) for src, b in (("fixed", 3.0), ("sampled", 3.01))],
        ignore_index=True))
    zs, tuned = report.ablation_claims(zero, ft, {"temperature": ["fixed", "sampled"]})
    assert zs.verdict == "supported" and zs.value == -1.0
    assert tuned.verdict == "inconclusive" and tuned.value == pytest.approx(0.01)


def test_seeds_pair_arms_and_widen_cis():
    """Three seeds per arm: UP − scratch is paired by seed (its t interval sees the seed-to-seed spread
    of the *differences*, not of the arms), and seed means carry the t interval over seeds."""
    runs = []
    for seed, shift in ((0, 0.0), (1, 0.3), (2, -0.3)):       # seeds differ a lot, the difference does not
        for init, opt, final in (("up", "reload", 2.0), ("scratch", "reset", 2.1)):
            runs.append(metrics({10: {**bits(final + shift + 0.001 * seed * (init == "up"), half=0.001),
                                      "time_s": 1.0}}, source="lstm", init=init, opt=opt, frac=1.0, seed=seed))
    ft = report.finetune_table(pd.concat(runs, ignore_index=True))
    assert sorted(ft["seed"].unique()) == [0, 1, 2]
    (claim,) = report.claims(pd.DataFrame(columns=["source", "set", "bits", "lo", "hi"]),
                             pd.DataFrame(columns=["set", "kind", "test_bits", "best"]), ft)
    assert claim.n == 3 and claim.value == pytest.approx(-0.099)
    assert claim.verdict == "supported" and claim.ci_high < 0 and "seeds" in claim.rule
    # unpaired, the arms' spread (±0.3) would swamp the 0.1 difference
    mean = report.seed_means(ft).set_index("init")
    assert mean.loc["scratch", "n_seeds"] == 3 and mean.loc["scratch", "bits"] == pytest.approx(2.1)
    half = mean.loc["scratch", "hi"] - mean.loc["scratch", "bits"]
    assert half == pytest.approx(report.seed_half_width([2.1, 2.4, 1.8], 0.001))
    assert half > 0.5                                           # t(2) · 0.3/√3 ≈ 0.75
    assert report.seed_half_width([2.0], 0.05) == 0.05          # one seed: the evaluation CI alone


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
