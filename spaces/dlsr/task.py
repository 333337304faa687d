"""The SR task adapter ("sr"): what the engine needs to search or train a DLSR space.

    task = SRTask(data="DIV2K_train_HR", patch=64, space_params={"scale": 2})
    lr, hr = next(task.batches("train", 64, seed=0))
    total, terms = task.loss(model, (lr, hr))     # L1 + mu * HFEN, {"l1", "hfen"}
    task.evaluate(model)                          # {"psnr", "ssim"} on the bench set

Every option can be given as `--task-opt key=value` (so each is a bool, int, float or str).
Images are split once into disjoint train and valid sets by a hash of their file names, so
the split does not depend on the seed and adding images leaves the others where they were.
"""
from __future__ import annotations

import copy
import hashlib
import os
import warnings
from pathlib import Path
from statistics import fmean
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from nasflow.errors import NasflowError, NasflowWarning
from nasflow.space.schema import Space
from nasflow.tasks.contract import Evaluation, Metric, Task

from .batches import PatchBatches, epoch_samples
from .data import BenchImage, DataError, LRCache, SRPatchDataset, default_cache_dir, list_images, load_benchmark
from .data_store import DecodedStore, PrepareReport, decoded_bytes
from .eval_report import SREvalOptions, benchmark_report
from .facts import FACTS
from .evaluate import DATA_DIR, default_bench, evaluate_images, upscale
from .loss import HFEN_FORMS, SRLoss
from .metrics import psnr
from .presets import PRESETS

__all__ = ["SRTask", "default_data", "default_workers", "split_images"]

SPLITS = ("train", "valid")
# An epoch is at least this many batches: a small image set is cycled, so workers are not
# restarted every few steps (an epoch still visits every image at least once).
MIN_EPOCH_BATCHES = 100
# store=auto keeps a data set in RAM up to this many decoded bytes (HR + LR) per process, and
# memory-maps it from the decoded-image store above (the shipped T91 subset: 10 MB).
AUTO_STORE_BYTES = 256 * 2**20
STORES = ("auto", "disk", "ram")


def default_data() -> Path:
    """65 T91 images shipped with the package (spaces/dlsr/data/train/README.md)."""
    return DATA_DIR / "train"


