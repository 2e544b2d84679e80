"""`path/to/file.py:Class` and `package.module:Class`: any torch.optim.Optimizer subclass, by where it lives.

The registry hands such a reference here; the class is loaded in whichever process resolves it (a sweep's
spawned or Ray workers load the file themselves, by its absolute path) and stepped by
`optimizer_class.OptimizerClassStrategy`.
"""

from __future__ import annotations

from optlab import references
from optlab.strategies.first_order.optimizer_class import strategy_class
from optlab.strategies.registry import register_references


def resolve_reference(name: str) -> type:
    cls = references.load_class(name)
    where = references.reference_parts(name)[0]
    return strategy_class(cls, name, f"{cls.__name__} from {where}")


register_references(resolve_reference)
