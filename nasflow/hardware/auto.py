"""`--levers auto` and the automatic inference backend: choose what is fastest on this machine,
among the exact configurations only, by timing each once per machine and caching the choice.

    choice = choose_search_levers(config, space, task)   # {"fuse": True, "channels_last": True}
    choice = choose_backend(model)                       # "onnx", "openvino" or "eager"

Search levers: the exact configurations are the fused mixed ops or the plain ones, NCHW or
channels-last (all equal to float rounding). On the CPU each is timed for a few strategy
steps of the run's own supernet, batch and task, in runs interleaved with the others' (median
of the rounds; with one thread on the process's CPU time, see step_clock); on a GPU the choice comes from the
hardware (fused, NCHW) without timing. A run too short to repay the timing (timing_pays:
the quick DLSR search would spend a third of its time on it) keeps the CPU default (fused,
channels-last) unless a choice is cached. Inexact levers (bf16 autocast, reuse_forward) are
never chosen: they are used only when asked for, and asking for bf16 on a CPU without bf16
instructions gets a warning (on a Xeon without avx512_bf16 it made the DLSR step slower).

Inference backends: eager, onnx (onnxruntime) and openvino where installed, each exact
(fp32) and each timed on the model at one size. torch.compile is left out: it compiles
for tens of seconds on first use, longer than the images of a typical eval take.

Choices are cached in $NASFLOW_CACHE/choices.json (default ~/.cache/nasflow), keyed by the
CPU or GPU model, the thread count, the torch version and what was timed, so a machine
times each question once.
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasflow.deploy.openvino_backend import openvino_available
from nasflow.deploy.predictor import Predictor, onnx_available
from nasflow.errors import NasflowError
from nasflow.search.config import SearchConfig
from nasflow.search.latency_table import cpu_name
from nasflow.search.loop import run_search, strategy_class
from nasflow.space.schema import Space
from nasflow.tasks.contract import Task, task_class_for

EXACT_LEVERS: list[dict[str, bool]] = [
    {"fuse": True, "channels_last": True},  # the CPU default (SearchConfig): a short run keeps it
    {"fuse": True, "channels_last": False},
    {"fuse": False, "channels_last": True},
]
GPU_LEVERS = {"fuse": True, "channels_last": False}
# The most an exact configuration has saved over the CPU default per step, in the choices
# timed so far (Zen4 at 1 and 2 threads, DLSR and test spaces: 0-16%, one outlier under load
# aside). Timing costs len(EXACT_LEVERS) * rounds * (steps + 2) strategy steps, a third of
# the quick DLSR search (14 of 44 s), so a run is timed only when this share of its work
# would repay that.
LEVER_GAIN = 0.15


@dataclass
class Choice:
    value: Any  # the levers (dict) or the backend (str)
    source: str  # "cache", "measured" or "hardware"
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step / per image


def cache_file() -> Path:
    env = os.environ.get("NASFLOW_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "nasflow") / "choices.json"


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}  # no cache yet, or a broken one: time again


def _write_cache(key: str, entry: dict[str, Any]) -> None:
    path = cache_file()
    data = _read_cache()
    data[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home: the choice still holds for this run
        warnings.warn(f"cannot cache the choice in {path} ({exc}); set NASFLOW_CACHE to a writable folder",
                      stacklevel=2)


def _key(kind: str, device: str, what: Any) -> str:
    machine = torch.cuda.get_device_name() if device.startswith("cuda") else cpu_name()
    digest = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{kind}|{machine}|{torch.get_num_threads()} threads|torch {torch.__version__}|{digest}"


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def fast_bf16() -> bool:
    """The CPU has bf16 arithmetic (AVX512-BF16 or AMX): where bf16 autocast pays off."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def bf16_warning(config: SearchConfig) -> str | None:
    if config.amp == "bf16" and not config.device.startswith("cuda") and not fast_bf16():
        return (f"--amp bf16 on a CPU without bf16 instructions ({cpu_name()}: no avx512_bf16 or "
                "amx_bf16): it is likely slower than fp32 here, as well as inexact")
    return None


