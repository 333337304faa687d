"""One search configuration, timed in a process of its own (so its peak memory is its own):

    python bench/search_step.py '{"fuse": true, "channels_last": true, ...}'

prints one JSON line: seconds per MiLeNAS step (wall and CPU), the process's peak RSS
(its own VmHWM, bench/child.py) before the first step and after the last, and the first step's train loss (computed at the same
initial weights, arch and batch in every configuration, so configurations compare on it).
"""
from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: the work done, which on a shared
    machine waits less on other processes than the wall clock does."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def time_strategy_steps(strategy: Any, model: torch.nn.Module, lr: torch.Tensor, hr: torch.Tensor, batch: int,
                        steps: int) -> tuple[list[float], list[float]]:
    """(wall, CPU) seconds of `steps` strategy steps after one untimed one, each on its own
    train and valid batches of the patches (lr, hr)."""
    n = steps + 1
    batches = [(lr[i:i + batch], hr[i:i + batch]) for i in range(0, len(lr), batch)]
    times, cpu_times = [], []
    for i in range(n):
        strategy.on_step(i, n)
        start, cpu_start = time.perf_counter(), cpu_seconds()
        strategy.step(model, batches[2 * i], batches[2 * i + 1])
        times.append(time.perf_counter() - start)
        cpu_times.append(cpu_seconds() - cpu_start)
    return times[1:], cpu_times[1:]


def _rss_mb() -> float:
    from child import peak_rss_mb  # bench/child.py: this process's own peak, not its parent's

    return peak_rss_mb()


def real_patches(n: int, patch: int, scale: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, hr): n random HR crops of the shipped Set5 images and their MATLAB-bicubic LR."""
    from nasflow.spaces.dlsr.data import load_rgb, make_lr
    from nasflow.spaces.dlsr.evaluate import default_bench

    images = [load_rgb(p) for p in sorted(default_bench().glob("*.png"))]
    rng = np.random.default_rng(seed)
    lrs, hrs = [], []
    for _ in range(n):
        img = images[rng.integers(len(images))]
        y, x = rng.integers(img.shape[0] - patch + 1), rng.integers(img.shape[1] - patch + 1)
        hr = img[y:y + patch, x:x + patch]
        lrs.append(make_lr(hr, scale).transpose(2, 0, 1))
        hrs.append(hr.transpose(2, 0, 1))
    as_t = lambda a: torch.from_numpy(np.stack(a).astype(np.float32))  # noqa: E731
    return as_t(lrs), as_t(hrs)


class StepBench:
    """One configuration's supernet, MiLeNAS strategy and batches, ready to step."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        from nasflow.search.config import SearchConfig
        from nasflow.space.graph import build_graph
        from nasflow.accel.levers import keep_freed_memory, prepare_model, wrap_loss
        from nasflow.space.load import load_space
        from nasflow.search.regularizers import get_regularizer
        from nasflow.spaces.dlsr.loss import SRLoss
        from nasflow.strategies import get_strategy
        from nasflow.compile.supernet import compile_graph

        torch.set_num_threads(cfg["threads"])
        space = load_space(ROOT / "spaces" / "dlsr" / "space.yaml", {"channels": cfg["channels"], "scale": cfg["scale"]})
        graph = build_graph(space)
        config = SearchConfig(fuse=cfg["fuse"], channels_last=cfg["channels_last"], amp=cfg["amp"],
                              strategy_options={"reuse_forward": cfg["reuse_forward"]}, batch_size=cfg["batch"], warmup=0,
                              steps=cfg["steps"] + 1, device="cpu")
        torch.manual_seed(0)  # the same initial weights and arch in every configuration
        self.model = prepare_model(compile_graph(graph, fuse=config.fuse), bool(config.channels_last)).train()
        if cfg.get("keep_memory", True):  # process-wide: every configuration of a run shares it
            keep_freed_memory(torch.device("cpu"))
        criterion = SRLoss(0.2)

        def sr_loss(net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
            total, terms = criterion(net(batch[0]).float(), batch[1])
            return total, {k: float(v) for k, v in terms.items()}

        loss = wrap_loss(sr_loss, channels_last=bool(config.channels_last), amp=config.amp, device=torch.device("cpu"))
        w, a = config.weights_optim, config.arch_optim
        w_opt = torch.optim.Adam(self.model.weights(), lr=w.lr, betas=w.betas, weight_decay=w.weight_decay)
        a_opt = torch.optim.Adam(self.model.arch_parameters(), lr=a.lr, betas=a.betas, weight_decay=a.weight_decay)
        self.strategy = get_strategy("milenas")(loss, get_regularizer("params")(graph), w_opt, a_opt, config)
        n, b = cfg["steps"] + 1, cfg["batch"]  # the first step warms up (allocator, oneDNN caches)
        lr, hr = real_patches(2 * n * b, cfg["patch"], cfg["scale"], seed=0)
        self.batches = [(lr[i:i + b], hr[i:i + b]) for i in range(0, len(lr), b)]
        self.first_loss: float | None = None

    def step(self, i: int) -> tuple[float, float]:
        """Step i (train batch 2i, valid batch 2i + 1): (wall seconds, CPU seconds)."""
        start, cpu = time.perf_counter(), cpu_seconds()
        logs = self.strategy.step(self.model, self.batches[2 * i], self.batches[2 * i + 1])
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        if i == 0:
            self.first_loss = logs["train/loss"]
        return seconds, cpu


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Alone in this process: warm-up step + cfg["steps"] timed steps, and the peak RSS."""
    bench = StepBench(cfg)
    setup_mb = _rss_mb()
    steps = [bench.step(i) for i in range(cfg["steps"] + 1)][1:]
    times, cpu_times = [s for s, _ in steps], [c for _, c in steps]
    return {"s_per_step": statistics.median(times) if times else None, "times": times,
            "cpu_times": cpu_times, "peak_rss_mb": _rss_mb(), "setup_rss_mb": setup_mb,
            "first_loss": bench.first_loss}


def auto_levers(cfg: dict[str, Any]) -> dict[str, Any]:
    """What `nasflow search --levers auto` picks for the bench's search (MiLeNAS, its batch,
    channels, scale and HR patch, the SR task) on this machine, timed here, in a child of the
    bench: a timing that runs out of memory is the row's one line, not the bench's end."""
    from nasflow.hardware.auto import choose_search_levers
    from nasflow.hardware.timing import threads
    from nasflow.search.config import SearchConfig
    from nasflow.space.load import load_space
    from nasflow.tasks.contract import make_task

    overrides = {"channels": cfg["channels"], "scale": cfg["scale"]}
    config = SearchConfig(strategy="milenas", batch_size=cfg["batch"], overrides=overrides, task="sr",
                          task_options={"patch": cfg["patch"]}, amp="none", device="cpu")
    space = load_space(ROOT / "spaces" / "dlsr" / "space.yaml", overrides)
    with threads(cfg["threads"]):
        choice = choose_search_levers(config, space, make_task("sr", config.task_options, space))
    return {"levers": choice.value, "source": choice.source, "timings": choice.timings}


if __name__ == "__main__":
    given = json.loads(sys.argv[1])
    print(json.dumps(auto_levers(given) if given.get("auto") else run(given)))
