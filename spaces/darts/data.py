"""Image classification data: CIFAR-10 in its python format, and a small built-in set.

    images, labels = load_cifar10(folder, "train")   # uint8 N x 3 x 32 x 32, int64 N
    images, labels = builtin_set("test")             # the built-in 10-class set (README.md)

CIFAR-10's python version (cifar-10-batches-py: data_batch_1..5, test_batch; pickled dicts
with b"data" N x 3072 uint8 and b"labels") is read from a folder the user names. A missing
or unreadable batch file is one error naming the file and what to do.
"""
from __future__ import annotations

import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from nasflow.errors import NasflowError

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
SOURCE = Path(__file__).resolve().parent.parent / "dlsr" / "data" / "train"
CLASSES = 10
SIZE = 32


class DataError(NasflowError):
    """A data folder or file the classification task cannot read."""


def load_cifar10(folder: str | Path, split: str) -> tuple[Tensor, Tensor]:
    """(uint8 N x 3 x 32 x 32 images, int64 N labels) of CIFAR-10's "train" or "test" split."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"CIFAR-10 folder {root} does not exist; pass --task-opt data=DIR with DIR the "
                        "unpacked cifar-10-batches-py folder (data_batch_1..5, test_batch)")
    images, labels = [], []
    for name in TRAIN_FILES if split == "train" else TEST_FILES:
        x, y = _read_batch(root / name)
        images.append(x)
        labels.append(y)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"CIFAR-10 batch file {path} is missing; the folder must hold data_batch_1..5 and "
                        "test_batch of the python version (cifar-10-python.tar.gz, unpacked)")
    try:
        with path.open("rb") as f:
            entry = pickle.load(f, encoding="bytes")
        data = np.asarray(entry[b"data"], dtype=np.uint8)
        labels = np.asarray(entry[b"labels"], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * SIZE * SIZE or len(labels) != len(data):
            raise ValueError(f"data of shape {data.shape} with {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= CLASSES):
            raise ValueError(f"labels outside 0..{CLASSES - 1}")
    except Exception as exc:  # any unpickling or layout failure is the same for the user
        raise DataError(f"CIFAR-10 batch file {path} is corrupt or not in the python format "
                        f"({type(exc).__name__}: {exc}); download and unpack it again") from None
    return data.reshape(-1, 3, SIZE, SIZE), labels


# --- the built-in set --------------------------------------------------------------------
def source_images() -> list[Path]:
    """The 10 largest of the shipped T91 images (by area, ties by name): one class each."""
    paths = sorted(SOURCE.glob("*.png"))
    if len(paths) < CLASSES:
        raise DataError(f"the built-in classification set is cut from the images in {SOURCE}, "
                        f"but {len(paths)} are there; reinstall nasflow or pass --task-opt data=DIR")
    sizes = {p: Image.open(p).size for p in paths}
    return sorted(paths, key=lambda p: (-sizes[p][0] * sizes[p][1], p.name))[:CLASSES]


@lru_cache(maxsize=2)
def builtin_set(split: str, per_class: tuple[int, int] = (400, 60)) -> tuple[Tensor, Tensor]:
    """32x32 crops of 10 photographs, the class being the photograph: "train" crops come
    from the left 3/4 of each image, "test" crops from the right 1/4 (disjoint pixels),
    `per_class` (train, test) crops per class evenly spaced over the grid. Deterministic."""
    images, labels = [], []
    for cls, path in enumerate(source_images()):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        cut = rgb.shape[1] * 3 // 4
        region = rgb[:, :cut] if split == "train" else rgb[:, cut:]
        corners = _grid(region, 4)
        want = per_class[0] if split == "train" else per_class[1]
        pick = np.linspace(0, len(corners) - 1, num=min(want, len(corners))).round().astype(int)
        images.append(np.stack([region[i:i + SIZE, j:j + SIZE] for i, j in (corners[k] for k in pick)]))
        labels.append(np.full(len(pick), cls, dtype=np.int64))
    x = np.concatenate(images).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.concatenate(labels))


def _grid(region: np.ndarray, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of the 32x32 crops on a `stride` grid, row by row."""
    h, w = region.shape[:2]
    return [(i, j) for i in range(0, h - SIZE + 1, stride) for j in range(0, w - SIZE + 1, stride)]
