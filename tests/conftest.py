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
