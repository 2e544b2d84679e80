"""The package's import structure: no cycles, no private names across modules, no upward imports."""

import ast
from pathlib import Path

import optlab

ROOT = Path(optlab.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]):
    """(imported module, names) for every optlab import in the file, wherever it sits (lazy ones too),
    except those only type checkers run."""
    tree = ast.parse(path.read_text())
    for node in list(ast.walk(tree)):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("optlab"):
            names = [a.name for a in node.names]
            submodules = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in modules]
            yield from ((m, []) for m in submodules)
            rest = [n for n in names if f"{node.module}.{n}" not in modules]
            if rest:
                yield node.module, rest
        elif isinstance(node, ast.Import):
            yield from ((a.name, []) for a in node.names if a.name.startswith("optlab"))


def _graph():
    modules = _modules()
    return modules, {
        name: {target for target, _ in _imports(path, modules) if target in modules and target != name}
        for name, path in modules.items()
    }


def test_no_import_cycles():
    modules, graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # a package's __init__ re-exporting its own modules is not a cycle of its modules
    real = [
        c for c in cycles if not any(a == b.rsplit(".", 1)[0] or b == a.rsplit(".", 1)[0] for a, b in zip(c, c[1:]))
    ]
    assert real == []


def test_no_private_name_is_imported_from_another_module():
    modules = _modules()
    offending = [
        (name, target, n)
        for name, path in modules.items()
        for target, names in _imports(path, modules)
        for n in names
        if n.startswith("_") and target != name
    ]
    assert offending == []


def test_lower_layers_do_not_import_upper_ones():
    # config and problem sit below strategies, which sit below engine; tracking never imports the engine
    forbidden = {
        "optlab.config": ("optlab.strategies", "optlab.engine", "optlab.tracking", "optlab.sweeps"),
        "optlab.problem": ("optlab.strategies", "optlab.engine", "optlab.sweeps"),
        "optlab.strategies": ("optlab.engine", "optlab.sweeps", "optlab.tracking"),
        "optlab.tracking": ("optlab.engine", "optlab.sweeps", "optlab.strategies"),
        "optlab.diagnostics": ("optlab.engine", "optlab.sweeps", "optlab.tracking", "optlab.reports", "optlab.cli"),
        "optlab.engine": ("optlab.sweeps", "optlab.cli", "optlab.reports"),
    }
    _, graph = _graph()
    offending = [
        (name, target)
        for name, targets in graph.items()
        for target in targets
        for layer, above in forbidden.items()
        if (name == layer or name.startswith(layer + ".")) and target.startswith(above)
    ]
    assert offending == []
