"""Fast inference: every Predictor backend equals the plain path (fp32, 1e-4 relative) on a
small derived model; bf16 stays close; the ONNX export is cached, reproduces PyTorch and
has dynamic sizes; with the released DLSR weights, Set5 PSNR is the plain path's within
0.005 dB. Small sizes: a few seconds (the ONNX exports dominate)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasflow.errors import NasflowError
from nasflow.space.graph import build_graph
from nasflow.deploy.predictor import Predictor, default_backend, onnx_available
from nasflow.space.load import load_space
from nasflow.runs.modeldir import save_model
from nasflow.deploy.onnx import check_onnx, export_onnx
from nasflow.compile.supernet import compile_graph

ROOT = Path(__file__).resolve().parents[1]
needs_onnx = pytest.mark.skipif(not onnx_available(), reason="onnxruntime is not installed")


@pytest.fixture(scope="module")
def small():
    """Derived DLSR at 8 channels, random weights (biases too, so every path is exercised)."""
    torch.manual_seed(0)
    space = load_space(ROOT / "spaces" / "dlsr" / "dlsr.yaml", {"channels": 8})
    model = compile_graph(build_graph(space)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return space, model


def _x(h: int = 24, w: int = 30) -> torch.Tensor:
    return torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(1)) * 255


def _close(got: torch.Tensor, want: torch.Tensor, rel: float = 1e-4) -> None:
    torch.testing.assert_close(got, want, rtol=rel, atol=rel * want.abs().max().item())


@pytest.mark.parametrize("backend", ["eager", pytest.param("onnx", marks=needs_onnx)])
def test_backend_equals_plain(small, backend, tmp_path):
    _, model = small
    x = _x()
    want = Predictor(model, "plain")(x)
    predict = Predictor(model, backend, cache_dir=tmp_path)
    _close(predict(x), want)
    _close(predict(_x(33, 27)), Predictor(model, "plain")(_x(33, 27)))  # another size, no rebuild
    assert next(model.parameters()).is_contiguous()  # the caller's model is not changed


def test_compile_backend_equals_plain(small):
    _, model = small
    try:
        got = Predictor(model, "compile")(_x())
    except Exception as exc:  # no C++ compiler, say: the backend is optional
        pytest.skip(f"torch.compile unavailable here: {exc}")
    _close(got, Predictor(model, "plain")(_x()))


def test_compile_backend_raises_no_script_method_deprecation():
    """torch.utils.mkldnn (imported by inductor on the first compiled call) warns 14 times
    about torch.jit.script_method; the compile backend imports it first with that warning
    silenced, so inductor's own import path is quiet. A fresh process: pytest's may have it."""
    code = ("import warnings\n"
            "warnings.filterwarnings('error', message='.*script_method', category=DeprecationWarning)\n"
            "from nasflow.deploy.predictor import _import_mkldnn_quietly\n"
            "_import_mkldnn_quietly()\n"
            "import torch._inductor.fx_passes.pre_grad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "script_method" not in done.stderr


def test_bf16_is_close(small):
    _, model = small
    want = Predictor(model, "plain")(_x())
    got = Predictor(model, "eager", dtype="bf16")(_x())
    assert got.dtype == torch.float32
    assert (got - want).abs().max() < 0.05 * want.abs().max()


@needs_onnx
def test_onnx_is_cached(small, tmp_path):
    _, model = small
    first = Predictor(model, "onnx", cache_dir=tmp_path)
    stamp = first.onnx_path.stat().st_mtime_ns
    second = Predictor(model, "onnx", cache_dir=tmp_path)
    assert second.onnx_path == first.onnx_path and second.onnx_path.stat().st_mtime_ns == stamp
    other = compile_graph(model.graph)  # other weights: another file
    assert Predictor(other, "onnx", cache_dir=tmp_path).onnx_path != first.onnx_path


def test_bad_options_are_one_clear_error(small):
    _, model = small
    with pytest.raises(NasflowError, match="unknown backend 'tensorrt'"):
        Predictor(model, "tensorrt")
    with pytest.raises(NasflowError, match="bf16 runs with the eager or compile"):
        Predictor(model, "onnx", dtype="bf16")
    with pytest.raises(NasflowError, match="N x C x H x W"):
        Predictor(model, "eager")(torch.rand(3, 8, 8))
    assert default_backend("cpu") in ("onnx", "eager")


def test_supernet_export_is_refused(tmp_path):
    supernet = compile_graph(build_graph(load_space(ROOT / "spaces" / "dlsr" / "space.yaml", {"channels": 8})))
    with pytest.raises(NasflowError, match="is a supernet"):
        export_onnx(supernet, tmp_path / "s.onnx")


@needs_onnx
def test_export_command(small, tmp_path):
    from nasflow.cli.main import app

    space, model = small
    save_model(tmp_path / "m", space, model.state_dict())
    result = CliRunner().invoke(app, ["export", str(tmp_path / "m"), "--onnx", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert "max abs difference" in result.output and (tmp_path / "m.onnx").is_file()
    assert check_onnx(model, tmp_path / "m.onnx", size=(40, 52)) < 1e-2  # dynamic H / W
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "m"), "--onnx", str(tmp_path / "m.txt")])
    assert isinstance(bad.exception, NasflowError) and "should end in .onnx" in str(bad.exception)


@needs_onnx
def test_set5_psnr_of_fast_path_equals_plain(shared_dir, tmp_path):
    from nasflow.runs.modeldir import load_model
    from nasflow.spaces.dlsr.data import load_benchmark
    from nasflow.spaces.dlsr.evaluate import evaluate_images
    from nasflow.spaces.dlsr.importer import HERE, RELEASED, import_checkpoint

    name = "RFDN_beta21_ps128_20210128_1000.pt"
    import_checkpoint(shared_dir / "weights" / "dlsr" / name, HERE / RELEASED[name].arch, tmp_path / "m")
    model = load_model(tmp_path / "m")[0]
    images = load_benchmark(shared_dir / "datasets" / "Set5", 2)
    plain = evaluate_images(model, images, 2, bicubic=False, predict=Predictor(model, "plain"))
    for backend in ("eager", "onnx"):
        fast = evaluate_images(model, images, 2, bicubic=False,
                               predict=Predictor(model, backend, cache_dir=tmp_path / "cache"))
        assert abs(fast.psnr - plain.psnr) < 0.005, backend
