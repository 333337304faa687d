"""Checkpoint files: nested state (optimizer state, RNG states, data-stream states) flattened
into one safetensors file, tensors as tensors and everything else as JSON in its metadata.

One file per checkpoint, written to a temporary name, fsynced and moved into place with
os.replace, its directory fsynced after (runs/durable.py): a reader sees the old checkpoint
or the new one, never a partial file, and a power loss cannot leave a name without its data.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from nasflow.errors import CheckpointError
from nasflow.runs.formats import migrate, read_version, stamped
from nasflow.runs.durable import write_atomic

META_KEY = "nasflow"  # the safetensors metadata entry holding the JSON side of the state


# --- nested state <-> (JSON skeleton, flat tensors) ---------------------------------------
def flatten_state(obj: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """A JSON-able skeleton of `obj`; its tensors go into `tensors` under dotted keys.

    Keeps what JSON would lose and torch needs back: int dict keys (optimizer state is keyed
    by parameter index), tuples (Adam's betas, RNG states) and numpy arrays.
    """
    if isinstance(obj, Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {"__items__": [[k, flatten_state(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise TypeError(f"cannot checkpoint a value of type {type(obj).__name__} at '{prefix}'")


def unflatten_state(skeleton: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if "__ndarray__" in skeleton:
        return np.asarray(skeleton["__ndarray__"], dtype=skeleton["dtype"])
    if "__tuple__" in skeleton:
        return tuple(unflatten_state(v, tensors) for v in skeleton["__tuple__"])
    return {k: unflatten_state(v, tensors) for k, v in skeleton["__items__"]}


# --- RNG states -------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- files ------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
    """Write `tensors` and the nested `state` (tensors inside it included) atomically."""
    path = Path(path)
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    skeleton = flatten_state(stamped(state), "state", flat)  # the file format travels in the state
    # A failed write (disk full, interrupt) leaves the previous checkpoint and no partial file.
    write_atomic(path, lambda tmp: save_file(flat, str(tmp), metadata={META_KEY: json.dumps(skeleton)}))


def load_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors not part of the nested state, the nested state), on the CPU: RNG states must
    be CPU tensors, and load_state_dict moves the rest to where the parameters live."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {exc}") from None
    skeleton = json.loads(meta[META_KEY]) if META_KEY in meta else {"__items__": []}
    state = unflatten_state(skeleton, tensors)
    plain = {k: v for k, v in tensors.items() if not k.startswith("state.")}
    return migrate("checkpoint", read_version(state, str(path)), (plain, state))
