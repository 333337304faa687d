"""Import the DLSR authors' released checkpoints into nasflow model directories.

The released models are RFDN-style PyTorch modules; their state-dict names map one to one
onto the node names of spaces/dlsr/{dlsr,dlsr-div,dlsr-s}.yaml:

    fea_conv.*            -> stem.op.*
    B{i}.c{k}_d.*         -> cell{i}.d{k}.op.*          (k = 1..3: distillation 1x1 convs)
    B{i}.c{k}_r.op.N.*    -> cell{i}.m{k}.op.N.*        (the MRB's op; a released Sequential
                                                          around one conv, op.0.*, -> op.*)
    B{i}.c4.*             -> cell{i}.r4.op.*
    B{i}.c5.*             -> cell{i}.fuse.op.*
    B{i}.esa.*            -> cell{i}.esa.op.*           (ESA keeps RFDN's submodule names)
    c{j}.0.*              -> cell{j}_in.op.*            (j = 3..6: the cell-input 1x1 convs)
    cout.0.*              -> tail_fuse.op.*
    LR_conv.*             -> tail_conv.op.*
    upsampler.0.*         -> up_conv.op.*

The import is strict: every released tensor is used, every architecture tensor is filled and
every shape must match, else one CheckpointError says what differs and which shipped
architecture the checkpoint does fit.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nasflow.errors import CheckpointError
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space
from nasflow.runs.modeldir import check_model_out, save_model
from nasflow.space.schema import Space
from nasflow.compile.supernet import compile_graph

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Released:
    paper_model: str
    arch: str  # file name of the shipped architecture, beside this module


# The three checkpoints the authors released (../shared/docs/dlsr-facts.md).
RELEASED: dict[str, Released] = {
    "RFDN_beta21_ps128_20210128_1000.pt": Released("DLSR", "dlsr.yaml"),
    "RFDN_beta1_para_loss.pt": Released("DLSR-DIV", "dlsr-div.yaml"),
    "RFDN_beta21_tiny18_ps128_20210306_lr4_700.pt": Released("DLSR-S", "dlsr-s.yaml"),
}
SHIPPED_ARCHS: tuple[str, ...] = ("dlsr.yaml", "dlsr-div.yaml", "dlsr-s.yaml")

# (released-name pattern, nasflow module prefix); the rest of the name is kept as is.
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^fea_conv\.(?P<rest>.+)$"), "stem.op"),
    (re.compile(r"^B(?P<i>\d+)\.c(?P<k>[123])_d\.(?P<rest>.+)$"), "cell{i}.d{k}.op"),
    (re.compile(r"^B(?P<i>\d+)\.c(?P<k>[123])_r\.op\.(?P<rest>.+)$"), "cell{i}.m{k}.op"),
    (re.compile(r"^B(?P<i>\d+)\.c4\.(?P<rest>.+)$"), "cell{i}.r4.op"),
    (re.compile(r"^B(?P<i>\d+)\.c5\.(?P<rest>.+)$"), "cell{i}.fuse.op"),
    (re.compile(r"^B(?P<i>\d+)\.esa\.(?P<rest>.+)$"), "cell{i}.esa.op"),
    (re.compile(r"^c(?P<j>\d+)\.0\.(?P<rest>.+)$"), "cell{j}_in.op"),
    (re.compile(r"^cout\.0\.(?P<rest>.+)$"), "tail_fuse.op"),
    (re.compile(r"^LR_conv\.(?P<rest>.+)$"), "tail_conv.op"),
    (re.compile(r"^upsampler\.0\.(?P<rest>.+)$"), "up_conv.op"),
]
_LIST_AT_MOST = 4


# --- reading ---------------------------------------------------------------------------
def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(state dict, other top-level entries except the optimizer) of a released checkpoint."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint '{p}' does not exist; give the path of a released .pt file")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises weights_only=False, i.e. running the file's code: never pass it on.
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found:
            raise CheckpointError(f"'{p}' was refused as unsafe: it holds Python objects ({found.group(1)}) "
                                  "besides tensors, and loading them could run code from the file. nasflow "
                                  "reads only tensors; re-save just its state_dict where you trust it") from None
        why = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        raise CheckpointError(f"'{p}' cannot be read as a torch checkpoint "
                              f"({why.group(1).strip() if why else 'not a pickle of tensors'}); "
                              "is it truncated, or not a checkpoint?") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"'{p}' cannot be read as a torch checkpoint ({first}); "
                              "is it truncated, or not a checkpoint?") from None
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        found = type(data).__name__ if not isinstance(data, dict) else f"keys {sorted(map(str, data))[:6]}"
        raise CheckpointError(f"'{p}' holds no state dict of tensors (found {found}); "
                              "expected a dict with 'state_dict', as the DLSR releases are")
    # Models saved from nn.DataParallel prefix every name with 'module.'.
    state = {k.removeprefix("module."): v for k, v in state.items()}
    extra = {k: v for k, v in data.items() if k not in ("state_dict", "optimizer")} if "state_dict" in data else {}
    return state, extra


def released_name(key: str) -> tuple[str, str] | None:
    """(nasflow module prefix, rest of the name) for a released key, or None if no rule fits."""
    for pattern, prefix in _RULES:
        m = pattern.match(key)
        if m:
            groups = {k: v for k, v in m.groupdict().items() if k != "rest"}
            return prefix.format(**groups), m.group("rest")
    return None


# --- describing a checkpoint (for error messages) ------------------------------------------
def describe(state: dict[str, Tensor]) -> str:
    """'channels 48, MRB ops conv_1x1, sep_conv_7x7, sep_conv_5x5', read from cell 1's tensors."""
    parts: list[str] = []
    stem = state.get("fea_conv.weight")
    if stem is not None:
        parts.append(f"channels {stem.shape[0]}")
    ops = [_mrb_op(state, f"B1.c{k}_r.op.") for k in (1, 2, 3)]
    if all(ops):
        parts.append("MRB ops " + ", ".join(op for op in ops if op))
    return ", ".join(parts) or "an unknown layout"


