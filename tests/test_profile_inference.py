"""`nasflow bench --profile`'s inference tables (bench/profile_inference.py through
bench/profile_step.py): eager inference through torch.profiler and onnxruntime through its
own profiler, on a tiny derived DLSR (C4, a 24x32 LR image) at a made-up peak; no timing
asserted, only which rows appear and what their FLOPs are."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from nasflow.hardware.peak import Peak

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import profile_inference  # noqa: E402
import profile_step  # noqa: E402
import roofline  # noqa: E402
import speed  # noqa: E402

PEAK = Peak(matmul_fp32=100e9, conv_fp32=80e9, copy_bw=20e9, triad_bw=25e9, threads=1, machine="test")
TINY = {"channels": 4, "scale": 2, "size": (24, 32)}  # ESA pools 7x7 with stride 3


@pytest.fixture(autouse=True)
def _threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _printed(p: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> str:
    profile_step.print_profiles([p], PEAK, top=100)
    return capsys.readouterr().out


def test_eager_inference_profile_has_the_models_convs(capsys: pytest.CaptureFixture[str]) -> None:
    p = profile_step.one("inference", 1, peak=PEAK, inference=TINY)
    assert p["unit"] == "image" and p["useful_flops"] == roofline.inference(4, 2, (24, 32))
    convs = [r for r in p["rows"] if r["op"] == "aten::conv2d"]
    stem = [r for r in convs if r["shape"].startswith("1x3x24x32 ")]
    assert len(stem) == 1 and stem[0]["flops"] > 0
    assert any(" g" in r["shape"] for r in convs)  # the derived cells' depthwise convs
    # A derived model computes what the cost model counts: its convs execute the useful FLOPs
    # to within a few per cent (the cost model's own conventions for bias and ESA's small parts).
    assert p["executed_flops"] == pytest.approx(p["useful_flops"], rel=0.05)
    # The input's and output's layout conversions are the eager path's own, and named so.
    assert any(r["op"] in ("aten::contiguous", "aten::clone", "aten::copy_") and r["limit"].startswith("layout")
               for r in p["rows"])
    assert p["faults_per_image"] >= 0 and p["malloc"] == "default"
    out = _printed(p, capsys)
    assert "Where eager inference" in out and "image " in out and "page faults: " in out
    assert "torch.profiler does not see inside onnxruntime or OpenVINO" in out
    assert "1x3x24x32" in out and "Python: the modules' forward code, outside ATen ops" in out


def test_onnxruntime_inference_profile_reads_its_own_profiler(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    p = profile_step.one("inference-onnx", 1, peak=PEAK, inference=TINY)
    assert p["unit"] == "image"
    convs = [r for r in p["rows"] if r["op"] in profile_inference.ORT_CONV]
    assert convs and all(r["flops"] > 0 for r in convs)
    # Its blocked layout pads channels (C4 to blocks of 8 or 16): it executes at least the useful FLOPs.
    assert p["executed_flops"] >= p["useful_flops"]
    assert sum(r["calls"] for r in p["rows"]) == p["n_events"]
    out = _printed(p, capsys)
    assert "Where onnxruntime inference" in out and "outside onnxruntime nodes" in out


def test_openvino_inference_profile_reads_its_counters(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("openvino")
    p = profile_step.one("inference-openvino", 1, peak=PEAK, inference=TINY)
    convs = [r for r in p["rows"] if r["op"] in profile_inference.ORT_CONV]
    assert convs and all(r["flops"] > 0 for r in convs)
    assert any(r["op"] == "GroupConvolution" and " g4" in r["shape"] for r in convs)  # the depthwise convs
    assert p["executed_flops"] >= 0.9 * p["useful_flops"]  # its blocked layout may pad channels, never drop them
    out = _printed(p, capsys)
    assert "Where OpenVINO inference" in out and "outside OpenVINO nodes" in out


def test_onnxruntime_node_flops_and_the_last_run() -> None:
    conv = profile_inference.ort_flops("Conv", [("float", [1, 48, 10, 20]), ("float", [48, 1, 5, 5])],
                                       [("float", [1, 48, 10, 20])])
    assert conv == 2 * 1 * 10 * 20 * 48 * 25
    assert profile_inference.ort_flops("MatMul", [("float", [4, 8]), ("float", [8, 3])], []) == 2 * 4 * 8 * 3
    assert profile_inference.ort_flops("Relu", [("float", [1, 4, 2, 2])], [("float", [1, 4, 2, 2])]) == 0
    trace = [{"name": "model_run", "ts": 0, "dur": 10},
             {"cat": "Node", "name": "a_kernel_time", "ts": 2, "dur": 1},
             {"name": "model_run", "ts": 20, "dur": 10},
             {"cat": "Node", "name": "b_kernel_time", "ts": 22, "dur": 3},
             {"cat": "Node", "name": "b_fence_before", "ts": 23, "dur": 0}]
    nodes, run_us = profile_inference.last_run_nodes(trace)
    assert [n["name"] for n in nodes] == ["b_kernel_time"] and run_us == 10.0
    table = profile_inference.analyse_nodes(
        [{"op": "Conv", "dur_us": 100.0, "inputs": [("float", [1, 48, 10, 20]), ("float", [48, 1, 5, 5])],
          "outputs": [("float", [1, 48, 10, 20])]},
         {"op": "ReorderOutput", "dur_us": 50.0, "inputs": [("float", [1, 48, 10, 20])],
          "outputs": [("float", [1, 48, 10, 20])]}], wall_s=0.001, peak=PEAK)
    rows = {r["op"]: r for r in table["rows"]}
    assert rows["Conv"]["shape"] == "1x48x10x20 48x1x5x5 g48" and rows["Conv"]["limit"].startswith("depthwise")
    assert rows["ReorderOutput"]["limit"].startswith("layout conversion")
    assert table["outside_s"] == pytest.approx(0.001 - 150e-6) and "nodes_over_run" not in table
    # Node timers that add up to more than the run (OpenVINO's overlap): shares are of their sum.
    over = profile_inference.analyse_nodes([{"op": "Add", "dur_us": 150.0, "inputs": [], "outputs": []}],
                                           wall_s=100e-6, peak=PEAK)
    assert over["nodes_over_run"] == pytest.approx(1.5) and over["wall_s"] == pytest.approx(150e-6)
    assert over["outside_s"] == 0.0


def test_bench_profile_follows_the_section(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`nasflow bench --profile --only inference` profiles inference at the bench's own size."""
    asked: list[Any] = []
    monkeypatch.setattr(roofline, "peak", lambda threads: PEAK)
    monkeypatch.setattr(profile_step, "run", lambda threads, peak, names, sizes: asked.append((names, sizes)) or [])
    import inference_speed

    monkeypatch.setattr(inference_speed, "run", lambda *a: {"image": "x", "weights": "w", "rows": [
        {"backend": "plain", "dtype": "fp32", "s_per_image": 1.0, "cpu_s_per_image": 1.0, "max_abs_diff": 0.0,
         "psnr": 30.0}]})
    speed.main(["--only", "inference", "--profile", "--channels", "4", "--threads", "1"])
    assert asked == [(speed.profile_names("inference"), {"channels": 4, "scale": 2, "size": speed.INFERENCE_SIZE})]
    assert speed.profile_names("inference")[:2] == ["inference", "inference-onnx"]
    assert speed.profile_names("search") == ["dlsr", "darts"] and speed.profile_names("train") == []
    assert set(speed.profile_names(None)) <= set(profile_step.NAMES)


