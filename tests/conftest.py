"""Shared fixtures: the real data folder (../shared/data) and small helpers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The folder of real pre-downloaded data: $HEADSTART_SHARED_DATA or ../shared/data."""
    env = os.environ.get("HEADSTART_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data folder not found (set HEADSTART_SHARED_DATA or place ../shared/data)")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny models: two threads on a shared 2-core machine spin
    against other jobs (tiny matmuls 100× slower). Use with ``pytest.mark.usefixtures``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
