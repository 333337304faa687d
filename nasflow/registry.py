"""One small registry class for everything nasflow looks up by name (ops, strategies,
mixed-op implementations, regularizers, tasks): duplicates raise, unknown names suggest close
matches, and each registry's decorator (`Registry.decorator`) is how things register."""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from nasflow.errors import NasflowError

T = TypeVar("T")


class UnknownNameError(NasflowError, KeyError):
    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise NasflowError(f"{self.kind} '{name}' is already registered; pick another name")
        self._items[name] = item
        return item

    def decorator(self, prepare: Callable[[str, T], None] | None = None) -> Callable[[str], Callable[[T], T]]:
        """This registry's `@register_<kind>("name")` decorator: it adds the class or function
        it decorates under `name` and returns it unchanged; `prepare(name, item)` runs first
        (a strategy class learns its name). Every registry's public decorator is one of these,
        so ops, strategies, mixed ops, regularizers and tasks register alike."""
        def register(name: str) -> Callable[[T], T]:
            def add(item: T) -> T:
                if prepare is not None:
                    prepare(name, item)
                return self.add(name, item)
            return add
        register.__doc__ = f"Register a {self.kind} under a name: `@register_...(\"name\")`."
        return register

    def remove(self, name: str) -> T:
        """Take a name out again (a plug-in unloaded, a test cleaning up after itself)."""
        if name not in self._items:
            raise UnknownNameError(self.unknown_message(name))
        return self._items.pop(name)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str, also: Iterable[str] = ()) -> str:
        """`also`: names found elsewhere (entry points) that the user could have meant."""
        known = sorted({*self._items, *also})
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} '{name}'{hint} (known: {', '.join(known)})"

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self) -> list[str]:
        return list(self._items)
