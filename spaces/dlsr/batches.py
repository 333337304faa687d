"""Endless, resumable, rank-sharded batch streams over an SRPatchDataset.

Global batch j of epoch e holds samples j*B .. j*B+B-1 of the dataset at epoch e (each a pure
function of (seed, e, index)). In a run of W processes, rank r takes the samples whose index
is r mod W within each global batch (DistributedSampler's interleave), so the union over the
ranks of batch j is exactly the single-process batch j, and the stream's state is just
(epoch, position): a resumed run reads the same batches as one that never stopped.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from nasflow.errors import NasflowError
from nasflow.runs.children import die_with_parent

from .data import SRPatchDataset

__all__ = ["PatchBatches", "check_shard", "epoch_samples"]

Pair = tuple[Tensor, Tensor]


def check_shard(batch_size: int, rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise NasflowError(f"rank {rank} of world_size {world_size}: need 0 <= rank < world_size")
    if batch_size < 1 or batch_size % world_size:
        raise NasflowError(f"batch size {batch_size} does not split over {world_size} processes: "
                           f"use a multiple of {world_size} (each rank takes batch_size / world_size)")


def epoch_samples(images: int, batch_size: int, min_batches: int) -> int:
    """Samples per epoch: every image at least once, whole batches only, and at least
    `min_batches` batches, so worker processes (restarted each epoch) are not restarted
    every few steps on a small image set."""
    batches = max(-(-images // batch_size), min_batches)
    return batches * batch_size


def _collate(samples: list[Pair]) -> Pair:
    return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])


def _init_worker(worker_id: int) -> None:
    die_with_parent()  # a killed search or training leaves no DataLoader workers behind


class PatchBatches(Iterator[Pair]):
    """(lr, hr) float32 N x C x H x W batches in 0..255, forever; this rank's share of each.

    The dataset's length is one epoch and must be a multiple of `batch_size`. The stream
    keeps its own shallow copy of the dataset, so its set_epoch never moves another stream
    (another split or rank in the same process) that shares the decoded images.
    """

    def __init__(self, dataset: SRPatchDataset, batch_size: int, *, rank: int = 0, world_size: int = 1,
                 workers: int = 0, pin_memory: bool = False) -> None:
        check_shard(batch_size, rank, world_size)
        if len(dataset) % batch_size:
            raise NasflowError(f"an epoch of {len(dataset)} samples is not whole batches of {batch_size}")
        self.dataset = copy.copy(dataset)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.workers, self.pin_memory = workers, pin_memory
        self.epoch, self.position = 0, 0  # position: batches of this epoch already yielded
        self._loader: Iterator[Pair] | None = None

    @property
    def batches_per_epoch(self) -> int:
        return len(self.dataset) // self.batch_size

    def indices(self, epoch_batch: int) -> list[int]:
        """This rank's sample indices of global batch `epoch_batch` of the epoch."""
        start = epoch_batch * self.batch_size
        return list(range(start + self.rank, start + self.batch_size, self.world_size))

    def _start_epoch(self) -> Iterator[Pair]:
        self.dataset.set_epoch(self.epoch)
        plan = [self.indices(j) for j in range(self.position, self.batches_per_epoch)]
        if self.workers == 0:  # no DataLoader: nothing to start, nothing to copy
            return (_collate([self.dataset[i] for i in idx]) for idx in plan)
        # Non-persistent workers: each epoch's workers copy the dataset after set_epoch.
        loader = DataLoader(self.dataset, batch_sampler=plan, num_workers=self.workers,
                            collate_fn=_collate, pin_memory=self.pin_memory, worker_init_fn=_init_worker)
        return iter(loader)

    def __next__(self) -> Pair:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position, self._loader = self.epoch + 1, 0, None
        if self._loader is None:
            self._loader = self._start_epoch()
        batch = next(self._loader)
        self.position += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= self.batches_per_epoch:
            raise NasflowError(f"batch stream state {state} does not fit an epoch of "
                               f"{self.batches_per_epoch} batches: was the data or batch size changed?")
        self.epoch, self.position, self._loader = epoch, position, None
