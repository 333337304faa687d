"""The decoded-image store against the in-RAM dataset, on a folder of 2K images (issue 17).

    python bench/data_store.py --make /tmp/big --images 100     # 2000 x 1500 PNGs from ../shared
    python bench/data_store.py --data /tmp/big                  # throughput and memory, both paths
    python bench/data_store.py --data /tmp/big --train          # `nasflow train` memory, sampled

For each path ("ram": every image decoded into the process, today's default for small sets;
"disk": the store, memory-mapped) a fresh process builds the training dataset, then reads
batches (default DataLoader workers, batch 16, HR patch 64, x2) until every image was
visited; it reports batches per second and the growth of anonymous memory (Pss_Anon summed
over the process and its workers, data_memory.tree_pss_anon) from before construction to
the end. The store is prepared first (timed) in a cache folder of its own, unless --cache
names one. --train runs `nasflow train spaces/dlsr/dlsr-s.yaml --data DIR --steps 60 --batch
2` (store=auto picks the store for a folder this big; --store ram: today's in-RAM path) and
samples its process tree's Pss_Anon every 0.2 s.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from nasflow.spaces.dlsr.batches import PatchBatches
from nasflow.spaces.dlsr.data import LRCache, SRPatchDataset, list_images
from nasflow.spaces.dlsr.data_memory import tree_pss_anon
from nasflow.spaces.dlsr.data_store import DecodedStore, decoded_bytes
from nasflow.spaces.dlsr.task import default_workers

SHARED_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "train"
MB = 2**20


def make_folder(dst: Path, images: int, size: tuple[int, int] = (2000, 1500), src: Path = SHARED_TRAIN) -> None:
    """`images` PNGs of `size` (W, H): real photos (the 291 training images), upscaled."""
    sources = list_images(src)
    dst.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        with Image.open(sources[i % len(sources)]) as im:
            big = im.convert("RGB").resize(size, Image.Resampling.BICUBIC)
        if i >= len(sources):  # a second pass: mirror, so no two images are alike
            big = big.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        big.save(dst / f"{i:04d}.png", compress_level=1)


def _measure(mode: str, data: str, cache: str, batch: int, patch: int, workers: int, out: Any) -> None:
    import torch

    torch.set_num_threads(1)
    paths = list_images(data)
    before = tree_pss_anon()
    store = DecodedStore(LRCache(cache)) if mode == "disk" else None
    t0 = time.perf_counter()
    ds = SRPatchDataset(paths, 2, patch, samples_per_epoch=len(paths) * batch, store=store, cache=LRCache(cache))
    built = time.perf_counter() - t0
    stream = PatchBatches(ds, batch, workers=workers)
    peak = tree_pss_anon() - before
    t0 = time.perf_counter()
    n = stream.batches_per_epoch
    for j in range(n):  # an epoch visits every image `batch` times
        next(stream)
        if j % 10 == 0 or j == n - 1:
            peak = max(peak, tree_pss_anon() - before)
    seconds = time.perf_counter() - t0
    out.put({"mode": mode, "build_s": built, "batches": n, "batches_per_s": n / seconds,
             "anon_growth_mb": peak / MB})


def run_modes(data: Path, cache: Path, batch: int, patch: int, workers: int) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")  # a fresh process per path: clean memory figures
    results = []
    for mode in ("ram", "disk"):
        q = ctx.Queue()
        p = ctx.Process(target=_measure, args=(mode, str(data), str(cache), batch, patch, workers, q))
        p.start()
        results.append(q.get())
        p.join()
    return results


def train_memory(data: Path, cache: Path, store: str) -> dict[str, Any]:
    cmd = ["nasflow", "train", "spaces/dlsr/dlsr-s.yaml", "--data", str(data), "--steps", "60", "--batch", "2",
           "--task-opt", f"cache={cache}", "--task-opt", f"store={store}", "--out", tempfile.mkdtemp(prefix="bench-train-")]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_pss_anon(proc.pid))
        time.sleep(0.2)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err}")
    return {"command": " ".join(cmd), "seconds": time.perf_counter() - t0, "peak_anon_mb": peak / MB}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make", type=Path, help="write a folder of 2000 x 1500 PNGs here and stop")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--data", type=Path, help="folder of HR images to measure on")
    ap.add_argument("--cache", type=Path, help="store folder (default: a fresh temporary one)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=default_workers(), help="DataLoader workers [the task's default]")
    ap.add_argument("--train", action="store_true", help="measure `nasflow train` instead")
    ap.add_argument("--store", default="auto", choices=["auto", "disk", "ram"], help="the task's store option, with --train")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.make:
        t0 = time.perf_counter()
        make_folder(args.make, args.images)
        print(f"wrote {args.images} images to {args.make} in {time.perf_counter() - t0:.0f} s")
        return
    if args.data is None:
        ap.error("give --data DIR (or --make DIR first)")
    cache = args.cache or Path(tempfile.mkdtemp(prefix="nasflow-store-"))
    paths = list_images(args.data)
    decoded = decoded_bytes(paths, 2)
    t0 = time.perf_counter()
    report = DecodedStore(LRCache(cache)).prepare(paths, 2)
    print(f"{len(paths)} images, {decoded / MB:.0f} MB decoded (HR + LR x2); store in {cache}: "
          f"prepared {report.written} in {time.perf_counter() - t0:.1f} s with {os.cpu_count()} processes, "
          f"{report.disk_bytes / MB:.0f} MB on disk")
    if args.train:
        result: Any = train_memory(args.data, cache, args.store)
        print(f"{result['command']}\n  {result['seconds']:.0f} s, peak Pss_Anon of the process tree "
              f"{result['peak_anon_mb']:.0f} MB")
    else:
        result = run_modes(args.data, cache, args.batch, args.patch, args.workers)
        print(f"batch {args.batch}, HR patch {args.patch}, x2, {args.workers} DataLoader workers, "
              f"every image visited {args.batch} times")
        print(f"{'path':6} {'build s':>8} {'batches/s':>10} {'anon growth MB':>15}")
        for r in result:
            print(f"{r['mode']:6} {r['build_s']:8.1f} {r['batches_per_s']:10.1f} {r['anon_growth_mb']:15.0f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
