"""The decoded-image store (data_store.py): the same patches as the in-RAM dataset, preparation
that is parallel, resumable and never serves a changed or torn entry, the sr task's `store`
option, `nasflow prepare-data`, flat anonymous memory while iterating every image, and one
preparation under a 2-rank training run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.errors import NasflowWarning
from nasflow.spaces.dlsr.batches import PatchBatches
from nasflow.spaces.dlsr.data import DataError, LRCache, SRPatchDataset, list_images, load_pair
from nasflow.spaces.dlsr.data_store import DecodedStore, StoredImages, decoded_bytes, prepare_folder
from nasflow.spaces.dlsr.task import SRTask

DLSR_S = Path(__file__).resolve().parents[2] / "spaces" / "dlsr" / "dlsr-s.yaml"
runner = CliRunner()


def write_images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0, suffix: str = ".png") -> list[Path]:
    """Random RGB images of the given (H, W) sizes, named 00.png, 01.png, ... (sorted)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:02d}{suffix}")
    return list_images(folder)


SIZES = [(101, 83), (64, 70), (30, 40), (99, 120), (75, 64), (1, 5)]  # odd sides: mod-crop; 30 x 40, 1 x 5: too small


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    return write_images(tmp_path / "hr", SIZES)


def test_store_serves_exactly_the_in_ram_patches_and_batches(images: list[Path], tmp_path: Path) -> None:
    store = DecodedStore(LRCache(tmp_path / "cache"), workers=2)  # two preparing processes
    with pytest.warns(NasflowWarning, match=r"skipped 2 image\(s\) .* \(40 x 30\), .*05.png \(5 x 1\)"):
        ram = SRPatchDataset(images, 2, 32, samples_per_epoch=40, skip_small=True, seed=3)
    with pytest.warns(NasflowWarning, match=r"skipped 2 image\(s\) .* \(40 x 30\), .*05.png \(5 x 1\)"):
        disk = SRPatchDataset(images, 2, 32, samples_per_epoch=40, skip_small=True, seed=3, store=store)
    assert isinstance(disk.hr, StoredImages) and disk.prepared is not None and disk.prepared.written == 6
    assert disk.paths == ram.paths and disk.skipped == ram.skipped and len(disk.skipped) == 2
    for a, b in [*zip(ram.hr, disk.hr), *zip(ram.lr, disk.lr)]:
        assert a.shape == b.shape and np.array_equal(a, b)
    assert not disk.hr[0].flags.writeable  # a write would copy a page into the process
    for epoch in (0, 1):
        ram.set_epoch(epoch)
        disk.set_epoch(epoch)
        for i in range(len(ram)):
            assert all(torch.equal(x, y) for x, y in zip(ram[i], disk[i]))
    # 2 DataLoader workers (forked, sharing the maps) and a resumed stream: the same batches
    want = [next(s) for s in [PatchBatches(ram, 8, workers=0)] for _ in range(7)]
    stream = PatchBatches(disk, 8, workers=2)
    got = [next(stream) for _ in range(3)]
    resumed = PatchBatches(disk, 8, workers=2)
    resumed.load_state_dict(stream.state_dict())
    got += [next(resumed) for _ in range(4)]  # crosses into epoch 1
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(want, got))


