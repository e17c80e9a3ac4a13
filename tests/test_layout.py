"""The package layout stays true (docs/architecture.md): no import cycles inside raviso/, no
subpackage importing one it may not (a lower layer never imports a higher one), no module over
400 lines.

The import graph is read with `ast` from the source (no module is imported), and imports inside
functions count as much as top-level ones: a cycle hidden behind a local import is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "raviso"
MAX_LINES = 400

# What each subpackage may import besides itself (and the root `raviso` package, which holds only
# __version__). Same table as docs/architecture.md; change both together.
MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "data": {"core"},
    "io": {"core", "data"},
    "synth": {"core", "data"},
    "models": {"core", "data"},
    "trust": {"core", "data", "models"},
    "train": {"core", "data", "io", "models"},
    "evaluate": {"core", "data", "io", "models", "trust", "train"},
    "serve": {"core", "data", "io", "models", "trust", "train", "evaluate"},
    "cluster": {"core"},
    "demo": {"core", "data", "io", "synth", "models", "trust", "train", "evaluate", "serve"},
    "commands": {"core", "data", "io", "synth", "models", "trust", "train", "evaluate", "serve",
                 "cluster", "demo"},
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The raviso modules `name` imports (resolved to a module file or a package __init__)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule when there is one
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:          # `import raviso.io.formats` -> that module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    mods = modules(root)
    return {n: imports_of(n, p, set(mods)) for n, p in mods.items()}


def subpackage(module: str) -> str:
    """`raviso.io.formats` -> "io"; `raviso.demo` -> "demo"; the root package -> "raviso"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in sorted(graph.items()):
        a = subpackage(src)
        for dst in sorted(targets):
            b = subpackage(dst)
            if a == "raviso" or b in (a, "raviso"):
                continue
            if a not in MAY_IMPORT:
                bad.append(f"{src}: subpackage {a!r} is not in the layer table")
            elif b not in MAY_IMPORT[a]:
                bad.append(f"{src} imports {dst} ({a} may import only "
                           f"{', '.join(sorted(MAY_IMPORT[a])) or 'nothing'})")
    return bad


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (move the shared piece down a layer):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_layers_only_import_downwards():
    bad = layer_violations(import_graph())
    assert not bad, "imports against the layers (docs/architecture.md):\n" + "\n".join(bad)


def test_every_subpackage_is_in_the_layer_table():
    assert {subpackage(m) for m in modules()} - {"raviso"} == set(MAY_IMPORT)


def test_no_module_over_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, "split these modules (docs/architecture.md)"


def test_the_checks_catch_planted_violations(tmp_path):
    """A cycle hidden behind a function-local import, and models importing evaluate, are both
    reported: the checks above do look."""
    root = tmp_path / "raviso"
    for pkg in ("core", "models", "evaluate"):
        (root / pkg).mkdir(parents=True)
        (root / pkg / "__init__.py").write_text("")
    (root / "__init__.py").write_text("__version__ = '0'\n")
    (root / "core" / "a.py").write_text("from . import b\nfrom .. import __version__\n")
    (root / "core" / "b.py").write_text("def f():\n    from .a import x\n")
    (root / "evaluate" / "cv.py").write_text("from ..models.vae import VAE\n")
    (root / "models" / "vae.py").write_text("import raviso.evaluate.cv\n")
    graph = import_graph(root)
    assert graph["raviso.core.a"] == {"raviso.core.b", "raviso"}
    assert cycles(graph) == [["raviso.core.a", "raviso.core.b"],
                             ["raviso.evaluate.cv", "raviso.models.vae"]]
    assert layer_violations(graph) == [
        "raviso.models.vae imports raviso.evaluate.cv (models may import only core, data)"]


MAX_FUNCTION_LINES = 60
CODE_ROOTS = (PACKAGE, PACKAGE.parent / "cli.py")


def code_files() -> list[Path]:
    return sorted(p for root in CODE_ROOTS
                  for p in ([root] if root.suffix == ".py" else root.rglob("*.py")))


def long_functions(paths) -> dict[str, int]:
    """`file:function` -> lines, for every function (methods and nested ones too) over the limit."""
    out = {}
    for p in paths:
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    out[f"{p.name}:{node.name}"] = n
    return out


def private_imports(paths) -> list[str]:
    """`from X import _name` where X is raviso's own module (relative, `raviso.*` or `cli`): a
    name its home module keeps private, used elsewhere."""
    bad = []
    for p in paths:
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if not isinstance(node, ast.ImportFrom):
                continue
            own = node.level > 0 or (node.module or "").split(".")[0] in ("raviso", "cli")
            for a in node.names:
                if own and a.name.startswith("_") and not a.name.startswith("__"):
                    bad.append(f"{p.name}: from {'.' * node.level}{node.module or ''} "
                               f"import {a.name}")
    return bad


def test_no_function_over_60_lines():
    assert long_functions(code_files()) == {}, "split these functions"


def test_no_import_of_another_modules_private_name():
    bad = private_imports(code_files())
    assert not bad, "make these names public in their home module, or move them:\n" + \
        "\n".join(bad)


def test_the_size_and_privacy_checks_catch_planted_violations(tmp_path):
    f = tmp_path / "m.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    f.write_text(f"from .a import _hidden, shown\nfrom raviso.b import __version__\n"
                 f"def short():\n    pass\n\ndef long():\n{body}\n")
    assert long_functions([f]) == {"m.py:long": 61}
    assert private_imports([f]) == ["m.py: from .a import _hidden"]
