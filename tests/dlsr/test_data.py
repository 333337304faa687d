"""The SR data pipeline: folders, decoding, the LR cache, aligned patches, augmentation,
determinism, benchmarks."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from nasflow.spaces.dlsr.bicubic import imresize_uint8
from nasflow.spaces.dlsr.data import (
    DataError,
    LRCache,
    SRBenchDataset,
    SRPatchDataset,
    augment,
    augment_pair,
    default_cache_dir,
    inverse_augment,
    list_images,
    load_benchmark,
    load_pair,
    load_rgb,
    make_lr,
)
from nasflow.spaces.dlsr.images import to_image, to_tensor

from nasflow.errors import NasflowWarning


@pytest.fixture(scope="module")
def small_images(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Small HR crops of Set5, sorted: bird 64 x 64, butterfly 97 x 81, head 70 x 91 (H x W)."""
    folder = tmp_path_factory.mktemp("hr")
    crops = {"butterfly": (60, 120, 97, 81), "bird": (90, 100, 64, 64), "head": (100, 80, 70, 91)}
    for name, (top, left, h, w) in crops.items():
        img = load_rgb(shared_dir / "datasets" / "Set5" / f"{name}.png")[top : top + h, left : left + w]
        Image.fromarray(img).save(folder / f"{name}.png")
    return list_images(folder)


# --- folders and decoding -------------------------------------------------------------------


def test_missing_and_empty_folders_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist.*folder of HR images"):
        list_images(tmp_path / "DIV2K_train_HR")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"empty holds no images"):
        list_images(tmp_path / "empty")
    with pytest.raises(DataError, match="is a file"):
        list_images(tmp_path / "empty" / "notes.txt")
    assert issubclass(DataError, ValueError)


def test_list_images_is_recursive_and_sorted(tmp_path: Path) -> None:
    px = np.zeros((4, 4, 3), np.uint8)
    (tmp_path / "b" / "deep").mkdir(parents=True)
    for rel in ["z.png", "a.JPG", "b/deep/c.bmp", "b/x.jpeg"]:
        Image.fromarray(px).save(tmp_path / rel)
    (tmp_path / "readme.md").write_text("x")
    got = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert got == ["a.JPG", "b/deep/c.bmp", "b/x.jpeg", "z.png"]


def test_grey_and_other_modes_become_rgb(shared_dir: Path, tmp_path: Path) -> None:
    bridge = load_rgb(shared_dir / "datasets" / "Set14" / "bridge.png")
    assert bridge.shape == (512, 512, 3) and bridge.dtype == np.uint8
    assert np.array_equal(bridge[..., 0], bridge[..., 1]) and np.array_equal(bridge[..., 0], bridge[..., 2])
    rgba = np.random.default_rng(0).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(load_rgb(tmp_path / "rgba.png"), rgba[..., :3])
    Image.fromarray(np.full((3, 3), 65535, np.uint16)).save(tmp_path / "grey16.png")
    assert load_rgb(tmp_path / "grey16.png").tolist() == np.full((3, 3, 3), 255).tolist()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot decode"):
        load_rgb(tmp_path / "broken.png")


# --- LR cache ----------------------------------------------------------------------------------


def test_cache_writes_once_and_returns_the_same_arrays(small_images: list[Path], tmp_path: Path) -> None:
    cache = LRCache(tmp_path / "cache")
    path = small_images[1]  # butterfly: 97 x 81
    entry = cache.path_for(path, 2)
    assert not entry.exists()
    hr, lr = cache.get(path, 2)
    assert entry.exists() and list(entry.parent.glob("*.tmp")) == []
    assert hr.shape == (96, 80, 3) and lr.shape == (48, 40, 3) and lr.dtype == np.uint8
    assert np.array_equal(lr, imresize_uint8(hr, 0.5))
    mtime = entry.stat().st_mtime_ns
    hr2, lr2 = cache.get(path, 2)
    assert np.array_equal(hr, hr2) and np.array_equal(lr, lr2)
    assert entry.stat().st_mtime_ns == mtime  # read back, not rewritten
    assert cache.path_for(path, 3) != entry
    # Without a cache the same pair is computed.
    hr3, lr3 = load_pair(path, 2)
    assert np.array_equal(hr3, hr) and np.array_equal(lr3, lr)


def test_cache_key_follows_the_file_and_survives_corruption(small_images: list[Path], tmp_path: Path) -> None:
    cache = LRCache(tmp_path / "cache")
    src = tmp_path / "img.png"
    src.write_bytes(small_images[0].read_bytes())
    _, lr = cache.get(src, 2)
    entry = cache.path_for(src, 2)
    entry.write_bytes(b"garbage")  # a damaged entry is recomputed, not trusted
    assert np.array_equal(cache.get(src, 2)[1], lr)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.path_for(src, 2) != entry


