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


import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from step_fidelity import (
    FIXTURES,
    Pair,
    darts_arch_labels,
    darts_pairs,
    dlsr_arch_labels,
    dlsr_pairs,
    max_differences,
    name_map,
    ref_sizes,
    seeded_weight,
    unpack,
)

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


def _arch(fx: dict[str, torch.Tensor], when: str, labels: dict[str, str]) -> dict[str, torch.Tensor]:
    """The reference's arch tensors (`when`: before / after) under nasflow's names; `labels`
    maps a reference name, or name.row for a matrix's rows, to nasflow's."""
    out = {}
    for ref, ours in labels.items():
        name, _, row = ref.rpartition(".")
        out[ours] = fx[f"{when}.{name}"][int(row)] if name and f"{when}.{name}" in fx else fx[f"{when}.{ref}"]
    return out


class Case:
    """A fixture with its correspondence to a nasflow supernet."""

    def __init__(self, model: Supernet, fx: dict[str, torch.Tensor], pairs: list[Pair], labels: dict[str, str]):
        self.model, self.fx, self.labels = model, fx, labels
        self.weights = name_map(ref_sizes(fx, "weights"), {n: tuple(p.shape) for n, p in model.named_weights()},
                                pairs)
        self.stats = None
        if "after.stats" in fx:
            self.stats = name_map(ref_sizes(fx, "stats"), {n: tuple(t.shape) for n, t in model.state_dict().items()
                                                           if "running_" in n}, pairs)

    def start(self) -> None:
        """The seeded weights the reference started from, and its arch parameters."""
        state = self.model.state_dict()
        with torch.no_grad():
            for ref, ours in self.weights.items():
                state[ours].copy_(seeded_weight(ref, tuple(state[ours].shape)))
            for ours, t in _arch(self.fx, "before", self.labels).items():
                state[ours].copy_(t)

    def differences(self, stats: bool = False) -> dict[str, float]:
        """max |nasflow - reference| per tensor after the step, under nasflow's names."""
        state = {n: t.detach() for n, t in self.model.state_dict().items()}
        want = _arch(self.fx, "after", self.labels)
        want.update({self.weights[r]: t for r, t in unpack(self.fx, "weights").items()})
        if stats and self.stats is not None:
            want.update({self.stats[r]: t for r, t in unpack(self.fx, "stats").items()})
        return max_differences(state, want)


def _assert_moved(case: Case) -> None:
    """The reference's step moved every arch vector (so equality is not the start's)."""
    before, after = _arch(case.fx, "before", case.labels), _arch(case.fx, "after", case.labels)
    assert not [n for n in before if torch.equal(before[n], after[n])]


# --- first-order DARTS vs quark0/darts ---------------------------------------------------------
def _darts_step(mixed_op: str, arch_first: bool) -> Case:
    from nasflow.spaces.darts.task import ClassificationTask

    fx, meta = _fixture("darts_step.safetensors")
    torch.manual_seed(0)
    layers = int(meta["layers"])
    model = compile_graph(load_graph(ROOT / meta["space"], {"C": int(meta["C"]), "layers": layers}), mixed_op=mixed_op)
    labels = {f"{m}.{r}": f"arch.alpha.{label}" for m, rows in darts_arch_labels().items()
              for r, label in enumerate(rows)}
    case = Case(model, fx, darts_pairs(layers), labels)
    case.start()
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
    return case


@pytest.mark.parametrize("mixed_op", ["plain", "fused"])
def test_first_order_darts_step_equals_the_reference(mixed_op):
    if mixed_op == "fused":
        import nasflow.accel  # noqa: F401  (registers "fused")
    case = _darts_step(mixed_op, arch_first=True)
    diffs = case.differences(stats=True)
    worst = max(diffs, key=diffs.__getitem__)
    assert diffs[worst] <= TOL, f"{worst} differs from quark0/darts by {diffs[worst]:.3g}"
    _assert_moved(case)


def test_darts_default_order_is_not_the_reference_order():
    """Without arch_first the arch step sees the updated weights: another step (documented)."""
    diffs = _darts_step("plain", arch_first=False).differences()
    assert max(v for k, v in diffs.items() if k.startswith("arch.alpha.")) > 1e-5


# --- MiLeNAS on the DLSR supernet vs DawnHH/DLSR-PyTorch ----------------------------------------
def _dlsr_step(mixed_op: str, hfen: str) -> Case:
    from nasflow.spaces.dlsr.task import SRTask

    fx, meta = _fixture("dlsr_step.safetensors")
    torch.manual_seed(0)
    model = compile_graph(load_graph(ROOT / meta["space"], {"channels": int(meta["channels"])}), mixed_op=mixed_op)
    case = Case(model, fx, dlsr_pairs(), dlsr_arch_labels())
    case.start()
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
    return case


@pytest.mark.parametrize("mixed_op", ["plain", "fused"])
def test_milenas_step_on_dlsr_equals_the_authors(mixed_op):
    if mixed_op == "fused":
        import nasflow.accel  # noqa: F401
    case = _dlsr_step(mixed_op, hfen="released")
    diffs = case.differences()
    worst = max(diffs, key=diffs.__getitem__)
    assert diffs[worst] <= TOL, f"{worst} differs from DawnHH/DLSR-PyTorch by {diffs[worst]:.3g}"
    _assert_moved(case)


def test_dlsr_default_hfen_is_not_the_authors():
    """nasflow's default HFEN (same-size LoG, no division by the batch's maximum) gives
    another step: the documented difference the sr task's `hfen=released` removes."""
    assert max(_dlsr_step("plain", hfen="padded").differences().values()) > 1e-5
