"""Task presets: named budgets a task declares for the commands, applied before explicit flags.

A task factory may have a `presets` attribute, {preset: {section: settings}}, where a section
is a command's ("search": SearchConfig fields; "train": the train command's). Three keys of
a section merge with the user's instead of being replaced: `overrides` (space params),
`task_options` and `strategy_options` (the latter only while the user keeps the preset's
strategy: another strategy has other options). When the user names no preset, "quick" is used if the task declares it, so a
bare `nasflow search space.yaml` runs a short search; "none" applies no preset (the
config's own defaults).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nasflow.errors import NasflowError
from nasflow.tasks.contract import get_task_factory

DEFAULT_PRESET = "quick"
NO_PRESET = "none"
MERGED_KEYS = ("overrides", "task_options", "strategy_options")
SECTIONS = ("search", "train")  # the commands that read a preset (sweep reads "search")


def task_presets(task: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The presets task `task` declares ({} if none)."""
    presets = getattr(get_task_factory(task), "presets", None) or {}
    if not isinstance(presets, Mapping):
        raise NasflowError(f"task '{task}' declares presets that are not a mapping: {type(presets).__name__}")
    return dict(presets)


def preset_section(task: str | None, preset: str | None, section: str) -> tuple[str | None, dict[str, Any]]:
    """(the preset used, its `section` settings): the named preset, else the task's default
    one, else (None, {})."""
    if preset == NO_PRESET:
        return None, {}
    presets = task_presets(task) if task else {}
    if preset is None:
        if DEFAULT_PRESET not in presets:
            return None, {}
        preset = DEFAULT_PRESET
    if preset not in presets:
        offered = ", ".join([*presets, NO_PRESET])
        raise NasflowError(f"task '{task}' has no preset '{preset}'; its presets: {offered}")
    sections = presets[preset]
    where = f"preset '{preset}' of task '{task}'"
    if not isinstance(sections, Mapping):
        raise NasflowError(f"{where} is a {type(sections).__name__}; a preset is {{section: settings}} with "
                           f"sections {', '.join(SECTIONS)}")
    # A misspelt or unsupported section would be ignored without a word: refused by name.
    for name in sections:
        if name not in SECTIONS:
            raise NasflowError(f"{where}: unknown section '{name}'; a preset's sections are: {', '.join(SECTIONS)}")
    settings = sections.get(section, {})
    if not isinstance(settings, Mapping):
        raise NasflowError(f"{where}: its {section} section is a {type(settings).__name__}, not {{key: value}}")
    return preset, dict(settings)


def exclusive_options(task: str | None) -> tuple[tuple[str, ...], ...]:
    """Groups of task options of which one at most may be given (a task factory's
    `exclusive_options` attribute, e.g. SR's (("patch", "lr_patch"),))."""
    return tuple(getattr(get_task_factory(task), "exclusive_options", ())) if task else ()


def apply_preset(preset: Mapping[str, Any], given: Mapping[str, Any],
                 space_params: Iterable[str] | None = None,
                 exclusive: Iterable[Iterable[str]] = ()) -> dict[str, Any]:
    """The preset's settings updated with the user's; `overrides` and `task_options` are
    merged key by key. A preset's override of a param the space does not declare is dropped
    (a preset is written for its task's usual space); the user's are kept, so a misspelt
    --set still fails loudly. A user's task option of an `exclusive` group replaces the
    preset's options of that group (--task-opt patch=96 over a preset's lr_patch)."""
    out = {**preset, **given}
    for key in MERGED_KEYS:
        mine = dict(preset.get(key) or {})
        if key == "strategy_options" and given.get("strategy", preset.get("strategy")) != preset.get("strategy"):
            mine = {}
        if key == "overrides" and space_params is not None:
            known = set(space_params)
            mine = {k: v for k, v in mine.items() if k in known}
        if key == "task_options":
            for group in map(set, exclusive):
                if group & set(given.get(key) or {}):
                    mine = {k: v for k, v in mine.items() if k not in group}
        merged = {**mine, **(given.get(key) or {})}
        if merged:
            out[key] = merged
        else:
            out.pop(key, None)
    return out
