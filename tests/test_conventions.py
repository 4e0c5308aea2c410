"""Conventions of the codebase, enforced by a test rather than by a reviewer (docs/architecture.md,
"Conventions", says why each exists).

- imports point down only: cli -> provenance -> publish -> compose -> records -> chain ->
  storage -> formats -> digest; ``registry.errors``, ``registry.config``, ``registry.limits`` and the package root sit
  below every layer;
- every environment variable is read in ``registry/config.py`` and nowhere else;
- every public module lists its API in ``__all__``, and every name listed exists;
- every exception class derives from ``registry.errors.ElementsError`` and from a built-in;
- nothing prints outside the command line (``registry/cli``) and ``scripts/``.

Each rule has an explicit list of exceptions, each with its reason, and a test that the list
does not outlive what it excuses.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import inspect
import pkgutil
from pathlib import Path

import registry
from registry.errors import ElementsError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "registry"

#: Bottom up; a module may import its own layer and the layers below it.
LAYERS = ["digest", "formats", "storage", "chain", "records", "compose", "publish", "provenance", "demo", "api", "cli", "__main__"]
#: Importable by every layer, and importing none above the base: module -> reason.
BASE = {
    "registry": "the package root: the version",
    "registry.errors": "the exception hierarchy every layer raises",
    "registry.config": "settings: the one place the environment is read",
    "registry.limits": (
        "the limits on outside input and the bounded JSON/YAML parsers: config.py reads config.json with "
        "them and every layer from storage (CAR, dag-pb, Kubo answers) up parses with them"
    ),
    "registry.files": "atomic_write and its kin: the one way every layer writes a file whole or not at all",
}

#: Upward imports that are deliberate injection points: (importer, imported) -> reason.
UPWARD_IMPORTS: dict[tuple[str, str], str] = {
    ("registry", "registry.api"): (
        "the facade: the package root re-exports publish/resolve/assemble/verify, imported on first "
        "use (a module __getattr__) so `import registry` loads no layer"
    ),
}

#: Modules that may read the environment: the one place configuration is read.
ENVIRONMENT_READERS = {"registry.config"}

#: Public modules without ``__all__``, with the reason.
WITHOUT_ALL: dict[str, str] = {}

#: Exception classes exempt from "ElementsError and a built-in", with the reason.
EXCEPTIONS_WITHOUT_BUILTIN = {
    "registry.errors.ElementsError": "the root: callers catch it as such (its built-in is Exception)",
    "registry.errors.VerificationFailedError": "a verdict (exit code 1), not bad input, a lookup or a service: no built-in fits",
}
PRIVATE_EXCEPTIONS = {
    "registry.provenance.verifier._Skip": "control flow inside Verifier._open_composition; never leaves it",
    "registry.chain.network._NodeRefusal": "a node's refusal on the way to a transaction; Chain turns it into "
                                            "TransactionFailedError (InsufficientFundsError) or ChainError before it leaves",
}

#: Where ``print(`` may be called (relative to the checkout).
PRINTING = ("registry/cli/", "scripts/")


def _modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@functools.cache
def _nodes(path: Path) -> tuple[ast.AST, ...]:
    """Every node of a file's syntax tree (``ast.walk`` order), parsed once per run: a dozen rules
    read each file, and parsing and walking all of them again took each rule 1-2 s. The rules only
    read the trees, and the files do not change while the tests run."""
    return tuple(ast.walk(ast.parse(path.read_text(), str(path.relative_to(ROOT)))))


def _rank(module: str) -> int | None:
    """The layer's position (``None`` for the base, which every layer may import)."""
    if module in BASE or module.startswith(("registry.errors.", "registry.config.")):
        return None
    return LAYERS.index(module.split(".")[1])


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of ``registry`` modules, function-level ones too."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in _nodes(path):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return [(line, target) for line, target in found if target == "registry" or target.startswith("registry.")]


def _upward_imports() -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for module, path in _modules().items():
        mine = _rank(module)
        for line, target in _imports(module, path):
            theirs = _rank(target)
            if theirs is None:
                continue
            if mine is None or theirs > mine:
                out.setdefault((module, target), []).append(f"{path.relative_to(ROOT)}:{line}")
    return out


def test_imports_point_down_the_layers_only():
    upward = {pair: where for pair, where in _upward_imports().items() if pair not in UPWARD_IMPORTS}
    assert upward == {}, "upward imports (move the code down, or list a deliberate injection point with its reason)"


