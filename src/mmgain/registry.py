"""Components registered by name (activations, protocols, experiments, datasets).

One small class so that the CLI can list choices and tests can be
parametrized over everything registered.
"""
from __future__ import annotations

import inspect
from typing import Generic, TypeVar

from .errors import UnknownName

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, item: T | None = None, description: str | None = None):
        """``reg.register("x", obj, "what it is")`` or ``@reg.register("x")`` as a decorator.
        Without a description, ``mmgain list`` shows the item's ``description`` attribute or
        the first line of its docstring."""
        def add(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            if description:
                self._descriptions[name] = description
            return obj
        return add(item) if item is not None else add

    def describe(self, name: str) -> str:
        """One line saying what ``name`` is ("" when nothing says it)."""
        if name in self._descriptions:
            return self._descriptions[name]
        obj = self.get(name)
        text = getattr(obj, "description", None)
        if not isinstance(text, str):            # a class or function says what it is in its docstring
            text = obj.__doc__ if isinstance(obj, type) or inspect.isfunction(obj) else None
        return (text or "").strip().split("\n")[0].strip()

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(f"unknown {self.kind} {name!r}; choose from: {', '.join(self._items)}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


