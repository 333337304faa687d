"""Shared fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest

# The read-only shared data (datasets, weights, docs) sits beside the repository: ../shared.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository root; the test is skipped when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} is absent (it holds the benchmark images)")
    return SHARED
