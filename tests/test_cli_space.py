"""`nasflow validate` and `nasflow cost` end to end, as a user runs them."""
from __future__ import annotations

import json

from toy_spaces import python_space, yaml_space_file
from typer.testing import CliRunner

from nasflow.cli.app import run
from nasflow.cli.main import app

runner = CliRunner()


def test_validate_ok(tmp_path):
    path = tmp_path / "toy.yaml"
    python_space().to_yaml(path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "toy: search space" in result.output and "alpha m1: 4 options, 3 node(s)" in result.output


def test_cost_json_totals_follow_set(tmp_path):
    path = tmp_path / "toy.yaml"
    python_space().to_yaml(path)
    small = runner.invoke(app, ["cost", str(path), "--json", "--size", "64x48"])
    big = runner.invoke(app, ["cost", str(path), "--json", "--size", "64x48", "--set", "C=16"])
    assert small.exit_code == 0 and big.exit_code == 0, small.output + big.output
    a, b = json.loads(small.output), json.loads(big.output)
    assert a["input_size"] == [24, 32] and a["params"] < b["params"]
    assert a["params"] == sum(r["params"] for r in a["rows"])


def test_cost_table(tmp_path):
    result = runner.invoke(app, ["cost", str(yaml_space_file(tmp_path)), "--size", "32x32"])
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "sep_conv_5x5" in result.output


def test_user_errors_are_one_line_without_traceback(tmp_path, capsys):
    bad = yaml_space_file(tmp_path, "name: t\ninputs: {x: 3}\nnodes:\n  a: {op: conv_3x4, in: x}\noutput: a\n")
    for argv in (["validate", str(bad)], ["cost", str(tmp_path / "missing.yaml")],
                 ["validate", str(bad), "--set", "C"]):
        try:
            run(argv)
        except SystemExit as exc:
            assert exc.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err


def test_ops_lists_the_registry_with_arguments():
    result = runner.invoke(app, ["ops", "--json"])
    assert result.exit_code == 0, result.output
    ops = json.loads(result.output)
    assert ops["conv_3x3"]["args"] == {"bias": False}
    assert ops["lrelu"]["args"] == {"slope": 0.05} and "esa" in ops and "dil_conv_5x5" in ops


def test_cost_reproduces_table_i(tmp_path):
    """`nasflow cost` on one mixed layer of the paper's nine candidates at 50 channels on a
    640x360 input (x2 to 1280x720): every row of Table I, exactly."""
    from test_ops import TABLE_I

    path = tmp_path / "mrb.yaml"
    path.write_text("name: mrb\ninputs: {x: 50}\nnodes:\n"
                    f"  m: {{choice: [{', '.join(TABLE_I)}], in: x}}\noutput: m\n")
    result = runner.invoke(app, ["cost", str(path), "--size", "640x360", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["op"]: r for r in json.loads(result.output)["rows"] if r["node"] == "m"}
    assert set(rows) == set(TABLE_I)
    for name, (params_k, madds_g) in TABLE_I.items():
        assert round(rows[name]["params"] / 1e3, 2) == params_k
        assert round(rows[name]["madds"] / 1e9, 3) == madds_g
