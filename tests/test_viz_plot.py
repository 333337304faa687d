"""`nasflow plot`: every figure is built from a tiny real run and read back: the files are
valid PNGs of a sensible size, and the lines drawn are the run's metrics.jsonl series, whose
last step equals softmax of the checkpoint's arch parameters. Also: any strategy, a run in
progress (with a half-written last line), a --seeds folder, a training run, and the one-line
message when matplotlib is missing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from synthetic import PlantedTask, fast_config, planted_space, register_task

from nasflow.derive.genotype import Genotype, derive_space, genotype_from_arch
from nasflow.search.loop import run_search
from nasflow.search.multiseed import run_seeds
from nasflow.search.run_dir import RunDir, arch_logits
from nasflow.space.graph import build_graph
from nasflow.strategies import STRATEGIES
from nasflow.train.config import TrainConfig
from nasflow.train.loop import run_train
from nasflow.viz.run_data import run_history
from nasflow.viz.run_plots import figures, plot_run, plot_runs

CONFIG = dict(steps=30, warmup=10, log_every=5, gamma=0.1, snapshot_steps=[])


def search(path: Path, **changes) -> Path:
    run_search(fast_config(**{**CONFIG, **changes}), path, space=planted_space(), task=PlantedTask())
    return path


def checkpoint_softmax(run: Path) -> dict[str, list[float]]:
    rd = RunDir(run)
    arch, _ = rd.load_arch()
    logits = arch_logits(build_graph(rd.space()), arch)
    return {label: torch.softmax(t.double(), -1).tolist() for label, t in logits.items()}


def check_png(path: Path, min_w: int = 400, min_h: int = 250) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        w, h = img.size
    assert min_w <= w <= 4000 and min_h <= h <= 3000, (path, img.size)


def drawn(ax) -> dict[str, tuple[list[float], list[float]]]:
    """{legend label: (x, y)} of an axes' labelled lines (the warm-up mark has no label)."""
    return {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.get_lines()
            if not ln.get_label().startswith("_")}


# The strategies whose arch params move (not SPOS, which learns none): their lines must.
@pytest.mark.parametrize("strategy", sorted(n for n in STRATEGIES.names() if STRATEGIES.get(n).learns_arch))
def test_search_figures_draw_the_metrics_and_end_at_the_checkpoint(tmp_path, strategy):
    run = search(tmp_path / "run", strategy=strategy)
    result = plot_run(run)
    names = sorted(p.name for p in result.files)
    assert names == sorted(f"{n}.{e}" for n in ("alpha", "beta", "losses", "genotype") for e in ("png", "svg"))
    for p in result.files:
        if p.suffix == ".png":
            check_png(p)
        else:
            assert p.read_text().lstrip().startswith("<?xml") and "</svg>" in p.read_text()

    records = RunDir(run).read_metrics()
    steps = [r["step"] for r in records]
    graph = build_graph(planted_space())
    figs = figures(run_history(run))
    final = checkpoint_softmax(run)
    for kind, label in (("alpha", "m"), ("beta", "e")):
        lines = drawn(figs[kind].axes[0])
        options = graph.decisions[label].options
        assert list(lines) == list(options)  # one line per candidate, labelled by it
        for j, option in enumerate(options):
            x, y = lines[option]
            assert x == steps
            assert y == [r["weights"][label][j] for r in records]
            assert y[-1] == pytest.approx(final[label][j], abs=1e-6)  # the checkpoint's softmax
    # The arch moved (else equal lines would say little).
    assert records[-1]["weights"]["m"] != records[0]["weights"]["m"]

    loss_axes = figs["losses"].axes
    losses = drawn(loss_axes[0])
    assert set(losses) == {k for k in records[-1]["losses"] if k.endswith("/loss")} >= {"train/loss", "valid/loss"}
    x, y = losses["valid/loss"]
    want = [(r["step"], r["losses"]["valid/loss"]) for r in records if "valid/loss" in r["losses"]]
    assert list(zip(x, y)) == want and want[0][0] > 10  # valid loss exists after warm-up only
    reg = drawn(loss_axes[-1])
    assert list(zip(*reg["reg/penalty"])) == [(r["step"], r["losses"]["reg/penalty"]) for r in records
                                               if "reg/penalty" in r["losses"]]
    assert "gamma=0.1" in loss_axes[-1].get_title()

    # Genotype history: the right-hand text of each row is the checkpoint's genotype.
    geno = genotype_from_arch(graph, arch_logits(graph, RunDir(run).load_arch()[0]))
    texts = [t.get_text() for t in figs["genotype"].axes[0].texts]
    assert geno.choices["m"] in texts and "+".join(geno.edges["e"]) in texts
    history = run_history(run)
    changes = [(c.step, c.label) for c in history.changes]
    want_changes = [(b["step"], label) for a, b in zip(records, records[1:]) for label, kind in
                    (("m", "choices"), ("e", "edges")) if a["genotype"][kind][label] != b["genotype"][kind][label]]
    assert sorted(changes) == sorted(want_changes)


