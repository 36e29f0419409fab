"""Seeding and RNG-state capture, so that runs are repeatable and resumable.

``seed_everything(seed)`` seeds Python's ``random``, NumPy's legacy global generator and torch
(CPU and every CUDA device). ``rng_state()`` / ``set_rng_state()`` capture and restore all of those
generators; the training loop stores them in its checkpoint so that a resumed run draws exactly the
random numbers (dropout masks, ...) that an uninterrupted run would have drawn.
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

__all__ = ["seed_everything", "rng_state", "set_rng_state"]


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed ``random``, ``numpy.random`` and torch (CPU + all CUDA devices) with ``seed``.

    With ``deterministic=True`` also call ``torch.use_deterministic_algorithms(True)`` (and set
    ``CUBLAS_WORKSPACE_CONFIG`` when unset, as CUDA requires). Ops without a deterministic
    implementation then raise instead of silently varying. With ``False`` the global flag is left
    as it is (so one opt-in caller is not undone by another).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def rng_state() -> dict[str, Any]:
    """Capture every global RNG state, in a form ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`rng_state`.

    CUDA states are restored when this machine has the same number of CUDA devices; otherwise
    (e.g. a GPU run resumed on CPU) they are skipped — exact repeatability then cannot hold anyway.
    """
    py = state["python"]
    # torch.load turns the inner tuple into a list; random.setstate needs tuples.
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["kind"],
            npst["keys"].numpy().astype(np.uint32),
            int(npst["pos"]),
            int(npst["has_gauss"]),
            float(npst["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"])
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
