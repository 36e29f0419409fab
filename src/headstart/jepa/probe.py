"""SST-2 linear probe of frozen encoders: mean-pooled features and an L2 logistic regression.

Spec jepa.md §3.7 (the original's finetuning-branch probe: frozen context encoder, masked
mean-pool, linear classifier) and §5 criterion 3 (beat a random encoder of the same shape and a
bag-of-embeddings baseline). The original trained ``nn.Linear(384, 2)`` with AdamW for 100 epochs;
here the same linear model is fitted to convergence as a convex problem instead (standardised
features, L2 penalty, full-batch L-BFGS in float64 from zero weights), so a probe's accuracy depends
only on the features and the penalty, not on an optimiser schedule or a seed.

Encoders (``run_probe`` kinds): 'jepa' and 'mlm' load a pre-trained encoder
(:func:`headstart.jepa.train.load_encoder`); 'random' is a freshly initialised encoder of the main
JEPA shape seeded by the replicate seed; 'bag' is the masked mean of the input-embedding rows of the
main JEPA encoder (no transformer layers).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from headstart.config import Config, knob
from headstart.jepa.model import JEPAConfig
from headstart.jepa.monitors import masked_mean_pool
from headstart.models.transformer import Transformer
from headstart.train.device import pick_device

__all__ = ["ProbeConfig", "LinearProbe", "pooled_features", "bag_features", "fit_linear_probe", "random_encoder",
           "run_probe", "accuracy", "KINDS"]

log = logging.getLogger("headstart")

ProbeKind = Literal["jepa", "mlm", "random", "bag"]
KINDS = ("jepa", "mlm", "random", "bag")


@dataclass
class ProbeConfig(Config):
    """The ``jepa.probe`` config: L2 strength of the logistic regression (per-example mean loss
    + ``l2/2·‖W‖²``; > 0 so that the solution is unique even for separable features), sentences per
    encoder batch, and the L-BFGS iteration cap."""
    l2: float = knob(1e-3, gt=0)
    batch_size: int = knob(256, ge=1)
    max_iter: int = knob(500, ge=1)


def _rows(ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids`` (N, T) and ``lengths`` (N,) as long tensors, checked against each other."""
    ids, lengths = torch.as_tensor(ids).long(), torch.as_tensor(lengths).long()
    if ids.dim() != 2 or lengths.shape != ids.shape[:1]:
        raise ValueError(f"expected ids (N, T) and lengths (N,), got {tuple(ids.shape)} and {tuple(lengths.shape)}")
    if len(lengths) and (int(lengths.min()) < 0 or int(lengths.max()) > ids.shape[1]):
        raise ValueError(f"lengths must lie in [0, {ids.shape[1]}], got [{int(lengths.min())}, {int(lengths.max())}]")
    return ids, lengths


def _batches(lengths: torch.Tensor, batch_size: int):
    """Row indices in batches of similar length (sorted by length, stable), so that little padding
    is computed; each batch with its longest length."""
    order = torch.argsort(lengths, stable=True)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield idx, max(1, int(lengths[idx].max()))


