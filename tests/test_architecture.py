"""The layers of the package, checked from the source: every import (at module level or inside a
function) points down the layer order or within a layer, and no import cycle exists.

    0 errors, version                   messages and how they print
    1 core/                             option names, the tables of modes and formats, the checks, the plan, dtypes
    2 backends/                         the NumPy/CuPy seam, OpenCV, the CUDA kernels
    3 engine/, io/, viz/                the pooling math; files; drawing
    4 app/, stream/                     one file through: settings, in memory, streamed, described, its figures;
                                        inputs of any size
    5 batch/, inspect/                  many files; the HTML inspector and gallery
    6 cli/                              parse, call, print
    7 poolcli (the package's public face), __main__
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "poolcli"
LAYERS = {
    "errors": 0, "version": 0,
    "core": 1,
    "backends": 2,
    "engine": 3, "io": 3, "viz": 3,
    "app": 4, "stream": 4,
    "batch": 5, "inspect": 5,
    "cli": 6,
    "": 7, "__main__": 7,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(part for part in parts if part != "__init__")


def imported_modules(path: Path) -> set[str]:
    """The poolcli modules `path` imports, by their names inside the package ("" is the package)."""
    here = module_name(path).split(".") if module_name(path) else []
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.add(".".join(base + node.module.split(".")))
            else:
                found.update(".".join(base + [alias.name]) for alias in node.names)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found.update(name.removeprefix("poolcli").lstrip(".") for name in names if name.split(".")[0] == "poolcli")
    return {name for name in found if _is_module(name)} - {module_name(path)}


def _is_module(name: str) -> bool:
    target = PACKAGE.joinpath(*name.split(".")) if name else PACKAGE
    return target.with_suffix(".py").exists() or (target / "__init__.py").exists()


def layer(name: str) -> int:
    top = name.split(".")[0]
    assert top in LAYERS, f"poolcli.{name} has no layer: add it to tests/test_architecture.py's LAYERS"
    return LAYERS[top]


def graph() -> dict[str, set[str]]:
    return {module_name(path): imported_modules(path) for path in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer():
    for name in graph():
        layer(name)


@pytest.mark.parametrize("name", sorted(graph()))
def test_imports_point_down_the_layers(name):
    for target in graph()[name]:
        if name.split(".")[0] == target.split(".")[0]:
            continue  # within one package (cycles are the next test's business)
        assert layer(target) <= layer(name), f"poolcli.{name} (layer {layer(name)}) imports poolcli.{target} " \
                                             f"(layer {layer(target)}): move the shared piece down"


def test_no_import_cycles():
    edges = graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(f"poolcli.{n}" if n else "poolcli" for n in cycle))
            if target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def test_the_check_sees_a_cycle(tmp_path, monkeypatch):
    """The walk itself: a planted cycle is found (so a passing test means something)."""
    fake = tmp_path / "poolcli"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "errors.py").write_text("from .engine import pool\n")
    (fake / "engine.py").write_text("def f():\n    from . import errors\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert graph()["errors"] == {"engine"} and graph()["engine"] == {"errors"}
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycles()
    with pytest.raises(AssertionError, match="layer 0"):
        test_imports_point_down_the_layers("errors")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (they may show command lines)."""
    return {id(node.value) for node in ast.walk(tree)  # every bare string statement: a (attribute) docstring
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}


def test_no_library_module_spells_a_flag():
    """Library messages name parameters (errors.param); only the command line maps them to flags."""
    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if module_name(path).split(".")[0] in ("cli", "__main__") or path.name == "cuda.py":  # compiler options
            continue
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            literal = isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            if literal and flag.search(node.value):
                offenders.append(f"{path.name}:{node.lineno}: {node.value[:60]!r}")
    assert not offenders, "flags in library messages (use errors.param):\n" + "\n".join(offenders)
    assert flag.search("pass --max-pixels") and not flag.search("max_pixels")


