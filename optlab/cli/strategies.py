"""`optlab strategies`: every registered strategy with a one-line description and its options, then the
namespaces (ng:NAME, po:NAME) and optimizer references; every po: optimizer is listed with its options."""

from __future__ import annotations


def add_parser(sub):
    return sub.add_parser("strategies", help="list every strategy with a one-line description")


def main(args) -> int:
    from optlab.strategies import registry

    family = None
    for cls in registry.available():
        if cls.family != family:
            family = cls.family
            print(f"\n{family}:")
        print(f"  {cls.name:<12} {cls.description}" + _defaults(cls))
        for key, option in cls.options.items():
            print(f"  {'':<12}   -o {key}={option.default!r} ({option.describe()}): {option.help}")
    for prefix, description in registry.prefixes().items():
        print(f"\n{prefix}:NAME      {description}")
        if prefix == "po":
            _list_po()
    print(
        "\npath/to/file.py:Class, package.module:Class\n"
        "               any torch.optim.Optimizer subclass, e.g. my_opt.py:MyOpt or torch.optim:LBFGS; its "
        "constructor's arguments are its options (-o key=value); lr, momentum (or betas[0]) and weight_decay "
        "are passed where it takes them"
    )
    return 0


def _defaults(cls) -> str:
    defaults = []
    if cls.default_lr is not None:
        defaults.append(f"lr {cls.default_lr:g}")
    for knob in ("momentum", "weight_decay"):  # only the knobs it applies; it refuses the others
        if knob in cls.knobs():
            default = getattr(cls, f"default_{knob}")
            defaults.append(f"{knob} {default:g}" if default is not None else knob)
    return f"  [{', '.join(defaults)}]" if defaults else ""


def _list_po() -> None:
    from optlab.errors import ConfigError
    from optlab.strategies import registry
    from optlab.strategies.first_order import pytorch_optimizer

    try:
        names = pytorch_optimizer.names()
    except ImportError:
        print("  (pytorch-optimizer is not installed: pip install 'pytorch-optimizer>=4.1,<5')")
        return
    for name in names:
        try:
            cls = registry.resolve(f"po:{name}")
        except ConfigError as exc:
            print(f"  po:{name:<18} (cannot be listed: {exc})")
            continue
        options = ", ".join(f"{key}={option.default!r}" for key, option in cls.options.items()) or "none"
        refusal = getattr(cls, "refusal", None)  # a pytorch-optimizer class that cannot run here says why
        refused = f"  refused: {refusal}" if refusal else ""
        print(f"  po:{name:<18}{_defaults(cls)}{refused}\n  {'':<21} -o {options}")
