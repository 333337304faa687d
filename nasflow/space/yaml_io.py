"""YAML reading that keeps what plain `yaml.safe_load` throws away: the line of every key
(so errors can say `space.yaml:12`) and duplicate keys (which PyYAML silently overwrites).

A file is checked before it is expanded (nasflow.limits): its size, that it is UTF-8 text,
its nesting depth (read from the parser's events, so no recursion meets it) and how many
values its aliases expand to (an alias bomb of a few hundred bytes is a billion values)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nasflow import limits
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


def _read_text(path: Path) -> str:
    """The file as text: at most the space_bytes limit, UTF-8 (one error naming the line of
    the first byte that is not)."""
    limits.check("space_bytes", path.stat().st_size, f"space file '{path}'")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SpaceError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): a space file "
                         "is YAML text; save it as UTF-8", f"{path}:{line}") from None


# libyaml's parser where PyYAML has it (a 20,000-node space read in 17 s with the pure-Python
# one); the pure-Python one for a file libyaml refuses, so the message is PyYAML's usual.
_LOADERS = [loader for loader in (getattr(yaml, "CSafeLoader", None), yaml.SafeLoader) if loader is not None]


def _with_fallback(read: Any) -> Any:
    for loader in _LOADERS[:-1]:
        try:
            return read(loader)
        except yaml.YAMLError:
            pass
    return read(_LOADERS[-1])


def _check_depth(text: str, path: Path, loader: Any) -> None:
    """Refuse nesting deeper than the yaml_depth limit, from the parser's events (PyYAML's
    composer and constructor recurse once per level: 5,000 '[' overflow Python's stack)."""
    top = limits.value("yaml_depth")
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > top:
                raise SpaceError(str(_limit_error("yaml_depth", depth, "the YAML document")),
                                 f"{path}:{event.start_mark.line + 1}")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _limit_error(name: str, n: int, subject: str) -> limits.LimitError:
    try:
        limits.check(name, n, subject, at_least=True)
    except limits.LimitError as exc:
        return exc
    raise AssertionError(name)  # pragma: no cover - only called over the limit


def _check_expansion(root: yaml.Node, path: Path) -> None:
    """Refuse a document whose aliases expand past the yaml_nodes limit (or deeper than the
    yaml_depth limit), or that contains itself; counted once per distinct node, without
    expanding and without recursion."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()
    todo: list[tuple[yaml.Node, bool]] = [(root, False)]
    while todo:
        node, children_done = todo.pop()
        key = id(node)
        kids = _children(node)
        if children_done:
            open_.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            for name, n in (("yaml_nodes", size[key]), ("yaml_depth", depth[key])):
                if n > limits.value(name):
                    raise SpaceError(str(_limit_error(name, n, "the YAML document")), f"{path}:{node.start_mark.line + 1}")
            continue
        if key in size:
            continue
        if key in open_:
            raise SpaceError("an alias (*name) refers to a value that contains it: the document would be "
                             "infinite", f"{path}:{node.start_mark.line + 1}")
        open_.add(key)
        todo.append((node, True))
        todo.extend((k, False) for k in kids if id(k) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_yaml(path: str | Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    if not path.is_file():
        raise SpaceError(f"space file '{path}' does not exist; check the path")
    text = _read_text(path)
    try:
        _with_fallback(lambda loader: _check_depth(text, path, loader))
        root = _with_fallback(lambda loader: yaml.compose(text, Loader=loader))
        data = None
        lines: dict[Loc, int] = {}
        if root is not None:
            _check_expansion(root, path)
            _walk(root, (), lines, str(path))  # before constructing, which merges `<<:` keys into the nodes
            constructor = yaml.SafeLoader("")
            data = constructor.construct_document(root)
            constructor.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpaceError(f"not valid YAML: {problem}", where) from None
    return data, SourceMap(str(path), lines)


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
