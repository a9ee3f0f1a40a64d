"""The package's import graph keeps the layering of docs/architecture.md, section "Layers".

Built with grimp (the graph import-linter uses), from the source, with imports inside functions
and under ``TYPE_CHECKING`` counted: a lazy import is still a dependency.
"""

from __future__ import annotations

import re
from pathlib import Path

import grimp
import pytest

#: Top to bottom: a module may import modules of its own layer or of a lower one.
#: Layers separated by ``|`` on one line are independent: neither imports the other.
LAYERS: list[str] = [
    "docingest.cli",
    "docingest.api",
    "docingest.runtime",
    "docingest.services",
    "docingest.worker",
    "docingest.stages",
    "docingest.providers",
    "docingest.db",
    "docingest.observability",
    "docingest.settings | docingest.errors | docingest.domain | docingest.backoff | docingest.heap",
]
#: Only these may import ``docingest.testing`` (fault wrappers, mock servers).
TESTING_IMPORTERS = ("docingest.cli", "docingest.runtime", "docingest.testing")
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("docingest")


#: Modules outside the layers' packages that belong to a layer: ``python -m docingest`` is the CLI.
MEMBERS = {"docingest.__main__": "docingest.cli"}


def _layer_of(module: str) -> int | None:
    module = MEMBERS.get(module, module)
    for i, layer in enumerate(LAYERS):
        for name in layer.split(" | "):
            if module == name or module.startswith(name + "."):
                return i
    return None


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_every_module_belongs_to_a_layer(graph: grimp.ImportGraph) -> None:
    loose = sorted(
        m
        for m in graph.modules
        if m != "docingest" and _layer_of(m) is None and not m.startswith("docingest.testing")
    )
    assert loose == [], f"modules outside every layer of docs/architecture.md: {loose}"


def test_no_module_imports_a_higher_layer(graph: grimp.ImportGraph) -> None:
    broken = []
    for importer in sorted(graph.modules):
        low = _layer_of(importer)
        if low is None:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            high = _layer_of(imported)
            if high is not None and high < low:
                broken.append(f"{importer} -> {imported}")
    assert broken == [], "imports against the layering (docs/architecture.md, Layers):\n" + "\n".join(broken)


def test_independent_foundation_modules_do_not_import_each_other(graph: grimp.ImportGraph) -> None:
    for layer in LAYERS:
        names = layer.split(" | ")
        for a in names:
            for b in names:
                if a != b:
                    assert not graph.chain_exists(a, b, as_packages=True), f"{a} imports {b}"


def test_only_the_composition_root_and_the_cli_import_the_test_tooling(graph: grimp.ImportGraph) -> None:
    importers = sorted(
        importer
        for module in graph.find_descendants("docingest.testing") | {"docingest.testing"}
        for importer in graph.find_modules_that_directly_import(module)
        if not importer.startswith(TESTING_IMPORTERS)
    )
    assert importers == [], f"product modules importing docingest.testing: {importers}"


def test_the_package_has_no_import_cycle(graph: grimp.ImportGraph) -> None:
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    fake = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c"):
        fake.add_module(m)
    fake.add_import(importer="p.a", imported="p.b")
    fake.add_import(importer="p.b", imported="p.c")
    fake.add_import(importer="p.c", imported="p.a")
    assert _cycles(fake) == [["p.a", "p.b", "p.c"]]


def test_architecture_md_draws_the_same_layers() -> None:
    text = ARCHITECTURE.read_text()
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    drawn = re.findall(r"^\s*\|\s*\d+\s*\|\s*([^|]+?)\s*\|", section, flags=re.MULTILINE)
    expected = [
        " | ".join(f"`{n.removeprefix('docingest.')}`" for n in layer.split(" | ")) for layer in LAYERS
    ]
    assert [d.replace(", ", " | ") for d in drawn] == expected
