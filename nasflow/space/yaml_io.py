"""YAML reading that keeps what plain `yaml.safe_load` throws away: the line of every key
(so errors can say `space.yaml:12`) and duplicate keys (which PyYAML silently overwrites)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nasflow.errors import SpaceError

Loc = tuple[str | int, ...]


class SourceMap:
    """Line numbers (1-based) of the values in a YAML document, keyed by their path."""

    def __init__(self, file: str | None, lines: dict[Loc, int] | None = None) -> None:
        self.file = file
        self.lines = lines or {}

    def where(self, loc: Loc) -> str | None:
        """'file:line' of the deepest known prefix of `loc`, or just the file."""
        if self.file is None:
            return None
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return f"{self.file}:{self.lines[loc[:n]]}"
        return self.file


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], file: str) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                raise SpaceError(
                    f"duplicate key '{key}' (first defined on line {seen[key]}); names must be unique",
                    f"{file}:{line}",
                )
            seen[key] = line
            _walk(value_node, (*loc, key), lines, file)
            lines[(*loc, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines, file)


def load_yaml(path: str | Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    if not path.is_file():
        raise SpaceError(f"space file '{path}' does not exist; check the path")
    text = path.read_text()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpaceError(f"not valid YAML: {problem}", where) from None
    lines: dict[Loc, int] = {}
    if root is not None:
        _walk(root, (), lines, str(path))
    return data, SourceMap(str(path), lines)


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