def test_no_private_name_is_imported_across_modules():
    """A leading underscore means "this module's own": another module that needs it needs a public name."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            ours = isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("poolcli"))
            if ours:
                offenders += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {alias.name}" for alias in node.names
                              if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not offenders, "private names imported from another module:\n" + "\n".join(offenders)


def test_the_contract_is_cited_from_the_repository():
    """The semantics live in docs/semantics.md; nothing points to a document the repository lacks."""
    offenders = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                 if re.search(r"\bSPEC(\.md|'s)", path.read_text())]
    assert not offenders, f"cite docs/semantics.md, not SPEC.md: {offenders}"
    assert (PACKAGE.parent / "docs" / "semantics.md").is_file()


def test_the_table_of_formats_names_its_codecs_down_the_layers():
    """core/formats.py names each reader, writer and completeness check as "module:function",
    imported on first use by io's doors (load, save, is_complete): each must be a public function
    of a module in io/ (the layer of its caller), so the lazy names keep the layers as imports do."""
    from poolcli.core import formats

    named = [role for record in formats.FORMATS.values() for role in (record.reader, record.writer, record.complete)
             if isinstance(role, str)]
    assert named, "the table names no codec"
    for role in named:
        module, _, function = role.partition(":")
        name = module.removeprefix("poolcli.")
        assert module.startswith("poolcli.") and _is_module(name) and layer(name) == LAYERS["io"], role
        assert not function.startswith("_") and callable(formats.resolve(role)), role


def test_the_option_names_and_the_table_of_formats_load_without_numpy():
    """`--help` and `--version` read core/choices and core/formats: neither may pull in NumPy or Pillow."""
    code = ("import sys, poolcli.core.choices, poolcli.core.formats;"
            " print(sorted(m for m in ('numpy', 'PIL', 'cv2') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


STORE_MODULES = {"stream.stores.npy", "stream.stores.zarr", "stream.stores.tiff", "stream.stores.labels",
                 "stream.stores.images"}
STORE_SUFFIXES = {".npy", ".zarr", ".zarr2", ".zarr3", ".ome.zarr", ".tif", ".tiff", ".btf", ".tf8"}


def test_a_store_is_one_module_of_stream_stores_and_one_registry_line():
    """stream/stores/: each store module is imported by the registry (stores/__init__.py) and, for
    Zarr's chunk-file copies, by the cluster path; nothing else reaches a store but through the table."""
    from poolcli.stream import stores

    modules = {name for name in graph() if name.startswith("stream.stores.")}
    assert modules == STORE_MODULES, "a new store module needs its line here and in stores/__init__.py"
    for name, imports in graph().items():
        reached = imports & STORE_MODULES
        allowed = name.startswith("stream.stores") or (name == "stream.cluster" and reached <= {"stream.stores.zarr"})
        assert not reached or allowed, f"poolcli.{name} imports {sorted(reached)}: ask stream.stores' table instead"
    assert {store.name for store in stores.STORES.values()} >= {"NPY", "ZARR", "TIFF"}
    for store in stores.STORES.values():
        assert store.suffixes and all(s == s.lower() and s.startswith(".") for s in store.suffixes), store.name
        assert callable(store.open_source) and callable(store.open_sink), store.name


def test_only_stream_stores_knows_a_store_by_its_suffix():
    """Outside stream/stores/, streaming and the big-data options compare no path with a store's
    suffix: they ask the table (messages may still name the suffixes)."""
    offenders = []
    paths = [p for p in (PACKAGE / "stream").glob("*.py")] + [PACKAGE / "cli" / "bigdata.py"]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            compared = (isinstance(node, ast.Compare) and node.comparators) or \
                (isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("endswith", "removesuffix"))
            if compared:
                literals = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                offenders += [f"{path.name}:{node.lineno}: {s!r}" for s in literals if s in STORE_SUFFIXES]
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple) and any(
                    isinstance(c, ast.Constant) and c.value in STORE_SUFFIXES for c in node.value.elts):
                offenders.append(f"{path.name}:{node.lineno}: a table of suffixes")
    assert not offenders, "store suffixes outside stream/stores/ (use the Store table):\n" + "\n".join(offenders)


def test_the_memory_budget_is_split_in_one_place():
    """stream/budget.py's Budget holds every share of `memory` (a fixed fraction): no other streaming
    module divides it by a constant (rows from a working factor are the bands' own arithmetic)."""
    offenders = []
    for path in [*(PACKAGE / "stream").rglob("*.py")]:
        if path.name == "budget.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.FloorDiv) and \
                    isinstance(node.left, ast.Name) and node.left.id == "memory" and \
                    isinstance(node.right, ast.Constant | ast.BinOp):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, "memory split outside stream/budget.py (add a Budget share):\n" + "\n".join(offenders)


APP_ORDER = ("settings", "streamed", "memory", "describe", "figures")  # each imports only those before it


