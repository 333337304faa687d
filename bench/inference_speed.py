"""Seconds per image of derived DLSR x2 on a 640x360 LR image, per Predictor backend.

The image is real content: Set14's barbara (../shared) or the shipped Set5 butterfly,
resized to 1280x720 as the HR, its LR made by MATLAB bicubic. The weights are the released
DLSR checkpoint when ../shared has it (random weights otherwise: the same speed, no PSNR).
Backends are timed round-robin, so a noisy machine slows all of them alike.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from search_step import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CHECKPOINT = "RFDN_beta21_ps128_20210128_1000.pt"


def test_image(scale: int, size: tuple[int, int] = (640, 360)) -> tuple[np.ndarray, np.ndarray, str]:
    """(hr, lr, name): uint8 H x W x 3, the LR `size` (w, h) and the HR `scale` times it."""
    from nasflow.spaces.dlsr.data import load_rgb, make_lr
    from nasflow.spaces.dlsr.evaluate import default_bench

    path = SHARED / "datasets" / "Set14" / "barbara.png"
    if not path.is_file():
        path = default_bench() / "butterfly.png"
    img = Image.fromarray(load_rgb(path)).resize((size[0] * scale, size[1] * scale), Image.BICUBIC)
    hr = np.asarray(img)
    return hr, make_lr(hr, scale), path.name


def derived_model(scale: int, channels: int) -> tuple[torch.nn.Module, str]:
    from nasflow.space.graph import build_graph
    from nasflow.space.load import load_space
    from nasflow.runs.modeldir import load_model
    from nasflow.compile.supernet import compile_graph

    ckpt = SHARED / "weights" / "dlsr" / CHECKPOINT
    if ckpt.is_file() and scale == 2 and channels == 48:
        from nasflow.spaces.dlsr.importer import HERE, RELEASED, import_checkpoint

        out = Path(tempfile.mkdtemp(prefix="nasflow-bench-")) / "dlsr"
        import_checkpoint(ckpt, HERE / RELEASED[CHECKPOINT].arch, out)
        return load_model(out)[0], f"released {CHECKPOINT}"
    torch.manual_seed(0)
    space = load_space(ROOT / "spaces" / "dlsr" / "dlsr.yaml", {"channels": channels, "scale": scale})
    return compile_graph(build_graph(space)).eval(), "random weights"


def run(scale: int, channels: int, reps: int, backends: list[tuple[str, str]]) -> dict[str, Any]:
    """{"rows": [{backend, dtype, s_per_image, max_abs_diff, psnr}], ...}; rows[0] is plain fp32."""
    from nasflow.deploy.predictor import Predictor
    from nasflow.spaces.dlsr.metrics import psnr

    model, weights = derived_model(scale, channels)
    hr, lr, image = test_image(scale)
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1), dtype=np.float32))[None]
    predictors, rows, ref = [], [], None
    for backend, dtype in [("plain", "fp32"), *backends]:
        try:
            if backend == "auto":  # what nasflow eval picks on this machine (timed once, cached)
                from nasflow.hardware.auto import choose_backend

                backend = f"auto={choose_backend(model).value}"
            start = time.perf_counter()
            p = Predictor(model, backend.removeprefix("auto="), dtype)
            y = p(x)  # warm-up: compiles, exports (or loads the cached ONNX), primes caches
            setup = time.perf_counter() - start
        except Exception as exc:  # an optional backend that cannot run here (no compiler, ...)
            rows.append({"backend": backend, "dtype": dtype, "error": f"{type(exc).__name__}: {exc}"})
            continue
        ref = y if ref is None else ref
        row = {"backend": backend, "dtype": dtype, "setup_s": setup, "times": [],
               "max_abs_diff": float((y - ref).abs().max()),
               "psnr": psnr(y[0], hr, crop_border=scale)}
        predictors.append((p, row))
        rows.append(row)
    for _ in range(reps):
        for p, row in predictors:
            start, cpu = time.perf_counter(), cpu_seconds()
            p(x)
            row["times"].append(time.perf_counter() - start)
            row.setdefault("cpu_times", []).append(cpu_seconds() - cpu)
    for _, row in predictors:
        row["s_per_image"] = statistics.median(row["times"])
        row["cpu_s_per_image"] = statistics.median(row["cpu_times"])
    return {"image": f"{image} resized, LR {lr.shape[1]}x{lr.shape[0]} -> {hr.shape[1]}x{hr.shape[0]}",
            "weights": weights, "rows": rows}
