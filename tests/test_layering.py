"""The package's layering, enforced (in the spirit of go-containerregistry's depcheck_test.go).

Every import of every module of fastsync/ is read from its source -- function-level imports included,
`if TYPE_CHECKING:` blocks excluded -- and checked against the floors declared in LAYERS: a module
may import only modules of its own layer or of the layers it lists. The graph must have no cycles.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "fastsync"

VOCABULARY = {"fastsync", "fastsync.model", "fastsync.manifest", "fastsync.reference", "fastsync.options",
              "fastsync.errors", "fastsync.progress", "fastsync.retry"}

# layer -> the layers it may import (besides itself); a module's layer is the longest prefix below
LAYERS: dict[str, set[str]] = {
    "vocabulary": set(),
    "fastsync.core": {"vocabulary"},
    "fastsync.registry": {"vocabulary"},
    "fastsync.store": {"vocabulary", "fastsync.core"},
    "fastsync.session": {"vocabulary", "fastsync.registry", "fastsync.store"},
    "fastsync.transports": {"vocabulary", "fastsync.core", "fastsync.registry", "fastsync.store",
                            "fastsync.session"},
    "fastsync.trust": {"vocabulary", "fastsync.core", "fastsync.registry", "fastsync.store", "fastsync.session",
                       "fastsync.transports"},
    "fastsync.attachments": {"vocabulary", "fastsync.core", "fastsync.registry", "fastsync.store",
                             "fastsync.session", "fastsync.transports", "fastsync.trust"},
    "fastsync.engine": {"vocabulary", "fastsync.core", "fastsync.registry", "fastsync.store",
                        "fastsync.session", "fastsync.transports", "fastsync.attachments"},
    "fastsync.api": {"vocabulary", "fastsync.core", "fastsync.registry", "fastsync.store",
                     "fastsync.session", "fastsync.transports", "fastsync.attachments", "fastsync.engine"},
    "fastsync.sync": {"vocabulary", "fastsync.core", "fastsync.registry", "fastsync.store",
                      "fastsync.session", "fastsync.transports", "fastsync.attachments", "fastsync.engine"},
    "fastsync.offline": {"vocabulary", "fastsync.core", "fastsync.registry", "fastsync.store",
                         "fastsync.session", "fastsync.transports", "fastsync.attachments", "fastsync.engine"},
    "fastsync.regbench": {"vocabulary", "fastsync.core", "fastsync.registry", "fastsync.session"},
    "fastsync.cli": {"vocabulary", "fastsync.core", "fastsync.registry", "fastsync.store", "fastsync.session",
                     "fastsync.transports", "fastsync.trust", "fastsync.attachments", "fastsync.engine", "fastsync.api",
                     "fastsync.sync", "fastsync.offline", "fastsync.regbench"},
    "fastsync.__main__": {"fastsync.cli"},
}
# third-party modules only some layers may use
ONLY_IN = {"click": {"fastsync.cli"}, "rich": {"fastsync.cli"}}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module in VOCABULARY:
        return "vocabulary"
    best = ""
    for layer in LAYERS:
        if (module == layer or module.startswith(layer + ".")) and len(layer) > len(best):
            best = layer
    assert best, f"{module} belongs to no declared layer: add it to LAYERS in {__file__}"
    return best


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports_of(path: Path) -> set[str]:
    """Absolute names of everything `path` imports outside TYPE_CHECKING blocks."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:                # `from fastsync.core import native` imports a module
                candidate = f"{target}.{a.name}"
                out.add(candidate if _is_module(candidate) else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return out


def _is_module(name: str) -> bool:
    if not name.startswith("fastsync"):
        return False
    p = ROOT.joinpath(*name.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists() or \
        any(p.parent.glob(p.name + ".*.so")) or p.with_suffix(".pyi").exists()


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PKG.rglob("*.py"))}


def test_every_import_respects_the_layers() -> None:
    bad = []
    for module, imported in graph().items():
        mine = layer_of(module)
        allowed = LAYERS[mine] | {mine}
        for name in sorted(imported):
            top = name.split(".")[0]
            if top in ONLY_IN and not any(module == l or module.startswith(l + ".") for l in ONLY_IN[top]):
                bad.append(f"{module} imports {name} (only {sorted(ONLY_IN[top])} may)")
            if top != "fastsync":
                continue
            if name == "fastsync" and mine != "vocabulary":
                continue                          # the package itself (its __version__)
            theirs = layer_of(name)
            if theirs not in allowed:
                bad.append(f"{module} ({mine}) imports {name} ({theirs})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_the_import_graph_has_no_cycles() -> None:
    full = graph()
    g = {m: {i for i in deps if i in full} for m, deps in full.items()}
    # a package's __init__ is not an edge from its own submodules (Python imports it first anyway)
    for m in g:
        g[m] = {d for d in g[m] if not m.startswith(d + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                dfs(d)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            dfs(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_layering_checker_sees_function_level_imports(tmp_path: Path) -> None:
    """The walker is not fooled by an import hidden inside a function (and skips TYPE_CHECKING)."""
    f = PKG / "registry" / "_layering_probe.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import fastsync.cli\n"
                 "def f():\n    from fastsync.engine import job\n")
    try:
        found = imports_of(f)
    finally:
        f.unlink()
    assert "fastsync.engine.job" in found and "fastsync.cli" not in found


def test_the_wheel_holds_the_product_only() -> None:
    """pyproject selects the fastsync packages alone; the test harness (tests/support) is not among
    them and no library module imports it."""
    import tomllib

    from setuptools import find_packages

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(ROOT), include=conf["include"])
    assert packages and all(p == "fastsync" or p.startswith("fastsync.") for p in packages), packages
    assert not (PKG / "testing").exists()
    for module, imported in graph().items():
        assert not any(n.split(".")[0] in ("support", "tests", "pytest") for n in imported), module
