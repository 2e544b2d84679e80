"""Name -> strategy, as in Nevergrad's registry: any strategy is one string away.

Strategy modules register themselves with `@register`; every module under the family packages
(first_order, second_order, zeroth_order) is imported on first use, so adding a strategy is adding
one module. A prefix resolver maps whole namespaces (e.g. "ng:NAME" for any Nevergrad optimizer, "po:NAME"
for any of pytorch-optimizer's), and a reference resolver maps `path/to/file.py:Class` and
`package.module:Class` (optlab.references) to a strategy for the class found there.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from optlab import references
from optlab.errors import ConfigError

if TYPE_CHECKING:  # strategy modules import the registry to register themselves
    from optlab.strategies.base import Strategy

FAMILIES = ("first_order", "second_order", "zeroth_order")
_STRATEGIES: dict[str, type[Strategy]] = {}
_PREFIXES: dict[str, tuple[Callable[[str], type[Strategy]], str]] = {}
_REFERENCES: list[Callable[[str], type[Strategy]]] = []
_loaded = False


def register(cls: type[Strategy]) -> type[Strategy]:
    if cls.name in _STRATEGIES and _STRATEGIES[cls.name] is not cls:
        raise RuntimeError(f"strategy name {cls.name!r} registered twice")
    _STRATEGIES[cls.name] = cls
    return cls


def register_prefix(prefix: str, resolver: Callable[[str], type[Strategy]], description: str) -> None:
    """`resolver(rest)` returns the strategy class for "prefix:rest" or raises ConfigError."""
    _PREFIXES[prefix] = (resolver, description)


def register_references(resolver: Callable[[str], type[Strategy]]) -> None:
    """`resolver(reference)` returns the strategy class for a `file.py:Class` or `module:Class` reference."""
    _REFERENCES[:] = [resolver]


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for family in FAMILIES:
        package = importlib.import_module(f"optlab.strategies.{family}")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")


def resolve(name: str) -> type[Strategy]:
    _load_all()
    if not isinstance(name, str):
        raise ConfigError(f"strategy must be a name, got {name!r}")
    if name in _STRATEGIES:
        return _STRATEGIES[name]
    prefix, sep, rest = name.partition(":")
    if sep and prefix in _PREFIXES:
        return _PREFIXES[prefix][0](rest)
    if _REFERENCES and references.is_reference(name):
        return _REFERENCES[0](name)
    hint = f"; or {', '.join(p + ':NAME' for p in _PREFIXES)}" if _PREFIXES else ""
    hint += "; or path/to/file.py:Class or package.module:Class (a torch.optim.Optimizer)" if _REFERENCES else ""
    raise ConfigError(
        f"unknown strategy {name!r}; choose from {', '.join(sorted(_STRATEGIES))}{hint} (see `optlab strategies`)"
    )


def available() -> list[type[Strategy]]:
    """Registered strategies, grouped by family then name."""
    _load_all()
    order = {family.replace("_", "-"): i for i, family in enumerate(FAMILIES)}
    return sorted(_STRATEGIES.values(), key=lambda c: (order.get(c.family, 9), c.name))


def prefixes() -> dict[str, str]:
    _load_all()
    return {prefix: description for prefix, (_, description) in _PREFIXES.items()}
