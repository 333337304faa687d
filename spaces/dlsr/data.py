"""The SR data pipeline: image folders, HR/LR pairs (MATLAB bicubic, cached on disk), random
aligned training patches with dihedral augmentation, and benchmark sets for evaluation.

Conventions (those of the SR literature and of the released DLSR models):
- images are RGB; grey images are repeated to three channels;
- an HR image is first cropped to a multiple of the scale, then its LR image is
  MATLAB's bicubic ``imresize(hr, 1/scale)`` rounded to uint8;
- tensors handed to models are float32 C x H x W with values in 0..255.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from nasflow import limits
from nasflow.errors import NasflowError, NasflowWarning

from .bicubic import imresize_uint8
from .images import to_tensor
from .metrics import mod_crop

__all__ = [
    "IMAGE_EXTENSIONS",
    "DataError",
    "list_images",
    "load_rgb",
    "default_cache_dir",
    "make_lr",
    "LRCache",
    "load_pair",
    "augment",
    "augment_pair",
    "inverse_augment",
    "PatchParams",
    "PatchStore",
    "SRPatchDataset",
    "BenchImage",
    "load_benchmark",
    "SRBenchDataset",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")

# Bump when the LR recipe changes, so stale cache entries are never read.
_CACHE_VERSION = "matlab-bicubic-v1"

Progress = Callable[[int, int], None]
PathLike = str | os.PathLike[str]
_A = TypeVar("_A", np.ndarray, torch.Tensor)


class DataError(NasflowError, ValueError):
    """A data folder or image is missing, empty, unreadable or unusable as configured."""


def list_images(folder: PathLike) -> list[Path]:
    """All PNG / JPEG / BMP files under ``folder`` (recursively), sorted by path.

    Raises DataError naming the folder when it is missing, not a folder, or holds no images.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise DataError(
            f"image folder {root} does not exist: point the data option at a folder of HR "
            f"images ({', '.join(IMAGE_EXTENSIONS)}), e.g. DIV2K/DIV2K_train_HR"
        )
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder: give the folder that holds the HR images")
    found = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
    if not found:
        raise DataError(
            f"image folder {root} holds no images (looked recursively for "
            f"{', '.join(IMAGE_EXTENSIONS)}): check the path or copy the HR images there"
        )
    return found


def open_image(path: PathLike) -> Image.Image:
    """The image at `path`, opened (not decoded), its header's size checked against the
    image_pixels limit (NASFLOW_MAX_IMAGE_PIXELS; nasflow.limits) first: a 20000 x 20000
    PNG header is one error naming the limit, not PIL's DecompressionBombError. PIL's own
    check gives way to it (its bound is fixed; the limit is the user's to raise)."""
    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
    except Image.DecompressionBombError:
        old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            im = Image.open(p)
        finally:
            Image.MAX_IMAGE_PIXELS = old
    try:
        limits.check("image_pixels", im.width * im.height, f"image {p} ({im.width} x {im.height})")
    except limits.LimitError:
        im.close()
        raise
    return im


def image_size(path: PathLike) -> tuple[int, int]:
    """(W, H) from the image's header, without decoding it (open_image: the limit checked)."""
    p = Path(path)
    try:
        with open_image(p) as im:
            return im.size
    except FileNotFoundError as e:
        raise DataError(f"image {p} does not exist") from e
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot decode image {p}: {e}") from e


