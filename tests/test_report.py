"""Multi-seed search and `nasflow report`: Student t quantiles against published values, the
confidence interval by hand, reports over real (tiny) search runs with retrained models,
and --seeds run here and in parallel processes giving the same runs as one search per seed."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from synthetic import CANDIDATES, fast_config, planted_space
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.derive.genotype import Genotype, derive_space
from nasflow.search.derive_run import derive_run
from nasflow.errors import NasflowError
from nasflow.runs.modeldir import save_model
from nasflow.space.graph import build_graph
from nasflow.search.multiseed import parse_seeds, run_seeds, seed_dir
from nasflow.search.report import build_report, expand_runs, model_dir_of
from nasflow.search.run_dir import RunDir
from nasflow.search.loop import run_search
from nasflow.search.stats import betainc, mean_ci, t_cdf, t_quantile
from nasflow.compile.supernet import compile_graph

TASK = "synthetic:PlantedTask"  # found by module:attr, also in spawned processes


# --- statistics ---------------------------------------------------------------------------
# Two-sided 95% (p = 0.975) and other quantiles of Student's t, from published tables.
T_TABLE = [(0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 5, 2.5706), (0.975, 10, 2.2281),
           (0.975, 30, 2.0423), (0.95, 3, 2.3534), (0.995, 4, 4.6041), (0.9, 8, 1.3968)]


@pytest.mark.parametrize("p, df, want", T_TABLE)
def test_t_quantile_matches_tables(p, df, want):
    assert t_quantile(p, df) == pytest.approx(want, abs=1e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-want, abs=1e-4)
    assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-10)


def test_t_tends_to_the_normal_and_betainc_is_exact():
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-5)
    # I_0.4(2, 3) = sum_{j=2..4} C(4, j) 0.4^j 0.6^(4-j) = 0.5248
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-12)
    assert t_cdf(0.0, 7) == pytest.approx(0.5, abs=1e-12)


def test_mean_ci_by_hand():
    psnr = [37.81, 37.92, 37.70, 37.88, 37.95, 37.84]  # six seeds, as in the paper's Table X
    ci = mean_ci(psnr)
    mean = sum(psnr) / 6
    s = math.sqrt(sum((x - mean) ** 2 for x in psnr) / 5)
    assert ci.n == 6 and ci.mean == pytest.approx(mean) and ci.std == pytest.approx(s)
    assert ci.half_width == pytest.approx(2.570582 * s / math.sqrt(6), rel=1e-6)
    assert (ci.low, ci.high) == pytest.approx((mean - ci.half_width, mean + ci.half_width))
    with pytest.raises(NasflowError, match="at least 2 values, got 1"):
        mean_ci([37.8])


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("0-5") == [0, 1, 2, 3, 4, 5]
    assert parse_seeds("3, 7-8") == [3, 7, 8]
    for bad in ("a,b", "1,1", ""):
        with pytest.raises(NasflowError, match="--seeds"):
            parse_seeds(bad)


# --- runs ---------------------------------------------------------------------------------
def config(**changes):
    return fast_config(**{"steps": 8, "warmup": 2, "log_every": 4, "checkpoint_every": 4,
                          "task": TASK, **changes})


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory) -> Path:
    """OUT/seed-0..2: three searches run here one after another (parallel=1)."""
    out = tmp_path_factory.mktemp("seeds") / "out"
    outcomes = run_seeds(config(), out, [0, 1, 2], space=planted_space(), parallel=1)
    assert [(o.seed, o.step, o.finished, o.error) for o in outcomes] == [(s, 8, True, None) for s in (0, 1, 2)]
    return out


def test_each_seed_is_the_search_with_that_seed(seed_runs, tmp_path):
    for seed in (0, 1, 2):
        assert RunDir(seed_dir(seed_runs, seed)).config().seed == seed
    alone = run_search(config(seed=2), tmp_path / "alone", space=planted_space())
    got, _ = RunDir(seed_dir(seed_runs, 2)).load_checkpoint()
    want, _ = RunDir(alone.run_dir).load_checkpoint()
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key
    # Different seeds, different searches.
    other, _ = RunDir(seed_dir(seed_runs, 1)).load_checkpoint()
    assert not torch.equal(other["arch.alpha.m"], got["arch.alpha.m"])


def test_parallel_processes_give_the_same_runs(seed_runs, tmp_path):
    outcomes = run_seeds(config(), tmp_path / "par", [1, 2], space=planted_space(), parallel=2)
    assert [(o.seed, o.finished, o.error) for o in outcomes] == [(1, True, None), (2, True, None)]
    for seed in (1, 2):
        got, _ = RunDir(seed_dir(tmp_path / "par", seed)).load_checkpoint()
        want, _ = RunDir(seed_dir(seed_runs, seed)).load_checkpoint()
        for key in want:
            assert torch.equal(got[key], want[key]), (seed, key)


def retrain(run: Path, psnr: float, where: Path) -> Path:
    """Stand-in for `nasflow train`: the derived architecture with meta.json's validation PSNR."""
    derived = derive_run(run)
    weights = compile_graph(build_graph(derived.space)).state_dict()
    return save_model(where, derived.space, weights, {"trained_by": "test", "valid": {"psnr": psnr, "ssim": 0.9}})


