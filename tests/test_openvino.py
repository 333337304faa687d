"""OpenVINO as an inference backend: equals the plain path (fp32 precision hint, never the CPU
plugin's bf16 default), one compile per input size, the exactness check, and profiling with it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy_spaces import python_space

from nasflow.compile.supernet import compile_graph
from nasflow.deploy.onnx import export_onnx
from nasflow.deploy.openvino_backend import check_openvino, openvino_available, properties
from nasflow.deploy.predictor import Predictor
from nasflow.errors import NasflowError
from nasflow.search.latency_table import LatencyTable
from nasflow.tasks.contract import task_class_for
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
    task = task_class_for(small.graph.space)  # SR: images, dynamic H and W
    path = export_onnx(small, tmp_path / "m.onnx", task)
    assert check_openvino(small, path, task, size=(40, 52)) < 1e-2
    other = compile_graph(small.graph).eval()  # other weights: the file does not compute it
    with pytest.raises(NasflowError, match="OpenVINO does not reproduce"):
        check_openvino(other, path, task)


def test_bad_options(small):
    with pytest.raises(NasflowError, match="bf16 runs with the eager or compile"):
        Predictor(small, "openvino", dtype="bf16")


def test_predictor_keeps_openvino_out_of_this_process(small, tmp_path):
    # Once OpenVINO's runtime is loaded, fork() (DataLoader workers) hangs or crashes: the
    # Predictor runs it in a worker process, so this process never loads it.
    Predictor(small, "openvino", cache_dir=tmp_path)(_x())
    assert "openvino" not in sys.modules


def test_profile_with_openvino(tmp_path):
    # `nasflow profile --backend openvino` times in its own process (a CLI run): here a subprocess.
    space = tmp_path / "toy.yaml"
    python_space().to_yaml(space)
    done = subprocess.run([sys.executable, "-m", "nasflow.cli.main", "profile", str(space), "--backend", "openvino",
                           "--size", "16x16", "--warmup", "0", "--reps", "1", "--threads", "1", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    table = LatencyTable.model_validate(json.loads(done.stdout)["table"])
    assert table.machine.backend == "openvino" and table.space == "toy"
    assert all(t.ms > 0 for e in table.nodes.values() for t in ([e.timing] if e.timing else list(e.options.values())))