def test_preparation_resumes_and_redoes_changed_or_torn_entries(images: list[Path], tmp_path: Path) -> None:
    store = DecodedStore(LRCache(tmp_path / "cache"), workers=1)
    calls: list[tuple[int, int]] = []

    def stop_after_two(done: int, total: int) -> None:
        calls.append((done, total))
        if done == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle

    with pytest.raises(KeyboardInterrupt):
        store.prepare(images, 2, stop_after_two)
    assert calls == [(0, 6), (1, 6), (2, 6)]
    assert not list(store.dir.glob("*.tmp"))
    said: list[int] = []
    report = store.prepare(images, 2, announce=said.append)
    assert report.images == 6 and report.written == 4 and said == [4]  # the two finished images were kept
    assert store.prepare(images, 2, announce=said.append).written == 0 and said == [4]
    files = sorted(p.name for p in store.dir.glob("*.npy"))
    assert len(files) == 12 and report.disk_bytes == sum((store.dir / f).stat().st_size for f in files)

    # an edited image gets new entries: never the stale ones
    new = np.full((90, 96, 3), 7, np.uint8)
    Image.fromarray(new).save(images[0])
    os.utime(images[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    assert store.prepare(images, 2).written == 1
    hr, lr = store.open(images, 2)
    assert np.array_equal(hr[0], new) and np.array_equal(lr[0], load_pair(images[0], 2)[1])

    # a torn entry (a short copy, a full disk) is redone, not read
    entry = store.cache.path_for(images[3], 2)
    entry.write_bytes(entry.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"03.png is not in the decoded-image store .* `nasflow prepare-data .*hr --scale 2`"):
        store.open(images, 2)
    assert store.prepare(images, 2).written == 1
    assert np.array_equal(store.open(images, 2)[1][3], load_pair(images[3], 2)[1])

    # a temporary left by a killed preparer is cleaned once stale; a fresh one may be in use
    (store.dir / "old.tmp").write_bytes(b"x")
    os.utime(store.dir / "old.tmp", (time.time() - 7200, time.time() - 7200))
    (store.dir / "fresh.tmp").write_bytes(b"x")
    store.cache.path_for(images[1], 2).unlink()
    assert store.prepare(images, 2).written == 1
    assert not (store.dir / "old.tmp").exists() and (store.dir / "fresh.tmp").exists()

    # another scale reuses the stored HR images and adds only LR entries
    assert store.prepare(images, 3).written == 6 and len(list(store.dir.glob("*_hr_*.npy"))) == 7
    (images[2].parent / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot decode image .*broken.png"):
        store.prepare(list_images(images[2].parent), 2)


def test_prepare_folder_and_the_cli_command(images: list[Path], tmp_path: Path) -> None:
    folder, cache = images[0].parent, tmp_path / "cache"
    seen: list[int] = []
    reports = prepare_folder(folder, [2, 2, 3], cache, workers=1, progress=lambda d, t: seen.append(t))
    assert [r.written for r in reports] == [6, 6] and set(seen) == {12}
    res = runner.invoke(app, ["prepare-data", str(folder), "--scale", "2", "--scale", "4",
                              "--cache", str(cache), "--workers", "2", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert [(r["scale"], r["images"], r["written"]) for r in got] == [(2, 6, 0), (4, 6, 6)]
    res = runner.invoke(app, ["prepare-data", str(folder), "--scale", "2", "--cache", str(cache)])
    assert res.exit_code == 0, res.output
    assert f"x2: 6 images in {cache} (0 decoded now, 6 already there)" in res.output
    assert f"--task-opt cache={cache} to read this store" in res.output
    res = runner.invoke(app, ["prepare-data", str(tmp_path / "nowhere"), "--scale", "2"])
    assert res.exit_code != 0 and "does not exist" in str(res.exception)


@pytest.mark.filterwarnings("ignore:skipped 2 image")
def test_task_store_option(images: list[Path], tmp_path: Path) -> None:
    with pytest.raises(Exception, match="store must be one of auto, disk, ram"):
        SRTask(scale=2, store="ssd")
    with pytest.raises(Exception, match="store=disk keeps the decoded images in the cache folder"):
        SRTask(scale=2, store="disk", cache="none")
    # the shipped images (10 MB decoded) stay in RAM: the main job does not change
    assert SRTask(scale=2, cache=str(tmp_path / "c0")).decoded_store() is None
    folder = images[0].parent
    assert decoded_bytes(images, 2) == sum(3 * (h * w + (h // 2) * (w // 2)) for h, w in SIZES)
    ram = SRTask(str(folder), scale=2, patch=32, workers=0, cache=str(tmp_path / "c1"), store="ram")
    disk = SRTask(str(folder), scale=2, patch=32, workers=0, cache=str(tmp_path / "c1"), store="disk")
    a = ram.batches("train", 4, seed=1)
    with pytest.warns(NasflowWarning, match=r"preparing 6 of 6 images in the decoded-image store .*c1 \(once"):
        b = disk.batches("train", 4, seed=1)
    for _ in range(3):
        x, y = next(a), next(b)
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
    assert disk.decoded_store() is not None and disk.prepared is not None
    assert disk.prepared.images == disk.prepared.written == 6  # both splits at once
    assert next(disk.batches("valid", 2, seed=1))[1].shape == (2, 3, 32, 32)


# Run in a fresh interpreter that imports only the data modules: forked DataLoader workers
# copy-on-write what their parent holds, so a parent that imported pytest and the CLI would
# add noise that is not the data's.
_MEASURE = """
import json, os, sys
import torch
from nasflow.spaces.dlsr.batches import PatchBatches
from nasflow.spaces.dlsr.data import LRCache, SRPatchDataset, list_images
from nasflow.spaces.dlsr.data_memory import descendants, tree_pss_anon
from nasflow.spaces.dlsr.data_store import DecodedStore
torch.set_num_threads(1)
folder, cache = sys.argv[1], sys.argv[2]
paths = list_images(folder)
out = {}
for name, store in (("disk", DecodedStore(LRCache(cache))), ("ram", None)):
    before = tree_pss_anon()
    ds = SRPatchDataset(paths, 2, 64, samples_per_epoch=len(paths), store=store, cache=LRCache(cache))
    stream = PatchBatches(ds, 4, workers=1)
    peak, workers = 0, 0
    for _ in range(stream.batches_per_epoch):  # every image once
        next(stream)
        workers = max(workers, len(descendants(os.getpid())))
        peak = max(peak, tree_pss_anon() - before)
    out[name], out[name + "_workers"] = peak, workers
    del stream, ds
print(json.dumps(out))
"""


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").is_file(), reason="needs Linux's /proc/PID/smaps_rollup")
def test_anonymous_memory_stays_flat_while_iterating_every_image(tmp_path: Path) -> None:
    # Many small images: the MATLAB resize costs more per pixel on large ones; BMP: fast I/O
    paths = write_images(tmp_path / "hr", [(480, 640)] * 160, suffix=".bmp")
    decoded = decoded_bytes(paths, 2)  # 184 MB
    prepare_folder(tmp_path / "hr", [2], tmp_path / "cache", workers=2)
    res = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path / "hr"), str(tmp_path / "cache")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    growth = json.loads(res.stdout)
    assert growth["disk_workers"] == 1 and growth["ram_workers"] == 1
    assert growth["ram"] > 0.9 * decoded  # the measure sees decoded images ...
    assert growth["disk"] < 0.25 * decoded, growth  # ... and the store keeps them out (measured: 0.11)


def _rank(rank: int, port: int, tmp: str) -> None:
    """One rank of a 2-process training run on the store (the distributed test's worker)."""
    from nasflow.runs.config import AdamConfig
    from nasflow.runs.distributed import cleanup, setup
    from nasflow.space.load import load_space
    from nasflow.train.config import TrainConfig
    from nasflow.train.loop import run_train

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    ctx = setup("cpu")
    try:
        task = SRTask(f"{tmp}/hr", scale=2, patch=32, workers=0, cache=f"{tmp}/cache", store="disk",
                      ssim=False, bench=f"{tmp}/bench")
        config = TrainConfig(steps=2, batch_size=4, optim=AdamConfig(lr=1e-3, weight_decay=0.0), device="cpu",
                             validate_every=2, log_every=1, checkpoint_every=2)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            result = run_train(config, f"{tmp}/run", arch=load_space(DLSR_S, {"channels": 4}), task=task, ctx=ctx)
        assert task.prepared is not None
        out = {"written": task.prepared.written, "images": task.prepared.images, "step": result.step,
               "said": sum("preparing 6 of 6 images" in str(w.message) for w in seen)}
    finally:
        cleanup(ctx)
    Path(tmp, f"rank{rank}.json").write_text(json.dumps(out))


def test_two_rank_training_prepares_the_store_once(tmp_path: Path) -> None:
    from spawn_ranks import spawn_ranks

    write_images(tmp_path / "hr", [(96, 128)] * 6)
    write_images(tmp_path / "bench", [(48, 64)], seed=1)
    ranks = spawn_ranks(_rank, tmp_path, 2)
    assert [r["step"] for r in ranks] == [2, 2] and {r["images"] for r in ranks} == {6}
    assert sorted(r["written"] for r in ranks) == [0, 6]  # one rank prepared, the other found it done
    assert sorted(r["said"] for r in ranks) == [0, 1]  # and only that one said so
    assert len(list((tmp_path / "cache").glob("*_hr_*.npy"))) == 6 and not list((tmp_path / "cache").glob("*.tmp"))
