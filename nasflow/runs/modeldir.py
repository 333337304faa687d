"""Model directories: a built architecture and its weights, ready to evaluate or export.

    MODEL_DIR/
      arch.yaml             the architecture (a space file; built by the same compiler)
      weights.safetensors   its state dict, under nasflow's node names
      meta.json             provenance: where the weights came from, scale, notes

The directory's file format (runs/formats.py) is in the weights file's header, so that
meta.json holds only what its writer gave; older formats are migrated on load.

Each file is written to a temporary name, fsynced and moved into place (runs/durable.py), so
an interrupted save or a power loss leaves whole files. Loading is strict: every key present, no extra key,
every shape equal; a mismatch raises one CheckpointError that says what differs.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import Tensor

from nasflow.space.imports import copy_local_imports
from nasflow.errors import CheckpointError, NasflowError
from nasflow.runs.formats import FORMAT, KEY, migrate, read_version
from nasflow.runs.durable import write_atomic
from nasflow.space.graph import build_graph
from nasflow.space.load import ARCH_FILE
from nasflow.space.schema import Space
from nasflow.compile.supernet import Supernet, compile_graph

WEIGHTS_FILE = "weights.safetensors"
META_FILE = "meta.json"
FORMAT_ENTRY = "nasflow_format"  # the weights file's header entry holding the directory's format
_LIST_AT_MOST = 5  # keys named in an error message; the rest are counted


def _brief(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LIST_AT_MOST])
    more = len(keys) - _LIST_AT_MOST
    return shown + (f" and {more} more" if more > 0 else "")


def check_state_dict(expected: Mapping[str, Tensor], given: Mapping[str, Tensor], what: str) -> None:
    """Raise CheckpointError unless `given` has exactly `expected`'s keys and shapes.

    `what` names the source in the message (e.g. "model directory 'm/'").
    """
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    problems: list[str] = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_brief(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_brief(unexpected)}")
    for key, want in expected.items():
        got = given.get(key)
        if got is not None and tuple(got.shape) != tuple(want.shape):
            problems.append(f"'{key}' has shape {tuple(got.shape)}, the architecture needs {tuple(want.shape)}")
            break  # one shape is enough to show the architectures differ
    if problems:
        raise CheckpointError(f"{what} does not fit the architecture: " + "; ".join(problems))


def save_model(directory: str | Path, space: Space, state_dict: Mapping[str, Tensor],
               meta: dict[str, Any] | None = None) -> Path:
    """Write a model directory; the weights are checked against the architecture first."""
    path = Path(directory)
    model = compile_graph(build_graph(space))
    check_state_dict(model.state_dict(), state_dict, "the weights to save")
    try:
        meta_text = json.dumps(meta or {}, indent=2, sort_keys=True) + "\n"
    except (TypeError, ValueError) as exc:
        raise NasflowError(f"model meta must be JSON-serialisable: {exc}") from None
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"'{path}' is a file; give a directory to write the model into")
    path.mkdir(parents=True, exist_ok=True)
    # safetensors wants contiguous CPU tensors that share no memory.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    # Serialised in memory and written as a plain file: save_file would create it mode 0600.
    blob = save(tensors, metadata={"format": "pt", FORMAT_ENTRY: str(FORMAT)})
    write_atomic(path / WEIGHTS_FILE, lambda p: p.write_bytes(blob))
    write_atomic(path / ARCH_FILE, lambda p: p.write_text(space.to_yaml()))
    copy_local_imports(space, path)  # the modules its arch.yaml imports from its own folder
    write_atomic(path / META_FILE, lambda p: p.write_text(meta_text))
    return path


def check_model_out(directory: str | Path, force: bool, flag: str = "--out") -> None:
    """Refuse to write a model where it would replace another one (unless `force`) or mix
    into a folder of other files; `flag` names the option that chose `directory`."""
    path = Path(directory)
    if not path.exists():
        return
    if not path.is_dir():
        raise CheckpointError(f"{flag} '{path}' is a file; give a directory to write the model into")
    if (path / WEIGHTS_FILE).exists() or (path / ARCH_FILE).exists():
        if not force:
            raise CheckpointError(f"{flag} '{path}' already holds a model; pass --force to replace it, "
                                  f"or choose another {flag}")
        return
    if any(path.iterdir()):
        raise CheckpointError(f"{flag} '{path}' is a folder of other files, not a model directory; "
                              f"choose an empty or new {flag}")


def read_meta(directory: str | Path) -> dict[str, Any]:
    """A model directory's meta.json, migrated from the format an older nasflow wrote."""
    return _read_meta(Path(directory))[1]


def model_format(directory: str | Path) -> int:
    """The file format of a model directory, from its weights file's header (0: written
    before formats were recorded, or no weights file)."""
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        return 0
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            entry = (f.metadata() or {}).get(FORMAT_ENTRY)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"'{path}' cannot be read ({exc}); write the model again") from None
    if entry is None:
        return 0
    return read_version({KEY: int(entry) if entry.isdigit() else entry}, str(path))


def _read_meta(directory: Path) -> tuple[int, dict[str, Any]]:
    """(the directory's file format, its meta brought to the current format)."""
    version = model_format(directory)
    path = directory / META_FILE
    if not path.is_file():
        return version, migrate("model meta", version, {})
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"'{path}' is not valid JSON ({exc}); rewrite it or remove it") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"'{path}' must hold a JSON object, got {type(data).__name__}")
    return version, migrate("model meta", version, data)


def load_model(directory: str | Path, map_location: str | torch.device = "cpu") -> tuple[Supernet, Space, dict[str, Any]]:
    """(model in eval mode on `map_location`, its architecture, its meta) from a model directory."""
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointError(f"model directory '{path}' does not exist; create one with "
                              "`nasflow import CKPT --arch ARCH -o DIR` (or nasflow.runs.modeldir.save_model)")
    for name in (ARCH_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise CheckpointError(f"model directory '{path}' has no {name}; it is incomplete: write it "
                                  "again with `nasflow import` or save_model")
    version, meta = _read_meta(path)  # first: a format this nasflow cannot read is refused
    space = Space.from_yaml(path / ARCH_FILE)
    try:
        state = load_file(str(path / WEIGHTS_FILE), device="cpu")  # the model moves after loading
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"'{path / WEIGHTS_FILE}' cannot be read ({exc}); write the model again") from None
    state = migrate("model weights", version, state)
    model = compile_graph(build_graph(space))
    check_state_dict(model.state_dict(), state, f"'{path / WEIGHTS_FILE}'")
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval(), space, meta
