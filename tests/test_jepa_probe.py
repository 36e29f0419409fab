"""JEPA SST-2 probe (headstart.jepa.probe): the logistic regression against scikit-learn and a numpy
Newton solution of the same penalised objective, padding invariance of the pooled features, the
bag-of-embeddings features, the seeded random encoder, and the probe's accuracy on separable and on
label-shuffled synthetic features (spec jepa.md §3.7, §5 criterion 3)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart.config import ConfigError
from headstart.jepa.model import JEPAConfig
from headstart.jepa.probe import (ProbeConfig, bag_features, fit_linear_probe, pooled_features, random_encoder,
                                  run_probe)
from headstart.models.transformer import Transformer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "pred_n_layer": 1, "pred_n_head": 2}


def _problem(n: int, d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes (a noisy linear rule) on features of unequal scales and non-zero means."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.3, 4.0, size=d) + rng.normal(size=d)
    y = (X @ rng.normal(size=(d, k)) + 2.0 * rng.gumbel(size=(n, k))).argmax(1)
    return X, y


def _standardise(X: np.ndarray) -> np.ndarray:
    return (X - X.mean(0)) / X.std(0)


def _newton_binary(Z: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Minimiser of mean log-loss + l2/2·‖w‖² (bias unpenalised) by Newton's method, in numpy."""
    n, d = Z.shape
    A = np.hstack([Z, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    pen = np.full(d + 1, l2)
    pen[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-A @ theta))
        grad = A.T @ (p - y) / n + pen * theta
        hess = (A * (p * (1 - p))[:, None]).T @ A / n + np.diag(pen)
        theta -= np.linalg.solve(hess, grad)
        if np.abs(grad).max() < 1e-13:
            break
    return theta[:-1], float(theta[-1])


def test_binary_probe_matches_newton_solution():
    X, y = _problem(300, 6, 2, seed=0)
    l2 = 1e-2
    probe = fit_linear_probe(X, y, l2=l2, max_iter=500)
    w, b = _newton_binary(_standardise(X), y, l2)
    assert probe.converged and probe.weight.shape == (1, 6)
    np.testing.assert_allclose(probe.weight[0].numpy(), w, atol=1e-5)
    assert float(probe.bias[0]) == pytest.approx(b, abs=1e-5)
    logit = _standardise(X) @ w + b
    np.testing.assert_array_equal(probe.predict(X), (logit > 0).astype(int))


@pytest.mark.parametrize("k", [2, 3])
def test_probe_matches_sklearn_logistic_regression(k):
    sklearn = pytest.importorskip("sklearn.linear_model", reason="scikit-learn not installed: the reference for "
                                  "the multinomial case (the binary case is checked against Newton's method)")
    X, y = _problem(400, 5, k, seed=k)
    y = np.array([10, 20, 30])[y]                 # labels need not be 0..K-1
    l2 = 3e-3
    probe = fit_linear_probe(X, y, l2=l2, max_iter=1000)
    Z = _standardise(X)
    ref = sklearn.LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-12, max_iter=10_000).fit(Z, y)
    np.testing.assert_allclose(probe.weight.numpy(), ref.coef_, atol=1e-4)
    np.testing.assert_allclose(probe.bias.numpy(), ref.intercept_, atol=1e-4)
    np.testing.assert_array_equal(probe.classes, ref.classes_)
    np.testing.assert_array_equal(probe.predict(X), ref.predict(Z))


def test_probe_is_deterministic_and_rejects_bad_input():
    X, y = _problem(200, 4, 2, seed=5)
    a, b = fit_linear_probe(X, y), fit_linear_probe(X, y)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    with pytest.raises(ValueError, match="two classes"):
        fit_linear_probe(X, np.zeros(200))
    with pytest.raises(ValueError, match="l2"):
        fit_linear_probe(X, y, l2=0.0)
    with pytest.raises(ConfigError, match="jepa.probe.l2"):
        ProbeConfig.from_dict({"l2": -1.0}, path="jepa.probe")
    with pytest.raises(ConfigError, match="jepa.probe"):
        ProbeConfig.from_dict({"lr": 1.0}, path="jepa.probe")


def test_separable_features_reach_full_accuracy_and_shuffled_labels_chance():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1200, 20))
    w = rng.normal(size=20)
    margin = X @ w
    keep = np.abs(margin) > 0.3                 # a gap between the classes: linearly separable
    X, y = X[keep], (margin[keep] > 0).astype(int)
    tr, te = slice(0, 500), slice(500, None)
    probe = fit_linear_probe(X[tr], y[tr], l2=1e-3)
    assert (probe.predict(X[te]) == y[te]).mean() > 0.97
    shuffled = rng.permutation(y[tr])
    acc = (fit_linear_probe(X[tr], shuffled, l2=1e-3).predict(X[te]) == y[te]).mean()
    assert abs(acc - 0.5) < 0.1


def _tiny_encoder(seed: int = 0, vocab: int = 30) -> Transformer:
    return random_encoder(TINY, vocab, seed)


