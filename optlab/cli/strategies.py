"""`optlab strategies`: every registered strategy with a one-line description and its options."""

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
        defaults = []
        if cls.default_lr is not None:
            defaults.append(f"lr {cls.default_lr:g}")
        for knob in ("momentum", "weight_decay"):   # only the knobs it applies; it refuses the others
            if knob in cls.knobs():
                default = getattr(cls, f"default_{knob}")
                defaults.append(f"{knob} {default:g}" if default is not None else knob)
        print(f"  {cls.name:<12} {cls.description}" + (f"  [{', '.join(defaults)}]" if defaults else ""))
        for key, option in cls.options.items():
            print(f"  {'':<12}   -o {key}={option.default!r} ({option.describe()}): {option.help}")
    for prefix, description in registry.prefixes().items():
        print(f"\n{prefix}:NAME      {description}")
    return 0
