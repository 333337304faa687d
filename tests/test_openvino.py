"""OpenVINO as an inference backend: equals the plain path (fp32 precision hint, never the CPU
plugin's bf16 default), one compile per input size, the exactness check, and profiling with it."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from toy_spaces import python_space

from nasflow.compile.supernet import compile_graph
from nasflow.deploy.onnx import export_onnx
from nasflow.deploy.openvino_backend import check_openvino, openvino_available, properties
from nasflow.deploy.predictor import Predictor
from nasflow.errors import NasflowError
from nasflow.hardware.profile import profile_space
from nasflow.hardware.timing import Runner
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed (pip install openvino)")


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = compile_graph(build_graph(load_space(ROOT / "spaces" / "dlsr" / "dlsr.yaml", {"channels": 8}))).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def _x(h: int = 24, w: int = 30) -> torch.Tensor:
    return torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(1)) * 255


def test_precision_is_f32_explicitly():
    assert properties(2) == {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                             "INFERENCE_NUM_THREADS": "2"}


def test_openvino_equals_plain(small, tmp_path):
    predict = Predictor(small, "openvino", cache_dir=tmp_path)
    for h, w in ((24, 30), (33, 27)):  # another size: compiled again for it
        want = Predictor(small, "plain")(_x(h, w))
        got = predict(_x(h, w))
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_exactness_check_catches_a_wrong_graph(small, tmp_path):
    path = export_onnx(small, tmp_path / "m.onnx")
    assert check_openvino(small, path) < 1e-2
    other = compile_graph(small.graph).eval()  # other weights: the file does not compute it
    with pytest.raises(NasflowError, match="OpenVINO does not reproduce"):
        check_openvino(other, path)


def test_bad_options(small):
    with pytest.raises(NasflowError, match="bf16 runs with the eager or compile"):
        Predictor(small, "openvino", dtype="bf16")


def test_profile_with_openvino():
    graph = build_graph(python_space())
    table = profile_space(graph, (8, 8), Runner("openvino"), warmup=0, reps=1)
    assert table.machine.backend == "openvino"
    assert all(t.ms > 0 for e in table.nodes.values() for t in ([e.timing] if e.timing else list(e.options.values())))
