"""THE parity bar: the released weights, imported into architectures nasflow compiles from
its space files, reproduce the paper's numbers (x2, MATLAB bicubic LR, Y, shave 2).

Whole images, batch 1, on the CPU: Set5 takes a few seconds per model, Set14 (DLSR only)
about 20 s. Skipped without ../shared (the weights and Set14).
"""
from __future__ import annotations

from pathlib import Path
from statistics import fmean

import pytest
from nasflow.spaces.dlsr.data import BenchImage, load_benchmark
from nasflow.spaces.dlsr.evaluate import bicubic_upscale, evaluate_images
from nasflow.spaces.dlsr.importer import HERE, RELEASED, import_checkpoint
from nasflow.spaces.dlsr.metrics import psnr

from nasflow.runs.modeldir import load_model

# paper model -> (Set5 PSNR, Set5 SSIM); tolerances 0.02 dB and 0.0005
SET5 = {"DLSR": (38.04, 0.9606), "DLSR-DIV": (38.05, 0.9607), "DLSR-S": (37.71, 0.9595)}
FILES = {r.paper_model: name for name, r in RELEASED.items()}


@pytest.fixture(scope="module")
def set5(shared_dir: Path) -> list[BenchImage]:
    return load_benchmark(shared_dir / "datasets" / "Set5", 2)


@pytest.fixture(scope="module")
def import_model(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Through the whole path a user takes: import into a model directory, then load it."""

    def make(paper_model: str):
        name = FILES[paper_model]
        out = tmp_path_factory.mktemp(paper_model)
        import_checkpoint(shared_dir / "weights" / "dlsr" / name, HERE / RELEASED[name].arch, out)
        return load_model(out)[0]

    return make


@pytest.mark.parametrize("paper_model", list(SET5))
def test_set5_x2(paper_model, set5, import_model):
    result = evaluate_images(import_model(paper_model), set5, 2, "Set5", bicubic=False)
    want_psnr, want_ssim = SET5[paper_model]
    assert abs(result.psnr - want_psnr) <= 0.02, f"{paper_model} Set5 PSNR {result.psnr:.4f}"
    assert abs(result.ssim - want_ssim) <= 0.0005, f"{paper_model} Set5 SSIM {result.ssim:.5f}"


def test_set14_x2_dlsr(shared_dir, import_model):
    images = load_benchmark(shared_dir / "datasets" / "Set14", 2)
    result = evaluate_images(import_model("DLSR"), images, 2, "Set14", bicubic=False)
    assert abs(result.psnr - 33.67) <= 0.05, f"DLSR Set14 PSNR {result.psnr:.4f}"
    assert abs(result.ssim - 0.9183) <= 0.0005, f"DLSR Set14 SSIM {result.ssim:.5f}"


def test_bicubic_baseline_set5_x2(set5):
    value = fmean(psnr(bicubic_upscale(im.lr, 2), im.hr, crop_border=2) for im in set5)
    assert 33.66 <= value <= 33.69, f"bicubic Set5 x2 PSNR {value:.4f}"
