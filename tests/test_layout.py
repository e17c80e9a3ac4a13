"""The package layout stays true (docs/architecture.md): no import cycles inside raviso/, no
subpackage importing one it may not (a lower layer never imports a higher one), no module over
400 lines. And the page stays true to the code: its tree lists every module and nothing else, its
layer table is `MAY_IMPORT`, no other page keeps a copy of the tree, and the docs name only files
and modules that exist.

The import graph is read with `ast` from the source (no module is imported), and imports inside
functions count as much as top-level ones: a cycle hidden behind a local import is still a cycle.
"""

from __future__ import annotations

import ast
import re
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


# -- docs/architecture.md: one tree, true ---------------------------------------------------------
ROOT = PACKAGE.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def documented_tree(text: str) -> tuple[list[str], set[str]]:
    """(modules, packages) the tree of docs/architecture.md lists under ``raviso/``, as dotted
    names: one line per module or ``folder/``, nested by two spaces."""
    block = text.split("## The tree", 1)[1].split("```", 2)[1]
    mods, pkgs, path = [], set(), []
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        path[depth:] = [name.rstrip("/")]
        if path[0] != "raviso" or depth == 0:
            continue
        (pkgs.add if name.endswith("/") else mods.append)(".".join(path))
    return mods, pkgs


def test_the_tree_in_architecture_md_lists_every_module_and_nothing_else():
    listed, listed_pkgs = documented_tree(ARCHITECTURE.read_text())
    found = modules()
    real = {n for n, p in found.items() if p.name != "__init__.py"}
    pkgs = {n for n, p in found.items() if p.name == "__init__.py"} - {"raviso"}
    assert sorted(real - set(listed)) == [], "add these modules to docs/architecture.md's tree"
    assert sorted(set(listed) - real) == [], "gone from raviso/: take them off the tree"
    assert sorted(n for n in set(listed) if listed.count(n) > 1) == []
    assert listed_pkgs == pkgs


def test_the_tree_parser_reads_nesting_and_folders():
    text = ("## The tree\n\n```\ncli.py   the app\nraviso/\n  core/   low\n    errors   e\n"
            "  models/\n    vae/\n      loop   l\n    spec   s\n  demo   d\n```\n")
    assert documented_tree(text) == (["raviso.core.errors", "raviso.models.vae.loop",
                                      "raviso.models.spec", "raviso.demo"],
                                     {"raviso.core", "raviso.models", "raviso.models.vae"})


def test_the_layer_table_in_architecture_md_is_may_import():
    rows = {}
    for line in ARCHITECTURE.read_text().split("## Layers", 1)[1].splitlines():
        cells = [c.strip(" `") for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] in MAY_IMPORT and not cells[1].startswith("every"):
            rows[cells[0]] = set() if cells[1] == "nothing" else set(cells[1].split(", "))
    assert rows == {k: v for k, v in MAY_IMPORT.items() if k not in ("demo", "commands")}


def test_only_architecture_md_draws_the_package_tree():
    """development.md and the other pages point to it instead of keeping a copy."""
    folder = re.compile(r"^\s*(raviso/)?(%s)/\s" % "|".join(MAY_IMPORT))
    copies = {p.name: n for p in (ROOT / "docs").glob("*.md") if p != ARCHITECTURE
              and (n := sum(bool(folder.match(line)) for line in p.read_text().splitlines())) > 2}
    assert copies == {}


DOC_FILES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md",
                                                    ROOT / "bench" / "README.md"]
PATH_REF = re.compile(r"(?<![\w/.])((?:tests|raviso|bench|docs)/[\w./-]*\w)")
DOTTED_REF = re.compile(r"\braviso(?:\.[A-Za-z_]\w*)+")


def dead_references(files) -> list[str]:
    """`file:line: ref` for each path (tests/..., raviso/..., bench/..., docs/...) that does not
    exist and each dotted raviso.x.y that is neither a module nor a name defined in one."""
    mods = modules()
    dead = []
    for f in files:
        where = f.relative_to(ROOT) if f.is_relative_to(ROOT) else f.name
        for i, line in enumerate(f.read_text().splitlines(), 1):
            for ref in PATH_REF.findall(line):
                if not (ROOT / ref).exists() and not (ROOT / f"{ref}.py").exists():
                    dead.append(f"{where}:{i}: {ref}")
            for m in DOTTED_REF.finditer(line):     # raviso.cv.results/1: a schema's name
                if line[m.end():m.end() + 1] != "/" and not _defined(m.group(), mods):
                    dead.append(f"{where}:{i}: {m.group()}")
    return dead


def _defined(dotted: str, mods: dict[str, Path]) -> bool:
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        mod = ".".join(parts[:k])
        if mod in mods:
            if k == len(parts):
                return True
            return re.search(rf"^\s*(def|class)\s+{parts[k]}\b|^{parts[k]}\b\s*[:=]|"
                             rf"import .*\b{parts[k]}\b", mods[mod].read_text(), re.M) is not None
    return False


def test_the_docs_name_only_files_and_modules_that_exist():
    assert dead_references(DOC_FILES) == []


