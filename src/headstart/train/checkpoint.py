"""Atomic checkpoint files with a configuration fingerprint.

A checkpoint is one ``torch.save`` file holding a dict. :func:`save_checkpoint` writes it to a
temporary file in the same folder, fsyncs it and ``os.replace``-s it over the target, so a kill at
any moment leaves either the previous checkpoint or the new one, never a torn file.
:func:`load_checkpoint` refuses, with a message naming the file, a file that is unreadable, not a
headstart checkpoint, or written for a different configuration (its fingerprint differs).

The training loop (:mod:`headstart.train.loop`) stores: format/version, ``fingerprint`` and the
data it was computed from, ``step``, ``model`` and ``optimizer`` state dicts, ``rows`` (metric
rows so far), ``rng`` (torch CPU/CUDA, python, numpy states), ``counters`` and ``elapsed_s``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ..io import atomic_path, writes_files

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "fingerprint",
    "save_checkpoint",
    "load_checkpoint",
    "finalize",
]

FORMAT = "headstart-train-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used (corrupt, foreign, or for another configuration)."""


def _canonical(obj: Any) -> Any:
    """Turn ``obj`` into plain JSON types deterministically (tuples → lists, keys → str)."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, torch.dtype):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        try:
            return obj.item()
        except (ValueError, RuntimeError):
            pass
    return repr(obj)


def fingerprint(data: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of ``data`` in canonical JSON form: equal configs ↔ equal fingerprints."""
    text = json.dumps(_canonical(data), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any], every_process: bool = False) -> Path:
    """Atomically write ``state`` (plus format/version tags) to ``path``; returns the path.

    Written with :func:`headstart.io.atomic_path`: to ``.<name>.<random>.tmp`` in the same
    folder, fsynced, moved over ``path`` with ``os.replace``, then the folder is fsynced. On any
    error the temporary file is removed and the previous checkpoint (if any) is untouched. In a
    data-parallel job only process 0 writes it, unless ``every_process``.
    """
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **state}
    with atomic_path(path, every_process) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
    return path


def _diff(expected: Any, found: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two canonical JSON structures."""
    if isinstance(expected, dict) and isinstance(found, dict):
        out: list[str] = []
        for key in sorted(set(expected) | set(found)):
            name = f"{prefix}.{key}" if prefix else key
            if key not in found:
                out.append(f"{name}: missing in checkpoint (now {expected[key]!r})")
            elif key not in expected:
                out.append(f"{name}: {found[key]!r} in checkpoint, absent now")
            else:
                out.extend(_diff(expected[key], found[key], name))
        return out
    if expected != found:
        return [f"{prefix or 'value'}: checkpoint has {found!r}, now {expected!r}"]
    return []


def load_checkpoint(
    path: str | os.PathLike,
    *,
    expected_fingerprint: str | None = None,
    expected_data: Mapping[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` naming ``path`` when the file is unreadable/corrupt, is not a
    headstart checkpoint of this version, or (when ``expected_fingerprint`` is given) was written
    for another configuration. ``expected_data`` (the dict the fingerprint was computed from) makes
    the mismatch message list the keys that differ. Loading uses ``weights_only=True``.
    """
    path = Path(path)
    hint = f"delete {path} to start this run from scratch"
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "corrupt"
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({type(err).__name__}: {str(err)[:300]}); {hint}"
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a headstart training checkpoint; {hint}")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {state.get('version')!r}, this code reads "
            f"version {VERSION}; {hint}"
        )
    if expected_fingerprint is not None and state.get("fingerprint") != expected_fingerprint:
        details = ""
        if expected_data is not None and isinstance(state.get("fingerprint_data"), dict):
            diffs = _diff(_canonical(expected_data), state["fingerprint_data"])
            if diffs:
                shown = diffs[:8] + ([f"... and {len(diffs) - 8} more"] if len(diffs) > 8 else [])
                details = " Differences: " + "; ".join(shown) + "."
        raise CheckpointError(
            f"checkpoint {path} was written for a different configuration (fingerprint "
            f"{str(state.get('fingerprint'))[:12]}, current {expected_fingerprint[:12]}).{details} "
            f"Refusing to resume from it; {hint}"
        )
    return state


def finalize(path: str | os.PathLike | None) -> bool:
    """Delete a finished run's checkpoint (and stray temp files beside it).

    Call after the run's results are safely written. Returns True when a file was removed.
    """
    if path is None or not writes_files():
        return False
    path = Path(path)
    removed = False
    try:
        path.unlink()
        removed = True
    except FileNotFoundError:
        pass
    if path.parent.is_dir():
        for stray in path.parent.glob(f".{path.name}.*.tmp"):
            try:
                stray.unlink()
            except OSError:
                pass
    return removed
