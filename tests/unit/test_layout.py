"""The package boundary as imports: no module circle, tests never import the benches, the
package never imports either, and the demo's row builder is cheap to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "pgqueue_enricher"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources(top: str) -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ROOT / top).rglob("*.py"))}


def imported(path: Path) -> Iterator[str]:
    """Every dotted name an import statement anywhere in `path` names (inside functions too: a
    lazy import still closes a circle), with `from a import b` as both `a` and `a.b` (b may be a
    module); relative imports resolved against the file's package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Package module -> the package modules it imports (a package's __init__ stands for it)."""
    modules = sources(PACKAGE)
    return {
        name: {
            target for target in imported(path) if target in modules and target != name and target != PACKAGE
        }
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_circle_not_even_through_imports_inside_functions() -> None:
    assert cycles(import_graph()) == []


def test_cli_and_the_demo_share_console_and_only_cli_reaches_the_demo() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.cli.console" in graph[f"{PACKAGE}.cli.main"]
    assert f"{PACKAGE}.cli.console" in graph[f"{PACKAGE}.demo.command"]
    assert f"{PACKAGE}.demo.command" in graph[f"{PACKAGE}.cli.main"]
    reached = {name for name, targets in graph.items() if f"{PACKAGE}.demo.command" in targets}
    assert reached == {f"{PACKAGE}.cli.main"}


def importers_of(graph: dict[str, set[str]], prefix: str) -> set[str]:
    return {
        name
        for name, targets in graph.items()
        if not name.startswith(prefix) and any(t == prefix or t.startswith(prefix + ".") for t in targets)
    }


def test_providers_never_import_the_queue_ops_or_admission() -> None:
    graph = import_graph()
    offenders = {
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith(f"{PACKAGE}.providers")
        for target in targets
        if target.split(".")[1] in ("queue", "ops", "admission", "cli", "daemon")
    }
    assert offenders == set()


def test_the_queue_statements_never_import_ops() -> None:
    graph = import_graph()
    offenders = {t for t in graph[f"{PACKAGE}.queue.statements"] if t.startswith(f"{PACKAGE}.ops")}
    assert offenders == set()


def test_within_the_queue_only_the_worker_imports_admission() -> None:
    # The worker owns the gate and hands the pipeline a grant per call; the CLI reads the
    # providers' rows for `status`; nothing else reaches admission.
    importers = importers_of(import_graph(), f"{PACKAGE}.admission")
    assert {name for name in importers if name.startswith(f"{PACKAGE}.queue")} == {f"{PACKAGE}.queue.worker"}
    assert {
        name for name in importers if name.startswith((f"{PACKAGE}.providers", f"{PACKAGE}.ops"))
    } == set()


def test_at_most_twelve_modules_at_the_package_root() -> None:
    root = sorted(path.name for path in (ROOT / PACKAGE).glob("*.py"))
    assert len(root) <= 12, root


def test_no_test_module_imports_a_bench() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for name in imported(path)
        if name == "bench" or name.startswith("bench.")
    ]
    assert offenders == []


def test_the_package_imports_neither_tests_nor_benches() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / PACKAGE).rglob("*.py"))
        for name in imported(path)
        if name.split(".")[0] in ("tests", "bench")
    ]
    assert offenders == []


def test_importing_the_row_builder_loads_neither_the_renderer_nor_the_worker() -> None:
    heavy = ["PIL", f"{PACKAGE}.demo.drawings", f"{PACKAGE}.queue.worker", f"{PACKAGE}.cli.main"]
    probe = (
        f"import sys, pgqueue_enricher.demo.rows; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
    )
    assert result.stdout.split() == []