def test_the_app_modules_import_down_their_order():
    edges = graph()
    assert {name for name in edges if name.startswith("app.")} == {f"app.{name}" for name in APP_ORDER}
    for index, name in enumerate(APP_ORDER):
        inside = {target.removeprefix("app.") for target in edges[f"app.{name}"] if target.startswith("app.")}
        assert inside <= set(APP_ORDER[:index]), f"poolcli.app.{name} imports {sorted(inside)}: keep {APP_ORDER}"


# docs/architecture.md, checked against the tree: every file, folder, module and name it cites exists.
DOC = PACKAGE.parent / "docs" / "architecture.md"
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def _cited(text: str) -> list[str]:
    """The backticked names of `text`, a call's arguments cut off (`Budget(memory)` is `Budget`)."""
    return [re.sub(r"\(.*$", "", token).strip() for token in re.findall(r"`([^`\n]+)`", text)]


def _defined_names(paths) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def _modules_named(name: str) -> list[str]:
    """Every poolcli module whose dotted name ends with `name` (`reading` is io.reading)."""
    return [module for module in MODULES if module == name or module.endswith("." + name)]


MODULES = [module_name(path) for path in PACKAGE.rglob("*.py")]


def _resolves(dotted: str) -> bool:
    """`core/geometry.plan_pool`, `io.load`, `stores.STORES`: a module, then an attribute of it."""
    import importlib
    parts = dotted.replace("/", ".").split(".")
    for cut in range(len(parts), 0, -1):
        for module in _modules_named(".".join(parts[:cut])):
            value = importlib.import_module(f"poolcli.{module}".rstrip("."))
            try:
                for attribute in parts[cut:]:
                    value = getattr(value, attribute)
            except AttributeError:
                continue
            return True
    return False


def _path_exists(token: str) -> bool:
    relative = token.split(":")[0].strip()
    roots = [PACKAGE.parent, PACKAGE, *(path for path in PACKAGE.rglob("*") if path.is_dir())]
    return any((root / relative).exists() for root in roots)


def test_every_file_the_architecture_page_names_exists():
    tokens = _cited(DOC.read_text())
    paths = [token for token in tokens if re.fullmatch(r"([\w.]+/)*[\w.]+\.py(: \w+)?|([\w.]+/)+", token)]
    assert paths and not [token for token in paths if not _path_exists(token)], \
        f"docs/architecture.md names missing files: {[t for t in paths if not _path_exists(t)]}"
    functions = [token.replace(".py: ", ".").replace("/__init__.", ".") for token in paths if ": " in token]
    missing = [token for token in functions if not _resolves(token)]
    assert functions and not missing, f"docs/architecture.md names functions its files lack: {missing}"


def test_every_module_and_name_the_architecture_page_cites_exists():
    tokens = _cited(DOC.read_text())
    dotted = [token for token in tokens if re.fullmatch(r"\w+(/\w+)*(\.\w+)+", token)
              and not token.endswith(".py") and _modules_named(
        token.replace("/", ".").split(".")[0])]
    defined = _defined_names(PACKAGE.rglob("*.py"))
    named = [token for token in tokens
             if IDENTIFIER.fullmatch(token) and ("_" in token.strip("_") or token[0].isupper())]
    missing = [token for token in dotted if not _resolves(token)]
    missing += [token for token in tokens if re.fullmatch(r"[A-Z]\w*\.\w+", token)  # PoolSpec.check
                if not {*token.split(".")} <= defined]
    missing += [token for token in named if token not in defined and not _modules_named(token)]
    assert dotted and named and not missing, f"docs/architecture.md cites names the code lacks: {missing}"


def test_every_module_the_table_of_layers_lists_exists():
    rows = [line.split("|")[2:4] for line in DOC.read_text().splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 11
    for packages, knows in rows:
        folders = [PACKAGE / token.rstrip("/") for token in _cited(packages) if token != "poolcli"]
        files = [path for folder in folders for path in
                 ([folder.with_suffix(".py")] if folder.with_suffix(".py").exists() else folder.rglob("*.py"))]
        modules = {path.stem for path in files} | {path.name for folder in folders for path in folder.rglob("*")}
        names = modules | _defined_names(files)
        missing = [token for token in _cited(knows) if IDENTIFIER.fullmatch(token) and token not in names]
        assert not missing, f"docs/architecture.md's row {packages.strip()} lists what it lacks: {missing}"
