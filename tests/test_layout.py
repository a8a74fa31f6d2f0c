"""The layout of tinymtt/ holds: read from the source, not imported.

* no import cycle, counting the imports inside functions too (so none can hide one);
* the library never imports the command layer (tinymtt/cli.py, tinymtt/commands/);
* every import points to its own layer or one below, by the layer map in docs/DESIGN.md;
* no ``_private`` name is imported from another module;
* at most 14 modules at the package root, none over 400 lines;
* docs/DESIGN.md exists, and every reference to it (code, lessons, README) names it and a section it has;
* each multi-task strategy is one file with one registered class; each command is listed by the cli.
"""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tinymtt"
DESIGN = ROOT / "docs" / "DESIGN.md"
COMMAND_LAYER = ("tinymtt.cli", "tinymtt.__main__", "tinymtt.commands")
MAX_ROOT_MODULES, MAX_LINES = 14, 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_package(name):
    return MODULES[name].name == "__init__.py"


def imports(name):
    """(target module, imported names, line) for every import of a tinymtt module in ``name``, at any depth."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    package = name if is_package(name) else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names if alias.name in MODULES]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            if target not in MODULES:
                continue
            names = [alias.name for alias in node.names]
            submodules = [n for n in names if f"{target}.{n}" in MODULES]
            found += [(f"{target}.{n}", [], node.lineno) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest:
                found.append((target, rest, node.lineno))
    return found


EDGES = {name: imports(name) for name in MODULES}


def in_command_layer(name):
    return any(name == top or name.startswith(top + ".") for top in COMMAND_LAYER)


def test_the_graph_is_read():
    """A test that reads nothing cannot fail: the graph must hold what we know is there."""
    assert "tinymtt.model" in MODULES and "tinymtt.commands.train" in MODULES
    targets = {target for target, _, _ in EDGES["tinymtt.model"]}
    assert {"tinymtt.backend", "tinymtt.nn", "tinymtt.ops", "tinymtt.validation"} <= targets
    assert "tinymtt.commands" in {t for t, _, _ in EDGES["tinymtt.cli"]} | \
           {t.rpartition(".")[0] for t, _, _ in EDGES["tinymtt.cli"]}


def cycles(edges):
    """The strongly connected components of more than one module (or a module importing itself)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):                      # Tarjan's algorithm
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert cycles({"a": ["b"], "b": []}) == []


def test_no_import_cycles():
    graph = {name: sorted({target for target, _, _ in edges}) for name, edges in EDGES.items()}
    found = cycles(graph)
    details = [f"{name} -> {target} (line {line})" for component in found for name in component
               for target, _, line in EDGES[name] if target in component]
    assert not found, "import cycles:\n" + "\n".join(details)


def test_the_library_never_imports_the_command_layer():
    wrong = [f"{name} -> {target} (line {line})" for name, edges in EDGES.items() if not in_command_layer(name)
             for target, _, line in edges if in_command_layer(target)]
    assert not wrong, "library modules import the command layer:\n" + "\n".join(wrong)


def test_no_private_name_is_imported_from_another_module():
    wrong = [f"{name} line {line}: {target}.{imported}" for name, edges in EDGES.items()
             for target, names, line in edges for imported in names
             if imported.startswith("_") and not imported.startswith("__") and target != name]
    assert not wrong, "private names imported across modules:\n" + "\n".join(wrong)


def layer_map():
    """[(layer, [path, ...])] from the fenced block under the marker in docs/DESIGN.md, top layer first."""
    text = DESIGN.read_text()
    marker = text.index("<!-- layer map: tests/test_layout.py reads the block below -->")
    block = text[marker:].split("```")[1]
    layers = []
    for line in block.strip().splitlines()[2:]:          # the fence's language, then the column heading
        layer, _, rest = line.partition(" ")
        paths = [p.strip() for p in rest.split("#")[0].split(",") if p.strip()]
        layers.append((layer, paths))
    return layers


def layer_of(name, layers):
    """The position (0 = bottom) of the layer whose most specific path holds the module."""
    path = MODULES[name].relative_to(ROOT).as_posix()
    best, depth = None, -1
    for position, (_, paths) in enumerate(reversed(layers)):
        for prefix in paths:
            if (path == prefix or (prefix.endswith("/") and path.startswith(prefix))) and len(prefix) > depth:
                best, depth = position, len(prefix)
    return best


