"""`nasflow bench`'s rows as fractions of the measured peak (bench/speed.py, bench/roofline.py,
bench/train_step.py) and the per-op profile's accounting (bench/op_profile.py): tiny inputs,
made-up timings, no timing asserted."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from nasflow.hardware.flops import inference_flops
from nasflow.hardware.peak import Peak

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import op_profile  # noqa: E402
import roofline  # noqa: E402
import speed  # noqa: E402
import train_step  # noqa: E402

PEAK = Peak(matmul_fp32=100e9, conv_fp32=80e9, copy_bw=20e9, triad_bw=25e9, threads=1, machine="test",
            matmul_bf16=200e9, conv_bf16=150e9)


def search_row(name: str, s: float, reuse: bool = False, amp: str = "none") -> dict[str, Any]:
    return {"name": name, "fuse": True, "channels_last": True, "reuse_forward": reuse, "amp": amp,
            "s_per_step": s, "cpu_s_per_step": s, "peak_rss_mb": 100.0, "setup_rss_mb": 50.0, "first_loss": 1.0}


def test_search_rows_get_gflops_and_percent_of_peak(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(channels=4, scale=2, patch=8, batch=1, threads=2)
    rows = [search_row("plain", 2.0), search_row("+ reuse_forward", 1.0, reuse=True),
            search_row("+ bf16 autocast", 0.5, reuse=True, amp="bf16"), {"name": "broken", "error": "boom"}]
    speed.add_search_rates(rows, args, PEAK)
    three = roofline.search_step(4, 2, 8, 1, reuse_forward=False)
    two = roofline.search_step(4, 2, 8, 1, reuse_forward=True)
    assert 0 < two < three  # reuse_forward saves a pass
    assert rows[0]["flops"] == three and rows[0]["gflops"] == pytest.approx(three / 2.0 / 1e9)
    assert rows[0]["pct_peak"] == pytest.approx(100 * three / 2.0 / 100e9)
    assert rows[2]["pct_peak"] == pytest.approx(100 * two / 0.5 / 200e9)  # bf16 rows: the bf16 peak
    assert "gflops" not in rows[3]
    # With one thread the peak is on CPU time, and so are the rows' rates.
    assert roofline.seconds({"s_per_step": 2.0, "cpu_s_per_step": 1.5}, "step", 1) == 1.5
    assert roofline.seconds({"s_per_step": 2.0, "cpu_s_per_step": 1.5}, "step", 2) == 2.0
    speed._peak = PEAK
    speed.print_search(rows)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("configuration"))
    assert "GFLOP/s" in header and "% peak" in header
    plain = next(line for line in out.splitlines() if line.startswith("plain"))
    assert f"{rows[0]['pct_peak']:6.1f}%" in plain and f"{rows[0]['gflops']:8.1f}" in plain
    assert "fp32 100 GFLOP/s, bf16 200" in out


def test_inference_and_training_rows_get_them_too(capsys: pytest.CaptureFixture[str]) -> None:
    result = {"image": "x", "weights": "random", "rows": [
        {"backend": "plain", "dtype": "fp32", "s_per_image": 2.0, "cpu_s_per_image": 2.0, "max_abs_diff": 0.0,
         "psnr": 30.0},
        {"backend": "eager", "dtype": "bf16", "s_per_image": 1.0, "cpu_s_per_image": 1.0, "max_abs_diff": 0.1,
         "psnr": 29.9}]}
    args = argparse.Namespace(channels=4, scale=2, threads=2)
    speed.add_inference_rates(result, args, PEAK)
    flops = roofline.inference(4, 2, speed.INFERENCE_SIZE)
    assert result["rows"][1]["pct_peak"] == pytest.approx(100 * flops / 1.0 / 200e9)
    speed._peak = PEAK
    speed.print_inference(result)
    assert "GFLOP/s" in capsys.readouterr().out

    arch = str(BENCH.parent / "spaces" / "dlsr" / "dlsr-s.yaml")
    train = [{"name": "plain", "s_per_step": 2.0, "first_loss": 1.0}, {"name": "x", "error": "boom"}]
    for r in train:
        if "error" not in r:
            r.update(roofline.rate(roofline.train_step(Path(arch), 2, 16), r["s_per_step"], PEAK, "fp32"))
    fwd = inference_flops(roofline._graph(Path(arch), {}), (8, 8), batch=2)
    assert 2.9 * fwd < train[0]["flops"] < 3 * fwd  # forward, dX, dW; no dX for the first conv
    train_step.print_train(train, arch, 2, 16, 1, 1, PEAK)
    out = capsys.readouterr().out
    assert "% peak" in out and "failed: boom" in out


def test_the_op_profile_counts_what_each_conv_executes() -> None:
    x = torch.rand(2, 8, 16, 16, requires_grad=True)
    w = torch.rand(8, 8, 3, 3, requires_grad=True)
    dw = torch.rand(8, 1, 5, 5, requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        y = F.conv2d(x, w, padding=1, stride=2)
        z = F.conv2d(torch.relu(x), dw, padding=2, groups=8)
        torch.cat([y.flatten(), z.flatten()]).sum().backward()
    table = op_profile.analyse(prof.events(), wall_s=1.0, peak=PEAK)
    rows = {(r["op"], r["shape"]): r for r in table["rows"]}
    dense = 2 * 2 * 8 * 8 * 8 * 8 * 9  # batch, c_out, 8x8 output (stride 2), c_in x 3x3
    depthwise = 2 * 2 * 8 * 16 * 16 * 25
    assert rows[("aten::conv2d", "2x8x16x16 8x8x3x3")]["flops"] == dense
    assert rows[("aten::conv2d", "2x8x16x16 8x1x5x5 g8")]["flops"] == depthwise
    assert rows[("aten::convolution_backward", "2x8x8x8 2x8x16x16 8x8x3x3 dXW")]["flops"] == 2 * dense
    assert rows[("aten::convolution_backward", "2x8x16x16 2x8x16x16 8x1x5x5 g8 dXW")]["flops"] == 2 * depthwise
    assert table["executed_flops"] == 3 * (dense + depthwise)
    cat = next(r for r in table["rows"] if r["op"] == "aten::cat")
    assert cat["shape"] == "1024 4096" and cat["flops"] == 0 and cat["limit"].startswith("layout conversion")
    # At a made-up peak of 1 FLOP/s every conv is above 30%; at 1e30 each gets a named limit.
    slow = op_profile.analyse(prof.events(), 1.0, Peak(1e30, 1e30, 1.0, 1.0, 1, "test"))
    limits = {r["shape"]: r["limit"] for r in slow["rows"] if r["flops"]}
    assert limits["2x8x16x16 8x1x5x5 g8"].startswith("depthwise")
    assert all(limits.values())
    doubled = op_profile.analyse(prof.events(), 2.0, PEAK, scale=2.0)  # op times put on another clock
    assert doubled["aten_s"] == pytest.approx(2 * table["aten_s"])
    # The profiler's cost per event comes off every op, for each event it holds (conv2d's children too).
    event = next(e for e in prof.events() if e.name == "aten::conv2d" and e.input_shapes[1] == [8, 8, 3, 3])
    held = op_profile._events_in(event)
    assert held >= 3  # conv2d -> convolution -> _convolution -> the kernel
    less = op_profile.analyse(prof.events(), 1.0, PEAK, overhead_us=1.0)
    conv = next(r for r in less["rows"] if r["shape"] == "2x8x16x16 8x8x3x3")
    assert conv["ms"] == pytest.approx(max(event.cpu_time_total - held, 0.0) / 1e3)
    # Times from a second trace of the same ops when they match one for one, else its own.
    n = len(op_profile.top_level(prof.events()))
    same = op_profile.analyse(prof.events(), 1.0, PEAK, timed=prof.events())["times_from"]
    assert same == f"a trace without shapes for {n} of {n} ops"
    with profile(activities=[ProfilerActivity.CPU]) as other:
        torch.relu(x)
    assert op_profile.analyse(prof.events(), 1.0, PEAK, timed=other.events())["times_from"].endswith(f" 0 of {n} ops")
    kinds = dict(op_profile.by_limit(table))
    assert sum(kinds.values()) == pytest.approx(max(table["aten_s"], 1.0))
