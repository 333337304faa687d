"""Drop-path: which nodes it acts on (the branches of sums inside blocks, identity-like ops
exempt), per-sample masks scaled by 1 / (1 - p), drawn from the run's RNG (a resumed run
is exact), a probability growing linearly over training, off in eval mode and free of
parameters; the DARTS paper preset turns it on."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from synthetic import PlantedTask

from nasflow.compile.drop_path import drop_path, drop_path_nodes
from nasflow.compile.supernet import compile_graph
from nasflow.runs.checkpoint import load_checkpoint
from nasflow.runs.config import AdamConfig
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space
from nasflow.space.schema import Block, Space, block, combine, op
from nasflow.tasks.presets import preset_section
from nasflow.train.config import TrainConfig
from nasflow.train.loop import run_train
from nasflow.train.run_dir import TrainRunDir

ROOT = Path(__file__).resolve().parents[1]


def cell_arch(channels: int = 4) -> Space:
    """Two cells of three summed branches (a conv, an identity, a 1x1 conv) and a 1x1 conv out,
    on the planted task's inputs."""
    cell = Block(params={"C": None}, inputs=["s"], nodes={
        "a": op("conv_3x3", "s"), "b": op("identity", "s"), "c": op("conv_1x1", "s"),
        "n": combine("add", ["a", "b", "c"]), "out": op("conv_1x1", "n")}, output="out")
    return Space(name="cells", params={"C": channels}, inputs={"x": "C", "y": "C"}, blocks={"cell": cell},
                 nodes={"c1": block("cell", "x", C="C"), "c2": block("cell", "c1", C="C"),
                        "top": op("conv_1x1", "y"), "out": combine("add", ["c2", "top"])}, output="out")


def test_acts_on_the_non_identity_branches_of_sums_inside_blocks():
    assert drop_path_nodes(build_graph(cell_arch())) == {"c1.a", "c1.c", "c2.a", "c2.c"}
    # DARTS_V2: every op of a cell but skip_connect at stride 1 (at stride 2 it is a
    # FactorizedReduce and is dropped); preprocessing (p0, p1) never
    nodes = drop_path_nodes(build_graph(load_space(ROOT / "spaces" / "darts" / "darts_v2.yaml", {"C": 4})))
    assert {n for n in nodes if n.startswith("cell0.")} == {
        f"cell0.dag.{e}" for e in ("e2_0", "e2_1", "e3_0", "e3_1", "e4_1", "e5_2")}
    assert {n for n in nodes if n.startswith("cell6.")} == {
        f"cell6.dag.{e}" for e in ("e2_0", "e2_1", "e3_1", "e4_0", "e5_1")}
    assert len(nodes) == 18 * 6 + 2 * 5


def test_masks_are_per_sample_scaled_and_seeded():
    x = torch.ones(4000, 2, 3)
    torch.manual_seed(0)
    out = drop_path(x, 0.3)
    per_sample = out.flatten(1)
    assert torch.equal(per_sample.min(1).values, per_sample.max(1).values)  # one decision per sample
    kept = per_sample[:, 0][per_sample[:, 0] != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.7))
    assert abs(float((per_sample[:, 0] == 0).float().mean()) - 0.3) < 0.03
    torch.manual_seed(0)
    assert torch.equal(drop_path(x, 0.3), out)


def test_off_in_eval_mode_and_free_of_parameters():
    torch.manual_seed(0)
    model = compile_graph(build_graph(cell_arch()))
    n_params = sum(p.numel() for p in model.parameters())
    x, y = torch.randn(8, 4, 6, 6), torch.randn(8, 4, 6, 6)
    model.eval()
    plain = model(x, y)
    model.drop_path = 0.5
    assert torch.equal(model(x, y), plain)
    assert sum(p.numel() for p in model.parameters()) == n_params
    model.train()
    model.drop_path = 0.0
    undropped = model(x, y)
    model.drop_path = 0.5
    torch.manual_seed(1)
    dropped = model(x, y)
    torch.manual_seed(1)
    assert torch.equal(model(x, y), dropped) and not torch.allclose(dropped, undropped)


class _Recording(PlantedTask):
    """Records the drop-path probability the model has at each loss."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float] = []

    def loss(self, model, batch):
        self.seen.append(getattr(model, "module", model).drop_path)
        return super().loss(model, batch)


def _config(**changes) -> TrainConfig:
    base = dict(steps=20, batch_size=8, optim=AdamConfig(lr=1e-2, weight_decay=0.0), lr_halve_every=1000,
                seed=0, device="cpu", validate_every=20, log_every=5, checkpoint_every=6, drop_path_prob=0.4)
    return TrainConfig(**{**base, **changes})


def test_probability_grows_linearly_and_a_resume_is_exact(tmp_path):
    task = _Recording()
    run_train(_config(), tmp_path / "a", arch=cell_arch(), task=task)
    assert task.seen == pytest.approx([0.4 * t / 20 for t in range(20)])
    assert _config().drop_path_at(10) == pytest.approx(0.2)
    stopped = run_train(_config(), tmp_path / "b", arch=cell_arch(), task=PlantedTask(), stop_at=9)
    assert stopped.step == 9
    run_train(_config(), tmp_path / "b", task=PlantedTask(), resume=True)
    off = run_train(_config(drop_path_prob=0.0), tmp_path / "c", arch=cell_arch(), task=PlantedTask())
    a, b, c = (load_checkpoint(TrainRunDir(tmp_path / r).checkpoint_path)[0] for r in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # it did drop
    assert off.params == stopped.params


def test_darts_paper_preset_turns_it_on():
    _, train = preset_section("classify", "paper", "train")
    assert train["drop_path_prob"] == 0.2 and train["auxiliary"] is True


def test_finding_the_nodes_draws_nothing_from_the_rng():
    """conv_3x3 declares no `identity`, so it is built to be checked: aside from the run's RNG."""
    graph = build_graph(cell_arch())
    torch.manual_seed(0)
    before = torch.get_rng_state()
    assert "c1.a" in drop_path_nodes(graph)
    assert torch.equal(torch.get_rng_state(), before)
