"""Step fidelity: one search step of nasflow's strategies equals the reference code's step, on
the same weights, arch parameters and batch (tests/fixtures/step_fidelity/, made once from
the fetched references; README.md there names their commits and how they were run).

- first-order DARTS on the DARTS cell space (space-darts.yaml) vs quark0/darts, with the
  reference's optimizers and order (darts' `arch_first`, the config's `grad_clip` 5);
- MiLeNAS on the DLSR supernet vs DawnHH/DLSR-PyTorch, the cost regularizer off, with the
  authors' HFEN (the sr task's `hfen=released`).

Every parameter after the step (weights and arch) within 1e-6 of the reference's.
"""
from __future__ import annotations

import zlib

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from step_fidelity import FIXTURES, max_differences, seeded_weights

from nasflow.compile.supernet import Supernet, compile_graph
from nasflow.search.config import SearchConfig
from nasflow.space.load import load_graph
from nasflow.strategies import get_strategy

ROOT = FIXTURES.parents[2]
TOL = 1e-6


def _fixture(name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = FIXTURES / name
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    return load_file(str(path)), meta


def _unpack(flat: torch.Tensor, crc: torch.Tensor, shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """The generator's packed vector back into named tensors (names sorted, as it packed them)."""
    names = sorted(shapes)
    assert zlib.crc32("\n".join(names).encode()) == int(crc), \
        "the fixture was packed from other names than this model's: regenerate it (README.md)"
    sizes = [shapes[n].numel() for n in names]
    assert sum(sizes) == flat.numel()
    return {n: t.reshape(shapes[n]) for n, t in zip(names, flat.split(sizes))}


def _start(model: Supernet, fx: dict[str, torch.Tensor]) -> None:
    """The seeded weights the reference started from, and its arch parameters."""
    weights = seeded_weights({n: tuple(p.shape) for n, p in model.named_weights()})
    state = model.state_dict()
    with torch.no_grad():
        for n, p in model.named_weights():
            p.copy_(weights[n])
        for key, t in fx.items():
            if key.startswith("before."):
                state[key.removeprefix("before.")].copy_(t)


def _after(model: Supernet, fx: dict[str, torch.Tensor], stats: bool = False) -> dict[str, float]:
    """max |nasflow - reference| per parameter after the step (BatchNorm statistics too)."""
    state = {n: t.detach() for n, t in model.state_dict().items()}
    want = {k.removeprefix("after."): t for k, t in fx.items()
            if k.startswith("after.arch.")}
    want.update(_unpack(fx["after.weights"], fx["after.weights.names_crc32"],
                        {n: p.shape for n, p in model.named_weights()}))
    if stats:
        want.update(_unpack(fx["after.stats"], fx["after.stats.names_crc32"],
                            {n: t.shape for n, t in state.items() if "running_" in n}))
    return max_differences(state, want)


# --- first-order DARTS vs quark0/darts ---------------------------------------------------------
def _darts_step(mixed_op: str, arch_first: bool) -> tuple[Supernet, dict[str, torch.Tensor]]:
    from nasflow.spaces.darts.task import ClassificationTask

    fx, meta = _fixture("darts_step.safetensors")
    torch.manual_seed(0)
    model = compile_graph(load_graph(ROOT / meta["space"], {"C": int(meta["C"])}), mixed_op=mixed_op)
    _start(model, fx)
    model.double()  # as the fixture was computed: float32 steps at C=2 depend on the thread count
    config = SearchConfig(strategy="darts", strategy_options={"arch_first": arch_first},
                          grad_clip=float(meta["grad_clip"]), regularizer=None)
    w_opt = torch.optim.SGD(model.weights(), lr=float(meta["lr"]), momentum=float(meta["momentum"]),
                            weight_decay=float(meta["weight_decay"]))
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=float(meta["arch_lr"]), betas=(0.5, 0.999),
                             weight_decay=float(meta["arch_weight_decay"]))
    task = ClassificationTask.__new__(ClassificationTask)  # the loss only: no data set loaded
    task.aux_weight = 0.4
    strategy = get_strategy("darts")(task.loss, None, w_opt, a_opt, config)
    strategy.attach(model)
    model.train()
    strategy.step(model, (fx["batch.train.x"].double(), fx["batch.train.y"]),
                  (fx["batch.valid.x"].double(), fx["batch.valid.y"]))
    return model, fx


@pytest.mark.parametrize("mixed_op", ["plain", "fused"])
def test_first_order_darts_step_equals_the_reference(mixed_op):
    if mixed_op == "fused":
        import nasflow.accel  # noqa: F401  (registers "fused")
    model, fx = _darts_step(mixed_op, arch_first=True)
    diffs = _after(model, fx, stats=True)
    worst = max(diffs, key=diffs.__getitem__)
    assert diffs[worst] <= TOL, f"{worst} differs from quark0/darts by {diffs[worst]:.3g}"
    # The step moved every alpha (so equality is not the start's).
    moved = [k for k in fx if k.startswith("after.arch.") and
             torch.equal(fx[k], fx["before." + k.removeprefix("after.")])]
    assert not moved


def test_darts_default_order_is_not_the_reference_order():
    """Without arch_first the arch step sees the updated weights: another step (documented)."""
    model, fx = _darts_step("plain", arch_first=False)
    diffs = _after(model, fx)
    assert max(v for k, v in diffs.items() if k.startswith("arch.alpha.")) > 1e-5


# --- MiLeNAS on the DLSR supernet vs DawnHH/DLSR-PyTorch ----------------------------------------
def _dlsr_step(mixed_op: str, hfen: str) -> tuple[Supernet, dict[str, torch.Tensor]]:
    from nasflow.spaces.dlsr.task import SRTask

    fx, meta = _fixture("dlsr_step.safetensors")
    torch.manual_seed(0)
    model = compile_graph(load_graph(ROOT / meta["space"], {"channels": int(meta["channels"])}), mixed_op=mixed_op)
    _start(model, fx)
    model.double()
    # Their code: no regularizer acts (its L_P is a constant), lambda 1, no gradient clipping.
    config = SearchConfig(strategy="milenas", regularizer=None, gamma=0.0)
    w_opt = torch.optim.Adam(model.weights(), lr=float(meta["lr"]), betas=(0.9, 0.999),
                             weight_decay=float(meta["weight_decay"]))
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=float(meta["arch_lr"]), betas=(0.5, 0.999),
                             weight_decay=float(meta["arch_weight_decay"]))
    task = SRTask(mu=float(meta["mu"]), hfen=hfen, cache="none", workers=0, space_params={"scale": 2})
    strategy = get_strategy("milenas")(task.loss, None, w_opt, a_opt, config)
    strategy.attach(model)
    model.train()
    batch = {k: fx[f"batch.{k}"].double() for k in ("train.lr", "train.hr", "valid.lr", "valid.hr")}
    strategy.step(model, (batch["train.lr"], batch["train.hr"]), (batch["valid.lr"], batch["valid.hr"]))
    return model, fx


@pytest.mark.parametrize("mixed_op", ["plain", "fused"])
def test_milenas_step_on_dlsr_equals_the_authors(mixed_op):
    if mixed_op == "fused":
        import nasflow.accel  # noqa: F401
    model, fx = _dlsr_step(mixed_op, hfen="released")
    diffs = _after(model, fx)
    worst = max(diffs, key=diffs.__getitem__)
    assert diffs[worst] <= TOL, f"{worst} differs from DawnHH/DLSR-PyTorch by {diffs[worst]:.3g}"
    moved = [k for k in fx if k.startswith("after.arch.") and
             torch.equal(fx[k], fx["before." + k.removeprefix("after.")])]
    assert not moved


def test_dlsr_default_hfen_is_not_the_authors():
    """nasflow's default HFEN (same-size LoG, no division by the batch's maximum) gives
    another step: the documented difference the sr task's `hfen=released` removes."""
    model, fx = _dlsr_step("plain", hfen="padded")
    assert max(_after(model, fx).values()) > 1e-5
