"""Layers import one way: edge <- trainer.data <- trainer <- export <- benchmarks, and no module circles.

Read from the source with ``ast`` (nothing is imported), so a lazy import inside a function counts
as much as one at the top: a lazy upward import is still a dependency, only a later-failing one.
"""
import ast
from pathlib import Path

from tests.fixtures.common import ROOT

PACKAGES = ("edge", "trainer", "export", "benchmarks")
# Lower number = lower layer; a module may import only its own layer or lower ones.
# ``trainer`` itself (its __init__) belongs to the data layer: importing trainer.data runs it.
LAYERS = (("edge", 0), ("trainer.data", 1), ("trainer", 2), ("export", 3), ("benchmarks", 4))
NAMES = {0: "edge", 1: "trainer.data", 2: "trainer", 3: "export", 4: "benchmarks"}


def layer(module: str) -> int:
    if module == "trainer":
        return 1
    for prefix, n in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return n
    raise AssertionError(f"{module}: not in any layer")


def modules() -> dict:
    """{dotted name: path} of every library module."""
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = p
    return out


def _target(name: str, known: dict):
    """The project module an imported dotted name lives in (longest known prefix), or None if external."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in known:
            return cand
        parts.pop()
    return None


def imports(module: str, path: Path, known: dict, top_level_only=False):
    """[(line, imported project module)] of ``module``, lazy (function-level) imports included unless
    ``top_level_only``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            fn = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import) and not (top_level_only and in_function):
                for a in child.names:
                    t = _target(a.name, known)
                    if t:
                        found.append((child.lineno, t))
            elif isinstance(child, ast.ImportFrom) and not (top_level_only and in_function):
                if child.level:
                    base = module.split(".") if is_pkg else module.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    src = ".".join(base + ([child.module] if child.module else []))
                else:
                    src = child.module or ""
                for a in child.names:
                    t = _target(f"{src}.{a.name}", known) if a.name != "*" else None
                    t = t or _target(src, known)
                    if t:
                        found.append((child.lineno, t))
            visit(child, fn)

    visit(tree, False)
    return found


def upward_imports():
    known = modules()
    bad = []
    for mod, path in known.items():
        for line, target in imports(mod, path, known):
            if layer(target) > layer(mod):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {mod} ({NAMES[layer(mod)]}) imports {target} "
                           f"({NAMES[layer(target)]}, a higher layer)")
    return bad


def circles(top_level_only):
    """Strongly connected groups (size > 1, or a module importing itself) of the import graph."""
    known = modules()
    graph = {m: sorted({t for _, t in imports(m, p, known, top_level_only)}) for m, p in known.items()}
    index, low, stack, on, out = {}, {}, [], set(), []

    def strong(v):  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def _is_ancestor_pair(group):
    # A package __init__ that re-exports its own submodules, which import the package back for
    # those names, is how Python packages work; only circles between siblings tangle design.
    return len(group) == 2 and group[1].startswith(group[0] + ".")


def test_no_upward_import():
    bad = upward_imports()
    assert not bad, "imports against the layer order (edge <- trainer.data <- trainer <- export <- benchmarks):\n" + \
        "\n".join(bad)


def test_no_import_circle_between_modules():
    bad = [g for g in circles(top_level_only=False) if not _is_ancestor_pair(g)]
    assert not bad, "modules that import each other (lazy imports included): " + "; ".join(" <-> ".join(g) for g in bad)


def test_no_module_level_import_circle():
    bad = circles(top_level_only=True)
    assert not bad, "module-level import circles: " + "; ".join(" <-> ".join(g) for g in bad)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    # The scan must see an import inside a function and resolve a relative one, or it guards nothing.
    src = tmp_path / "mod.py"
    src.write_text("def f():\n    from export import convert\n    from .parity import x\n")
    known = {"export": None, "export.convert": None, "export.parity": None, "trainer.train": None}
    assert imports("export.mod", src, known) == [(2, "export.convert"), (3, "export.parity")]
    assert imports("export.mod", src, known, top_level_only=True) == []
    assert layer("trainer.train") > layer("trainer.data.split") > layer("edge.runtime")
    assert layer("export.convert") > layer("trainer.train")
