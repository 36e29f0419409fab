"""Growth protocol (headstart.growth.protocol): the batched ensemble equals separate runs, pairing,
the equal-FLOPs baseline, checkpoint/resume, failures, and learning on the real course data."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from headstart.data import lettercount
from headstart.growth import protocol
from headstart.growth.model import LetterCounter, count_flops_per_example

D = 16
FAST = dict(epochs_small=1, epochs_large=1, batch_size=32, lr=3e-3, msg_ramp_steps=5)
KEY = ["arm", "replicate", "epoch", "phase", "split"]


def data(n: int, seed: int):
    x = torch.randint(0, 27, (n, 20), generator=torch.Generator().manual_seed(seed))
    return x, lettercount.labels(x)


TRAIN, DEV, VAL = data(200, 1), data(60, 2), data(40, 3)


def run(track, operator, opt_mode="reset", replicates=(0, 1, 2), chunk=None, **kw):
    settings = {**FAST, **({"dtype": "float64"} if track == "corrected" else {}), **kw.pop("settings", {})}
    return protocol.run(track, D, operator, opt_mode, list(replicates), TRAIN, DEV,
                        val=VAL if track == "corrected" else None, settings=settings, device="cpu", chunk=chunk, **kw)


def same(a: pd.Series, b: pd.Series) -> bool:
    """Equal, NaN matching NaN (the accuracy of the function-preservation rows is NaN)."""
    return bool(((a == b) | (a.isna() & b.isna())).all())


def merged(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    m = a.merge(b, on=KEY, suffixes=("_a", "_b"), validate="one_to_one")
    assert len(m) == len(a) == len(b)
    return m


@pytest.mark.parametrize("track,operator,opt_mode", [
    ("faithful", "scratch", "reset"),
    ("faithful", "bus_onehot", "reset"),
    ("corrected", "scratch", "reset"),
    ("corrected", "copy_zero_out", "grow"),
    ("corrected", "msg_mask", "grow"),
    ("corrected", "identity_layer", "reset"),
])
def test_ensemble_of_three_equals_three_separate_runs(track, operator, opt_mode):
    ens = run(track, operator, opt_mode)
    alone = pd.concat([run(track, operator, opt_mode, replicates=[r]) for r in (0, 1, 2)], ignore_index=True)
    m = merged(ens, alone)
    assert (m["accuracy_a"] - m["accuracy_b"]).abs().max() <= 1e-6
    assert (m["flops_a"] == m["flops_b"]).all()
    assert ens["accuracy"].nunique() > 3   # the replicates really differ
    chunked = run(track, operator, opt_mode, chunk=2)   # passes of 2 + 1 members
    m = merged(ens, chunked)
    assert (m["accuracy_a"] - m["accuracy_b"]).abs().max() <= 1e-6


def test_rows_schema_and_arms():
    df = run("corrected", "scratch")
    assert list(df.columns) == protocol.COLUMNS
    assert set(df["arm"]) == {"scratch", "scratch_eqflops"} and set(df["split"]) == {"dev", "val"}
    full = df[df["arm"] == "scratch"]
    assert sorted(full["epoch"].unique()) == [1.0, 2.0] and set(full["phase"]) == {"full"}
    assert df["accuracy"].between(0, 1).all()
    assert df["max_abs_dlogp"].isna().all()                 # no growth, no function-preservation rows
    t = run("faithful", "bus_onehot")
    assert set(t["arm"]) == {"transfer"} and set(t["split"]) == {"dev"}
    trained = t[t["phase"] != "grown"]
    assert trained.groupby("epoch")["phase"].first().to_dict() == {1.0: "small", 2.0: "large"}
    grown = t[t["phase"] == "grown"]
    assert sorted(grown["replicate"]) == [0, 1, 2] and (grown["epoch"] == 1.0).all()
    assert grown["accuracy"].isna().all() and trained["max_abs_dlogp"].isna().all()


@pytest.mark.parametrize("track,operator,preserving", [
    ("corrected", "hypercloning", True), ("corrected", "identity_layer", True), ("faithful", "copy_zero_out", True),
    ("corrected", "bus_onehot", False), ("corrected", "gstack", False),
])
def test_function_change_is_recorded_at_growth(track, operator, preserving):
    """The grown rows hold max |Δ log p| of the trained small model's growth on the dev set: float64
    rounding for the FP operators (corrected track trains in float32 here), O(1) for the others."""
    settings = {"dtype": "float32"} if track == "corrected" else {}
    gap = run(track, operator, settings=settings)
    gap = gap.loc[gap["phase"] == "grown", "max_abs_dlogp"]
    assert len(gap) == 3
    if preserving:
        assert gap.max() < 1e-12
    else:
        assert gap.min() > 1e-3


def test_dev_novel_leaves_out_the_strings_that_occur_in_train():
    overlap = torch.zeros(len(DEV[0]), dtype=torch.bool)
    overlap[:10] = True
    dev = (torch.cat([TRAIN[0][:10], DEV[0][10:]]), torch.cat([TRAIN[1][:10], DEV[1][10:]]))
    assert torch.equal(protocol.dev_overlap(TRAIN[0], dev[0]), overlap)
    df = protocol.run("faithful", D, "scratch", "reset", [0, 1], TRAIN, dev, settings=FAST, device="cpu",
                      dev_overlap=overlap)
    assert set(df["split"]) == {"dev", "dev_novel"}
    # recompute from the per-string counts of a model: dev_novel is the accuracy on the last 50 strings
    s = protocol.Settings.for_track("corrected", FAST)
    r = protocol._Run("corrected", D, "scratch", "reset", [0, 1], TRAIN, dev, None, s, torch.device("cpu"), None,
                      overlap=overlap)
    m = r.new_model(r.big_cfg, "full")
    r.record(m, "scratch", 0, "full")
    rows = pd.DataFrame(r.rows)
    per = protocol.correct_per_example(m, *dev, dropout=False)
    want = (per[:, 10:].sum(1) / (50 * 20)).tolist()
    assert rows[rows["split"] == "dev_novel"]["accuracy"].tolist() == pytest.approx(want, abs=1e-12)
    assert rows[rows["split"] == "dev"]["accuracy"].tolist() == pytest.approx(
        protocol.evaluate(m, *dev, dropout=False).tolist(), abs=1e-12)
    with pytest.raises(ValueError, match="dev_overlap"):
        protocol.run("faithful", D, "scratch", "reset", [0], TRAIN, dev, settings=FAST, device="cpu",
                     dev_overlap=overlap[:5])


def test_flops_and_equal_flops_baseline():
    s = protocol.Settings.for_track("corrected", {**FAST, "dtype": "float64"})
    small, big = protocol.model_configs("corrected", D, "bus_onehot", s)
    assert (small.d_model, small.d_internal, big.d_model, big.d_internal) == (D // 2, D // 4, D, D // 2)
    n = len(TRAIN[0])
    target = protocol.transfer_flops("corrected", D, "scratch", s, n)
    t = run("corrected", "bus_onehot")
    assert t["flops"].max() == pytest.approx(target)
    sc = run("corrected", "scratch")
    eq = sc[sc["arm"] == "scratch_eqflops"]
    step = s.batch_size * count_flops_per_example(big)      # flops of one full batch
    assert (eq["flops"] >= target).all() and (eq["flops"] < target + step).all()
    assert (eq["flops"] < sc["flops"].max()).all()          # transfer spends less than 10 scratch epochs
    # depth baseline: matched to the 1-layer small model + the 2-layer large phase
    deep = run("corrected", "scratch_deep")
    small_d, big_d = protocol.model_configs("corrected", D, "identity_layer", s)
    assert (small_d.n_layers, big_d.n_layers, big_d.d_model) == (1, 2, D)
    eqd = deep[deep["arm"] == "scratch_eqflops"]
    assert (eqd["flops"] >= protocol.transfer_flops("corrected", D, "scratch_deep", s, n)).all()


def test_pairing_seeds_and_data_order():
    a = protocol.replicate_seeds(0, [0, 1, 2])
    assert a == protocol.replicate_seeds(0, [0, 1, 2])
    assert a["full"] == [protocol.replicate_seeds(0, [r])["full"][0] for r in (0, 1, 2)]
    flat = [s for role in a.values() for s in role]
    assert len(set(flat)) == len(flat)                       # roles and replicates draw apart
    assert protocol.replicate_seeds(1, [0])["full"] != a["full"][:1]
    # the scratch arm's model is exactly the fresh full-size init of the same replicate
    s = protocol.Settings.for_track("corrected", {**FAST, "dtype": "float64"})
    r = protocol._Run("corrected", D, "scratch", "reset", [0, 1], TRAIN, DEV, None, s, torch.device("cpu"), None)
    t = protocol._Run("corrected", D, "copy_random", "reset", [0, 1], TRAIN, DEV, None, s, torch.device("cpu"), None)
    assert torch.equal(r.epoch_order(3), t.epoch_order(3))   # same data order in every global epoch
    assert not torch.equal(r.epoch_order(3), r.epoch_order(4))
    assert not torch.equal(r.epoch_order(3)[0], r.epoch_order(3)[1])
    m = r.new_model(r.big_cfg, "full")
    ref = LetterCounter(r.big_cfg, protocol.replicate_seeds(0, [0, 1])["full"])
    assert all(torch.equal(p, q) for p, q in zip(m.state_dict().values(), ref.state_dict().values()))


def test_faithful_evaluation_keeps_dropout_on_without_touching_training():
    s = protocol.Settings.for_track("faithful", FAST)
    r = protocol._Run("faithful", D, "scratch", "reset", [0, 1], TRAIN, DEV, None, s, torch.device("cpu"), None)
    m = r.new_model(r.big_cfg, "full")
    before = [g.get_state() for g in m.dropout_gens]
    r.record(m, "scratch", 0, "full")
    r.record(m, "scratch", 0, "full")
    a, b = r.rows[:2], r.rows[2:]
    assert [x["accuracy"] for x in a] != [x["accuracy"] for x in b]     # stochastic: dropout is on
    assert all(torch.equal(x, g.get_state()) for x, g in zip(before, m.dropout_gens))
    # the corrected track evaluates deterministically in eval mode
    c = protocol._Run("corrected", D, "scratch", "reset", [0, 1], TRAIN, DEV, None,
                      protocol.Settings.for_track("corrected", FAST), torch.device("cpu"), None)
    mc = c.new_model(c.big_cfg, "full")
    c.record(mc, "scratch", 0, "full")
    c.record(mc, "scratch", 0, "full")
    assert [x["accuracy"] for x in c.rows[:2]] == [x["accuracy"] for x in c.rows[2:]]


class Stop(Exception):
    pass


@pytest.mark.parametrize("stop_after", [1, 2, 3])
@pytest.mark.parametrize("operator,opt_mode", [("msg_mask", "grow"), ("scratch", "reset")])
def test_checkpoint_resume_gives_identical_rows(tmp_path, monkeypatch, stop_after, operator, opt_mode):
    settings = {"epochs_small": 2, "epochs_large": 2}
    full = run("corrected", operator, opt_mode, settings=settings)
    ck = tmp_path / "run.ckpt"
    calls = {"n": 0}
    stop_after += 4 * (stop_after == 3)   # also stop inside the second ensemble pass
    original = protocol._Run.train_epoch

    def dying(self, *a, **k):
        if calls["n"] == stop_after:
            raise Stop
        calls["n"] += 1
        return original(self, *a, **k)

    monkeypatch.setattr(protocol._Run, "train_epoch", dying)
    with pytest.raises(Stop):
        run("corrected", operator, opt_mode, settings=settings, checkpoint=str(ck), chunk=2)
    assert protocol.chunk_checkpoints(ck)
    monkeypatch.setattr(protocol._Run, "train_epoch", original)
    resumed = run("corrected", operator, opt_mode, settings=settings, checkpoint=str(ck), chunk=2)
    m = merged(full, resumed)
    assert same(m["accuracy_a"], m["accuracy_b"]) and (m["flops_a"] == m["flops_b"]).all()
    assert same(m["max_abs_dlogp_a"], m["max_abs_dlogp_b"])
    assert [p.name for p in protocol.chunk_checkpoints(ck)] == ["run.ckpt.0", "run.ckpt.1"]
    protocol.remove_checkpoints(ck)
    assert not list(tmp_path.iterdir())


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    ck = tmp_path / "run.ckpt"
    run("corrected", "scratch", checkpoint=str(ck))
    with pytest.raises(Exception, match="different configuration.*lr"):
        run("corrected", "scratch", checkpoint=str(ck), settings={"lr": 1e-3})


def test_non_finite_loss_stops_the_run(monkeypatch):
    def nan_forward(self, x):
        E, B, T = x.shape
        return torch.full((E, B, T, 3), float("nan"), dtype=self.cfg.torch_dtype, requires_grad=True)

    monkeypatch.setattr(LetterCounter, "forward", nan_forward)
    with pytest.raises(FloatingPointError, match="non-finite loss.*replicates \\[0, 1, 2\\]"):
        run("faithful", "scratch")


@pytest.mark.parametrize("kw,match", [
    (dict(settings={"epochs": 3}), "unknown growth setting 'epochs'"),
    (dict(settings={"dtype": "float32"}, track="faithful"), "faithful track is float64"),
    (dict(settings={"batch_size": 0}), "batch_size"),
    (dict(operator="bogus"), "unknown growth operator 'bogus'"),
    (dict(opt_mode="grow"), "no optimizer state to grow"),
    (dict(track="other"), "unknown growth track"),
])
def test_bad_arguments(kw, match):
    track = kw.pop("track", "corrected")
    with pytest.raises(ValueError, match=match):
        protocol.run(track, D, kw.pop("operator", "scratch"), kw.pop("opt_mode", "reset"), [0], TRAIN, DEV,
                     settings=kw.pop("settings", {}), device="cpu")
    with pytest.raises(ValueError, match="ensemble chunk"):
        protocol.run("corrected", D, "scratch", "reset", [0], TRAIN, DEV, device="cpu", chunk=-1)
    with pytest.raises(ValueError, match="multiple of 4"):
        protocol.run("corrected", 18, "scratch", "reset", [0], TRAIN, DEV, device="cpu")


def test_learns_letter_counting_on_the_course_data(shared_data):
    """Eval-mode accuracy after 2 epochs at d=64 beats the dev set's majority-class rate by 5 points."""
    folder = shared_data / "lettercounting"
    train = lettercount.load(folder / "lettercounting-train.txt")
    dev = lettercount.load(folder / "lettercounting-dev.txt")
    majority = max(float((dev[1] == c).float().mean()) for c in range(3))
    df = protocol.run("corrected", 64, "scratch", "reset", [0, 1], train, dev,
                      settings={"epochs_small": 1, "epochs_large": 1, "lr": 1e-3}, device="cpu")
    final = df[(df["arm"] == "scratch") & (df["epoch"] == 2)]["accuracy"]
    assert (final > majority + 0.05).all(), (final.tolist(), majority)


def test_split_validation_holds_out_the_last_lines():
    x, y = data(10, 4)
    (tx, ty), (vx, vy) = protocol.split_validation(x, y, 3, "train.u8")
    assert torch.equal(tx, x[:7]) and torch.equal(ty, y[:7]) and torch.equal(vx, x[7:]) and torch.equal(vy, y[7:])
    (tx, ty), val = protocol.split_validation(x, y, 0, "train.u8")          # the faithful track: no validation
    assert val is None and torch.equal(tx, x) and torch.equal(ty, y)
    with pytest.raises(ValueError, match=r"growth\.corrected\.val_lines = 10 leaves no training lines in .*train\.u8"):
        protocol.split_validation(x, y, 10, "data/lettercount/train.u8")
    with pytest.raises(ValueError, match=r"growth\.corrected\.val_lines = -1 .*train\.u8"):
        protocol.split_validation(x, y, -1, "train.u8")