def load_rgb(path: PathLike) -> np.ndarray:
    """Decode an image as uint8 H x W x 3 RGB.

    Grey images are repeated to three channels; alpha is dropped; palette and CMYK images are
    converted; 16-bit grey is scaled to 8 bits.
    """
    p = Path(path)
    try:
        with open_image(p) as im:
            im.load()
            if im.mode.startswith("I;16"):
                # 16-bit grey: rescale 0..65535 to 0..255 (PIL's convert would clip instead).
                grey = np.floor(np.asarray(im, dtype=np.float64) / 257.0 + 0.5).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            if im.mode in ("I", "F"):
                raise DataError(f"{p}: 32-bit image mode {im.mode!r} is not supported; save it as 8-bit RGB")
            if im.mode in ("1", "L", "LA"):
                grey = np.asarray(im.convert("L"), dtype=np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError as e:
        raise DataError(f"image {p} does not exist") from e
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot decode image {p}: {e}") from e


def default_cache_dir() -> Path:
    """Where LR images are cached: $NASFLOW_CACHE if set, else ~/.cache/nasflow/lr."""
    env = os.environ.get("NASFLOW_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nasflow" / "lr"


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB bicubic downscaling of a uint8 HR image whose sides are multiples of ``scale``."""
    h, w = hr.shape[0], hr.shape[1]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h} x {w} is not a multiple of scale {scale}: mod_crop it first")
    return imresize_uint8(hr, 1.0 / scale, size=(h // scale, w // scale))


class LRCache:
    """An on-disk cache of LR images (.npy), keyed by the HR file and the scale.

    The key hashes the HR file's absolute path, modification time, size and the scale (and the
    LR recipe's version), so editing or replacing an image invalidates its entry. Entries are
    written to a temporary file and renamed into place, so concurrent writers (DataLoader
    workers, parallel runs) never leave a half-written file.
    """

    def __init__(self, cache_dir: PathLike | None = None) -> None:
        self.dir: Path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"LRCache({str(self.dir)!r})"

    def path_for(self, hr_path: PathLike, scale: int) -> Path:
        """The cache file that holds (or will hold) the LR image of ``hr_path`` at ``scale``."""
        p = Path(hr_path).resolve()
        try:
            st = p.stat()
        except FileNotFoundError as e:
            raise DataError(f"image {p} does not exist") from e
        key = f"{_CACHE_VERSION}|{p}|{st.st_mtime_ns}|{st.st_size}|x{int(scale)}"
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
        return self.dir / f"{p.stem}_x{int(scale)}_{digest}.npy"

    def get(self, hr_path: PathLike, scale: int) -> tuple[np.ndarray, np.ndarray]:
        """(HR cropped to a multiple of ``scale``, its MATLAB-bicubic LR), both uint8 H x W x 3."""
        _check_scale(scale)
        hr = _cropped(hr_path, scale)
        want = (hr.shape[0] // scale, hr.shape[1] // scale, 3)
        entry = self.path_for(hr_path, scale)
        lr = self._read(entry, want)
        if lr is None:
            lr = make_lr(hr, scale)
            self._write(entry, lr)
        return hr, lr

    @staticmethod
    def _read(entry: Path, want: tuple[int, int, int]) -> np.ndarray | None:
        # A missing, truncated or foreign file is a miss, never an error: it is recomputed.
        try:
            lr: np.ndarray = np.load(entry, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if lr.dtype != np.uint8 or lr.shape != want:
            return None
        return lr

    def _write(self, entry: Path, lr: np.ndarray) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=entry.stem + ".", suffix=".tmp")
        except OSError as e:
            raise DataError(
                f"cannot write the LR cache in {self.dir} ({e}): set NASFLOW_CACHE to a writable folder"
            ) from e
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, lr, allow_pickle=False)
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _check_scale(scale: int) -> None:
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise DataError(f"scale must be a positive integer, got {scale!r}")


def load_pair(hr_path: PathLike, scale: int, cache: LRCache | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mod-cropped HR, LR) for one image, through ``cache`` when given, else computed."""
    if cache is not None:
        return cache.get(hr_path, scale)
    _check_scale(scale)
    hr = _cropped(hr_path, scale)
    return hr, make_lr(hr, scale)


class ImageTooSmallError(DataError):
    """An image has no whole LR pixel at its scale; `size` is its real (width, height)."""

    def __init__(self, path: PathLike, size: tuple[int, int], scale: int) -> None:
        self.size = size
        super().__init__(f"image {path} ({size[0]} x {size[1]}) is smaller than scale {scale}")


def _cropped(hr_path: PathLike, scale: int) -> np.ndarray:
    """The image mod-cropped to ``scale``; ImageTooSmallError (with its real size) if nothing is left."""
    img = load_rgb(hr_path)
    hr = mod_crop(img, scale)
    if hr.shape[0] == 0 or hr.shape[1] == 0:
        raise ImageTooSmallError(hr_path, (img.shape[1], img.shape[0]), scale)
    return hr


# ---------------------------------------------------------------------------------------------
# Augmentation: the 8 elements of the dihedral group (flips and 90-degree rotations).


def augment(img: _A, k: int) -> _A:
    """Dihedral transform number ``k`` (0..7) of one image.

    k >= 4 mirrors left-right first; then the image is rotated by 90 degrees (k % 4) times,
    counter-clockwise. numpy arrays are H x W (x C); tensors are (..., H, W). k = 0 is the
    identity. numpy results are views (no copy).
    """
    if not 0 <= k <= 7:
        raise ValueError(f"augmentation index must be in 0..7, got {k}")
    if isinstance(img, torch.Tensor):
        t = torch.flip(img, dims=(-1,)) if k >= 4 else img
        return torch.rot90(t, k % 4, dims=(-2, -1))
    a = img[:, ::-1] if k >= 4 else img
    return np.rot90(a, k % 4, axes=(0, 1))


def inverse_augment(k: int) -> int:
    """The index whose transform undoes transform ``k``."""
    if not 0 <= k <= 7:
        raise ValueError(f"augmentation index must be in 0..7, got {k}")
    # Mirror-then-rotate is a reflection, its own inverse; a rotation by r is undone by 4 - r.
    return k if k >= 4 else (4 - k) % 4


def augment_pair(lr: _A, hr: _A, k: int) -> tuple[_A, _A]:
    """The same dihedral transform applied to an LR image and its HR image (stays aligned)."""
    return augment(lr, k), augment(hr, k)


# ---------------------------------------------------------------------------------------------
# Training patches.


class PatchParams(NamedTuple):
    """The random choices behind one training sample (offsets in LR pixels)."""

    image: int
    top: int
    left: int
    k: int


def _seed_from(seed: int | torch.Generator) -> int:
    if isinstance(seed, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=seed).item())
    if seed < 0:
        raise DataError(f"seed must be >= 0, got {seed}")
    return int(seed)


class PatchStore(Protocol):
    """Decoded images kept outside the process (data_store.DecodedStore, which imports this
    module: hence a protocol here)."""

    def prepare(self, paths: Sequence[PathLike], scale: int, progress: Progress | None = None) -> Any:
        """Write what is missing; returns a report."""

    def open_fitting(self, paths: list[Path], scale: int, lr_patch: int
                     ) -> tuple[list[Path], Sequence[np.ndarray], Sequence[np.ndarray], list[str]]:
        """(paths, HR images, LR images) of the images whose LR sides reach ``lr_patch``, and a
        "path (W x H)" line per other image."""


class SRPatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random aligned (LR, HR) training patches, held in memory.

    Sample ``i`` is an LR patch of ``patch_size // scale`` pixels and the HR patch of
    ``patch_size`` pixels at exactly ``scale`` times its offset, both float32 C x H x W in
    0..255, with one of the 8 dihedral transforms when ``augment`` is on. Sample ``i`` comes
    from image ``i % len(images)``, so an epoch visits images evenly.

    Randomness: sample ``i`` of epoch ``e`` is a pure function of (seed, e, i). Results are
    therefore reproducible and identical whatever the number of DataLoader workers and
    whichever worker draws which index, and no two indices (so no two workers) share a
    random stream. Call ``set_epoch(e)`` before each epoch to draw new patches (as with
    DistributedSampler); ``seed`` may be a torch.Generator, from which one seed is drawn.
    With ``persistent_workers=True`` the workers keep their own copy of the dataset, so
    ``set_epoch`` does not reach them: use non-persistent workers (the default).

    Memory: without ``store``, every decoded pair stays in RAM, about 1 + 1 / scale**2 times
    the HR pixels in bytes (DIV2K's 800 training images: roughly 7 GB HR + 1.7 GB LR at x2),
    in every process that holds the dataset. With a ``store`` (data_store.DecodedStore), the
    images are prepared once on disk (in parallel, skipping those already there; the report
    is ``self.prepared``) and memory-mapped per sample: they take page cache, shared by every
    process on the machine, instead of each process's own memory.

    Without a store every image is decoded (and its LR made or read from ``cache``) on
    construction; ``progress(done, total)`` is called after each. Images whose LR side is
    smaller than the LR patch raise DataError unless ``skip_small`` is set.
    """

    def __init__(
        self,
        hr_paths: Sequence[PathLike],
        scale: int,
        patch_size: int,
        *,
        augment: bool = True,
        samples_per_epoch: int | None = None,
        cache: LRCache | None = None,
        seed: int | torch.Generator = 0,
        skip_small: bool = False,
        progress: Progress | None = None,
        store: PatchStore | None = None,
    ) -> None:
        _check_scale(scale)
        if patch_size < scale or patch_size % scale:
            raise DataError(f"patch_size {patch_size} must be a positive multiple of scale {scale}")
        paths = [Path(p) for p in hr_paths]
        if not paths:
            raise DataError("no HR images given: list_images(folder) finds them")
        if samples_per_epoch is not None and samples_per_epoch < 1:
            raise DataError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
        self.scale = scale
        self.patch_size = patch_size
        self.lr_patch = patch_size // scale
        self.augment = augment
        self.seed = _seed_from(seed)
        self.epoch = 0
        self.prepared: Any = None  # the store's PrepareReport
        if store is not None:
            self.prepared = store.prepare(paths, scale, progress)
            self.paths, self.hr, self.lr, small = store.open_fitting(paths, scale, self.lr_patch)
        else:
            self.paths, self.hr, self.lr, small = self._decode(paths, cache, progress)
        if small and not skip_small:
            shown = ", ".join(small[:5]) + (f" and {len(small) - 5} more" if len(small) > 5 else "")
            raise DataError(
                f"{len(small)} image(s) are smaller than the HR patch {patch_size}: {shown}; "
                f"use a smaller patch size, remove them, or pass skip_small=True"
            )
        if not self.hr:
            shown = ", ".join(small[:5]) + (f" and {len(small) - 5} more" if len(small) > 5 else "")
            raise DataError(f"every image is smaller than the HR patch {patch_size}: {shown}; "
                            "use a smaller patch (--task-opt patch=N) or larger images")
        if small:  # skip_small: said once, never silently
            shown = ", ".join(small[:5]) + (f" and {len(small) - 5} more" if len(small) > 5 else "")
            warnings.warn(NasflowWarning(f"skipped {len(small)} image(s) smaller than the HR patch "
                                         f"{patch_size}: {shown}"), stacklevel=2)
        self.skipped: list[str] = small
        self.samples_per_epoch = samples_per_epoch if samples_per_epoch is not None else len(self.hr)

    def _decode(self, paths: list[Path], cache: LRCache | None, progress: Progress | None
                ) -> tuple[list[Path], list[np.ndarray], list[np.ndarray], list[str]]:
        kept: list[Path] = []
        hrs: list[np.ndarray] = []
        lrs: list[np.ndarray] = []
        small: list[str] = []
        for i, p in enumerate(paths):
            try:
                hr, lr = load_pair(p, self.scale, cache)
            except ImageTooSmallError as exc:  # smaller than the scale: smaller than any patch
                small.append(f"{p} ({exc.size[0]} x {exc.size[1]})")
                if progress is not None:
                    progress(i + 1, len(paths))
                continue
            if min(lr.shape[0], lr.shape[1]) < self.lr_patch:
                small.append(f"{p} ({hr.shape[1]} x {hr.shape[0]})")
            else:
                kept.append(p)
                hrs.append(hr)
                lrs.append(lr)
            if progress is not None:
                progress(i + 1, len(paths))
        return kept, hrs, lrs, small

    def __len__(self) -> int:
        return self.samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the random patches of ``epoch`` (call before iterating it)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def sample_params(self, index: int) -> PatchParams:
        """The image, LR offsets and transform of sample ``index`` in the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range 0..{len(self) - 1}")
        # A fresh stream per (seed, epoch, index): SeedSequence mixes the three well.
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image = index % len(self.hr)
        lh, lw = self.lr[image].shape[:2]
        top = int(rng.integers(0, lh - self.lr_patch + 1))
        left = int(rng.integers(0, lw - self.lr_patch + 1))
        k = int(rng.integers(0, 8)) if self.augment else 0
        return PatchParams(image, top, left, k)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR patch, HR patch) as float32 C x H x W tensors in 0..255."""
        image, top, left, k = self.sample_params(index)
        lp, s = self.lr_patch, self.scale
        lr = self.lr[image][top : top + lp, left : left + lp]
        hr = self.hr[image][top * s : (top + lp) * s, left * s : (left + lp) * s]
        lr, hr = augment_pair(lr, hr, k)
        return to_tensor(lr), to_tensor(hr)


# ---------------------------------------------------------------------------------------------
# Benchmarks.


class BenchImage(NamedTuple):
    """One evaluation image: its name (path relative to the folder, no suffix), HR, LR."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def load_benchmark(
    folder: PathLike,
    scale: int,
    cache: LRCache | None = None,
    progress: Progress | None = None,
) -> list[BenchImage]:
    """Every image of a benchmark folder (e.g. Set5) as (name, HR uint8, LR uint8), sorted.

    HR is mod-cropped to ``scale``; LR is its MATLAB bicubic downscaling.
    """
    root = Path(folder).expanduser()
    paths = list_images(root)
    out: list[BenchImage] = []
    for i, p in enumerate(paths):
        hr, lr = load_pair(p, scale, cache)
        out.append(BenchImage(p.relative_to(root).with_suffix("").as_posix(), hr, lr))
        if progress is not None:
            progress(i + 1, len(paths))
    return out


class SRBenchDataset(Dataset[tuple[str, torch.Tensor, torch.Tensor]]):
    """A benchmark folder as a Dataset of (name, LR, HR): float32 C x H x W tensors in 0..255.

    Images differ in size: use batch_size=1 (or no DataLoader at all).
    """

    def __init__(self, folder: PathLike, scale: int, cache: LRCache | None = None) -> None:
        self.scale = scale
        self.images: list[BenchImage] = load_benchmark(folder, scale, cache)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, torch.Tensor]:
        name, hr, lr = self.images[index]
        return name, to_tensor(lr), to_tensor(hr)