def test_default_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NASFLOW_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert LRCache().dir == tmp_path / "c"
    monkeypatch.delenv("NASFLOW_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "nasflow" / "lr"


# --- augmentation ------------------------------------------------------------------------------


def test_eight_distinct_invertible_transforms() -> None:
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    outs = [augment(img, k) for k in range(8)]
    assert len({(o.shape, o.tobytes()) for o in outs}) == 8
    t = torch.from_numpy(img).permute(2, 0, 1)
    for k, o in enumerate(outs):
        assert np.array_equal(augment(o, inverse_augment(k)), img)
        # numpy H x W x C and torch C x H x W give the same transform.
        assert np.array_equal(augment(t, k).permute(1, 2, 0).numpy(), o)
    assert np.array_equal(outs[0], img)
    with pytest.raises(ValueError, match="0..7"):
        augment(img, 8)


def test_augmentation_commutes_with_downscaling(small_images: list[Path]) -> None:
    hr, lr = load_pair(small_images[1], 2)  # not square, so transposes show
    for k in range(8):
        aug_lr, aug_hr = augment_pair(lr, hr, k)
        diff = np.abs(make_lr(np.ascontiguousarray(aug_hr), 2).astype(int) - aug_lr)
        assert diff.max() <= 1  # equal up to float rounding ties


# --- training patches --------------------------------------------------------------------------


def test_patches_are_aligned_crops(small_images: list[Path], tmp_path: Path) -> None:
    ds = SRPatchDataset(small_images, scale=2, patch_size=32, samples_per_epoch=24, cache=LRCache(tmp_path))
    assert len(ds) == 24
    seen_k = set()
    for i in range(len(ds)):
        lr_t, hr_t = ds[i]
        assert lr_t.shape == (3, 16, 16) and hr_t.shape == (3, 32, 32) and lr_t.dtype == torch.float32
        assert 0 <= float(lr_t.min()) and float(hr_t.max()) <= 255
        image, top, left, k = ds.sample_params(i)
        assert image == i % 3
        seen_k.add(k)
        full_hr, full_lr = ds.hr[image], ds.lr[image]
        want_lr, want_hr = augment_pair(
            full_lr[top : top + 16, left : left + 16], full_hr[2 * top : 2 * top + 32, 2 * left : 2 * left + 32], k
        )
        assert np.array_equal(to_image(lr_t), want_lr) and np.array_equal(to_image(hr_t), want_hr)
        # Independently of how it was cut: the HR patch downscaled looks like the LR patch
        # away from the border (where the full image's neighbours matter).
        down = imresize_uint8(to_image(hr_t), 0.5).astype(int)
        assert np.abs(down[3:-3, 3:-3] - to_image(lr_t)[3:-3, 3:-3]).max() <= 3
    assert len(seen_k) > 1
    no_aug = SRPatchDataset(small_images, 2, 32, augment=False, samples_per_epoch=8)
    assert {no_aug.sample_params(i).k for i in range(8)} == {0}


def test_patches_are_deterministic_and_epoch_dependent(small_images: list[Path]) -> None:
    a = SRPatchDataset(small_images, 2, 32, samples_per_epoch=12, seed=7)
    b = SRPatchDataset(small_images, 2, 32, samples_per_epoch=12, seed=7)
    c = SRPatchDataset(small_images, 2, 32, samples_per_epoch=12, seed=8)
    pa = [a.sample_params(i) for i in range(12)]
    assert pa == [b.sample_params(i) for i in range(12)]
    assert pa != [c.sample_params(i) for i in range(12)]
    assert torch.equal(a[5][1], b[5][1])
    a.set_epoch(1)
    assert pa != [a.sample_params(i) for i in range(12)]
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert SRPatchDataset(small_images, 2, 32, seed=g1).seed == SRPatchDataset(small_images, 2, 32, seed=g2).seed


def test_workers_do_not_change_or_repeat_patches(small_images: list[Path]) -> None:
    ds = SRPatchDataset(small_images, 2, 16, samples_per_epoch=16, seed=1)
    main = torch.cat([hr for _, hr in DataLoader(ds, batch_size=4, num_workers=0)])
    workers = torch.cat([hr for _, hr in DataLoader(ds, batch_size=4, num_workers=2)])
    assert torch.equal(main, workers)
    params = [ds.sample_params(i) for i in range(16)]
    assert len(set(params)) == 16


def test_patch_configuration_errors(small_images: list[Path]) -> None:
    with pytest.raises(DataError, match="multiple of scale"):
        SRPatchDataset(small_images, 2, 33)
    with pytest.raises(DataError, match="no HR images"):
        SRPatchDataset([], 2, 32)
    with pytest.raises(DataError, match=r"3 image\(s\) are smaller than the HR patch 128.*skip_small"):
        SRPatchDataset(small_images, 2, 128)
    with pytest.warns(NasflowWarning, match=r"skipped 2 image\(s\) smaller than the HR patch 72"):
        ds = SRPatchDataset(small_images, 2, 72, skip_small=True)  # only the 96-pixel-tall image fits
    assert len(ds.hr) == 1 and len(ds.skipped) == 2
    calls: list[tuple[int, int]] = []
    SRPatchDataset(small_images, 2, 32, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


# --- benchmarks --------------------------------------------------------------------------------


def test_load_benchmark(shared_dir: Path, tmp_path: Path) -> None:
    bench = load_benchmark(shared_dir / "datasets" / "Set5", 3, cache=LRCache(tmp_path))
    assert [b.name for b in bench] == ["baby", "bird", "butterfly", "head", "woman"]
    woman = bench[-1]
    assert woman.hr.shape == (342, 228, 3) and woman.lr.shape == (114, 76, 3)
    name, hr, lr = bench[2]
    assert name == "butterfly" and np.array_equal(lr, imresize_uint8(hr, 1 / 3))
    ds = SRBenchDataset(shared_dir / "datasets" / "Set5", 3, cache=LRCache(tmp_path))
    name, lr_t, hr_t = ds[4]
    assert name == "woman" and lr_t.shape == (3, 114, 76) and hr_t.shape == (3, 342, 228)
    assert torch.equal(lr_t, to_tensor(woman.lr))
