"""The one name -> class registry of the open families: teachers, students, store backends, dataset builders.

An entry is registered either with the object itself (the ``register`` decorator) or lazily as a
``"module:attribute"`` string (``register_lazy``) that is imported on first use, so a family can
list its names without importing heavy modules (the teachers' networks, zarr, h5py).
"""
from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from pipeline.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps lower-case names to objects; unknown names raise with the valid ones listed.

    Args:
        kind: what is registered ("teacher", "student", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name -> "module:attribute", imported on first use
        self._order: list[str] = []  # every name, in registration order

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a duplicate name is a programming error.

        A name registered lazily is filled in when its module registers the object it names.
        """

        def decorate(obj: T) -> T:
            if name in self._items or (name in self._lazy and self._lazy[name] != _target(obj)):
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if name not in self._lazy:
                self._order.append(name)
            self._lazy.pop(name, None)
            self._items[name] = obj
            return obj

        return decorate

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``name`` as ``"module:attribute"``, imported the first time :meth:`get` asks for it."""
        if name in self._items or name in self._lazy:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._lazy[name] = target
        self._order.append(name)

    def get(self, name: str) -> T:
        """Return the object registered as ``name``.

        Raises:
            UnknownNameError: naming the bad value and the valid names.
        """
        if name in self._lazy:
            module, attribute = self._lazy[name].split(":")
            obj = getattr(importlib.import_module(module), attribute)  # its module may register it itself
            self._lazy.pop(name, None)
            self._items.setdefault(name, obj)
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names in registration order (lazy ones included)."""
        return list(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy


def _target(obj: object) -> str:
    """``"module:qualname"`` of a class or function (what :meth:`Registry.register_lazy` names)."""
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}"