def run_threads() -> int:
    """The thread count a CPU run here will use (nasflow/runs/threads.py's choice, not yet
    made: the CLI makes it when the run starts), so levers are timed as the run will run."""
    from nasflow.runs.threads import USER_SETTINGS, available_cores, idle_cores

    cores = available_cores()
    if any(os.environ.get(name) for name in USER_SETTINGS) or torch.get_num_threads() != cores:
        return torch.get_num_threads()
    return idle_cores(cores)


# --- search levers --------------------------------------------------------------------------------
class _StepClock:
    """A search Reporter that notes when each step ends, on `clock`."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.ends: list[float] = []

    def start(self, step: int, total: int, warmup: int) -> None:
        pass

    def update(self, step: int, logs: dict[str, float], genotype: Any) -> None:
        self.ends.append(self.clock())

    def stop(self) -> None:
        pass


def step_clock() -> Callable[[], float]:
    """What a step is timed on: with one thread, the process's CPU time, which is that
    thread's wall time on an idle machine and does not count the time other jobs on a shared
    machine take (their share made 0.3 s steps take 4 s of wall time, in any order); with
    more threads, the wall clock (the CPU time would add the threads' spin-waits)."""
    return time.process_time if torch.get_num_threads() == 1 else time.perf_counter


def time_search_step(config: SearchConfig, space: Space, task: Task, steps: int = 1) -> list[float]:
    """Seconds of each of `steps` strategy steps with `config`'s levers, on `step_clock()`,
    after two untimed ones (oneDNN's primitive cache and the allocator settle)."""
    trial = config.model_copy(update={"steps": steps + 2, "warmup": 0, "log_every": steps + 2,
                                      "checkpoint_every": steps + 2, "snapshot_steps": []})
    clock = _StepClock(step_clock())
    with tempfile.TemporaryDirectory(prefix="nasflow-levers-") as tmp:
        run_search(trial, Path(tmp) / "run", space=space, task=task, reporter=clock)
    return [b - a for a, b in zip(clock.ends[1:], clock.ends[2:])]


def choose_search_levers(config: SearchConfig, space: Space, task: Task, steps: int = 1, rounds: int = 3,
                         use_cache: bool = True) -> Choice:
    """The fastest exact levers for this search on this machine (cached per machine): each
    configuration's median step over `rounds` runs of `steps` timed steps, the runs of the
    configurations interleaved, so a load that comes and goes on a shared machine slows
    them alike (the default configuration is among them: the choice is never slower)."""
    if config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available()):
        return Choice(dict(GPU_LEVERS), "hardware")
    what = {"space": space.with_params(config.overrides).to_yaml() if config.overrides else space.to_yaml(),
            **{k: v for k, v in config.to_json().items()
               if k in ("strategy", "strategy_options", "batch_size", "task", "task_options", "amp", "regularizer")}}
    key = _key("search-levers", "cpu", what)
    cached = _read_cache().get(key) if use_cache else None
    if cached is not None:
        return Choice(cached["levers"], "cache", cached.get("timings", {}))
    if not timing_pays(config, steps, rounds):
        return Choice(dict(EXACT_LEVERS[0]), "short run")
    samples: dict[str, list[float]] = {_name(levers): [] for levers in EXACT_LEVERS}
    for r in range(rounds):
        for levers in EXACT_LEVERS if r % 2 == 0 else EXACT_LEVERS[::-1]:  # no configuration always first
            samples[_name(levers)] += time_search_step(config.model_copy(update=levers), space, task, steps)
    timings = {name: statistics.median(t) for name, t in samples.items()}
    best = min(EXACT_LEVERS, key=lambda lv: timings[_name(lv)])
    _write_cache(key, {"levers": best, "timings": timings})
    return Choice(dict(best), "measured", timings)


