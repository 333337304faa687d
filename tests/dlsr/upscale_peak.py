"""Run by test_upscale_memory in a fresh process: upscale a random LR image of the given size
with a model directory and print JSON {"grown": bytes, "out": bytes} where `grown` is the
peak resident memory above what the process held just before (model loaded, one tile run).

    python upscale_peak.py MODEL_DIR WIDTH HEIGHT OUT_FILE BACKEND [old]

`old` measures the way nasflow upscale worked before (float32 output, then uint8, then Pillow).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from nasflow.runs.modeldir import load_model
from nasflow.spaces.dlsr.tiling import model_predictor, upscale_file


def vm_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    model_dir, width, height, out = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    torch.set_num_threads(1)
    model, _, _ = load_model(model_dir)
    predict = model_predictor(model, sys.argv[5])
    lr = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    # Warm up on whole tiles of every shape the image's tiling has (corners, edges, inside),
    # so the backend's buffers for them are counted in the base.
    upscale_file(predict, lr[:600, :600].copy(), 2, out.with_name("warm.png"))
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current resident size
    base = vm_hwm()
    if len(sys.argv) > 6:
        from nasflow.spaces.dlsr.images import save_rgb, to_image, to_tensor
        from nasflow.spaces.dlsr.tiling import upscale_tiled
        save_rgb(to_image(upscale_tiled(predict, to_tensor(lr)[None], 2)), out)
    else:
        upscale_file(predict, lr, 2, out)
    print(json.dumps({"grown": vm_hwm() - base, "out": width * height * 4 * 3}))


if __name__ == "__main__":
    main()