def test_pooled_features_ignore_padding_and_batching():
    enc = _tiny_encoder()
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([3, 7, 1, 5, 7, 2])
    ids = torch.randint(0, 28, (6, 7), generator=g, dtype=torch.int32)
    pad = ids.clone()
    garbage = ids.clone()
    for i, n in enumerate(lengths):
        pad[i, n:] = 28
        garbage[i, n:] = torch.randint(0, 30, (7 - n,), generator=g)
    wide = torch.cat([garbage, torch.full((6, 4), 29, dtype=torch.int32)], dim=1)   # extra padding columns
    a = pooled_features(enc, pad, lengths, batch_size=4)
    b = pooled_features(enc, wide, lengths, batch_size=2)
    assert a.dtype == torch.float64 and a.shape == (6, 16)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    with torch.no_grad():                          # each sentence alone, no padding at all
        alone = torch.stack([enc(pad[i:i + 1, :n].long())[0].double().mean(0) for i, n in enumerate(lengths)])
    torch.testing.assert_close(a, alone, atol=1e-6, rtol=0)
    assert not enc.training


def test_bag_features_are_the_mean_of_embedding_rows():
    weight = torch.randn(12, 5)
    ids = torch.tensor([[1, 2, 3, 11], [4, 11, 11, 11]])
    out = bag_features(weight, ids, torch.tensor([3, 1]))
    torch.testing.assert_close(out[0], weight[[1, 2, 3]].double().mean(0))
    torch.testing.assert_close(out[1], weight[4].double())


def test_random_encoder_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b, c = _tiny_encoder(3), _tiny_encoder(3), _tiny_encoder(4)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert a.config == JEPAConfig.from_dict({**TINY, "vocab_size": 30}).core_config()
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def _sst2(n_train: int = 200, n_dev: int = 60, seed: int = 0, vocab: int = 30) -> dict:
    """An sst2.pt-format dict: the label says whether token 5 occurs in the sentence."""
    g = torch.Generator().manual_seed(seed)
    pad = vocab - 2

    def split(n: int) -> dict:
        lengths = torch.randint(2, 9, (n,), generator=g)
        ids = torch.randint(6, pad, (n, 8), generator=g, dtype=torch.int32)
        labels = torch.randint(0, 2, (n,), generator=g)
        for i in range(n):
            if labels[i]:
                ids[i, int(torch.randint(0, int(lengths[i]), (1,), generator=g))] = 5
            ids[i, lengths[i]:] = pad
        return {"ids": ids, "lengths": lengths.long(), "labels": labels.long()}

    return {"train": split(n_train), "dev": split(n_dev), "pad_id": pad, "vocab_size": vocab}


def test_run_probe_random_rows_and_determinism():
    sst2 = _sst2()
    kw = dict(model=TINY, probe={"l2": 1e-2, "batch_size": 64, "max_iter": 200}, device="cpu")
    df = run_probe("random", sst2, seed=1, **kw)
    assert list(df.columns) == ["idx", "label", "pred", "correct", "encoder", "seed"]
    assert len(df) == 60 and (df["encoder"] == "random").all() and (df["seed"] == 1).all()
    assert df["idx"].tolist() == list(range(60)) and df["label"].tolist() == sst2["dev"]["labels"].tolist()
    assert (df["correct"] == (df["pred"] == df["label"])).all()
    again = run_probe("random", sst2, seed=1, **kw)
    assert df.equals(again)
    with pytest.raises(ValueError, match="kind"):
        run_probe("bert", sst2, seed=1, **kw)
    with pytest.raises(ValueError, match="encoder file"):
        run_probe("bag", sst2, seed=1, **kw)


def test_run_probe_loads_an_encoder_file(tmp_path):
    pytest.importorskip("headstart.jepa.train", reason="headstart.jepa.train (load_encoder) has not landed yet")
    enc = _tiny_encoder(seed=2)
    path = tmp_path / "encoder.pt"
    torch.save({"config": enc.config.to_dict(), "state": enc.state_dict(),
                "meta": {"objective": "jepa", "variant": "main", "seed": 2, "steps": 0}}, path)
    sst2 = _sst2()
    probe = {"l2": 1e-2, "batch_size": 64, "max_iter": 200}
    loaded = run_probe("jepa", sst2, encoder_path=str(path), probe=probe, seed=2, device="cpu", name="jepa:main")
    fresh = run_probe("random", sst2, model=TINY, probe=probe, seed=2, device="cpu")
    assert (loaded["encoder"] == "jepa:main").all()
    assert loaded["pred"].equals(fresh["pred"])          # the same weights give the same probe
    bag = run_probe("bag", sst2, encoder_path=str(path), probe=probe, seed=2, device="cpu")
    assert bag["correct"].mean() > 0.75                  # token 5's embedding row marks the positive class
    bad = _sst2(vocab=40)
    with pytest.raises(ValueError, match="vocabulary"):
        run_probe("jepa", bad, encoder_path=str(path), probe=probe, seed=2, device="cpu")