def timing_pays(config: SearchConfig, steps: int = 1, rounds: int = 3) -> bool:
    """Whether timing the levers (`rounds` x `steps` timed steps, plus two untimed ones per
    run, for each configuration) costs less than LEVER_GAIN of the run's own work, both in
    warm-up steps (a strategy step costs Strategy.step_cost of them)."""
    cost = strategy_class(config)(config=config).step_cost()
    timing = len(EXACT_LEVERS) * rounds * (steps + 2) * cost
    work = min(config.warmup, config.steps) + max(config.steps - config.warmup, 0) * cost
    return LEVER_GAIN * work >= timing


def _name(levers: dict[str, bool]) -> str:
    return ("fused" if levers["fuse"] else "plain") + (" channels_last" if levers["channels_last"] else " NCHW")


# --- inference backend ----------------------------------------------------------------------------
def exact_backends(device: str = "cpu") -> list[str]:
    if not device.startswith("cpu"):
        return ["eager"]
    return ["eager"] + (["onnx"] if onnx_available() else []) + (["openvino"] if openvino_available() else [])


def choose_backend(model: nn.Module, device: str = "cpu", size: tuple[int, int] = (180, 320),
                   reps: int = 3, use_cache: bool = True) -> Choice:
    """The fastest exact inference backend for this model on this machine (cached per machine
    and architecture): each is timed on a 1 x C x `size` input after a warm-up call."""
    backends = exact_backends(device)
    if len(backends) == 1:
        return Choice(backends[0], "hardware")
    graph = getattr(model, "graph", None)
    if graph is None or len(graph.inputs) != 1:
        raise NasflowError("the automatic backend choice takes a built model with one input")
    what = {"arch": graph.space.to_yaml(), "size": size, "backends": backends, "task": graph.space.task}
    key = _key("inference-backend", device, what)
    cached = _read_cache().get(key) if use_cache else None
    if cached is not None and cached.get("backend") in backends:
        return Choice(cached["backend"], "cache", cached.get("timings", {}))
    # The task says what an input looks like: images at `size` (h, w), else its check size.
    task = task_class_for(graph.space)
    dims = size if len(task.check_size) == 2 else task.check_size
    x = task.sample_input(graph.nodes[graph.inputs[0]].c_out, tuple(dims), torch.Generator().manual_seed(0))
    # The predictors' ONNX cache is the default one: the Predictor built after this reuses the export.
    predictors = {b: Predictor(model, b) for b in backends}
    for p in predictors.values():
        p(x)  # warm-up: exports, compiles, primes caches
    runs: dict[str, list[float]] = {b: [] for b in backends}
    for _ in range(reps):  # round-robin, so a noisy machine slows every backend alike
        for b, p in predictors.items():
            start = time.perf_counter()
            p(x)
            runs[b].append(time.perf_counter() - start)
    timings = {b: statistics.median(t) for b, t in runs.items()}
    best = min(backends, key=timings.__getitem__)
    _write_cache(key, {"backend": best, "timings": timings})
    return Choice(best, "measured", timings)


def pick_backend(model: nn.Module, device: str, backend: str | None, dtype: str = "fp32",
                 size: tuple[int, int] = (180, 320), report: Callable[[str], None] | None = None) -> str:
    """The backend a command runs: the one asked for, or (None / "auto") the fastest exact one
    here; bf16 runs eager. `report` is told of a choice just measured."""
    if backend not in (None, "auto"):
        return backend
    if dtype != "fp32":
        return "eager"
    choice = choose_backend(model, str(device), size)
    if choice.source == "measured" and report is not None:
        shown = ", ".join(f"{b} {t:.3f} s" for b, t in choice.timings.items())
        report(f"backend auto: {choice.value} (timed once on this machine: {shown})")
    return choice.value
