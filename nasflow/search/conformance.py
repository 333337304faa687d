"""The conformance kit: the contract checks a plugin author runs on their own ops, strategies
and tasks (`nasflow check MODULE`, or these functions from pytest).

    check_op(name)              declared params and Multi-Adds equal counting the built module,
                                at a few widths (and its resize, out_channels as declared)
    check_strategy(name)        a few steps on a tiny built-in space, stopped and resumed, equal
                                bit for bit to an uninterrupted run (every tensor of the
                                checkpoint and the strategy's state); state_dict round trip;
                                its derivation gives a space that builds
    check_task(name, space)     batches resume exactly from their state_dict; evaluate returns
                                numbers, each a declared metric with a direction; best_metric
                                declared; the export sample is what the model takes
    check_module(module)        imports `module` and runs the above on everything it registers

Each returns `Check`s (what was checked, whether it holds, the one line that says why not).
A check that raises reports the error as its line: the kit never stops on the first failure.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow._plugins import import_plugin
from nasflow.errors import NasflowError


@dataclass(frozen=True)
class Check:
    plugin: str  # "op 'x'", "strategy 'y'", "task 'z'"
    what: str
    ok: bool
    why: str = ""  # the one line when not ok

    def line(self) -> str:
        return f"{self.plugin}: {self.what}: {'ok' if self.ok else self.why}"


def _run(plugin: str, what: str, fn: Callable[[], str | None]) -> Check:
    """fn returns None (holds) or the reason it does not; an exception is the reason too."""
    try:
        why = fn()
    except Exception as exc:  # noqa: BLE001 - a plugin's failure is what the kit reports
        why = f"{type(exc).__name__}: {exc}" if not isinstance(exc, NasflowError) else str(exc)
    return Check(plugin, what, why is None, why or "")


# --- ops -----------------------------------------------------------------------------------------
WIDTHS = ((4, 4), (4, 8), (8, 4))


def _counted_madds(module: nn.Module, x: Tensor) -> int:
    """Multiply-adds by torch's flop counter (2 flops each), plus one add per output value of a
    conv or linear layer with a bias, which the flop counter leaves out."""
    from torch.utils.flop_counter import FlopCounterMode

    adds = [0]

    def hook(m: nn.Module, _: object, out: Tensor) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            adds[0] += out.numel()

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return counter.get_total_flops() // 2 + adds[0]


def check_op(name: str, size: tuple[int, int] = (8, 10), vector: bool | None = None) -> list[Check]:
    """Declared params and Multi-Adds against counting the module built at WIDTHS, on an
    input of `size` (or its first doubling the module takes), or on N x C vectors with
    `vector` (costs per sample); None: vectors when the module takes no image but a vector
    (a linear layer). `size` is no width of WIDTHS, so a linear layer cannot pass for an
    image op by reading the image's last dim."""
    from nasflow.ops.registry import OPS
    from nasflow.space.kinds import op_hook_int, resize

    spec = OPS.get(name)
    plugin = f"op '{name}'"
    checks = []
    for c_in, c_out in WIDTHS:
        if spec.same_channels:
            c_out = c_in
        if spec.out_channels is not None:
            c_out = op_hook_int(name, "out_channels", spec.out_channels(c_in, **_accepted(spec.out_channels, spec.args)))
        if spec.check(c_in, c_out, **_accepted(spec.check, spec.args)):
            continue

        def params(c_in: int = c_in, c_out: int = c_out) -> str | None:
            module = spec.factory(c_in, c_out, **spec.args)
            counted = sum(p.numel() for p in module.parameters())
            declared = op_hook_int(name, "params", spec.params(c_in, c_out, **spec.args))
            return None if counted == declared else f"declares {declared} params, the module has {counted}"

        def madds(c_in: int = c_in, c_out: int = c_out) -> str | None:
            module = spec.factory(c_in, c_out, **spec.args).eval()
            on_vectors = vector if vector is not None else _takes_vectors(module, c_in, size)
            h, w = (1, 1) if on_vectors else _fitting_size(module, c_in, size)
            x = torch.rand(1, c_in) if on_vectors else torch.rand(1, c_in, h, w)
            counted = _counted_madds(module, x)
            declared = op_hook_int(name, "madds", spec.madds(c_in, c_out, h, w, **spec.args))
            factor = resize(name, {})
            with torch.no_grad():
                out = module(x)
            # An op that maps images to vectors (pool + linear: N x C x H x W -> N x C) has no
            # output size to check; its Multi-Adds are those of one sample at this input.
            if not on_vectors and out.dim() == 4 and tuple(out.shape[-2:]) != (int(h * factor), int(w * factor)):
                return f"resize says x{factor}, the module maps {h}x{w} to {tuple(out.shape[-2:])}"
            return None if counted == declared else f"declares {declared} Multi-Adds at {h}x{w}, counting gives {counted}"

        checks.append(_run(plugin, f"params at {c_in}->{c_out}", params))
        checks.append(_run(plugin, f"Multi-Adds at {c_in}->{c_out}", madds))
    return checks


