"""Shared fixtures."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

# Tests use tiny tensors: one intra-op thread is as fast and does not thrash a shared or
# small CI machine (on a loaded 2-core box, 2 threads made a 4 s test take 53 s).
torch.set_num_threads(1)

# Tests never read or write the user's cache (~/.cache/nasflow: the `--levers auto` choices,
# exported ONNX files): a choice cached there by an earlier run made a CLI search skip its
# lever timing on one machine and run it on a fresh one. One empty cache per test session.
os.environ["NASFLOW_CACHE"] = tempfile.mkdtemp(prefix="nasflow-test-cache-")
atexit.register(shutil.rmtree, os.environ["NASFLOW_CACHE"], ignore_errors=True)

# The read-only shared data (datasets, weights, docs) sits beside the repository: ../shared.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository root; the test is skipped when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} is absent (it holds the benchmark images)")
    return SHARED
