"""The layers of ARCHITECTURE.md, read from the package's own imports: none upward, no cycle."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mrp_numpyro"

# Bottom to top; a module may import from its own layer and those below it.
LAYERS = [
    {"outputs", "diagnostics", "data"},
    {"design"},
    {"model"},
    {"inference"},
    {"poststratification", "calibration", "checking"},
    {"labelled"},
    {"app"},
    {"__init__", "__main__", "compare", "collect", "spotcheck", "poststratify"},
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The package modules a file imports, as absolute names."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("mrp_numpyro"):
                continue
            if node.module is None:  # from . import report
                found.update(f"{target}.{alias.name}" for alias in node.names)
            else:
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mrp_numpyro"))
    return found


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for level, names in enumerate(LAYERS):
        if top in names:
            return level
    raise AssertionError(f"{module} is on no layer of {LAYERS}; add it to ARCHITECTURE.md and here")


GRAPH = {_module(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_runs_up_a_layer(module):
    upward = sorted(t for t in GRAPH[module] if _layer(t) > _layer(module))
    assert not upward, f"{module} (layer {_layer(module)}) imports {upward} from above"


def test_no_import_cycle():
    state: dict[str, int] = {}

    def visit(module, path):
        state[module] = 1
        for target in GRAPH.get(module, ()):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [module, target]))
            if target in GRAPH and not state.get(target):
                visit(target, path + [module])
        state[module] = 2

    for module in GRAPH:
        if not state.get(module):
            visit(module, [])


def test_no_module_grows_past_about_400_lines():
    long = {m: n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 420 for m in [_module(p)]}
    assert not long, long
