"""Run-time device choice, TF32 switch and a provenance description of the device.

The device is never hard-coded in config: rules ask for ``resources: gpu=1`` and the job picks
CUDA when it is present, CPU otherwise (``pick_device('auto')``).
"""
from __future__ import annotations

import os
import platform
from typing import Any

import torch

__all__ = ["pick_device", "set_tf32", "tf32_enabled", "describe_device", "device_label"]


def pick_device(pref: str | torch.device | None = "auto", *, tf32: bool | None = None) -> torch.device:
    """Return the device to run on.

    ``pref``: ``'auto'`` (or None) → ``cuda`` when available, else ``cpu``; ``'cpu'``; ``'cuda'`` /
    ``'cuda:N'`` (an error when CUDA is missing, rather than a silent fallback); or a
    ``torch.device``. ``tf32``: when not None, switch TF32 matmuls/convolutions on or off
    explicitly (see :func:`set_tf32`); None leaves torch's current setting.
    """
    if pref is None or (isinstance(pref, str) and pref.strip().lower() == "auto"):
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(pref)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"unknown device {pref!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError(
                    f"device {pref!r} requested but CUDA is not available on this machine "
                    "(use device 'auto' to fall back to CPU)"
                )
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise RuntimeError(
                    f"device {pref!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
                )
    if tf32 is not None:
        set_tf32(tf32)
    return device


def set_tf32(enabled: bool) -> None:
    """Allow (True) or forbid (False) TF32 in float32 CUDA matmuls and cuDNN convolutions/RNNs.

    Uses torch's ``fp32_precision`` switches (``'tf32'`` / ``'ieee'``) where they exist, else the
    older ``allow_tf32`` flags. Harmless on CPU-only builds.
    """
    value = "tf32" if enabled else "ieee"
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        matmul.fp32_precision = value
        cudnn = torch.backends.cudnn
        for sub in ("conv", "rnn"):
            mod = getattr(cudnn, sub, None)
            if mod is not None and hasattr(mod, "fp32_precision"):
                mod.fp32_precision = value
    else:  # older torch
        matmul.allow_tf32 = bool(enabled)
        torch.backends.cudnn.allow_tf32 = bool(enabled)


def tf32_enabled() -> bool:
    """Whether float32 CUDA matmuls may use TF32 right now."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        return matmul.fp32_precision == "tf32"
    return bool(matmul.allow_tf32)


def describe_device(device: str | torch.device | None = None) -> dict[str, Any]:
    """A flat, JSON-friendly description of the device and software, for provenance records."""
    device = pick_device(device) if not isinstance(device, torch.device) else device
    info: dict[str, Any] = {
        "device": str(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "tf32": tf32_enabled(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
    }
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        info.update(
            gpu_name=props.name,
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_count=torch.cuda.device_count(),
            cudnn_version=torch.backends.cudnn.version(),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    return info


def device_label(info: dict[str, Any] | str) -> str:
    """A short name for a :func:`describe_device` record, for claims and tables: the GPU's name, or
    ``cpu (N cores, T torch threads)``; a string is returned as it is."""
    if isinstance(info, str):
        return info
    if info.get("device_type") == "cuda":
        return str(info.get("gpu_name", info.get("device", "cuda")))
    return f"cpu ({info.get('cpu_count', '?')} cores, {info.get('torch_threads', '?')} torch threads)"