def _takes_vectors(module: nn.Module, c_in: int, size: tuple[int, int]) -> bool:
    """Whether the module takes N x C vectors and no image (no size up to 8x `size`)."""
    try:
        _fitting_size(module, c_in, size)
        return False
    except RuntimeError:
        try:
            with torch.no_grad():
                module(torch.rand(1, c_in))
            return True
        except RuntimeError:
            return False  # neither: the image's error is the one to report


def _fitting_size(module: nn.Module, c_in: int, size: tuple[int, int]) -> tuple[int, int]:
    """`size`, or the first of its doublings the module takes (an op with strided pooling
    inside, as RFDN's ESA, refuses a small input); the last one's error if none fits."""
    for k in (1, 2, 4, 8):
        h, w = size[0] * k, size[1] * k
        try:
            with torch.no_grad():
                module(torch.rand(1, c_in, h, w))
            return h, w
        except RuntimeError:
            if k == 8:
                raise
    raise AssertionError("unreachable")


def _accepted(fn: Any, args: dict[str, Any]) -> dict[str, Any]:
    from nasflow.space.kinds import only_accepted

    return only_accepted(fn, args)


# --- a tiny space and task the strategy checks run on ---------------------------------------------
def tiny_space() -> Any:
    """A searched op, a dense node keeping one of two inputs, on 3-channel images: 10 paths,
    more than SPOS's default population (8), which it may not exceed."""
    from nasflow.space.schema import Space, choice, dense, op

    return Space(name="conformance", params={"C": 4}, inputs={"x": 3}, nodes={
        "stem": op("conv_3x3", "x", out="C"),
        "m": choice(["conv_1x1", "conv_3x3", "conv_5x5", "sep_conv_3x3", "dil_conv_3x3"], "stem"),
        "e": dense(["stem", "m"], topk=1, merge="sum"),
        "head": op("conv_1x1", "e", out=3)}, output="head")