def _mrb_op(state: dict[str, Tensor], prefix: str) -> str | None:
    layers = {k[len(prefix):].split(".")[0]: v for k, v in state.items()
              if k.startswith(prefix) and k.endswith("weight")}
    if set(layers) == {"0"}:
        k = layers["0"].shape[-1]
        return f"conv_{k}x{k}"
    if set(layers) in ({"1", "2"}, {"1", "2", "4", "5"}):
        k = layers["1"].shape[-1]
        return f"{'sep' if '4' in layers else 'dil'}_conv_{k}x{k}"
    return None


# --- mapping -------------------------------------------------------------------------------
def convert(state: dict[str, Tensor], space: Space, source: str = "the checkpoint") -> dict[str, Tensor]:
    """The released `state` under the node names of `space`'s compiled model, checked strictly."""
    if not build_graph(space).is_derived:
        raise CheckpointError(f"'{space.name}' is a search space (it still has choices); import "
                              "into a derived architecture, e.g. spaces/dlsr/dlsr.yaml")
    out, problems = _map(state, space)
    if problems:
        raise CheckpointError(f"{source} does not fit architecture '{space.name}': " + "; ".join(problems)
                              + f". The checkpoint has {describe(state)}." + _suggestion(state, space))
    # Own the memory: the released tensors may be views into one storage.
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def _map(state: dict[str, Tensor], space: Space) -> tuple[dict[str, Tensor], list[str]]:
    """(renamed tensors, what does not fit: empty when the checkpoint fits `space`)."""
    expected = compile_graph(build_graph(space)).state_dict()
    out: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        named = released_name(key)
        target = None
        if named is not None:
            prefix, rest = named
            target = f"{prefix}.{rest}"
            # A released nn.Sequential around a single conv (op.0.weight) is a bare conv here.
            if target not in expected and rest.startswith("0.") and f"{prefix}.{rest[2:]}" in expected:
                target = f"{prefix}.{rest[2:]}"
        if target is None or target not in expected or target in out:  # in out: two names, one place
            unmapped.append(key if target is None else f"{key} (-> {target})")
            continue
        out[target], origin[target] = value, key
    missing = [k for k in expected if k not in out]
    problems: list[str] = []
    if unmapped:
        problems.append(f"{len(unmapped)} tensor(s) with no place in it: {_brief(unmapped)}")
    if missing:
        problems.append(f"{len(missing)} of its tensor(s) not in the checkpoint: {_brief(missing)}")
    if not problems:
        for key, want in expected.items():
            if out[key].shape != want.shape:
                problems.append(f"'{origin[key]}' has shape {tuple(out[key].shape)} but '{key}' needs "
                                f"{tuple(want.shape)}: the shapes do not fit")
                break
    return out, problems