def test_report_rows_and_ci_over_retrained_runs(seed_runs, tmp_path):
    runs = expand_runs([seed_runs])
    assert [r.name for r in runs] == ["seed-0", "seed-1", "seed-2"]
    psnrs = [37.6, 37.9, 37.75]
    # seed-0 and seed-1 retrained beside the run; seed-2 a training run given with --models.
    retrain(runs[0], psnrs[0], runs[0] / "retrained")
    retrain(runs[1], psnrs[1], runs[1] / "retrained" / "best")
    train_run = retrain(runs[2], psnrs[2], tmp_path / "train2" / "model").parent
    report = build_report(runs, [runs[0] / "retrained", runs[1] / "retrained", train_run], metric="psnr")
    for row, seed, psnr in zip(report.runs, (0, 1, 2), psnrs):
        derived = derive_run(row.run, out=tmp_path / f"d{seed}")
        assert (row.seed, row.step, row.value, row.arch_matches) == (seed, 8, psnr, True)
        assert row.genotype == derived.genotype and (row.params, row.madds) == (derived.params, derived.madds)
        assert row.params > 0 and row.madds > 0
    ci = report.summary
    assert ci is not None and ci.n == 3 and ci.mean == pytest.approx(37.75)
    # s = 0.15 (deviations -0.15, 0.15, 0): half width = t_{0.975,2} * 0.15 / sqrt(3)
    assert ci.half_width == pytest.approx(4.302653 * 0.15 / math.sqrt(3), rel=1e-5)
    # Without --models, RUN/retrained is found for the first two; the third has none.
    found = build_report(runs, metric="psnr")
    assert [r.value for r in found.runs] == [psnrs[0], psnrs[1], None]
    # by default the task's best_metric (the planted task's mse), which these models do not record
    assert build_report(runs).metric == "mse" and all(r.value is None for r in build_report(runs).runs)
    assert found.runs[1].model == runs[1] / "retrained" / "best" and "not retrained" in found.runs[2].note


def test_report_flags_a_model_of_another_architecture(seed_runs, tmp_path):
    run = expand_runs([seed_runs])[0]
    row = build_report([run]).runs[0]
    # The run's genotype with another op for `m`: a model of a different architecture.
    other_op = next(c for c in CANDIDATES if c != row.genotype.choices["m"])
    space = derive_space(RunDir(run).space(), Genotype({"m": other_op}, row.genotype.edges))
    save_model(tmp_path / "other", space, compile_graph(build_graph(space)).state_dict(), {"valid": {"psnr": 30.0}})
    flagged = build_report([run], [tmp_path / "other"], metric="psnr").runs[0]
    assert flagged.arch_matches is False and flagged.value == 30.0
    assert "not this run's derived one" in flagged.note


def test_report_errors_name_the_fix(seed_runs, tmp_path):
    runs = expand_runs([seed_runs])
    with pytest.raises(NasflowError, match=r"1 model\(s\) for 3 run\(s\)"):
        build_report(runs, [tmp_path])
    with pytest.raises(NasflowError, match="neither a model directory"):
        model_dir_of(tmp_path)
    with pytest.raises(NasflowError, match="is not a search run"):
        build_report([tmp_path])


# --- command line -------------------------------------------------------------------------
def test_cli_seeds_then_report_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "planted.yaml").write_text(planted_space(task=TASK).to_yaml())
    runner = CliRunner()
    args = ["search", "planted.yaml", "--seeds", "3,4", "--parallel", "1", "--steps", "6", "--warmup", "2",
            "--batch", "8", "--device", "cpu", "--snapshot-steps", "none", "--out", "multi", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "seed 3: done" in result.output and "seed 4: done" in result.output and "2 searches" in result.output
    assert RunDir("multi/seed-4").config().seed == 4
    # --resume continues every seed's run with its own seed (here: to more steps).
    result = runner.invoke(app, ["search", "--seeds", "3,4", "--resume", "--out", "multi", "--steps", "9", "-q"])
    assert result.exit_code == 0, result.output
    for seed in (3, 4):
        run = RunDir(f"multi/seed-{seed}")
        assert run.config().seed == seed and run.load_checkpoint()[1]["step"] == 9
    result = runner.invoke(app, ["report", "multi", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [r["seed"] for r in data["runs"]] == [3, 4] and data["summary"] is None
    assert data["metric"] == "mse"  # the task's declared best metric
    assert all(r["params"] > 0 and r["mse"] is None for r in data["runs"])
    bad = runner.invoke(app, ["search", "planted.yaml", "--seeds", "1", "--seed", "1", "--out", "x"])
    assert bad.exit_code != 0 and "not both" in str(bad.exception or bad.output)