class _Stream:
    """Endless (x, y) batches of a seeded generator, resumable by its state."""

    def __init__(self, seed: int, batch_size: int, target: nn.Module) -> None:
        self.g = torch.Generator().manual_seed(seed)
        self.batch_size, self.target = batch_size, target

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        x = torch.rand(self.batch_size, 3, 8, 8, generator=self.g)
        with torch.no_grad():
            return x, self.target(x)

    def state_dict(self) -> dict[str, Any]:
        return {"g": self.g.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g.set_state(state["g"])


def tiny_task() -> Any:
    """A regression on 8x8 images toward a fixed random conv: the kit's own task."""
    from nasflow.tasks.contract import Metric, Task

    class Tiny(Task):
        name = "conformance"
        metrics = (Metric("mse", higher_is_better=False),)

        def __init__(self) -> None:
            torch.manual_seed(0)
            self.target = nn.Conv2d(3, 3, 3, padding=1)

        def batches(self, split: str, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1) -> _Stream:
            return _Stream(2 * seed + (split == "valid"), batch_size, self.target)

        def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
            loss = F.mse_loss(model(batch[0]), batch[1])
            return loss, {"mse": float(loss.detach())}

        def evaluate(self, model: nn.Module) -> dict[str, float]:
            x, y = next(_Stream(99, 4, self.target))
            with torch.no_grad():
                return {"mse": float(F.mse_loss(model(x), y))}

    return Tiny()


# --- strategies ----------------------------------------------------------------------------------
def check_strategy(name: str, options: dict[str, Any] | None = None, steps: int = 6) -> list[Check]:
    """A run of `steps` steps (one warm-up) stopped after half and resumed equals an
    uninterrupted one; the strategy's state survives state_dict / load_state_dict; the
    derived space builds."""
    from nasflow.compile.supernet import compile_graph
    from nasflow.runs.checkpoint import load_checkpoint
    from nasflow.runs.config import AdamConfig
    from nasflow.search.config import SearchConfig
    from nasflow.search.derive_run import derive_run
    from nasflow.search.loop import run_search, strategy_class
    from nasflow.space.graph import build_graph

    plugin = f"strategy '{name}'"
    config = SearchConfig(strategy=name, strategy_options=options or {}, steps=steps, warmup=1, batch_size=2,
                          gamma=0.0, regularizer=None, seed=0, device="cpu", snapshot_steps=[],
                          log_every=1, checkpoint_every=steps, weights_optim=AdamConfig(lr=1e-2),
                          arch_optim=AdamConfig(lr=3e-2, betas=(0.5, 0.999)))
    checks = []
    with tempfile.TemporaryDirectory(prefix="nasflow-check-") as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"

        def resume() -> str | None:
            run_search(config, a, space=tiny_space(), task=tiny_task())
            run_search(config, b, space=tiny_space(), task=tiny_task(), stop_at=steps // 2)
            run_search(config, b, task=tiny_task(), resume=True)
            (ta, sa), (tb, sb) = load_checkpoint(a / "checkpoint.safetensors"), load_checkpoint(b / "checkpoint.safetensors")
            differ = [k for k in ta if k not in tb or not torch.equal(ta[k], tb[k])]
            if differ:
                return (f"stopped at step {steps // 2} and resumed, {len(differ)} tensor(s) differ from an "
                        f"uninterrupted run (first: {differ[0]}): state that does not survive resume")
            if _plain(sa.get("strategy")) != _plain(sb.get("strategy")):
                return "stopped and resumed, its state_dict() differs from an uninterrupted run's"
            return None

        def round_trip() -> str | None:
            strategy = strategy_class(config)(config=config)
            model = compile_graph(build_graph(tiny_space()), mixed_op="plain")
            strategy.attach(model)
            state = strategy.state_dict()
            fresh = strategy_class(config)(config=config)
            fresh.attach(compile_graph(build_graph(tiny_space()), mixed_op="plain"))
            fresh.load_state_dict(state)
            return None if _plain(fresh.state_dict()) == _plain(state) else \
                "load_state_dict(state_dict()) does not give back the same state_dict()"

        def derives() -> str | None:
            derived = derive_run(a, out=Path(tmp) / "derived")
            compile_graph(build_graph(derived.space))(torch.rand(1, 3, 8, 8))
            return None

        checks.append(_run(plugin, "resume is exact", resume))
        checks.append(_run(plugin, "state_dict round trip", round_trip))
        checks.append(_run(plugin, "derives a space that builds", derives) if checks[0].ok else
                      Check(plugin, "derives a space that builds", False, "no run to derive (resume failed)"))
    return checks


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, Tensor):
        return x.tolist()
    return x


# --- tasks ---------------------------------------------------------------------------------------
def check_task(task: Any, space: Any) -> list[Check]:
    """`task` (a Task) on `space` (a Space whose model it scores): batches resumable, evaluate's
    numbers declared with directions, best_metric declared, the export sample fits the model."""
    from nasflow.compile.supernet import compile_graph
    from nasflow.derive.genotype import derive_space, genotype_from_arch
    from nasflow.space.graph import build_graph
    from nasflow.tasks.contract import checked_batches, checked_metrics, checked_sample

    cls = type(task)
    plugin = f"task '{cls.name or cls.__name__}'"
    graph = build_graph(space)
    if graph.decisions:
        logits = {label: torch.zeros(len(d.options)) for label, d in graph.decisions.items()}
        graph = build_graph(derive_space(space, genotype_from_arch(graph, logits)))
    model = compile_graph(graph).eval()

    def resumable() -> str | None:
        stream = checked_batches(task, task.batches("train", 2, 0))
        next(stream)
        if not hasattr(stream, "state_dict"):
            return "its batches have no state_dict(): a resumed run restarts the stream (replayed from the start)"
        state = stream.state_dict()
        expected = next(stream)
        again = checked_batches(task, task.batches("train", 2, 0))
        again.load_state_dict(state)
        return None if _plain(next(again)) == _plain(expected) else \
            "a stream restored from state_dict() yields another batch than the original"

    def declared() -> str | None:
        with torch.no_grad():
            values = checked_metrics(task, "evaluate", task.evaluate(model))
        names = {m.name for m in cls.metrics}
        undeclared = [k for k in values if k not in names]
        if undeclared:
            return (f"evaluate returns {', '.join(undeclared)}, not declared in `metrics` (declare "
                    "Metric(name, higher_is_better=...) for each)")
        cls.best()
        return None

    def sample() -> str | None:
        xs = [checked_sample(cls, cls.sample_input(graph.nodes[i].c_out, cls.export_size,
                                                   torch.Generator().manual_seed(0))) for i in graph.inputs]
        with torch.no_grad():
            model(*xs)  # one sample per input of the model
        return None

    return [_run(plugin, "batches resume exactly", resumable), _run(plugin, "metrics declared", declared),
            _run(plugin, "export sample fits the model", sample)]


# --- a module ------------------------------------------------------------------------------------
def check_module(module: str, space: Any = None) -> list[Check]:
    """Import `module` and check every op, strategy and task it registers (`space`: the space
    a task is checked on, default the kit's tiny space)."""
    from nasflow.ops.registry import OPS
    from nasflow.strategies import STRATEGIES
    from nasflow.tasks.contract import TASKS

    before = (set(OPS.names()), set(STRATEGIES.names()), set(TASKS.names()))
    loaded = import_plugin(module)
    ops = [n for n in OPS.names() if n not in before[0]]
    strategies = [n for n in STRATEGIES.names() if n not in before[1]]
    tasks = [n for n in TASKS.names() if n not in before[2]]
    if not (ops or strategies or tasks):  # imported before: what it defines
        ops = [n for n in OPS.names() if getattr(OPS.get(n).source, "__module__", None) == loaded.__name__]
        strategies = [n for n in STRATEGIES.names() if STRATEGIES.get(n).__module__ == loaded.__name__]
        tasks = [n for n in TASKS.names() if getattr(TASKS.get(n), "__module__", None) == loaded.__name__]
    checks: list[Check] = []
    for name in ops:
        checks += check_op(name)
    for name in strategies:
        checks += check_strategy(name)
    for name in tasks:
        checks += _run_task(name, space)
    if not checks:
        raise NasflowError(f"module '{module}' registers no op, strategy or task to check")
    return checks


def _run_task(name: str, space: Any) -> list[Check]:
    from nasflow.tasks.contract import TASKS

    try:
        task = TASKS.get(name)()
    except Exception as exc:  # noqa: BLE001 - reported as the task's failure
        return [Check(f"task '{name}'", "builds without options", False, f"{type(exc).__name__}: {exc}")]
    return check_task(task, space if space is not None else tiny_space())