def test_a_run_in_progress_with_a_half_written_line(tmp_path):
    config = fast_config(**CONFIG)
    run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask(), stop_at=20)
    with (tmp_path / "run" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 25, "weights": {"m": [0.1')  # the loop was writing when we read
    result = plot_run(tmp_path / "run", svg=False)
    h = result.history
    assert not h.finished and h.last_step == 20 and h.skipped == 1
    assert len(result.files) == 4 and all(p.suffix == ".png" for p in result.files)
    fig = figures(h)["alpha"]
    assert "in progress: step 20 of 30" in fig.get_suptitle()
    final = checkpoint_softmax(tmp_path / "run")
    last = {option: y[-1] for option, (_, y) in drawn(fig.axes[0]).items()}
    assert list(last.values()) == pytest.approx(final["m"], abs=1e-6)


def test_a_seeds_folder_plots_each_seed(tmp_path):
    config = fast_config(**{**CONFIG, "steps": 12, "warmup": 4, "log_every": 4, "task": register_task()})
    outcomes = run_seeds(config, tmp_path / "seeds", [3, 5], space=planted_space(), parallel=1)
    assert [o.error for o in outcomes] == [None, None]
    results = plot_runs([tmp_path / "seeds"], svg=False)
    assert [r.run.name for r in results] == ["seed-3", "seed-5"]
    for r in results:
        assert (r.run / "plots" / "alpha.png").is_file()
        last = drawn(figures(r.history)["alpha"].axes[0])
        assert [y[-1] for _, y in last.values()] == pytest.approx(checkpoint_softmax(r.run)["m"], abs=1e-6)
    # Different seeds, different searches: the figures are not the same data twice.
    a, b = (run_history(r.run).decisions["m"].weights for r in results)
    assert a != b


def test_a_training_run_plots_loss_lr_and_validation(tmp_path):
    arch = derive_space(planted_space(), Genotype({"m": "conv_5x5"}, {"e": ["u2", "u4"]}), name="arch")
    config = TrainConfig(steps=20, batch_size=8, seed=0, device="cpu", validate_every=10, log_every=5,
                         checkpoint_every=10, lr_halve_every=10)
    run_train(config, tmp_path / "train", arch=arch, task=PlantedTask())
    result = plot_run(tmp_path / "train", svg=False)
    assert sorted(p.name for p in result.files) == ["losses.png", "valid.png"]
    for p in result.files:
        check_png(p)
    records = RunDir(tmp_path / "train").read_metrics()
    figs = figures(result.history)
    valid = drawn(figs["valid"].axes[0])
    assert list(zip(*valid["mse"])) == [(r["step"], r["valid"]["mse"]) for r in records if "valid" in r]
    lr = drawn(figs["losses"].axes[-1])["lr"]
    assert lr[1] == [r["lr"] for r in records if "lr" in r] and lr[1][0] == 4 * lr[1][-1]  # halved at 10 and 20


def test_not_a_run_and_an_empty_run_fail_clearly(tmp_path):
    from nasflow.errors import NasflowError

    with pytest.raises(NasflowError, match="is not a run directory: it has no config.json"):
        plot_run(tmp_path)
    run_search(fast_config(**CONFIG), tmp_path / "run", space=planted_space(), task=PlantedTask(), stop_at=0)
    (tmp_path / "run" / "metrics.jsonl").write_text("")
    with pytest.raises(NasflowError, match="has no records to plot yet"):
        plot_run(tmp_path / "run")


def test_cli_plot_and_missing_matplotlib_is_one_line(tmp_path, capsys, monkeypatch):
    from nasflow.cli.main import run  # the commands registered

    search(tmp_path / "run")
    with pytest.raises(SystemExit) as exc:
        run(["plot", str(tmp_path / "run"), "--no-svg"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "alpha.png beta.png losses.png genotype.png" in out and (tmp_path / "run" / "plots" / "beta.png").is_file()
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(SystemExit) as exc:
        run(["plot", str(tmp_path / "run")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "matplotlib" in err and "pip install 'nasflow[plot]'" in err


def test_the_cli_does_not_import_matplotlib_to_start():
    code = "import sys; import nasflow.cli.main; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