def test_a_bad_size_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        profile_step.main(["--size", "360by640"])
    assert stop.value.code == 2
    assert "'360by640' is not an LR size HxW, e.g. 360x640" in capsys.readouterr().err


def test_an_output_above_the_mmap_threshold_is_named_the_allocators() -> None:
    import op_profile

    row = {"op": "aten::leaky_relu", "shape": "1x48x360x640", "flops": 0, "pct_peak": 0.0, "ms": 800.0,
           "calls": 23, "gb_s": 2.4, "out_bytes": 48 * 360 * 640 * 4}
    assert op_profile.limit(row, PEAK, mmap_bytes=32 << 20) == (
        "allocator: output page-faulted in (a fresh 42 MiB mmap; 10% of triad)")
    assert op_profile.limit(row, PEAK).startswith("memory-bound element-wise")  # no mmap threshold in force
    small = {**row, "out_bytes": 16 << 20}
    assert op_profile.limit(small, PEAK, mmap_bytes=32 << 20).startswith("memory-bound element-wise")
    conv = {**row, "op": "aten::conv2d", "flops": 10**9, "pct_peak": 20.0}
    assert op_profile.limit(conv, PEAK, mmap_bytes=32 << 20).startswith("allocator: output page-faulted in (a fresh 42 MiB mmap)")
    assert op_profile.limit({**conv, "pct_peak": 40.0}, PEAK, mmap_bytes=32 << 20) == ""
