"""Config keys as users and task presets give them: an unknown one named with the keys its
section takes, and partial nested sections merged into the config's defaults. Shared by the
search config (nasflow.search.config) and the train config (nasflow.train.config)."""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from nasflow.errors import NasflowError
from nasflow.runs.formats import KEY


def preset_source(preset: str, task: str | None) -> str:
    """How errors name where a preset's keys came from: "preset 'quick' of task 'sr'"."""
    return f"preset '{preset}' of task '{task}'" if task else f"preset '{preset}'"


def unknown_setting(source: str, key: str, known: Iterable[str], what: str = "the settings are") -> NasflowError:
    """The one-line error for `key`, not among `known`: the closest known key, then all."""
    known = list(known)
    close = difflib.get_close_matches(str(key).rsplit(".", 1)[-1], known, n=1)  # 'optim.lrr': 'lrr'
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return NasflowError(f"{source}: unknown setting '{key}'{hint}; {what}: {', '.join(known)}")


def fill_sections(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """`data` with each partial nested section (a dict given for a field whose default is a
    model, e.g. a preset's `arch_optim: {lr: 3e-3}`) merged into that field's default, so
    the keys it leaves out keep the config's defaults (arch_optim's betas (0.5, 0.999)),
    not the section class's (AdamConfig's (0.9, 0.999))."""
    out = dict(data)
    for name, f in model.model_fields.items():
        key = f.alias or name
        if isinstance(out.get(key), Mapping) and isinstance(f.default, BaseModel):
            out[key] = {**f.default.model_dump(), **out[key]}
    return out


def unknown_key(model: type[BaseModel], data: Any, where: str = "", source: str | None = None) -> None:
    """One NasflowError naming the first key of `data` (and of its nested sections) that
    `model` does not take, with the keys it does take; nothing when every key is known.
    `source`: where the keys came from ("preset 'quick' of task 'sr'"), else "<kind> config"."""
    if not isinstance(data, Mapping):
        return
    source = source or f"{getattr(model, 'KIND', 'search')} config"  # the top config's kind, for nested keys too
    known = {f.alias or n: f for n, f in model.model_fields.items()}
    for key, value in data.items():
        f = known.get(key) if isinstance(key, str) else None
        if f is None and key not in model.model_fields and key != KEY:  # KEY: config.json's format
            what = f"{where.rstrip('.')} takes" if where else "the settings are"
            raise unknown_setting(source, f"{where}{key}", known, what)
        sub = f.annotation if f is not None else None
        if isinstance(sub, type) and issubclass(sub, BaseModel) and isinstance(value, Mapping):
            unknown_key(sub, value, f"{where}{key}.", source)
