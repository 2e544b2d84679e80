"""`po:NAME`: every optimizer of the pytorch-optimizer package (Lion, Prodigy, Schedule-Free AdamW, SOAP, Muon, ...).

`pytorch_optimizer.load_optimizer(NAME)` gives the class; `optimizer_class.OptimizerClassStrategy` steps
it, with its constructor's parameters as options. Two kinds of optimizer need more than a list of tensors:

- Muon and its relatives read a `use_muon` flag per parameter group: the hidden weight matrices go to
  the orthogonalized update, biases and the output layer to the built-in AdamW (`groups_by_flag`).
  Which classes need it is read from the class itself (its source reads `use_muon`), not listed here.
- a few cannot run on a flat problem at all and are refused in one line before the run (NEEDS): they
  need a model object, wrap another optimizer, need Hessian products through `create_graph`, or a
  distributed process group.
"""

from __future__ import annotations

import difflib
import inspect

from optlab.errors import ConfigError
from optlab.strategies.first_order.optimizer_class import groups_by_flag, strategy_class
from optlab.strategies.registry import register_prefix

# optimizers whose contract is not "a list of tensors with .grad": why each is refused
NEEDS = {
    "lomo": "it takes an nn.Module and fuses the update into backward()",
    "adalomo": "it takes an nn.Module and fuses the update into backward()",
    "magma": "it wraps another optimizer object",
    "adahessian": "it needs Hessian-vector products through backward(create_graph=True)",
    "sophiah": "it needs Hessian-vector products through backward(create_graph=True)",
    "distributedmuon": "it needs a torch.distributed process group",
}
CURATED = ("lion", "prodigy", "schedulefreeadamw", "soap", "shampoo", "muon", "adan", "lamb")
FLAGS = ("use_muon",)  # per-group flags some optimizers require (groups_by_flag)


def names() -> list[str]:
    import pytorch_optimizer

    return list(pytorch_optimizer.get_supported_optimizers())


def resolve_po(rest: str) -> type:
    try:
        import pytorch_optimizer
    except ImportError:
        raise ConfigError(
            "po:NAME needs the pytorch-optimizer package: pip install 'pytorch-optimizer>=4.1,<5'"
        ) from None
    key = rest.lower()
    if key not in names():
        close = difflib.get_close_matches(key, names(), n=3)
        hint = f"; did you mean {', '.join('po:' + c for c in close)}?" if close else ""
        raise ConfigError(
            f"unknown pytorch-optimizer optimizer {rest!r} ({len(names())} in the package, "
            f"see `optlab strategies`){hint}"
        )
    cls = pytorch_optimizer.load_optimizer(key)
    attributes = {}
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        source = ""
    for flag in FLAGS:
        if f"'{flag}'" in source or f'"{flag}"' in source:
            attributes["param_groups"] = groups_by_flag(flag)
    if key in NEEDS:
        attributes["refusal"] = NEEDS[key]
    summary = (inspect.getdoc(cls) or "").strip().splitlines()
    description = f"pytorch-optimizer's {cls.__name__}" + (f": {summary[0].rstrip('.')}" if summary else "")
    return strategy_class(cls, f"po:{key}", description, **attributes)


register_prefix(
    "po",
    resolve_po,
    "any optimizer of the pytorch-optimizer package (listed below with its options, "
    "from its constructor), e.g. po:lion, po:prodigy, po:schedulefreeadamw, po:soap, "
    "po:muon",
)
