"""The run plumbing the search and training loops share (nasflow/loop.py)."""
from __future__ import annotations

import torch
from synthetic import PlantedTask

from nasflow.runs.distributed import DistContext, single
from nasflow.runs.loop import BatchStream, gather_rank_states, rank_state, restore_rank_state


def _streams(task: PlantedTask, ctx: DistContext) -> dict[str, BatchStream]:
    return {split: BatchStream(task, split, 4, seed=0, device=torch.device("cpu"), ctx=ctx)
            for split in ("train", "valid")}


def _drawn(streams: dict[str, BatchStream]) -> list[torch.Tensor]:
    return [streams[s].next()[1] for s in ("train", "valid")] + [torch.rand(3)]


def test_restored_state_draws_what_the_saved_one_would():
    task, ctx = PlantedTask(), single()
    streams = _streams(task, ctx)
    for _ in range(3):
        streams["train"].next()
    streams["valid"].next()
    torch.manual_seed(5)
    state = gather_rank_states(rank_state(streams, task), ctx)
    assert state is not None and "ranks" not in state  # a single process keeps its own only
    want = _drawn(streams)

    fresh = _streams(task, ctx)
    torch.manual_seed(123)  # restored below
    restore_rank_state(state, fresh, task, ctx)
    assert [s.consumed for s in fresh.values()] == [3, 1]
    for got, expected in zip(_drawn(fresh), want):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_older_training_checkpoints_with_one_bare_stream_restore():
    task, ctx = PlantedTask(stateful=False), single()  # a plain generator: resumed by replay
    stream = BatchStream(task, "train", 4, seed=0, device=torch.device("cpu"), ctx=ctx)
    for _ in range(2):
        stream.next()
    state = {"rng": rank_state({}, task)["rng"], "data": stream.state_dict()}  # the old layout
    want = stream.next()[1]
    fresh = {"train": BatchStream(task, "train", 4, seed=0, device=torch.device("cpu"), ctx=ctx)}
    restore_rank_state(state, fresh, task, ctx)
    torch.testing.assert_close(fresh["train"].next()[1], want, rtol=0, atol=0)