@torch.no_grad()
def pooled_features(encoder: Transformer, ids: torch.Tensor, lengths: torch.Tensor, batch_size: int = 256,
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """Masked mean-pool of the frozen ``encoder``'s final outputs: float64 (N, D) on the CPU.

    Rows are right-padded token ids (N, T) with their ``lengths``; each batch is cut to its longest
    row and run with the key-padding mask, so padding neither attends nor is pooled (the features
    do not depend on the padding or on which rows share a batch, up to float rounding). The encoder
    runs in eval mode (no dropout) in its own dtype; its train/eval mode is restored afterwards."""
    ids, lengths = _rows(ids, lengths)
    device = torch.device(device)
    was_training = encoder.training
    encoder.eval()
    out = torch.zeros(len(ids), encoder.config.n_embd, dtype=torch.float64)
    try:
        for idx, tb in _batches(lengths, batch_size):
            x = ids[idx, :tb].to(device)
            mask = torch.arange(tb, device=device)[None, :] < lengths[idx].to(device)[:, None]
            h = encoder(x, attention_mask=mask)
            out[idx] = masked_mean_pool(h.to(torch.float64), mask).cpu()
    finally:
        encoder.train(was_training)
    return out


@torch.no_grad()
def bag_features(embedding_weight: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor,
                 batch_size: int = 512) -> torch.Tensor:
    """Bag-of-embeddings features: the masked mean of the rows of ``embedding_weight`` (V, D) over
    each sentence's valid tokens, float64 (N, D) on the CPU (no transformer layers)."""
    ids, lengths = _rows(ids, lengths)
    w = embedding_weight.detach().to("cpu", torch.float64)
    if len(ids) and int(ids.max()) >= w.shape[0]:
        raise ValueError(f"token id {int(ids.max())} outside the embedding table of {w.shape[0]} rows")
    out = torch.zeros(len(ids), w.shape[1], dtype=torch.float64)
    for idx, tb in _batches(lengths, batch_size):
        mask = torch.arange(tb)[None, :] < lengths[idx][:, None]
        out[idx] = masked_mean_pool(w[ids[idx, :tb]], mask)
    return out


@dataclass(frozen=True)
class LinearProbe:
    """A fitted logistic-regression probe. ``weight`` (K', D) and ``bias`` (K',) act on standardised
    features ``(x − mean)/std``; K' = 1 for two classes (the logit of ``classes[1]``), else K'
    = K (softmax). ``classes``: the sorted label values. ``converged``: L-BFGS stopped on its
    gradient/change tolerances before ``max_iter``; ``n_iter``: its iterations."""
    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    classes: np.ndarray
    n_iter: int
    converged: bool

    def decision_function(self, X) -> torch.Tensor:
        """Logits (N, K') of the features ``X`` (N, D)."""
        z = (torch.as_tensor(X, dtype=torch.float64) - self.mean) / self.std
        return z @ self.weight.T + self.bias

    def predict(self, X) -> np.ndarray:
        """Predicted labels (values of ``classes``) of the features ``X`` (N, D)."""
        logits = self.decision_function(X)
        k = (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(dim=1)
        return self.classes[k.numpy()]


def _objective(W: torch.Tensor, b: torch.Tensor, Z: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    """Mean log-loss + ``l2/2·‖W‖²`` (bias not penalised): binary (one logit) or multinomial."""
    logits = Z @ W.T + b
    if W.shape[0] == 1:
        loss = F.binary_cross_entropy_with_logits(logits[:, 0], y.to(torch.float64))
    else:
        loss = F.cross_entropy(logits, y)
    return loss + 0.5 * l2 * (W * W).sum()


def fit_linear_probe(X_train, y_train, l2: float = 1e-3, max_iter: int = 500) -> LinearProbe:
    """Fit an L2-penalised logistic regression to ``X_train`` (N, D) and labels ``y_train`` (N,).

    Features are standardised with the training mean and (population) std (constant columns: std 1).
    The objective is ``(1/N) Σ_i log-loss_i + (l2/2)·‖W‖²`` with an unpenalised intercept —
    scikit-learn's ``LogisticRegression(C=1/(l2·N))`` on the same standardised features (binary:
    one weight vector; more classes: multinomial with K rows). It is minimised in float64 on the
    CPU by full-batch L-BFGS (strong-Wolfe line search) from zero weights: deterministic."""
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0 (a unique solution), got {l2}")
    X = torch.as_tensor(np.asarray(X_train), dtype=torch.float64)
    labels = np.asarray(y_train).reshape(-1)
    if X.dim() != 2 or X.shape[0] != labels.shape[0]:
        raise ValueError(f"expected X (N, D) and y (N,), got {tuple(X.shape)} and {labels.shape}")
    if not torch.isfinite(X).all():
        raise ValueError("fit_linear_probe: the features contain NaN or inf")
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"fit_linear_probe: need at least two classes, got {classes.tolist()}")
    mean = X.mean(dim=0)
    std = X.std(dim=0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    Z = (X - mean) / std
    y = torch.as_tensor(y, dtype=torch.long)
    k = 1 if len(classes) == 2 else len(classes)
    W = torch.zeros(k, X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter, history_size=20,
                            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _objective(W, b, Z, y, l2)
        loss.backward()
        return loss

    opt.step(closure)
    state = opt.state[W]
    n_iter = int(state["n_iter"])
    return LinearProbe(mean=mean, std=std, weight=W.detach(), bias=b.detach(), classes=classes, n_iter=n_iter,
                       converged=n_iter < max_iter and int(state["func_evals"]) < 2 * max_iter)


def _load(path: str) -> Transformer:
    """The encoder saved at ``path`` (contract format ``encoder.pt``), in eval mode."""
    from headstart.jepa.train import load_encoder  # the one reader of encoder.pt

    encoder, _ = load_encoder(path)
    return encoder


def random_encoder(model: Mapping[str, Any], vocab_size: int, seed: int) -> Transformer:
    """A freshly initialised encoder of the JEPA shape ``model`` (the ``jepa.model`` dict) for
    ``vocab_size`` tokens, its init drawn from ``torch.manual_seed(seed)`` without touching the
    caller's random state."""
    cfg = JEPAConfig.from_dict({**model, "vocab_size": int(vocab_size)}, path="jepa.model")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Transformer(cfg.core_config()).eval()


def _split(sst2: Mapping[str, Any], name: str) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    part = sst2[name]
    return part["ids"], part["lengths"], np.asarray(part["labels"]).reshape(-1)


def run_probe(kind: ProbeKind, sst2: Mapping[str, Any], *, encoder_path: str | None = None,
              model: Mapping[str, Any] | None = None, probe: Mapping[str, Any] | None = None, seed: int = 0,
              device: str | torch.device = "auto", name: str | None = None) -> pd.DataFrame:
    """Probe one encoder on SST-2: fit on ``sst2['train']``, predict ``sst2['dev']``.

    ``kind``: 'jepa'/'mlm' (the encoder at ``encoder_path``), 'random' (:func:`random_encoder` of
    the ``model`` dict, seeded by ``seed``), 'bag' (:func:`bag_features` with the input embedding
    table of the encoder at ``encoder_path``). ``probe``: the ``jepa.probe`` dict (:class:`ProbeConfig`).
    Returns one row per dev sentence: ``idx, label, pred, correct, encoder`` (``name``, default
    ``kind``), ``seed``."""
    if kind not in KINDS:
        raise ValueError(f"probe kind must be one of {KINDS}, got {kind!r}")
    cfg = ProbeConfig.from_dict(probe or {}, path="jepa.probe")
    vocab = int(sst2["vocab_size"])
    if kind == "random":
        if model is None:
            raise ValueError("probe kind 'random' needs the main JEPA model dict (model=...)")
        encoder = random_encoder(model, vocab, seed)
    else:
        if not encoder_path:
            raise ValueError(f"probe kind {kind!r} needs an encoder file (encoder_path=...)")
        encoder = _load(encoder_path)
        if encoder.config.vocab_size != vocab:
            raise ValueError(f"{encoder_path}: encoder vocabulary {encoder.config.vocab_size} != SST-2 token "
                             f"vocabulary {vocab} (tokenised with another tokenizer?)")
    (tr_ids, tr_len, tr_y), (dv_ids, dv_len, dv_y) = _split(sst2, "train"), _split(sst2, "dev")
    if kind == "bag":
        weight = encoder.wte.weight
        X_tr, X_dv = bag_features(weight, tr_ids, tr_len), bag_features(weight, dv_ids, dv_len)
    else:
        dev = pick_device(device)
        encoder.to(dev)
        X_tr = pooled_features(encoder, tr_ids, tr_len, cfg.batch_size, dev)
        X_dv = pooled_features(encoder, dv_ids, dv_len, cfg.batch_size, dev)
    fitted = fit_linear_probe(X_tr, tr_y, cfg.l2, cfg.max_iter)
    if not fitted.converged:
        log.warning("probe %s (seed %d): L-BFGS stopped at max_iter = %d before converging", name or kind, seed,
                    cfg.max_iter)
    pred = fitted.predict(X_dv)
    return pd.DataFrame({"idx": np.arange(len(dv_y), dtype=np.int64), "label": dv_y.astype(np.int64),
                         "pred": pred.astype(np.int64), "correct": pred == dv_y,
                         "encoder": name or kind, "seed": int(seed)})


def accuracy(rows: pd.DataFrame | Sequence[bool]) -> float:
    """Share of correct predictions (``rows['correct']`` or a boolean sequence); NaN when empty."""
    correct = np.asarray(rows["correct"] if isinstance(rows, pd.DataFrame) else rows, dtype=float)
    return float(correct.mean()) if correct.size else math.nan