def test_the_dead_reference_check_catches_planted_ones(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("see tests/test_layout.py and tests/test_gone.py;\n"
                   "`raviso.core.config.option`, `raviso.core.config.nothing_here`, "
                   "`raviso.metrics.evaluate`; schema raviso.cv.results/1\n")
    assert dead_references([doc]) == ["x.md:1: tests/test_gone.py",
                                      "x.md:2: raviso.core.config.nothing_here",
                                      "x.md:2: raviso.metrics.evaluate"]


# -- a config default is written once ----------------------------------------------------------------
def _option_default(call: ast.AST, helpers: dict[str, ast.FunctionDef]):
    """The literal default of a config field's value: ``option(D, ...)``, or a helper whose body
    returns one (``seed_option()``, ``_group_by()``); `_NO_DEFAULT` otherwise."""
    if not isinstance(call, ast.Call):
        return _NO_DEFAULT
    name = getattr(call.func, "id", getattr(call.func, "attr", ""))
    if name == "option":
        return _literal(call.args[0]) if call.args else _NO_DEFAULT
    fn = helpers.get(name)
    ret = fn and next((n.value for n in ast.walk(fn) if isinstance(n, ast.Return)), None)
    return _option_default(ret, {}) if ret is not None else _NO_DEFAULT


_NO_DEFAULT = object()


def _literal(node):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return _NO_DEFAULT


def config_defaults(root: Path = PACKAGE) -> dict[str, dict[str, list[tuple[str, object]]]]:
    """{subpackage: {field: [(config class, default)]}} of every `StageConfig` dataclass."""
    trees = {n: ast.parse(p.read_text()) for n, p in modules(root).items()}
    shared = {f.name: f for f in trees.get(f"{root.name}.core.config", ast.Module()).body
              if isinstance(f, ast.FunctionDef)}
    out: dict = {}
    for name, tree in trees.items():
        helpers = {**shared, **{f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}}
        for cls in (c for c in tree.body if isinstance(c, ast.ClassDef)):
            if not any(getattr(b, "id", "") == "StageConfig" for b in cls.bases):
                continue
            for st in cls.body:
                if isinstance(st, ast.AnnAssign) and st.value is not None:
                    d = _option_default(st.value, helpers)
                    if d is not _NO_DEFAULT and d is not None:
                        out.setdefault(subpackage(name), {}).setdefault(
                            st.target.id, []).append((cls.name, d))
    return out


def duplicated_defaults(root: Path = PACKAGE) -> set[str]:
    """``module.function(param=D)`` for each keyword default D of a function that repeats the
    default of a config field of the same name in the same subpackage (a stage function should
    take its config, or no default)."""
    fields = config_defaults(root)
    out = set()
    for name, path in modules(root).items():
        own = fields.get(subpackage(name), {})
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            a = fn.args
            pos = a.posonlyargs + a.args
            pairs = list(zip(pos[len(pos) - len(a.defaults):], a.defaults)) + \
                [(p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            for p, d in pairs:
                value = _literal(d)
                if any(type(value) is type(v) and value == v for _, v in own.get(p.arg, ())):
                    out.add(f"{name}.{fn.name}({p.arg}={value!r})")
    return out


def test_no_stage_function_repeats_a_config_default():
    assert sorted(duplicated_defaults()) == [], \
        "take the stage's config (or give no default) instead of repeating its field's default"


def test_the_duplicate_default_check_catches_planted_ones(tmp_path):
    root = tmp_path / "raviso"
    for pkg in ("core", "serve"):
        (root / pkg).mkdir(parents=True)
        (root / pkg / "__init__.py").write_text("")
    (root / "core" / "config.py").write_text(
        "def seed_option(help=''):\n    return option(0, help)\n")
    (root / "serve" / "config.py").write_text(
        "class FitConfig(StageConfig):\n    seed: int = seed_option()\n"
        "    units: str = option('tpm', 'u')\n    out: str = option(None, 'o')\n")
    (root / "serve" / "fit.py").write_text(
        "def fit(store, seed=0, units='log2', out=None):\n    pass\n"
        "def predict(x, *, units='tpm', seed=1):\n    pass\n")
    assert duplicated_defaults(root) == {"raviso.serve.fit.fit(seed=0)",
                                         "raviso.serve.fit.predict(units='tpm')"}


MAX_PARAMETERS = 8


def wide_functions(paths) -> set[str]:
    """``module-file:function`` for every function taking more than 8 parameters (``self``/``cls``
    aside, ``*args``/``**kwargs`` one each): past that, a call site is a list nobody can check."""
    out = set()
    for p in paths:
        for fn in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = fn.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                n = len(names) + bool(a.vararg) + bool(a.kwarg) - (names[:1] in (["self"], ["cls"]))
                if n > MAX_PARAMETERS:
                    out.add(f"{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p.name}:"
                            f"{fn.name}")
    return out


def test_no_function_takes_more_than_8_parameters():
    assert sorted(wide_functions(code_files())) == [], \
        "pass a config or an options record instead of more than 8 parameters"


def test_the_width_check_counts_parameters_as_a_caller_sees_them(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def eight(a, b, c, d, e, f, g, *rest):\n    pass\n"
                 "def nine(a, b, c, d, e, f, g, h, **kw):\n    pass\n"
                 "class C:\n    def m(self, a, b, c, d, e, f, g, h):\n        pass\n"
                 "    def n(self, a, b, c, d, e, f, g, h, *, i=0):\n        pass\n")
    assert wide_functions([f]) == {"m.py:nine", "m.py:n"}
