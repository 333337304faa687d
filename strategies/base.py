"""The strategy contract: what a search strategy decides, and one search step.

A strategy is built first, from the run's config (its own options parsed from
`config.strategy_options` into `self.options`); the search loop then asks it, in order:

    mixed_op()          the mixed-op implementation the supernet is compiled with, by name
                        ("plain", "fused" once nasflow.accel is imported, or one you register)
    attach(model)       installs relaxation() on the supernet (how decision weights come from
                        the arch params on each forward) and builds optimizers(model) unless
                        they were given
    schedule(w_opt)     the weights optimizer's lr schedule (None: constant), stepped by the loop
    on_step(step, total)   before every step, warm-up included (temperature schedules)
    weights_step(...)   during warm-up; step(...) after it
    derivation_rule()   which candidates may be derived and how they rank (genotypes, derive)
    finish(end)         after the last step: the architecture the strategy chose itself (SPOS's
                        evolution over the trained supernet), or None to derive by the rule
    state_dict() / load_state_dict()   its own state, saved in every checkpoint

Defaults are DARTS': softmax, "fused" (or "plain" with fuse off), argmax / top-k, the
config's weights optimizer and schedule (Adam at a constant lr unless a preset says SGD /
cosine) and Adam for the arch, no state. The shared step is here: the weights step (train batch,
weights only), adding gamma * grad_A of the regularizer, and the arch optimizer step; DARTS
and MiLeNAS differ only in `arch_gradient`. docs/writing-a-strategy.md walks through one.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from nasflow._plugins import lookup
from nasflow.compile.relaxation import Relaxation
from nasflow.compile.supernet import Supernet
from nasflow.derive.genotype import Genotype
from nasflow.derive.rule import DerivationRule
from nasflow.errors import NasflowError, check_return, hook_error
from nasflow.registry import Registry
from nasflow.runs.optim import make_optimizer, make_schedule
from nasflow.runs.distributed import DistContext, all_reduce_mean_, single
from nasflow.search.config import SearchConfig, set_option_defaults
from nasflow.search.end import SearchEnd
from nasflow.search.regularizers import Regularizer
from nasflow.tasks.contract import Batch

from .options import StrategyOptions

LossFn = Callable[[nn.Module, Batch], tuple[Tensor, dict[str, float]]]


class Strategy(ABC):
    """Built with the task's loss, the regularizer (or None), the two optimizers (None: built
    by attach() from optimizers()) and the run's config; `step` does one weights step and one
    arch step and returns what to log."""

    name: ClassVar[str] = ""
    # The options model: --strategy-opt key=value fills it; self.options holds the values.
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    # False for a strategy that trains the supernet's weights alone and chooses the
    # architecture in finish() (SPOS): it takes no arch step and its arch params never move.
    learns_arch: ClassVar[bool] = True
    # Set by distribute() in a run of several processes; a single process keeps these.
    _ddp: nn.Module | None = None
    _dist: DistContext = single()

    def __init__(self, loss_fn: LossFn | None = None, regularizer: Regularizer | None = None,
                 w_optimizer: torch.optim.Optimizer | None = None,
                 a_optimizer: torch.optim.Optimizer | None = None,
                 config: SearchConfig | None = None) -> None:
        self.loss_fn = loss_fn
        self.regularizer = regularizer
        self.w_optimizer = w_optimizer
        self.a_optimizer = a_optimizer
        self.config = config if config is not None else SearchConfig()
        self.options = self.parse_options(self.config.strategy_options)

    @classmethod
    def parse_options(cls, given: dict[str, Any]) -> StrategyOptions:
        """The options `given` (a config's strategy_options) mean, defaults filled in; one
        clear error for an unknown option or a bad value."""
        return cls.Options.parse(cls.name or cls.__name__, given)

    @classmethod
    def fuse_acts(cls, config: SearchConfig) -> bool:
        """Whether the config's `fuse` lever changes what this strategy computes: its
        mixed op differs with fuse on and off (a strategy computing one candidate at a time
        returns "plain" either way). Where it does not, the fused kernels never run, and
        what is printed and recorded says fuse=False (nasflow.search.loop.fuse_that_runs,
        which run_search applies to every new run)."""
        ops = {cls(config=config.model_copy(update={"fuse": f})).mixed_op() for f in (True, False)}
        return len(ops) > 1

    # --- what the strategy chooses (override any) ------------------------------------------
    def mixed_op(self) -> str:
        """The mixed-op implementation to compile the supernet with (MIXED_OPS name)."""
        return "fused" if self.config.fuse else "plain"

    def relaxation(self) -> Relaxation:
        """How decision weights come from the arch params on each forward."""
        return Relaxation()

    def derivation_rule(self) -> DerivationRule:
        """Which candidates may be derived and how they rank."""
        return DerivationRule()

    def optimizers(self, model: Supernet) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
        """(weights optimizer, arch optimizer) over disjoint parameter sets, so arch params
        never get a weights step: the config's weights_optimizer (Adam, or SGD with
        weights_momentum) with weights_optim's settings, and Adam with arch_optim's."""
        c = self.config
        w, a = c.weights_optim, c.arch_optim
        return (make_optimizer(model.weights(), c.weights_optimizer, lr=w.lr, betas=w.betas,
                               momentum=c.weights_momentum, weight_decay=w.weight_decay),
                make_optimizer(model.arch_parameters(), "adam", lr=a.lr, betas=a.betas, weight_decay=a.weight_decay))

    def schedule(self, w_optimizer: torch.optim.Optimizer) -> Any:
        """The weights optimizer's learning-rate schedule, stepped by the search loop after
        every step (warm-up included), or None: the config's weights_schedule (cosine from
        weights_optim.lr to weights_lr_min over `steps`)."""
        c = self.config
        return make_schedule(w_optimizer, c.weights_schedule, steps=c.steps, lr_min=c.weights_lr_min)

    def attach(self, model: Supernet) -> None:
        """Called once with the compiled supernet, before any step: installs the relaxation
        and builds the optimizers unless they were given."""
        model.relaxation = check_return(self._hook("relaxation"), self.relaxation(), Relaxation,
                                        "a nasflow.compile.relaxation.Relaxation")
        if self.w_optimizer is None:
            got = self.optimizers(model)
            if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], torch.optim.Optimizer)
                    and isinstance(got[1], (torch.optim.Optimizer, type(None)))):
                raise hook_error(self._hook("optimizers"), "a tuple (weights optimizer, arch optimizer or None) "
                                 "of torch.optim.Optimizer", got)
            self.w_optimizer, self.a_optimizer = got

    def step_cost(self) -> float:
        """A strategy step's cost in weights-only (warm-up) steps: forward/backward passes, here
        the weights step and one arch gradient. A prior for the progress bar's ETA until the
        first strategy steps are timed, nothing more."""
        return 2.0

    def on_step(self, step: int, total: int) -> None:
        """Before step `step` (0-based) of `total`, warm-up included; a resumed run calls it
        from where it stopped. For schedules (a Gumbel temperature, say)."""

    def finish(self, end: SearchEnd) -> Genotype | None:
        """After the last supernet step, on every rank: the genotype this strategy chose (saved
        as the run's chosen one, which `nasflow derive RUN` derives), or None to leave it to
        derivation_rule() on the arch params (the default). A long end keeps its progress in
        state_dict() and calls end.save(); on end.stop_requested() it returns None and a
        resumed run calls it again."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """The strategy's own state (a temperature, an RNG's state), saved in checkpoints:
        nested dicts, lists, numbers, strings and tensors."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned."""

    def distribute(self, ddp_model: nn.Module, ctx: DistContext) -> None:
        """Run the weights step through `ddp_model` (DDP around the supernet, arch params
        ignored by it) so its reducer averages the weight gradients over ranks, and average
        the arch gradient over ranks, so alpha and beta stay identical on every rank."""
        self._ddp, self._dist = ddp_model, ctx

    def step(self, model: Supernet, train_batch: Batch, valid_batch: Batch) -> dict[str, float]:
        logs = self.weights_step(model, train_batch)
        logs.update(self.arch_step(model, train_batch, valid_batch))
        return logs

    def weights_step(self, model: Supernet, batch: Batch) -> dict[str, float]:
        """w <- w - lr * grad_w L_train; the loop's warm-up runs only this."""
        assert self.loss_fn is not None and self.w_optimizer is not None, "built without a loss or optimizer"
        self.w_optimizer.zero_grad(set_to_none=True)
        # Through DDP when distributed: its backward hooks all-reduce the weight grads.
        loss, terms = self.loss_fn(self._ddp if self._ddp is not None else model, batch)
        # inputs=: accumulate into the weights only, never into alpha / beta.
        loss.backward(inputs=model.weights())
        self.clip_weight_grads(model)
        self.w_optimizer.step()
        return _named("train", loss, terms)

    def clip_weight_grads(self, model: Supernet) -> None:
        """Scale the weights' gradient down to the config's grad_clip norm (0: leave it)."""
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.weights(), self.config.grad_clip)

    def arch_step(self, model: Supernet, train_batch: Batch, valid_batch: Batch) -> dict[str, float]:
        arch = model.arch_parameters()
        grads, logs = self._checked_gradient(arch, self.arch_gradient(model, train_batch, valid_batch))
        # Each rank saw its share of the batch: the mean over ranks is the global batch's
        # gradient. The regularizer's gradient (a function of A alone) is the same everywhere.
        all_reduce_mean_(grads, self._dist)
        if self.regularizer is not None and self.config.gamma > 0:
            penalty, details = self.regularizer(model)
            # The penalty depends on A only, so it enters the arch objective once.
            reg = torch.autograd.grad(self.config.gamma * penalty, arch, allow_unused=True)
            grads = [g if r is None else g + r for g, r in zip(grads, reg)]
            logs["reg/penalty"] = float(penalty.detach())
            logs.update({f"reg/{k}": v for k, v in details.items()})
        assert self.a_optimizer is not None, "attach() or an arch optimizer is needed before an arch step"
        self.a_optimizer.zero_grad(set_to_none=True)
        for p, g in zip(arch, grads):
            p.grad = g
        self.a_optimizer.step()
        return logs

    def _hook(self, hook: str) -> str:
        return f"strategy '{self.name or type(self).__name__}' {hook}"

    def _checked_gradient(self, arch: list[nn.Parameter], value: Any) -> tuple[list[Tensor], dict[str, float]]:
        """What arch_gradient returned: (one tensor shaped as each arch parameter, {name: float})."""
        expected = (f"a tuple (list of {len(arch)} tensors shaped as model.arch_parameters(), "
                    "{name: float} to log)")
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], (list, tuple))
                and isinstance(value[1], dict)):
            raise hook_error(self._hook("arch_gradient"), expected, value)
        grads = list(value[0])
        if len(grads) != len(arch) or not all(isinstance(g, Tensor) and g.shape == p.shape for g, p in zip(grads, arch)):
            shapes = [tuple(g.shape) if isinstance(g, Tensor) else type(g).__name__ for g in grads]
            raise hook_error(self._hook("arch_gradient"), expected, value,
                             f"gradients {shapes} for parameters {[tuple(p.shape) for p in arch]}")
        return grads, value[1]

    @abstractmethod
    def arch_gradient(self, model: Supernet, train_batch: Batch,
                      valid_batch: Batch) -> tuple[list[Tensor], dict[str, float]]:
        """grad_A of the strategy's arch objective (regularizer excluded), one tensor per
        `model.arch_parameters()` entry, and what to log."""

    def grad_arch(self, model: Supernet, batch: Batch, split: str) -> tuple[list[Tensor], dict[str, float]]:
        """grad_A L(batch) by one forward and one autograd call; weights' .grad untouched."""
        assert self.loss_fn is not None, "built without a loss"
        loss, terms = self.loss_fn(model, batch)
        arch = model.arch_parameters()
        grads = torch.autograd.grad(loss, arch, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(arch, grads)], _named(split, loss, terms)


