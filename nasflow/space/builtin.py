"""The spaces nasflow ships, by name: `nasflow search dlsr` finds the packaged
spaces/dlsr/space.yaml from any folder, an installed wheel's included.

A package's `space.yaml` is named by the package (`dlsr`, `darts`, `mobilenetv2`); its other
space files by package and stem (`dlsr/space-width`, `dlsr/dlsr-s`). Torch-free: `validate`
and `cost` resolve names too. The files are found through the installed `nasflow.spaces`
package (looked up by name, not imported: this package may not import spaces/).
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

PACKAGE = "nasflow.spaces"
MAIN_FILE = "space.yaml"


@dataclass(frozen=True)
class BuiltinSpace:
    """One shipped space file: its name, its path and the file's `description:`."""

    name: str
    path: Path
    description: str


def spaces_root() -> Path | None:
    """The folder of the installed `nasflow.spaces` package (None: not installed)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except ModuleNotFoundError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def builtin_spaces() -> dict[str, Path]:
    """Every shipped space file by name, sorted: `dlsr` (its space.yaml), `dlsr/dlsr-s`, ..."""
    root = spaces_root()
    found: dict[str, Path] = {}
    if root is None:
        return found
    for package in sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
        for file in sorted(package.glob("*.yaml")):
            if file.name.startswith(("_", ".")):  # scratch files are not shipped spaces
                continue
            name = package.name if file.name == MAIN_FILE else f"{package.name}/{file.stem}"
            found[name] = file
    return dict(sorted(found.items()))


def builtin_space(name: str) -> Path | None:
    """The shipped file `name` stands for (`dlsr`, `dlsr/space`, `dlsr/dlsr-s.yaml`), or None."""
    key = name.strip().replace("\\", "/").strip("/")
    key = key.removesuffix(".yaml").removesuffix(".yml").removesuffix("/space")
    return builtin_spaces().get(key)


def describe_builtin() -> list[BuiltinSpace]:
    """The shipped spaces with their files' descriptions, for `nasflow spaces`."""
    out = []
    for name, path in builtin_spaces().items():
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            data = None
        description = data.get("description", "") if isinstance(data, dict) else ""
        text = " ".join(str(description or "").split()) or _header_sentence(path)
        out.append(BuiltinSpace(name, path, text))
    return out


def _header_sentence(path: Path) -> str:
    """A file without `description:`: the first sentence of its leading comment."""
    words: list[str] = []
    for line in path.read_text().splitlines():
        if not line.startswith("#") or not line.strip("# "):
            break
        words += line.strip("# ").split()
    first = re.split(r"(?<=\.)\s+(?=[A-Z])", " ".join(words))[0]  # not at "et al. 2018"
    return first if first.endswith(".") or not first else first + "."


def unknown_space_hint() -> str:
    """What an error about a missing space file adds: the names that do work."""
    names = list(builtin_spaces())
    if not names:
        return "pass a space file"
    return f"pass a space file or a built-in space's name: {', '.join(names)} (nasflow spaces lists them)"
