"""The classify task: CIFAR-10's python format (one clear error for a missing or corrupt
batch file), DARTS' half split, augmentation, cross-entropy and top-1 accuracy, and the
built-in set of real image crops."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from nasflow.errors import NasflowError
from nasflow.spaces.darts.data import TRAIN_FILES, builtin_set
from nasflow.spaces.darts.task import ClassificationTask, augment
from nasflow.tasks.contract import get_task_class


def _write_cifar(folder, n=8, corrupt=None, skip=None):
    rng = np.random.default_rng(0)
    for name in (*TRAIN_FILES, "test_batch"):
        if name == skip:
            continue
        path = folder / name
        if name == corrupt:
            path.write_bytes(b"not a pickle")
            continue
        entry = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        path.write_bytes(pickle.dumps(entry))


def test_cifar_folder_is_read(tmp_path):
    _write_cifar(tmp_path)
    task = ClassificationTask(data=str(tmp_path))
    assert task.train_x.shape == (40, 3, 32, 32) and task.test_x.shape == (8, 3, 32, 32)
    x, y = next(task.batches("train", 6, seed=0))
    assert x.shape == (6, 3, 32, 32) and y.dtype == torch.int64


def test_missing_batch_file_is_one_clear_error(tmp_path):
    _write_cifar(tmp_path, skip="data_batch_3")
    with pytest.raises(NasflowError, match="data_batch_3 is missing"):
        ClassificationTask(data=str(tmp_path))


def test_corrupt_batch_file_is_one_clear_error(tmp_path):
    _write_cifar(tmp_path, corrupt="test_batch")
    with pytest.raises(NasflowError, match="test_batch is corrupt"):
        ClassificationTask(data=str(tmp_path))


def test_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(NasflowError, match="does not exist; pass --task-opt data=DIR"):
        ClassificationTask(data=str(tmp_path / "nope"))


def test_half_split_is_disjoint_and_covers_the_set(tmp_path):
    _write_cifar(tmp_path, n=10)
    task = ClassificationTask(data=str(tmp_path))
    train, valid = task.batches("train", 4, 0), task.batches("valid", 4, 0)
    assert len(train.labels) == len(valid.labels) == 25
    assert torch.equal(torch.cat([train.images, valid.images]), task.train_x)
    full = ClassificationTask(data=str(tmp_path), half=False).batches("train", 4, 0)
    assert len(full.labels) == 50


def test_batches_resume_exactly():
    task = ClassificationTask()
    it = task.batches("train", 8, seed=3)
    next(it)
    state = it.state_dict()
    a = next(it)
    it2 = task.batches("train", 8, seed=3)
    it2.load_state_dict(state)
    b = next(it2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_augmentation_crops_flips_and_cuts_out():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(64, 3, 32, 32)
    out = augment(x, g, cutout=0)
    assert out.shape == x.shape
    assert (out == 0).any()  # the zero padding shows at some borders
    cut = augment(x, torch.Generator().manual_seed(0), cutout=16)
    assert (cut == 0).sum() > (out == 0).sum()


def test_loss_is_cross_entropy_and_top1_is_declared_higher_is_better():
    task = ClassificationTask(test_samples=50)
    assert get_task_class("classify") is ClassificationTask
    assert task.metric("top1").higher_is_better
    x, y = next(task.batches("train", 4, 0))

    class Fixed(nn.Module):  # always class 0
        def forward(self, x):
            return torch.zeros(x.shape[0], 10).index_fill(1, torch.tensor([0]), 5.0)

    total, terms = task.loss(Fixed(), (x, y))
    logits = Fixed()(x)
    assert float(total) == pytest.approx(float(nn.functional.cross_entropy(logits, y)))
    assert task.evaluate(Fixed())["top1"] == pytest.approx(100.0 * float((task.test_y == 0).float().mean()))


def test_builtin_set_is_balanced_real_crops():
    x, y = builtin_set("train")
    xt, yt = builtin_set("test")
    assert x.dtype == torch.uint8 and x.shape[1:] == (3, 32, 32)
    assert torch.equal(torch.bincount(y), torch.full((10,), 400))
    assert torch.equal(torch.bincount(yt), torch.full((10,), 60))
    assert float(x.float().std()) > 20  # photographs, not a constant


@pytest.mark.parametrize("option, value", [("cutout", -1), ("half", "maybe"), ("test_samples", 1.5)])
def test_bad_options_are_refused(option, value):
    with pytest.raises(NasflowError, match=option):
        ClassificationTask(**{option: value})
