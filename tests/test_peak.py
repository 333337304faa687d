"""The machine's measured peak (nasflow/hardware/peak.py): measured once, then read back from
the lever choices' cache; tiny sizes, so it only checks the plumbing, never the speed."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nasflow.hardware import peak as peak_mod
from nasflow.hardware.auto import _read_cache
from nasflow.hardware.peak import Peak, PeakSizes, machine_peak

TINY = PeakSizes(matmul=32, conv=(1, 8, 8), stream=1024, reps=1)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NASFLOW_CACHE", str(tmp_path))
    return tmp_path / "choices.json"


def test_peak_is_measured_once_then_read_from_the_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    first = machine_peak(TINY)
    assert first.source == "measured" and first.threads == 1
    assert first.matmul_fp32 > 0 and first.conv_fp32 > 0 and first.triad_bw > 0 and first.copy_bw > 0
    (key, entry), = _read_cache().items()
    assert key.startswith("peak|") and "1 threads" in key and entry["peak"]["matmul_fp32"] == first.matmul_fp32

    def refuse(sizes: PeakSizes) -> Peak:
        raise AssertionError("measured again although cached")

    monkeypatch.setattr(peak_mod, "measure_peak", refuse)
    again = machine_peak(TINY)
    assert again.source == "cache" and again == first
    with pytest.raises(AssertionError, match="measured again"):
        machine_peak(TINY, use_cache=False)


def test_another_size_or_thread_count_is_its_own_entry(cache: Path) -> None:
    torch.set_num_threads(1)
    machine_peak(TINY)
    machine_peak(PeakSizes(matmul=16, conv=(1, 8, 8), stream=1024, reps=1))
    assert len(_read_cache()) == 2


def test_a_broken_cache_entry_is_measured_again(cache: Path) -> None:
    torch.set_num_threads(1)
    machine_peak(TINY)
    text = cache.read_text().replace('"matmul_fp32"', '"matmul_fp64"')
    cache.write_text(text)
    assert machine_peak(TINY).source == "measured"


def test_bf16_peak_falls_back_to_fp32_where_not_measured() -> None:
    p = Peak(matmul_fp32=2.0, conv_fp32=3.0, copy_bw=1.0, triad_bw=1.0, threads=1, machine="x")
    assert p.flops("fp32") == 3.0 and p.flops("bf16") == 3.0
    q = Peak(matmul_fp32=2.0, conv_fp32=3.0, copy_bw=1.0, triad_bw=1.0, threads=1, machine="x",
             matmul_bf16=7.0, conv_bf16=5.0)
    assert q.flops("bf16") == 7.0
    assert Peak.from_json(q.to_json()) == q
