"""torch.distributed plumbing for search and retraining: one process per device under torchrun.

Everything here is a thin layer over PyTorch's own engine (process groups, DDP); a run started
without torchrun gets a single-process context on which every helper is a no-op, so the search
and training loops call these unconditionally.
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterable, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from nasflow.errors import NasflowError

T = TypeVar("T")

# torchrun sets all of these; RANK alone (e.g. left over in a shell) is not enough to join a group.
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job: its rank, the job size and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes run directories, checkpoints and shows progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when several processes take part (a process group is initialised)."""
        return self.world_size > 1


def single(device: str | torch.device = "cpu") -> DistContext:
    """The context of a plain single-process run."""
    return DistContext(rank=0, world_size=1, local_rank=0, device=torch.device(device))


def _env_int(name: str) -> int:
    raw = os.environ[name]
    try:
        return int(raw)
    except ValueError:
        raise NasflowError(
            f"environment variable {name}={raw!r} is not an integer; launch with torchrun, "
            "which sets RANK, WORLD_SIZE and LOCAL_RANK"
        ) from None


def resolve_device(device: str, local_rank: int = 0, distributed: bool = False) -> torch.device:
    """'auto' picks cuda when present; under torchrun each process takes cuda:LOCAL_RANK."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NasflowError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
        if distributed and dev.index is None:
            if local_rank >= torch.cuda.device_count():
                raise NasflowError(
                    f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} GPU(s); "
                    "set torchrun --nproc-per-node to at most the number of GPUs"
                )
            dev = torch.device("cuda", local_rank)
        if dev.index is not None:
            torch.cuda.set_device(dev)
    return dev


def current(device: str = "auto") -> DistContext:
    """The context of this process: from the initialised process group if there is one
    (setup() was called, e.g. by the CLI), else a single-process context."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local,
                           device=resolve_device(device, local, distributed=True))
    return single(resolve_device(device, 0, distributed=False))


def launched_by_torchrun() -> bool:
    """True when the torchrun environment (rank, world size, rendezvous address) is present."""
    return all(name in os.environ for name in _TORCHRUN_ENV)


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun job if there is one, else return a single-process context.

    Backend: nccl when the device is CUDA, gloo on CPU. Calling it again once the group exists
    returns the same context (the search and train commands may both call it).
    """
    if not launched_by_torchrun():
        return single(resolve_device(device, 0, distributed=False))
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    dev = resolve_device(device, local, distributed=world > 1)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"backend": backend, "timeout": timedelta(minutes=30)}
        if backend == "nccl":
            kwargs["device_id"] = dev  # binds the communicator to this rank's GPU up front
        dist.init_process_group(**kwargs)
    return DistContext(rank=rank, world_size=world, local_rank=local, device=dev)


def cleanup(ctx: DistContext) -> None:
    """Leave the process group (torch warns at exit if a group is left open).

    The barrier first: a rank that left right after its last send could close the connection
    while another rank still reads from it, which gloo answers by aborting that process. Not
    while an exception is on its way out (called from a `finally`): the other ranks may never
    reach the barrier, and this rank must not wait for them.
    """
    if ctx.enabled and dist.is_initialized():
        if sys.exc_info()[1] is None:
            barrier(ctx)
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: DistContext, *, ignore: Iterable[str] = (), **ddp_kwargs: Any) -> nn.Module:
    """DistributedDataParallel around `model` when distributed, else `model` itself.

    DDP broadcasts rank 0's parameters and buffers at construction, so every rank starts
    from identical weights whatever its own initialisation was. `ignore` names parameters
    DDP must leave alone (a supernet's arch params: they get no grad in the weights step,
    which DDP would wait for, and the search averages their gradients itself).
    """
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ignore = list(ignore)
    if ignore:
        # DDP's documented hook for parameters it must not synchronise.
        DDP._set_params_and_buffers_to_ignore_for_model(model, ignore)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # A channels-last 1x1 conv weight's grad has other strides than its (equally valid)
    # parameter layout, so DDP copies it into its bucket: a speed hint, not a fault.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DDP(model, device_ids=device_ids, **ddp_kwargs)


def all_reduce_mean_(tensors: Iterable[Tensor | None], ctx: DistContext) -> None:
    """Average each tensor over ranks in place (None entries, e.g. unused grads, are skipped)."""
    if not ctx.enabled:
        return
    for t in tensors:
        if t is None:
            continue
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(ctx.world_size)


def mean_scalars(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """Average a dict of logged numbers over ranks (same keys, same order on every rank)."""
    if not ctx.enabled or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= ctx.world_size
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def broadcast_(tensors: Iterable[Tensor], ctx: DistContext) -> None:
    """Overwrite each tensor in place with rank 0's value."""
    if not ctx.enabled:
        return
    for t in tensors:
        dist.broadcast(t.data, src=0)


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when `flag` is true on any (e.g. Ctrl-C reached only some ranks),
    so all ranks stop at the same step and none waits forever in a collective."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (e.g. after rank 0 wrote a checkpoint the others will read)."""
    if not ctx.enabled:
        return
    if ctx.device.type == "cuda":
        dist.barrier(device_ids=[ctx.device.index])
    else:
        dist.barrier()


def gather_object(obj: Any, ctx: DistContext) -> list[Any] | None:
    """Every rank's `obj` in rank order on rank 0, None elsewhere (e.g. per-rank RNG states)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def on_main(fn: Callable[[], T], ctx: DistContext) -> T:
    """Run `fn` on rank 0 alone and return its result on every rank.

    An error on rank 0 is raised on every rank (a NasflowError as itself, anything else as a
    RuntimeError naming it), so a bad run directory stops the whole job with one message
    instead of leaving the other ranks waiting in the next collective.
    """
    if not ctx.enabled:
        return fn()
    message: Any = None
    failure: BaseException | None = None
    if ctx.is_main:
        try:
            message = ("ok", fn())
        except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
            failure = exc
            shared = exc if isinstance(exc, NasflowError) else RuntimeError(f"rank 0 failed: {exc!r}")
            message = ("error", shared)
    kind, value = broadcast_object(message, ctx)
    if failure is not None:
        raise failure
    if kind == "error":
        raise value
    return value


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's value of a picklable object on every rank (e.g. a run directory path)."""
    if not ctx.enabled:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0, device=ctx.device if ctx.device.type == "cuda" else None)
    return box[0]


def shard(batch: Any, ctx: DistContext) -> Any:
    """This rank's share of a global batch: samples whose index is congruent to rank mod world.

    Works on tensors, dicts, lists and tuples of them (sliced along dim 0); other leaves are
    passed through. Used for tasks whose batches() does not take rank/world_size itself.
    """
    if not ctx.enabled:
        return batch
    return _shard(batch, ctx.rank, ctx.world_size)


def _shard(batch: Any, rank: int, world: int) -> Any:
    if isinstance(batch, Tensor):
        if batch.dim() == 0:
            return batch
        if batch.shape[0] < world:
            raise NasflowError(
                f"a batch of {batch.shape[0]} samples cannot be shared by {world} processes; "
                f"raise the batch size to at least {world} or run fewer processes"
            )
        return batch[rank::world]
    if isinstance(batch, dict):
        return {k: _shard(v, rank, world) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(_shard(v, rank, world) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_shard(v, rank, world) for v in batch)
    return batch