def default_workers() -> int:
    """DataLoader workers: 0 on small machines. Patches are crops of images held in memory
    (4 ms for a batch of 64 patches of 64 px, measured on one CPU thread), so workers only
    pay off where there are cores to spare beside the model's own threads."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cpus < 8 else min(4, cpus // 4)


def split_images(paths: list[Path], root: Path, valid_fraction: float) -> tuple[list[Path], list[Path]]:
    """(train, valid): the valid images are those whose relative path hashes lowest.

    At least one image goes to each side; both lists keep the sorted order of `paths`.
    """
    if len(paths) < 2:
        raise DataError(f"{root} holds {len(paths)} image(s); the sr task needs at least 2 (one to "
                        "train on, one to validate on), or a separate --task-opt valid_data=FOLDER")
    n_valid = min(len(paths) - 1, max(1, round(valid_fraction * len(paths))))

    def key(p: Path) -> str:
        return hashlib.sha256(p.relative_to(root).as_posix().encode()).hexdigest()

    valid = set(sorted(paths, key=key)[:n_valid])
    return [p for p in paths if p not in valid], [p for p in paths if p in valid]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NasflowError(f"sr task option {name} must be a positive integer, got {value!r}")
    return value


def _folder(name: str, value: Any) -> Path:
    # --task-opt turns a numeric name into an int: a folder may still be called 2017
    if isinstance(value, bool) or not isinstance(value, (str, int, os.PathLike)) or not str(value):
        raise NasflowError(f"sr task option {name} must be a folder path, got {value!r}")
    return Path(str(value)).expanduser()


class SRTask(Task):
    """Single-image super-resolution on folders of HR images.

    Options (defaults in brackets):
      data            folder of HR PNG/JPEG images, searched recursively [shipped T91 subset]
      valid_data      folder of validation images; when given, all of `data` trains [none:
                      split `data`]
      valid_fraction  share of `data`'s images held out for "valid" [0.13 = 450/3450, the
                      paper's DF2K split]
      scale           upscaling factor [the space's `scale`; an explicit one must agree]
      patch           HR patch side in pixels, a multiple of scale [64]
      lr_patch        LR patch side instead (HR patch = lr_patch * scale): the paper retrains
                      with 64 at every scale (HR 128 / 192 / 256 at x2 / x3 / x4)
      augment         the 8 flips / rotations [true]
      mu              weight of HFEN in the loss [0.2]
      hfen            HFEN's form: "padded" (same-size LoG) or "released" (the authors'
                      code's: unpadded Gaussian, response divided by the batch's maximum;
                      spaces/dlsr/loss.py) [padded]
      workers         DataLoader worker processes; 0 loads in the main process [see
                      default_workers]
      bench           folder of HR images for evaluate() [shipped Set5]
      ssim            evaluate() also computes SSIM (slow on large images) [true]
      cache           folder of the LR cache and decoded-image store, or "none"
                      [$NASFLOW_CACHE or ~/.cache/nasflow/lr]
      store           where decoded training images live: "disk" (the decoded-image store in
                      `cache`, memory-mapped and shared by every process on the machine;
                      prepared on first use, or by `nasflow prepare-data`), "ram" (decoded
                      into each process), or "auto": disk when `data` decodes to over 256 MB
                      [auto]
      space_params    passed by the engine: the searched space's resolved params
    """

    name: ClassVar[str] = "sr"
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("psnr", higher_is_better=True, doc="dB on Y, `scale` pixels shaved"),
        Metric("ssim", higher_is_better=True, doc="on Y, `scale` pixels shaved"))
    best_metric: ClassVar[str | None] = "psnr"
    eval_options: ClassVar[type[SREvalOptions]] = SREvalOptions
    cost_size: ClassVar[tuple[int, int]] = FACTS.cost_size  # 1280x720 output (facts.py: torch-free)
    input_name: ClassVar[str] = "lr"
    output_name: ClassVar[str] = "sr"
    export_size: ClassVar[tuple[int, ...]] = (32, 32)  # any size: H and W are dynamic
    check_size: ClassVar[tuple[int, ...]] = (48, 64)
    presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = PRESETS
    # A user's --task-opt patch=96 replaces a preset's lr_patch, and the other way round.
    exclusive_options: ClassVar[tuple[tuple[str, ...], ...]] = (("patch", "lr_patch"),)

    def __init__(self, data: str | None = None, *, valid_data: str | None = None,
                 valid_fraction: float = 0.13, scale: int | None = None, patch: int | None = None,
                 lr_patch: int | None = None, augment: bool = True, mu: float = 0.2, hfen: str = "padded",
                 workers: int | None = None, bench: str | None = None, ssim: bool = True,
                 cache: str | None = None, store: str = "auto",
                 space_params: dict[str, int] | None = None) -> None:
        self.scale = self._resolve_scale(scale, space_params)
        self.patch = self._resolve_patch(patch, lr_patch)
        self.data = _folder("data", data) if data is not None else default_data()
        self.valid_data = _folder("valid_data", valid_data) if valid_data is not None else None
        if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) \
                or not 0 < valid_fraction < 1:
            raise NasflowError(f"sr task option valid_fraction must be between 0 and 1, got {valid_fraction!r}")
        self.valid_fraction = float(valid_fraction)
        if not isinstance(augment, bool):
            raise NasflowError(f"sr task option augment must be true or false, got {augment!r}")
        self.augment = augment
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or mu < 0:
            raise NasflowError(f"sr task option mu must be a number >= 0, got {mu!r}")
        if hfen not in HFEN_FORMS:
            raise NasflowError(f"sr task option hfen must be one of {', '.join(HFEN_FORMS)}, got {hfen!r}")
        self.criterion = SRLoss(float(mu), hfen)
        if workers is None:
            workers = default_workers()
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise NasflowError(f"sr task option workers must be an integer >= 0, got {workers!r}")
        self.workers = workers
        self.bench = _folder("bench", bench) if bench is not None else default_bench()
        self.ssim = bool(ssim)
        if cache is not None and str(cache).lower() in ("none", "off", ""):
            self.cache: LRCache | None = None
        else:
            self.cache = LRCache(_folder("cache", cache) if cache is not None else default_cache_dir())
        if store not in STORES:
            raise NasflowError(f"sr task option store must be one of {', '.join(STORES)}, got {store!r}")
        if store == "disk" and self.cache is None:
            raise NasflowError("sr task option store=disk keeps the decoded images in the cache folder: "
                               "drop cache=none or use store=ram")
        self.store = store
        self._store: DecodedStore | None = None
        self._store_decided = False
        self.prepared: PrepareReport | None = None  # what preparing the store did, if used
        self._decoded: dict[str, SRPatchDataset] = {}
        self._bench: list[BenchImage] | None = None

    def __repr__(self) -> str:
        return f"SRTask(data={str(self.data)!r}, scale={self.scale}, patch={self.patch}, mu={self.criterion.mu})"

    @staticmethod
    def _resolve_scale(scale: int | None, space_params: dict[str, int] | None) -> int:
        from_space = (space_params or {}).get("scale")
        if scale is None:
            if from_space is None:
                raise NasflowError("sr task: no scale; pass --task-opt scale=2 or search a space "
                                   "with a `scale` param")
            scale = from_space
        scale = _positive_int("scale", scale)
        if from_space is not None and scale != from_space:
            raise NasflowError(f"sr task option scale={scale} disagrees with the space's scale "
                               f"{from_space}: drop the task option or --set scale={scale}")
        return scale

    def _resolve_patch(self, patch: int | None, lr_patch: int | None) -> int:
        if patch is not None and lr_patch is not None:
            raise NasflowError("sr task: give patch (HR) or lr_patch, not both")
        if lr_patch is not None:
            return _positive_int("lr_patch", lr_patch) * self.scale
        patch = _positive_int("patch", 64 if patch is None else patch)
        if patch % self.scale:
            raise NasflowError(f"sr task option patch={patch} is not a multiple of the scale "
                               f"{self.scale}: use {patch - patch % self.scale or self.scale}")
        return patch

    # --- data -------------------------------------------------------------------------------
    def split_paths(self) -> dict[str, list[Path]]:
        """The image files of each split (disjoint)."""
        paths = list_images(self.data)
        if self.valid_data is not None:
            valid = list_images(self.valid_data)
            overlap = {p.resolve() for p in paths} & {p.resolve() for p in valid}
            if overlap:
                raise DataError(f"valid_data {self.valid_data} shares {len(overlap)} image(s) with "
                                f"data {self.data}, e.g. {sorted(overlap)[0]}: the splits must be disjoint")
            return {"train": paths, "valid": valid}
        train, valid = split_images(paths, self.data, self.valid_fraction)
        return {"train": train, "valid": valid}

    def decoded_store(self) -> DecodedStore | None:
        """The decoded-image store the splits are read from, or None when they are held in RAM
        (decided once, on every image of both splits, which are then prepared together: under
        torchrun the first rank to get the store's lock prepares, the others wait for it)."""
        if not self._store_decided:
            every = [p for paths in self.split_paths().values() for p in paths]
            use = self.store == "disk"
            if self.store == "auto" and self.cache is not None:
                use = decoded_bytes(every, self.scale) > AUTO_STORE_BYTES
            if use and self.cache is not None:
                self._store = DecodedStore(self.cache)
                store = self._store

                def announce(n: int) -> None:  # minutes for thousands of 2K images: said, with the way ahead
                    warnings.warn(NasflowWarning(
                        f"preparing {n} of {len(every)} images in the decoded-image store {store.dir} "
                        f"(once: later runs read it; `nasflow prepare-data {self.data} --scale {self.scale}` "
                        "does it ahead, with a progress bar)"), stacklevel=4)

                self.prepared = store.prepare(every, self.scale, announce=announce)
            self._store_decided = True
        return self._store

    def dataset(self, split: str, batch_size: int, seed: int) -> SRPatchDataset:
        """The split's patch dataset for this batch size and seed; the images are decoded (and
        their LR made or read from the cache) once per split, then shared."""
        if split not in SPLITS:
            raise NasflowError(f"sr task has splits {', '.join(SPLITS)}, not '{split}'")
        if split not in self._decoded:
            self._decoded[split] = SRPatchDataset(self.split_paths()[split], self.scale, self.patch,
                                                  augment=self.augment, cache=self.cache, skip_small=True,
                                                  store=self.decoded_store())
        ds = copy.copy(self._decoded[split])  # shares the decoded arrays
        # The two splits draw from independent streams although both start from `seed`.
        ds.seed = int(np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1)[0])
        ds.samples_per_epoch = epoch_samples(len(ds.hr), batch_size, MIN_EPOCH_BATCHES)
        return ds

    def batches(self, split: str, batch_size: int, seed: int, *, rank: int = 0,
                world_size: int = 1) -> PatchBatches:
        """Endless (lr, hr) batches of `split`: this rank's share (batch_size / world_size
        samples) of each global batch; state_dict() / load_state_dict() resume it exactly."""
        batch_size = _positive_int("batch size", batch_size)
        ds = self.dataset(split, batch_size, seed)
        return PatchBatches(ds, batch_size, rank=rank, world_size=world_size, workers=self.workers,
                            pin_memory=self.workers > 0 and torch.cuda.is_available())

    # --- loss and evaluation ------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
        lr, hr = batch
        try:
            sr = model(lr)
        except RuntimeError as exc:
            if "size" not in str(exc).lower():
                raise
            # e.g. ESA's stride-2 conv and 7x7 max-pool need about 15 LR pixels
            raise NasflowError(f"the model cannot run on LR patches of {lr.shape[-2]} x {lr.shape[-1]} "
                               f"(HR patch {self.patch} at x{self.scale}): use a larger patch, e.g. "
                               f"--task-opt patch={max(2 * self.patch, 32 * self.scale)} ({exc})") from None
        if sr.shape != hr.shape:
            raise NasflowError(f"the model turns an LR batch {tuple(lr.shape)} into {tuple(sr.shape)}, "
                               f"but the HR batch is {tuple(hr.shape)}: is the space's scale {self.scale}?")
        if self.criterion.hfen.gaussian.device != sr.device:
            self.criterion.to(sr.device)
        total, terms = self.criterion(sr, hr)
        return total, {k: float(v) for k, v in terms.items()}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Mean PSNR (and SSIM unless ssim=false) on Y over the bench folder, `scale` pixels
        shaved; the model runs in eval mode and is handed back in the mode it came in."""
        if self._bench is None:
            self._bench = load_benchmark(self.bench, self.scale, self.cache)
        was_training = model.training
        try:
            if self.ssim:
                result = evaluate_images(model, self._bench, self.scale, self.bench.name, bicubic=False)
                return {"psnr": result.psnr, "ssim": result.ssim}
            model.eval()
            return {"psnr": fmean(psnr(upscale(model, im.lr), im.hr, crop_border=self.scale)
                                  for im in self._bench)}
        except ValueError as exc:  # a model of another scale, say
            raise NasflowError(f"sr task evaluate on {self.bench}: {exc}") from None
        finally:
            model.train(was_training)

    # --- nasflow eval, model directories, exports ---------------------------------------------
    def benchmark(self, model: nn.Module, predict: Callable[[Tensor], Tensor] | None,
                  options: SREvalOptions) -> Evaluation:  # type: ignore[override]
        """PSNR / SSIM per image and mean on each --bench folder (default: the shipped Set5),
        with bicubic upscaling for reference."""
        if options.scale is not None and options.scale != self.scale:
            raise NasflowError(f"the model upscales x{self.scale} (its architecture fixes it), not "
                               f"x{options.scale}; drop --scale or pass --scale {self.scale}")
        return benchmark_report(model, predict, self.scale, options.bench or [default_bench()],
                                tile_memory=options.tile_memory << 20)

    def model_meta(self, space: Space) -> dict[str, Any]:
        return {"scale": space.params.get("scale", self.scale), "channels": space.params.get("channels")}

    @classmethod
    def sample_input(cls, channels: int, size: tuple[int, ...], generator: torch.Generator, *,
                     batch: int = 1) -> Tensor:
        """An LR batch of RGB-like values in 0..255."""
        return torch.rand(batch, channels, *size, generator=generator) * 255

    @classmethod
    def dynamic_axes(cls) -> tuple[dict[int, str], dict[int, str]]:
        return {0: "n", 2: "h", 3: "w"}, {0: "n", 2: "H", 3: "W"}