def test_every_base_module_exists_and_imports_only_the_base():
    modules = _modules()
    assert set(BASE) <= set(modules)
    for module in BASE:
        assert all(_rank(target) is None or (module, target) in UPWARD_IMPORTS
                   for _, target in _imports(module, modules[module])), module


def test_every_listed_upward_import_still_exists():
    assert set(UPWARD_IMPORTS) <= set(_upward_imports())


def _environment_reads(path: Path) -> list[int]:
    """Lines that read the environment, except an environment handed to a subprocess (``env=``),
    which passes configuration on instead of reading it."""
    handed_on: set[int] = set()
    for node in _nodes(path):
        if isinstance(node, ast.keyword) and node.arg == "env":
            handed_on |= {id(inner) for inner in ast.walk(node.value)}
    lines = []
    for node in _nodes(path):
        if id(node) in handed_on:
            continue
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv", "getenvb"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if {alias.name for alias in node.names} & {"environ", "environb", "getenv", "getenvb"}:
                lines.append(node.lineno)
    return lines


def test_environment_variables_are_read_in_registry_config_only():
    readers = {module: lines for module, path in _modules().items() if (lines := _environment_reads(path))}
    assert set(readers) - ENVIRONMENT_READERS == set(), f"read the environment outside registry.config: {readers}"


def test_registry_config_is_where_the_environment_is_read():
    assert _environment_reads(PACKAGE / "config.py")


def _imported_modules() -> dict[str, object]:
    out = {"registry": registry}
    for info in pkgutil.walk_packages(registry.__path__, "registry."):
        if info.name.endswith("__main__"):  # running it runs the command line
            continue
        out[info.name] = importlib.import_module(info.name)
    return out


def test_every_public_module_lists_its_api_in_all():
    missing, wrong = [], []
    for name, module in _imported_modules().items():
        if any(part.startswith("_") for part in name.split(".")):
            continue
        exported = getattr(module, "__all__", None)
        if exported is None:
            if name not in WITHOUT_ALL:
                missing.append(name)
            continue
        if len(set(exported)) != len(exported) or not all(isinstance(n, str) for n in exported):
            wrong.append(f"{name}.__all__ repeats a name or holds a non-string")
        wrong += [f"{name}.{n}" for n in exported if not hasattr(module, n)]
    assert missing == [], "public modules without __all__"
    assert wrong == [], "names in __all__ that do not exist"


def test_every_module_excused_from_all_still_lacks_it():
    modules = _imported_modules()
    assert all(not hasattr(modules[name], "__all__") for name in WITHOUT_ALL)


_BUILTIN_ERRORS = tuple(
    c for c in vars(builtins).values()
    if inspect.isclass(c) and issubclass(c, BaseException) and c not in (BaseException, Exception)
)


def _exception_classes() -> dict[str, type]:
    out = {}
    for module in _imported_modules().values():
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                out[f"{module.__name__}.{name}"] = value
    return out


def test_every_exception_derives_from_elements_error_and_a_builtin():
    classes = _exception_classes()
    private = sorted(name for name in classes if name.rsplit(".", 1)[1].startswith("_") and name not in PRIVATE_EXCEPTIONS)
    public = {name: cls for name, cls in classes.items() if not name.rsplit(".", 1)[1].startswith("_")}
    outside = sorted(name for name, cls in public.items() if not issubclass(cls, ElementsError))
    no_builtin = sorted(
        name for name, cls in public.items()
        if not issubclass(cls, _BUILTIN_ERRORS) and name not in EXCEPTIONS_WITHOUT_BUILTIN
    )
    assert private == [], "private exception classes need a reason in PRIVATE_EXCEPTIONS"
    assert outside == [], "exception classes that do not derive from registry.errors.ElementsError"
    assert no_builtin == [], "exception classes that derive from no built-in (ValueError, LookupError ...)"


def test_every_excused_exception_class_still_exists():
    classes = _exception_classes()
    assert set(EXCEPTIONS_WITHOUT_BUILTIN) | set(PRIVATE_EXCEPTIONS) <= set(classes)


