"""`nasflow profile` (and --check) and `nasflow cost --latency-table`, as a user runs them."""
from __future__ import annotations

import json

import pytest
from toy_spaces import python_space
from typer.testing import CliRunner

from nasflow.cli.app import run
from nasflow.cli.main import app
from nasflow.derive.genotype import Genotype, derive_space
from nasflow.search.latency_table import load_table
from nasflow.space.graph import build_graph

runner = CliRunner()


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profile")
    space = tmp / "toy.yaml"
    python_space().to_yaml(space)
    out = tmp / "toy-latency.json"
    result = runner.invoke(app, ["profile", str(space), "--size", "20x12", "--threads", "1", "--warmup", "0",
                                 "--reps", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return space, out, result.output


def test_profile_writes_and_shows_a_stamped_table(profiled):
    space, out, output = profiled
    table = load_table(out)
    assert table.input_size == (6, 10) and table.output_size == (12, 20)  # --size is the output, as cost
    assert table.machine.threads == 1 and table.reps == 2
    assert "latency on a 10x6 input (20x12 output)" in output and "sep_conv_3x3" in output
    assert f"wrote {out}" in output.replace("\n", "")


def test_cost_shows_predicted_latency(profiled, tmp_path):
    space, out, _ = profiled
    graph = build_graph(python_space())
    derived = derive_space(graph.space, Genotype(choices={"m1": "sep_conv_3x3"}, edges={"e3": ["c3", "c1"]}))
    arch = tmp_path / "arch.yaml"
    derived.to_yaml(arch)
    result = runner.invoke(app, ["cost", str(arch), "--size", "20x12", "--json", "--latency-table", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    want = load_table(out).predict(build_graph(derived))[0]
    assert data["latency"]["predicted_ms"] == pytest.approx(want)
    view = runner.invoke(app, ["cost", str(space), "--size", "64x48", "--latency-table", str(out)])
    assert view.exit_code == 0, view.output
    text = " ".join(view.output.split())
    assert "ms" in view.output and "per candidate" in text and "not rescaled to 64x48" in text


def test_check_reports_rank_correlation_and_error(profiled):
    space, out, _ = profiled
    result = runner.invoke(app, ["profile", str(space), "--table", str(out), "--check", "-n", "3",
                                 "--warmup", "0", "--reps", "2", "--json"])
    assert result.exit_code == 0, result.output
    check = json.loads(result.output)["check"]
    assert len(check["rows"]) == 3 and -1 <= check["spearman"] <= 1 and check["mean_relative_error"] >= 0


def test_bad_tables_are_one_line(profiled, tmp_path, capsys):
    space, out, _ = profiled
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    for argv in (["cost", str(space), "--latency-table", str(bad)],
                 ["cost", str(space), "--set", "C=4", "--latency-table", str(out)],
                 ["profile", str(space), "--table", str(out)]):
        with pytest.raises(SystemExit) as exc:
            run(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err, err


def test_profile_calibrates_on_cpu_time_and_checks_one_architecture(profiled, tmp_path):
    space, _, _ = profiled
    out = tmp_path / "cpu.json"
    result = runner.invoke(app, ["profile", str(space), "--size", "20x12", "--threads", "1", "--warmup", "0",
                                 "--reps", "2", "--clock", "cpu", "--calibrate", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = load_table(out)
    assert table.machine.clock == "cpu" and table.calibrated_on == 1
    assert "per-node overhead" in " ".join(result.output.split()) and "CPU time" in result.output
    derived = derive_space(build_graph(python_space()).space,
                           Genotype(choices={"m1": "conv_3x3"}, edges={"e3": ["c1", "c2"]}))
    arch = tmp_path / "arch.yaml"
    derived.to_yaml(arch)
    check = runner.invoke(app, ["profile", str(arch), "--table", str(out), "--check", "--warmup", "0",
                                "--check-reps", "2", "--json"])
    assert check.exit_code == 0, check.output
    data = json.loads(check.output)["check"]
    assert len(data["rows"]) == 1 and data["spearman"] is None and data["rows"][0]["measured_ms"] > 0
