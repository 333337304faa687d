"""`--levers auto` and the automatic inference backend: the fastest exact configuration, timed
once per machine and cached; inexact levers never chosen; the choice recorded and resumed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.compile.supernet import compile_graph
from nasflow.hardware import auto
from nasflow.hardware.auto import EXACT_LEVERS, bf16_warning, choose_backend, choose_search_levers, exact_backends
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NASFLOW_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "choices.json"


def test_search_levers_are_timed_once_and_cached(cache):
    config = fast_config(amp="none", steps=1000)  # long enough to repay the timing
    first = choose_search_levers(config, planted_space(), PlantedTask(), steps=1)
    assert first.source == "measured" and first.value in EXACT_LEVERS
    assert set(first.timings) == {"fused channels_last", "fused NCHW", "plain channels_last"}
    assert all(t > 0 for t in first.timings.values())
    assert first.timings[auto._name(first.value)] == min(first.timings.values())  # never a slower one
    assert cache.is_file()
    again = choose_search_levers(config, planted_space(), PlantedTask(), steps=1)
    assert (again.source, again.value, again.timings) == ("cache", first.value, first.timings)
    # another question (other batch) is timed afresh
    other = choose_search_levers(fast_config(batch_size=4, steps=1000), planted_space(), PlantedTask(), steps=1)
    assert other.source == "measured"
    assert len(json.loads(cache.read_text())) == 2


def test_a_run_too_short_to_repay_the_timing_keeps_the_default_untimed(cache, monkeypatch):
    timed: list[object] = []
    monkeypatch.setattr(auto, "time_search_step", lambda *a, **k: timed.append(a) or [1.0])
    # MiLeNAS steps cost 3 warm-up steps: timing 3 configurations x 3 rounds x 3 steps = 81
    # warm-up steps, repaid by LEVER_GAIN (15%) of a run's work from 540 warm-up steps on.
    short = fast_config(steps=100, warmup=20)  # 20 + 80 * 3 = 260
    assert not auto.timing_pays(short)
    choice = choose_search_levers(short, planted_space(), PlantedTask(), steps=1)
    assert (choice.source, choice.value, choice.timings) == ("short run", EXACT_LEVERS[0], {})
    assert timed == [] and not cache.exists()  # nothing timed, nothing cached
    assert auto.timing_pays(fast_config(steps=194, warmup=20))  # 20 + 174 * 3 = 542
    assert not auto.timing_pays(fast_config(steps=193, warmup=20))  # 539
    assert not auto.timing_pays(fast_config(steps=500, warmup=500))  # weights steps only: 500
    long = choose_search_levers(fast_config(steps=194, warmup=20), planted_space(), PlantedTask(), steps=1)
    assert long.source == "measured" and len(timed) == 9
    # a cached choice is free: a short run of the same question takes it
    cached = choose_search_levers(short, planted_space(), PlantedTask(), steps=1)
    assert (cached.source, cached.value) == ("cache", long.value) and len(timed) == 9


def test_the_choice_is_recorded_in_the_run_and_resumed(tmp_path):
    config = fast_config(steps=6, warmup=2)
    choice = choose_search_levers(config, planted_space(), PlantedTask(), steps=1)
    chosen = config.model_copy(update={**choice.value, "levers": "auto"})
    run = tmp_path / "run"
    stopped = run_search(chosen, run, space=planted_space(), task=PlantedTask(), stop_at=3)
    assert not stopped.finished
    saved = RunDir.open(run).config()
    assert (saved.levers, saved.fuse, saved.channels_last) == ("auto", choice.value["fuse"], choice.value["channels_last"])
    resumed = run_search(saved, run, resume=True, space=planted_space(), task=PlantedTask())
    assert resumed.finished
    whole = run_search(chosen, tmp_path / "whole", space=planted_space(), task=PlantedTask())
    assert resumed.softmax == whole.softmax  # resume stays exact


def test_bf16_is_never_chosen_and_warned_without_bf16_hardware(monkeypatch):
    assert all(set(lv) == {"fuse", "channels_last"} for lv in EXACT_LEVERS)
    monkeypatch.setattr(auto, "cpu_flags", lambda: {"avx512f", "avx2"})
    assert "no avx512_bf16" in bf16_warning(fast_config(amp="bf16"))
    assert bf16_warning(fast_config(amp="none")) is None
    monkeypatch.setattr(auto, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert bf16_warning(fast_config(amp="bf16")) is None


def test_inference_backend_is_the_fastest_exact_one_and_cached(cache):
    torch.manual_seed(0)
    model = compile_graph(build_graph(load_space(ROOT / "spaces" / "dlsr" / "dlsr.yaml", {"channels": 8}))).eval()
    choice = choose_backend(model, size=(24, 32), reps=2)
    backends = exact_backends("cpu")
    assert choice.value in backends
    if len(backends) > 1:
        assert choice.source == "measured" and set(choice.timings) == set(backends)
        assert choice.timings[choice.value] == min(choice.timings.values())
        again = choose_backend(model, size=(24, 32), reps=2)
        assert (again.source, again.value) == ("cache", choice.value)
    assert exact_backends("cuda") == ["eager"]