def test_every_module_has_a_layer_and_imports_only_its_own_or_lower_ones():
    layers = layer_map()
    names = [layer for layer, _ in layers]
    assert names[0] == "cli" and names[-1] == "base" and len(set(names)) == len(names), names
    placed = {name: layer_of(name, layers) for name in MODULES}
    assert not [name for name, position in placed.items() if position is None], "modules outside the layer map"
    upward = [f"{name} ({names[-1 - placed[name]]}) -> {target} ({names[-1 - placed[target]]}), line {line}"
              for name, edges in EDGES.items() for target, _, line in edges if placed[target] > placed[name]]
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_the_package_root_is_small_and_no_module_is_long():
    root = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def design_sections():
    return {line.lstrip("#").strip() for line in DESIGN.read_text().splitlines() if line.startswith("#")}


def cited_files():
    """(where, text) of every file that may cite the design: the package, the lessons' cells, the README."""
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path.read_text()
    for path in sorted((ROOT / "lessons").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        yield path.relative_to(ROOT).as_posix(), "\n".join("".join(cell["source"]) for cell in cells)
    yield "README.md", (ROOT / "README.md").read_text()


def test_the_design_doc_is_in_the_repository_and_every_reference_resolves():
    assert DESIGN.is_file(), "docs/DESIGN.md is missing"
    sections = design_sections()
    references, wrong = 0, []
    for where, text in cited_files():
        for match in re.finditer(r"\S*DESIGN\.md", text):
            references += 1
            if text[max(match.end() - len("docs/DESIGN.md"), 0):match.end()] != "docs/DESIGN.md" \
                    or match.group(0).endswith(("../docs/DESIGN.md", "shared/DESIGN.md")):
                wrong.append(f"{where}: {match.group(0)!r} (write docs/DESIGN.md)")
        for section in re.findall(r"docs/DESIGN\.md(?:'s|,)? \"([^\"]+)\"", text):
            if not any(section in heading for heading in sections):
                wrong.append(f"{where}: docs/DESIGN.md has no section {section!r}")
    assert references >= 5 and not wrong, "\n".join(wrong)


def test_each_strategy_is_one_file_with_one_registered_class():
    from tinymtt.mtl.registry import CLASSES
    shared = {"__init__", "base", "registry", "simplex", "gradients", "diagnostics", "toy", "affinity", "grouping"}
    methods = sorted(path.stem for path in (PACKAGE / "mtl").glob("*.py") if path.stem not in shared)
    homes = sorted(cls.__module__.rpartition(".")[2] for cls in CLASSES)
    assert homes == methods, (homes, methods)


def test_the_cli_lists_every_command():
    from tinymtt.cli import commands
    from tinymtt.commands.common import Command
    import importlib
    listed = commands()
    defined = []
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        module = importlib.import_module(f"tinymtt.commands.{path.stem}")
        defined += [value for value in vars(module).values() if isinstance(value, Command)]
    assert sorted(c.name for c in listed) == sorted(c.name for c in defined)
    assert len({c.name for c in listed}) == len(listed)


@pytest.mark.parametrize("name", ["tinymtt.backend", "tinymtt.model", "tinymtt.train", "tinymtt.plots.figures"])
def test_a_library_module_loads_no_command_module(name):
    """The same rule, checked by running: importing the library pulls in nothing of the command layer."""
    import subprocess
    import sys
    code = f"import sys, {name}; print(sorted(m for m in sys.modules if m.startswith(('tinymtt.commands', 'tinymtt.cli'))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_no_autograd_library_is_imported_inside_the_package():
    """torch (or jax, tensorflow) lives in tests/, benchmarks/ and interop/ only (docs/DESIGN.md)."""
    banned = ("torch", "jax", "tensorflow")
    wrong = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            wrong += [f"{name} line {node.lineno}: {t}" for t in targets if t.split(".")[0] in banned]
    assert not wrong, "autograd libraries imported inside tinymtt/:\n" + "\n".join(wrong)
