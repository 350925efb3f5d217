"""Discovers plug-in modules in a package and builds a registry keyed by each plug-in's KEY."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from types import ModuleType
from typing import Generic, TypeVar

from hub.errors import PluginError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → plug-in table that refuses duplicates and broken modules loudly."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origin: dict[str, str] = {}

    def register(self, key: str, item: T, origin: str) -> None:
        """Add one plug-in; a second plug-in with the same key is a start-up error."""
        if key in self._items:
            raise PluginError(
                f"duplicate {self.kind} key {key!r}: defined in {self._origin[key]} and {origin}"
            )
        self._items[key] = item
        self._origin[key] = origin

    def get(self, key: str) -> T:
        """Return the plug-in for a key, or raise KeyError naming the known keys."""
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.kind} {key!r} (known: {known})") from None

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def keys(self) -> list[str]:
        """Registered keys in sorted order."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(key, plug-in) pairs in key order."""
        return sorted(self._items.items())


def load_modules(package: str) -> list[ModuleType]:
    """Import every non-private module of a package; an import failure names the module."""
    pkg = importlib.import_module(package)
    modules = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        name = f"{package}.{info.name}"
        try:
            modules.append(importlib.import_module(name))
        except Exception as err:
            raise PluginError(f"plug-in module {name} failed to import: {err!r}") from err
    return modules


def build_registry(kind: str, package: str, extract: Callable[[ModuleType], tuple[str, T] | None]) -> Registry[T]:
    """Import a plug-in package and register what `extract` finds in each module."""
    registry: Registry[T] = Registry(kind)
    for module in load_modules(package):
        found = extract(module)
        if found is None:
            continue
        key, item = found
        registry.register(key, item, module.__name__)
    return registry