def _suggestion(state: dict[str, Tensor], tried: Space) -> str:
    fits = []
    for name in SHIPPED_ARCHS:
        space = load_space(HERE / name)
        if space.name == tried.name:
            continue
        if not _map(state, space)[1]:
            fits.append(_shown(HERE / name))
    return f" It fits {' and '.join(fits)}: pass that as --arch." if fits else ""


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it (as a user would type it)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _brief(items: list[str]) -> str:
    more = len(items) - _LIST_AT_MOST
    return ", ".join(items[:_LIST_AT_MOST]) + (f" and {more} more" if more > 0 else "")


# --- the whole import ----------------------------------------------------------------------
def default_arch(checkpoint: str | Path) -> Path:
    """The shipped architecture of a released checkpoint (by file name); the checkpoint must exist."""
    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise CheckpointError(f"checkpoint '{ckpt}' does not exist; give the path of a released .pt file")
    known = RELEASED.get(ckpt.name)
    if known is None:
        raise CheckpointError(f"'{ckpt.name}' is not a checkpoint nasflow knows; pass --arch, "
                              "e.g. --arch spaces/dlsr/dlsr.yaml")
    return HERE / known.arch


def import_checkpoint(checkpoint: str | Path, arch: str | Path | Space, out_dir: str | Path,
                      force: bool = False) -> Path:
    """Convert a released checkpoint into a model directory for architecture `arch`; an
    existing model directory is replaced only with `force`."""
    ckpt = Path(checkpoint)
    check_model_out(out_dir, force)
    space = arch if isinstance(arch, Space) else load_space(arch)
    state, extra = read_checkpoint(ckpt)
    weights = convert(state, space, f"checkpoint '{ckpt.name}'")
    _check_wiring(ckpt.name, space)
    graph = build_graph(space)
    known = RELEASED.get(ckpt.name)
    meta: dict[str, Any] = {
        "source": {"file": ckpt.name, "path": os.fspath(ckpt.resolve()), "sha256": _sha256(ckpt),
                   **({"epoch": extra["epoch"]} if isinstance(extra.get("epoch"), int) else {})},
        "paper_model": known.paper_model if known else space.meta.get("paper_model"),
        "arch": space.name,
        "scale": int(graph.nodes[graph.output].size),
        "channels": space.params.get("channels"),
        "imported_by": "nasflow.spaces.dlsr.importer",
    }
    return save_model(out_dir, space, weights, meta)


def _structure(space: Space) -> dict[str, Any]:
    return {k: v for k, v in space.to_data().items() if k not in ("name", "description", "meta")}


def _check_wiring(file_name: str, space: Space) -> None:
    """A released checkpoint must go into its own architecture: which cells feed a cell
    changes no shape, so a wrong wiring would load silently and compute nonsense."""
    known = RELEASED.get(file_name)
    if known is None:
        return
    shipped = load_space(HERE / known.arch)
    if _structure(shipped) != _structure(space):
        raise CheckpointError(f"'{file_name}' is the released {known.paper_model}, but architecture "
                              f"'{space.name}' is wired differently (cell inputs, ops or params) although "
                              f"the shapes fit; use {_shown(HERE / known.arch)}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