def _named(split: str, loss: Tensor, terms: dict[str, float]) -> dict[str, float]:
    return {f"{split}/loss": float(loss.detach()), **{f"{split}/{k}": float(v) for k, v in terms.items()}}


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def _learn_name(name: str, cls: type[Strategy]) -> None:
    cls.name = name


# Class decorator: `@register_strategy("mine")` makes `--strategy mine` work.
register_strategy: Callable[[str], Callable[[type[Strategy]], type[Strategy]]] = STRATEGIES.decorator(_learn_name)


def get_strategy(name: str, folders: Sequence[Path] = ()) -> type[Strategy]:
    """By registered name, `nasflow.strategies` entry point, or 'module:Class' (the module
    installed, or in one of `folders` (a run directory's copy) or the current folder, trusted)."""
    found = lookup(STRATEGIES, "nasflow.strategies", name, folders)
    if not (isinstance(found, type) and issubclass(found, Strategy)):
        raise NasflowError(f"strategy '{name}' is {found!r}, not a Strategy subclass")
    if "name" not in vars(found):  # 'module:Class' or an entry point never registered: its own name
        found.name = name
    return found


def _option_defaults(strategy: str, given: dict[str, Any]) -> dict[str, Any]:
    return get_strategy(strategy).parse_options(given).to_json()


# So a resumed run's config compares with its options' defaults filled in (SearchConfig.differences).
set_option_defaults(_option_defaults)
