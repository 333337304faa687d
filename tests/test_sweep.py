"""`nasflow sweep` runs one search per gamma (a large gamma picks the cheap op, gamma 0 the
planted one), `nasflow report DIR --pareto` draws the retrained runs against their cost with
the front marked, and on the DLSR space the paper's three architectures as reference points."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from synthetic import PlantedTask, fast_config, planted_space, register_task

from nasflow.errors import NasflowError
from nasflow.search.derive_run import derive_run
from nasflow.search.report import build_report, expand_runs
from nasflow.search.run_dir import RunDir
from nasflow.derive.genotype import derive_space
from nasflow.hardware.profile import profile_space
from nasflow.search.sweep import budget_values, gamma_dir, gamma_values, parse_values, run_sweep
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space
from nasflow.spaces.dlsr.paper import reference_points
from nasflow.train.config import TrainConfig
from nasflow.train.loop import run_train
from nasflow.viz.pareto import Point, pareto_figure, pareto_front, report_points, write_pareto

DLSR = Path(__file__).resolve().parents[1] / "spaces" / "dlsr"


def test_pareto_front_by_brute_force():
    pts = [Point("a", 10, 5, 30.0), Point("b", 20, 9, 31.0), Point("c", 15, 3, 29.0), Point("d", 20, 1, 31.0),
           Point("e", 30, 8, 30.5)]
    assert pareto_front(pts, "params") == [0, 1, 3]  # e: costlier than b and worse; c: a dominates it
    assert pareto_front(pts, "madds") == [3]  # d: cheapest and best
    assert pareto_front(pts, "params", higher=False) == [0, 2]  # lower is better: c (29) beats a (30)


def test_values_parse_and_fail_clearly():
    assert parse_values("0, 0.1,0.5") == [0.0, 0.1, 0.5]
    for bad in ("", "a", "-1", "0.1,0.10"):
        with pytest.raises(NasflowError, match="--gamma"):
            parse_values(bad)


def test_sweep_retrain_and_pareto(tmp_path):
    config = fast_config(regularizer="params", task=register_task())
    results = run_sweep(config, tmp_path / "sweep", gamma_values([0.0, 5.0]), space=planted_space(), parallel=1)
    assert [(v.name, o.error, o.finished) for v, o in results] == [("gamma-0", None, True), ("gamma-5", None, True)]
    assert [RunDir(gamma_dir(tmp_path / "sweep", g)).config().gamma for g in (0, 5)] == [0.0, 5.0]
    picks = {g: derive_run(gamma_dir(tmp_path / "sweep", g)).genotype.choices["m"] for g in (0, 5)}
    assert picks == {0.0: "conv_5x5", 5.0: "conv_1x1"}  # the cost term moved the search
    for g in (0, 5):
        run = gamma_dir(tmp_path / "sweep", g)
        run_train(TrainConfig(arch=str(run / "derived" / "arch.yaml"), steps=10, batch_size=8, device="cpu",
                              validate_every=10, log_every=5), run / "retrained", task=PlantedTask())
    runs = expand_runs([tmp_path / "sweep"])
    assert [r.name for r in runs] == ["gamma-0", "gamma-5"]
    report = build_report(runs, metric="mse")
    points = report_points(report)
    assert [(p.name, p.params, p.quality) for p in points] == [(r.run.name, r.params, r.value) for r in report.runs]
    assert points[0].params > points[1].params  # conv_5x5 costs more than conv_1x1
    fig = pareto_figure(points, [], "mse", (720, 1280), higher=False)
    scattered = fig.axes[0].collections[0].get_offsets().tolist()
    assert scattered == [[p.params / 1e3, p.quality] for p in points]
    ringed = fig.axes[0].collections[1].get_offsets().tolist()  # the front, lower mse better
    assert ringed == [[points[i].params / 1e3, points[i].quality] for i in pareto_front(points, "params", False)]
    path = write_pareto(report, tmp_path / "pareto.png", higher=False)
    # A latency table adds a panel: each run's derived architecture as the table predicts it.
    table = profile_space(build_graph(planted_space()), (6, 10), warmup=0, reps=2)
    timed = report_points(report, table)
    for p, r in zip(timed, report.runs):
        want = table.predict(build_graph(derive_space(RunDir(r.run).space(), r.genotype)))[0]
        assert p.latency == want > 0
    fig = pareto_figure(timed, [], "mse", (720, 1280), higher=False)
    assert len(fig.axes) == 3 and fig.axes[2].collections[0].get_offsets().tolist() == [[p.latency, p.quality] for p in timed]
    assert len(pareto_figure(points, [], "mse", (720, 1280), higher=False).axes) == 2  # no table: no latency
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 800
    assert reference_points(RunDir(runs[0]).space()) == []  # not the DLSR space: no paper points
    from nasflow.cli.main import run  # the command: the task declares mse lower-is-better

    with pytest.raises(SystemExit) as exc:
        run(["report", str(tmp_path / "sweep"), "--metric", "mse", "--pareto", str(tmp_path / "cli.png")])
    assert exc.value.code == 0 and (tmp_path / "cli.png").is_file()


def test_budget_sweep_keeps_the_tight_budget(tmp_path):
    values = budget_values("params=10k, params=60")
    assert [v.name for v in values] == ["budget-params-10k", "budget-params-60"]
    config = fast_config(regularizer="params", gamma=1.0, task=register_task())
    results = run_sweep(config, tmp_path / "b", values, space=planted_space(), parallel=1)
    assert [o.error for _, o in results] == [None, None]
    runs = expand_runs([tmp_path / "b"])
    assert [r.name for r in runs] == ["budget-params-60", "budget-params-10k"]  # by limit
    assert [RunDir(r).config().budget for r in runs] == ["params=60", "params=10k"]
    derived = [derive_run(r) for r in runs]
    assert derived[0].params <= 60 < derived[1].params  # the tight budget held, the loose one let conv_5x5 in
    for bad in ("", "params", "speed=3", "params=1k,params=1000"):
        with pytest.raises(NasflowError):
            budget_values(bad)


def test_paper_points_on_the_dlsr_space():
    refs = reference_points(load_space(DLSR / "space.yaml"))
    assert [(r.name, r.params, r.quality) for r in refs] == [
        ("DLSR", 322_620, 38.04), ("DLSR-DIV", 327_804, 38.05), ("DLSR-S", 56_268, 37.71)]
    assert [round(r.madds / 1e9, 2) for r in refs] == [67.69, 68.88, 12.21]  # README's table
    assert reference_points(load_space(DLSR / "space.yaml").with_params({"scale": 3})) == []
    fig = pareto_figure([Point("run", 100_000, 20_000_000_000, 37.5)], refs, "psnr", (720, 1280))
    stars = fig.axes[1].collections[-1].get_offsets().tolist()
    assert stars == [[r.madds / 1e9, r.quality] for r in refs]


def test_cli_sweep_and_report_pareto(tmp_path, capsys):
    from nasflow.cli.main import run

    space = tmp_path / "planted.yaml"
    planted_space(task=register_task()).to_yaml(space)
    with pytest.raises(SystemExit) as exc:
        run(["sweep", str(space), "--gamma", "0,2", "--out", str(tmp_path / "s"), "--steps", "6", "--warmup", "2",
             "--batch", "4", "--device", "cpu", "--parallel", "1", "-q"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "gamma 0: done" in out and "gamma 2: done" in out
    with pytest.raises(SystemExit) as exc:
        run(["report", str(tmp_path / "s"), "--pareto", str(tmp_path / "p.png")])
    assert exc.value.code == 2 and "no run has a retrained model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run(["sweep", str(space), "--gamma", "0,2", "--out", str(tmp_path / "t"), "--regularizer", "none"])
    assert exc.value.code == 2 and "needs a cost regularizer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run(["sweep", str(space), "--out", str(tmp_path / "t")])
    assert exc.value.code == 2 and "--gamma 0,0.1,0.2,0.5 or --budget" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run(["sweep", str(space), "--budget", "params=60,params=10k", "--out", str(tmp_path / "u"), "--steps", "4",
             "--warmup", "1", "--batch", "4", "--device", "cpu", "--parallel", "1", "-q"])
    assert exc.value.code == 0 and "budget params=60: done" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "u").iterdir()) == ["budget-params-10k", "budget-params-60"]
