"""Retraining a population as one command (cli/train_population.py): `nasflow train RUN/*/derived`
or `nasflow train OUT` retrains each RUN/derived into RUN/retrained.

On two tiny searches of the planted task: what the arguments name (derived folders, their
arch.yaml, a population folder; a run not derived yet is one line naming `nasflow derive`);
the population equals each architecture trained alone (tensors, metrics); the same call again
writes nothing; a population stopped mid-way continues, its record naming the restart; the
command prints a line per run and a table, and refuses --out. The Ray executor's equality is
in tests/test_ray_cluster.py.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from synthetic import fast_config, planted_space, same_run
from typer.testing import CliRunner

from nasflow.search.retrain_targets import RETRAINED, targets
from nasflow.train.population import TRAIN_RECORD, run_population
from nasflow.errors import NasflowError
from nasflow.search.derive_run import derive_run
from nasflow.search.multiseed import run_seeds, seed_dir
from nasflow.runs.population import PopulationRecord
from nasflow.train.config import TrainConfig
from nasflow.train.loop import run_train
from nasflow.train.run_dir import TrainRunDir

TASK = "synthetic:PlantedTask"


def train_config(**changes) -> TrainConfig:
    return TrainConfig(**{"steps": 6, "batch_size": 8, "device": "cpu", "validate_every": 3, "log_every": 3,
                          "checkpoint_every": 3, "task": TASK, **changes})


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """Two searched and derived seeds, OUT/seed-0 and OUT/seed-1."""
    out = tmp_path_factory.mktemp("train-pop") / "pop"
    config = fast_config(steps=6, warmup=2, log_every=3, checkpoint_every=3, task=TASK)
    assert all(o.finished for o in run_seeds(config, out, [0, 1], space=planted_space(), parallel=1))
    for s in (0, 1):
        derive_run(seed_dir(out, s))
    return out


def copy_searches(searched: Path, to: Path) -> Path:
    """The searches' folders (configs, derived architectures) without any retraining."""
    for s in (0, 1):
        src = seed_dir(searched, s)
        for f in (src / "config.json", src / "space.yaml", src / "derived" / "arch.yaml"):
            dst = to / "pop" / src.name / f.relative_to(src)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(f.read_bytes())
    return to / "pop"


def files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_what_the_arguments_name(searched, tmp_path):
    pop = copy_searches(searched, tmp_path)
    want = [(pop / f"seed-{s}" / "derived" / "arch.yaml", pop / f"seed-{s}" / RETRAINED) for s in (0, 1)]
    for given in ([pop], [pop / "seed-0", pop / "seed-1"], [pop / "seed-0" / "derived", pop / "seed-1" / "derived"],
                  [pop / "seed-0" / "derived" / "arch.yaml", pop / "seed-1" / "derived"]):
        assert [(t.arch, t.out) for t in targets(given)] == want
    (pop / "seed-1" / "derived" / "arch.yaml").unlink()
    with pytest.raises(NasflowError, match=r"has no derived architecture .*nasflow derive .*seed-1$"):
        targets([pop])
    with pytest.raises(NasflowError, match=r"seed-1' stopped at step 0 of 6 .*finish the search"):
        targets([pop], derive=True)  # the copy has no checkpoint: not a finished search
    with pytest.raises(NasflowError, match="each architecture once"):
        targets([pop / "seed-0", pop / "seed-0" / "derived"])
    with pytest.raises(NasflowError, match="neither a derived folder"):
        targets([tmp_path])
    with pytest.raises(NasflowError, match="'nothere' does not exist"):
        targets([Path("nothere")])
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "config.json").write_text(train_config(arch="a.yaml").model_dump_json())
    with pytest.raises(NasflowError, match="is a training run, not a search run"):
        targets([trained], derive=True)


def test_population_equals_each_trained_alone_and_continues(searched, tmp_path):
    pop = copy_searches(searched, tmp_path)
    found = targets([pop])
    # An earlier command stopped with seed-1 at step 3 and seed-0 not started.
    run_train(train_config(arch=str(found[1].arch)), found[1].out, stop_at=3)
    alone = tmp_path / "alone"
    for i, t in enumerate(found):
        run_train(train_config(arch=str(t.arch)), alone / str(i))
    seen = []
    outcomes = run_population([train_config()] * 2, found, parallel=1, on_done=lambda o: seen.append(o.index))
    assert [(o.step, o.finished, o.error, o.restarts) for o in outcomes] == [(6, True, None, []), (6, True, None, [3])]
    assert seen == [0, 1]
    for i, t in enumerate(found):
        same_run(t.out, alone / str(i), TrainRunDir)
    assert PopulationRecord.load(pop, file=TRAIN_RECORD).runs == {
        "seed-0/retrained": {"finished": True, "restarts": []},
        "seed-1/retrained": {"finished": True, "restarts": [{"step": 3, "reason": "the population was started again"}]}}
    before = files(pop)
    again = run_population([train_config()] * 2, found, parallel=1)
    assert [(o.step, o.finished) for o in again] == [(6, True), (6, True)]
    assert files(pop) == before  # nothing retrained, not one file touched


def test_cli_retrains_a_population(searched, tmp_path, monkeypatch):
    from nasflow.cli.main import app

    pop = copy_searches(searched, tmp_path)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    small = ["--steps", "4", "--batch", "8", "--device", "cpu", "--task", TASK, "--validate-every", "2"]
    bad = runner.invoke(app, ["train", "pop", "--out", "x", *small])
    assert isinstance(bad.exception, NasflowError) and "drop --out" in str(bad.exception)  # main(): one line, exit 2
    bad = runner.invoke(app, ["train", "pop", "--ray-address", "auto", *small])
    assert isinstance(bad.exception, NasflowError) and "need --executor ray" in str(bad.exception)
    # seed-1 searched but not derived: the command derives it first, as `nasflow derive` would.
    (pop / "seed-1" / "checkpoint.safetensors").write_bytes((seed_dir(searched, 1) / "checkpoint.safetensors").read_bytes())
    shutil.rmtree(pop / "seed-1" / "derived")
    result = runner.invoke(app, ["train", "pop/seed-0/derived", "pop/seed-1", "--parallel", "2", *small])
    assert result.exit_code == 0, result.output
    assert "pop/seed-1: derived into pop/seed-1/derived" in result.output
    assert (pop / "seed-1" / "derived" / "arch.yaml").read_text() == \
        (seed_dir(searched, 1) / "derived" / "arch.yaml").read_text()
    for s in (0, 1):
        assert f"seed-{s}/retrained: done" in result.output
        assert (pop / f"seed-{s}" / RETRAINED / "model" / "weights.safetensors").is_file()
    assert "retraining 2 architectures (local)" in result.output and "mse" in result.output
    # Two processes at a time, the same weights as each trained alone here.
    for s in (0, 1):
        run_train(TrainConfig(steps=4, batch_size=8, device="cpu", task=TASK, validate_every=2,
                              arch=f"pop/seed-{s}/derived/arch.yaml"), f"alone-{s}")
        same_run(pop / f"seed-{s}" / RETRAINED, tmp_path / f"alone-{s}", TrainRunDir)


def test_ray_executor_without_ray_is_one_line(searched, tmp_path, monkeypatch):
    import sys

    from nasflow.runs.ray_tasks import INSTALL

    pop = copy_searches(searched, tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(NasflowError) as exc:
        run_population([train_config()] * 2, targets([pop]), executor="ray")
    assert str(exc.value) == INSTALL
    assert not any((pop / "seed-0").glob(RETRAINED)) and not (pop / TRAIN_RECORD).exists()