def test_nothing_prints_outside_the_command_line_and_scripts():
    printing = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "tests").glob("*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(PRINTING):
            continue
        for node in _nodes(path):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.append(f"{relative}:{node.lineno}")
    assert printing == [], "print( outside registry/cli and scripts (return data; the CLI prints it)"


# --------------------------------------------------------------------------------------------
# Two more conventions, each with its listed exceptions:
# - no registry modules import each other in a cycle, counting function-level imports (a lazy import
#   hides a cycle, it does not remove it);
# - no module takes another module's private name (``from x import _y``).

#: Import cycles between registry modules that are deliberate: the modules of the cycle -> reason.
IMPORT_CYCLES: dict[frozenset[str], str] = {
    frozenset({"registry.storage.cid", "registry.storage.errors", "registry.storage.multihash"}): (
        "storage.errors imports CID under TYPE_CHECKING only (an annotation of BlockIntegrityError): "
        "nothing is imported back at run time"
    ),
}

#: ``from x import _y`` that is allowed: (importer, "x._y") -> reason.
PRIVATE_IMPORTS: dict[tuple[str, str], str] = {
    ("registry.formats.recipe.values", "re._constants"): (
        "the standard library's regex parser is the only way to see a nested repetition in a pattern "
        "before it runs on hostile tensor names (sre_constants/sre_parse before Python 3.11)"
    ),
    ("registry.formats.recipe.values", "re._parser"): "as re._constants: the parsed pattern is walked for nested repetition",
}


def _import_graph() -> dict[str, dict[str, list[str]]]:
    """module -> imported registry module -> where (``path:line``), for every import, function-level
    ones too; ``from package import module`` points at the module, not the package."""
    modules = _modules()
    graph: dict[str, dict[str, list[str]]] = {name: {} for name in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        where = str(path.relative_to(ROOT))
        for node in _nodes(path):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target for alias in node.names]
            else:
                continue
            for target in targets:
                if target in modules and target != module:
                    graph[module].setdefault(target, []).append(f"{where}:{node.lineno}")
    return graph


def _import_cycles() -> dict[frozenset[str], str]:
    """Each group of modules that import each other (a strongly connected component of the import
    graph, Tarjan's algorithm) -> one cycle through it, every step with the line of its import."""
    graph = _import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(module: str) -> None:  # the package has a few hundred modules: recursion is fine
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            connect(module)
    cycles = {}
    for group in groups:
        members = set(group)
        start = min(group)
        # The shortest way back to the start inside the group: breadth first.
        previous: dict[str, str] = {}
        frontier = [start]
        while start not in previous and frontier:
            following = []
            for module in frontier:
                for target in sorted(graph[module]):
                    if target in members and target not in previous:
                        previous[target] = module
                        following.append(target)
            frontier = following
        path = [start]
        while len(path) == 1 or path[-1] != start:
            path.append(previous[path[-1]])
        path.reverse()
        steps = [f"{a} -> {b} ({graph[a][b][0]})" for a, b in zip(path, path[1:])]
        cycles[frozenset(group)] = "; ".join(steps)
    return cycles


def test_no_registry_modules_import_each_other_in_a_cycle():
    cycles = {modules: path for modules, path in _import_cycles().items() if modules not in IMPORT_CYCLES}
    assert cycles == {}, (
        "import cycles (a lazy import hides a cycle, it does not remove it: move the shared part into "
        "a module of its own, or pass the callable in)"
    )


def test_every_listed_import_cycle_still_exists():
    assert set(IMPORT_CYCLES) <= set(_import_cycles())


def test_the_cycle_check_sees_a_cycle_made_of_function_level_imports(tmp_path, monkeypatch):
    import sys

    package = tmp_path / "registry"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .b import g\n")
    (package / "b.py").write_text("from . import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert _import_cycles() == {frozenset({"registry.a", "registry.b"}):
                                "registry.a -> registry.b (registry/a.py:2); registry.b -> registry.a (registry/b.py:1)"}


def _private_imports() -> dict[tuple[str, str], list[str]]:
    """(importer, "module._name") -> where, for every ``from module import _name`` (function-level
    ones too): a name another module keeps private, taken anyway. Dunder names are not private."""
    out: dict[tuple[str, str], list[str]] = {}
    for module, path in _modules().items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        where = str(path.relative_to(ROOT))
        for node in _nodes(path):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    out.setdefault((module, f"{target}.{alias.name}"), []).append(f"{where}:{node.lineno}")
    return out


def test_no_module_imports_another_modules_private_names():
    taken = {pair: where for pair, where in _private_imports().items() if pair not in PRIVATE_IMPORTS}
    assert taken == {}, "private names imported from another module (make the name public, or move the code to its user)"


def test_every_listed_private_import_still_exists():
    assert set(PRIVATE_IMPORTS) <= set(_private_imports())


#: Renames outside ``registry/files.py``, with the reason: (file, line's stripped text) -> reason.
RENAMES_OUTSIDE_FILES = {
    ("registry/storage/scratch.py", "os.rename(hidden, path)"): (
        "a whole scratch directory appears under its owner's name only once its lock is held: a "
        "directory move that must fail, not replace, if the name is taken"
    ),
    ("registry/storage/scratch.py", "os.rename(path, dead)"): (
        "a dead scratch area is moved aside before it is removed, so a half-removed area is never "
        "taken for a live one: a directory move, nothing is written"
    ),
    ("registry/storage/gc.py", "os.rename(path, aside)"): (
        "as scratch.py's dead areas: a derived cache directory is moved aside before it is removed, "
        "so a crash mid-removal never leaves a half-deleted cache that looks whole"
    ),
    ("scripts/compile_contracts.py", "os.replace(tmp, path)"): (
        "a standalone developer tool that imports nothing of the package (it runs before the "
        "artifact the package needs exists)"
    ),
}


def _renames(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each call of ``os.replace`` / ``os.rename`` and of any ``.replace(a, b)`` /
    ``.rename(x)`` on something that is not a string (``Path.replace``, ``Path.rename``)."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in _nodes(path):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name, owner = node.func.attr, node.func.value
        if name not in ("replace", "rename"):
            continue
        on_os = isinstance(owner, ast.Name) and owner.id == "os"
        # str.replace takes two strings (often literals); Path.replace/rename take one target
        path_method = not on_os and len(node.args) == 1 and not node.keywords
        if on_os or path_method:
            found.append((node.lineno, lines[node.lineno - 1].strip()))
    return found


def test_files_are_moved_into_place_only_by_registry_files():
    found = {}
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "scripts").glob("*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative == "registry/files.py":
            continue
        for line, text in _renames(path):
            if (relative, text) not in RENAMES_OUTSIDE_FILES:
                found[f"{relative}:{line}"] = text
    assert found == {}, "write files with registry.files (atomic_write, atomic_file, install), or list the exception with its reason"


def test_every_listed_rename_still_exists():
    listed = {(relative, text) for relative, text in RENAMES_OUTSIDE_FILES}
    present = {(relative, text) for relative in {r for r, _ in listed} for _, text in _renames(ROOT / relative)}
    assert listed <= present


# --------------------------------------------------------------------------------------------
# Ids in memory are typed (registry.digest.ContentId / RecordId: bytes that print as 0x + 64 hex);
# hex is written where an id leaves memory (JSON, ABI words, messages), through to_hex(id) or
# str(id). Two rules keep it:
# - no id is spelled by hand as ``"0x" + id.hex()`` / ``f"0x{id.hex()}"`` (the third form ids took,
#   beside bytes and Bytes32, and the one that let "0x…" strings be compared with each other);
# - no field of a class named as an id (``record_id``, ``content_id``, ``parents`` ...) is declared
#   ``str``, ``bytes`` or ``Bytes32``: it is a ContentId or a RecordId, so mypy refuses one for the
#   other, except in the listed classes, each with its reason.

#: The names of attributes that hold ids (or collections of ids).
ID_FIELDS = {"record_id", "content_id", "parents", "parent_ids", "record_ids", "content_ids", "record"}
#: What an id field may not be declared as.
UNTYPED_ID = {"str", "bytes", "Bytes32"}

#: Classes whose id fields are text, with the reason: "module.Class" -> reason.
TEXT_ID_CLASSES = {
    "registry.formats.recipe.model.InputRef": (
        "a recipe is a JSON document: its model holds the validated, lower-case text it canonically "
        "encodes to (the recipe's content id is the hash of that text); readers parse it with "
        "parse_content_id / parse_record_id where they compare"
    ),
    "registry.formats.recipe.model.OutputFile": "as InputRef: the recipe's output table, as written",
    "registry.formats.recipe.model.OutputSpec": "as InputRef: the recipe's output, as written",
    "registry.formats.split.SplitElement": "the element table of the recipe the split writes, as written there",
    "registry.formats.split.SplitResult": "the split's recipe output id, as the recipe.json it writes states it",
    "registry.formats.split.SplitPlan": "as SplitResult, for a split planned but not written",
    "registry.compose.writer.AssemblyResult": (
        "the assembled model's id as the recipe states it (its output is checked against that text); "
        "compose/writer.py is kept out of the typed-id change while its writer is reworked"
    ),
    "registry.storage.roots.AssemblyNote": "a note read back from a JSON file under the home: its text, listed as read",
    "registry.provenance.results.Source": (
        "a row of the verify report: its fields are the report's JSON, and callers (and tests) compare "
        "them with the 0x text `elements verify --json` prints; attribution parses them where it compares"
    ),
    "registry.provenance.results.FileResult": "as Source: a row of the verify report",
    "registry.provenance.results.AncestorNode": "as Source: a node of the verify report's ancestry, keyed by its text",
}


def _hex_call_receiver(node: ast.AST) -> ast.AST | None:
    """``x`` when ``node`` is ``x.hex()`` (or ``x.hex()[...]``), else None."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "hex"
            and not node.args and not node.keywords):
        return node.func.value
    return None


def _names_an_id(node: ast.AST) -> bool:
    """Whether an expression reads an id by its name: ``claim.record_id``, ``rid``, ``base_record``,
    ``record.content_id``, ``parent`` (what a call computes, or a constant, is not read by name)."""
    while isinstance(node, ast.Subscript):
        node = node.value
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return name.endswith(("record_id", "content_id")) or name in {"rid", "parent", "base_record"}


def _ids_spelled_by_hand(source: str, where: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, where)):
        pairs: list[tuple[ast.AST, ast.AST]] = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            pairs.append((node.left, node.right))
        elif isinstance(node, ast.JoinedStr):
            pairs += [(a, b.value) for a, b in zip(node.values, node.values[1:]) if isinstance(b, ast.FormattedValue)]
        for left, right in pairs:
            receiver = _hex_call_receiver(right)
            if (isinstance(left, ast.Constant) and isinstance(left.value, str) and left.value.lower().endswith("0x")
                    and receiver is not None and _names_an_id(receiver)):
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_no_id_is_spelled_by_hand_as_0x_plus_its_hex():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += _ids_spelled_by_hand(path.read_text(), path.relative_to(ROOT).as_posix())
    assert found == [], "ids spelled as '0x' + id.hex(): write to_hex(id), or str(id) of a ContentId / RecordId"


def test_the_hand_spelled_id_check_sees_each_form_and_spares_other_bytes():
    source = ('a = "0x" + claim.record_id.hex()\n'
              'b = f"record 0x{rid.hex()} is gone"\n'
              'c = "0x" + record_id.hex()[:12]\n'
              'd = "0x" + bytes(data).hex()\n'
              'e = f"tx 0x{tx_hash.hex()}"\n')
    assert [line.split(":")[1] for line in _ids_spelled_by_hand(source, "x.py")] == ["1", "2", "3"]


def _untyped_id_fields() -> dict[str, list[str]]:
    """"module.Class" -> its id fields declared as text or untyped bytes (``name: annotation``)."""
    out: dict[str, list[str]] = {}
    for module, path in _modules().items():
        for cls in _nodes(path):
            if not isinstance(cls, ast.ClassDef):
                continue
            for node in cls.body:
                if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                    continue
                name = node.target.id
                if name not in ID_FIELDS and not name.endswith(("_record_id", "_content_id")):
                    continue
                used = {n.id for n in ast.walk(node.annotation) if isinstance(n, ast.Name)}
                used |= {n.value for n in ast.walk(node.annotation) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
                if used & UNTYPED_ID:
                    out.setdefault(f"{module}.{cls.name}", []).append(f"{name}: {ast.unparse(node.annotation)}")
    return out


def test_id_fields_are_content_ids_or_record_ids():
    untyped = {cls: fields for cls, fields in _untyped_id_fields().items() if cls not in TEXT_ID_CLASSES}
    assert untyped == {}, "id fields declared str / bytes / Bytes32: declare them ContentId or RecordId (registry.digest)"


def test_every_class_excused_from_typed_ids_still_has_text_ids():
    assert set(TEXT_ID_CLASSES) <= set(_untyped_id_fields())
