"""Invalid-function filtering and dependency supplementation (SCoder Appendix A).

A function is dropped, for the first reason that applies:

- ``syntax_error``: it does not compile on its own (``ast`` + ``symtable``);
- ``no_function``: the code defines no function;
- ``too_short`` / ``too_long``: fewer than ``min_lines`` / more than ``max_lines`` lines;
- ``no_return_value``: no ``return <value>`` in its own body (a bare ``return`` or
  ``return None`` does not count, nor a return of a nested function);
- ``method``: a method that needs its class (anything but a ``@staticmethod`` that
  calls no ``super()``), unless ``keep_methods``;
- ``banned_import``: it imports a banned module itself (``os``, ``sys``, ...);
- ``banned_dependency``: it needs a banned module once its dependencies are supplemented;
- ``unresolved_name``: a name it reads that nothing below resolves;
- ``define_error``: with ``define_check``, its standalone code fails to define in the
  sandbox (:mod:`scoder.pool.define`).

Supplementation: each name the function reads without binding it (not a parameter,
local, builtin or the function itself) is resolved from its module's context, recorded
by extract (:mod:`scoder.pool.context`): an import of the module (``imports_added``), a
module constant, copied with what it reads in turn (``constants_added``), another
module-level name, imported from the function's own module (``from pkg.mod import
helper``), or, when it is used as ``X.attr`` and ``X`` is a standard-library module,
``import X``. Under ``from __future__ import annotations`` (kept at the top) names read
only in annotations are not needed. A static method loses its ``@staticmethod``, and the
function's own relative imports are made absolute in its package. The kept code is
``__future__`` imports, imports, constants, then the function.

Every dropped function is listed with its reason (and a detail: the unresolved names,
the banned module, the define error) in the returned skip log.

    from scoder.pool.filter import filter_functions
    kept, stats, skipped = filter_functions(records, banned_imports=["os", "sys", "subprocess"])
"""
from __future__ import annotations

import ast
import builtins
import multiprocessing
import symtable
import sys
import warnings
from dataclasses import dataclass, field
from functools import partial

from .context import absolute_imports, import_bindings, package_of
from .define import define_snippets, summarize

REASONS = ("syntax_error", "no_function", "too_short", "too_long", "no_return_value", "method",
           "banned_import", "banned_dependency", "unresolved_name", "define_error")
# Fields of extract's module context: used here, not carried on (the code now holds them).
CONTEXT_FIELDS = ("future_imports", "module_imports", "module_constants", "module_globals", "import_root")
BUILTIN_NAMES = frozenset(dir(builtins)) | {"__file__", "__class__"}
STDLIB_MODULES = frozenset(sys.stdlib_module_names)
# Records per task when checking in worker processes.
CHUNK_RECORDS = 2048


def _is_banned(module: str, banned: list[str]) -> bool:
    return any(module == b or module.startswith(b + ".") for b in banned)


def _imported_modules(node: ast.AST) -> list[str]:
    """Absolute module names imported anywhere under node."""
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            out += [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            out.append(n.module)
    return out


def _own_nodes(func: ast.AST):
    """Nodes of a function's own body, not of functions, lambdas or classes inside it."""
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


def returns_value(func: ast.AST) -> bool:
    """Whether the function itself has a ``return <value>`` other than ``return None``."""
    return any(
        isinstance(n, ast.Return) and n.value is not None
        and not (isinstance(n.value, ast.Constant) and n.value.value is None)
        for n in _own_nodes(func)
    )


def free_names(code: str) -> set[str]:
    """Names the code reads from the module/builtin scope without binding them there.

    Uses ``symtable`` so scoping (parameters, comprehensions, nested functions, global
    statements, annotations) is Python's own; raises SyntaxError like the compiler."""
    top = symtable.symtable(code, "<snippet>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    used: set[str] = set()
    stack = [top]
    while stack:
        table = stack.pop()
        stack.extend(table.get_children())
        for s in table.get_symbols():
            if not s.is_referenced():
                continue
            if table is top or s.is_global():
                used.add(s.get_name())
    return used - bound - BUILTIN_NAMES


def _needed_names(code: str, future_annotations: bool) -> tuple[set[str], set[str]]:
    """(required, optional) free names: under ``from __future__ import annotations`` names
    read only in annotations are never evaluated, so they are optional."""
    names = free_names(code)
    if not future_annotations:
        return names, set()
    tree = _StripAnnotations().visit(ast.parse(code))
    required = free_names(ast.unparse(tree))
    return required, names - required


class _StripAnnotations(ast.NodeTransformer):
    def visit_arg(self, node):
        node.annotation = None
        return node

    def visit_FunctionDef(self, node):
        node.returns = None
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node):
        node.annotation = ast.Constant("")  # keeps the target a binding
        self.generic_visit(node)
        return node


def _import_map(module_imports: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Bound name -> (import statement, modules it imports) for the absolute import
    statements of ``module_imports`` (a ``try:`` block of imports binds all its names)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for statement in module_imports:
        try:
            (node,) = ast.parse(statement).body
        except (SyntaxError, ValueError):
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            continue  # relative imports cannot stand alone
        modules = _imported_modules(node)
        for name in import_bindings(node):
            out.setdefault(name, (statement, modules))
    return out


@dataclass
class Supplement:
    """What makes a function stand alone: import lines and copied constants (in module
    order), the modules they import, and the names nothing resolves."""
    imports: list[str] = field(default_factory=list)
    constants: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


def supplement(code: str, tree: ast.Module, record: dict) -> Supplement:
    """Resolve each free name of ``code`` from its module's context (``record``'s fields
    from extract): an import of the module, a copied constant, an import of a module-level
    name from the function's own module, or a standard-library module used as ``X.attr``."""
    imports = _import_map(record.get("module_imports", []))
    constants = record.get("module_constants", {})
    own = set(record.get("module_globals", [])) if record.get("module") else set()
    attribute_bases = {n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                       and isinstance(n.value, ast.Name)}
    future = any(line.endswith(" annotations") for line in record.get("future_imports", []))
    required, optional = _needed_names(code, future)
    out = Supplement()
    copied: set[str] = set()

    def add_import(line: str, modules: list[str]) -> None:
        if line not in out.imports:
            out.imports.append(line)
            out.modules += modules

    def resolve(name: str, seen: tuple = ()) -> bool:
        if name in imports:
            add_import(*imports[name])
        elif name in constants and name not in seen:
            if name not in copied:
                for dep in sorted(free_names(constants[name])):
                    if not resolve(dep, (*seen, name)):
                        return False
                copied.add(name)
        elif name in own:
            add_import(f"from {record['module']} import {name}", [record["module"]])
        elif name in attribute_bases and name in STDLIB_MODULES:
            add_import(f"import {name}", [name])
        else:
            return False
        return True

    for name in sorted(required):
        if not resolve(name):
            out.unresolved.append(name)
    for name in sorted(optional):  # an annotation reads better with its import, when there is one
        if name in imports:
            add_import(*imports[name])
    out.constants = [src for name, src in constants.items() if name in copied]
    return out


def _method_verdict(func: ast.AST, record: dict) -> str | None:
    """For a function cut out of a class: "method" when it needs its class (not a
    ``@staticmethod``, or it calls ``super()`` / reads ``__class__``), else "static"."""
    if "." not in record.get("qualname", ""):
        return None
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in func.decorator_list)
    uses_class = any(isinstance(n, ast.Name) and n.id in ("super", "__class__") for n in ast.walk(func))
    return "static" if static and not uses_class else "method"


def _strip_staticmethod(code: str, func: ast.AST) -> str:
    """The code without its ``@staticmethod`` line: outside its class it means nothing."""
    lines = code.splitlines(keepends=True)
    drop = {i for d in func.decorator_list if isinstance(d, ast.Name) and d.id == "staticmethod"
            for i in range(d.lineno - 1, d.end_lineno)}
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def _check(record: dict, banned: list[str], min_lines: int, max_lines: int,
           keep_methods: bool) -> tuple[str | None, dict]:
    """(drop reason or None, fields to add, or the drop's detail under "detail") for one record."""
    code = record["code"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(code)
            free_names(code)  # symtable: what compiles is checked here (duplicate parameters...)
    except (SyntaxError, ValueError, RecursionError) as e:
        return "syntax_error", {"detail": str(e)}
    func = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if func is None:
        return "no_function", {}
    n_lines = len(code.strip().splitlines())
    if n_lines < min_lines:
        return "too_short", {"detail": f"{n_lines} lines"}
    if n_lines > max_lines:
        return "too_long", {"detail": f"{n_lines} lines"}
    if not returns_value(func):
        return "no_return_value", {}
    verdict = _method_verdict(func, record)
    if verdict == "method" and not keep_methods:
        return "method", {}
    if verdict == "static":
        code = _strip_staticmethod(code, func)
        tree = ast.parse(code)
    package = package_of(record.get("module"), record.get("path", "").endswith("__init__.py"))
    absolute = absolute_imports(code, tree, package)
    if absolute is None:
        return "unresolved_name", {"detail": "a relative import outside a known package"}
    if absolute != code:
        code, tree = absolute, ast.parse(absolute)
    banned_here = [m for m in _imported_modules(tree) if _is_banned(m, banned)]
    if banned_here:
        return "banned_import", {"detail": banned_here[0]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sup = supplement(code, tree, record)
    except (SyntaxError, ValueError, RecursionError) as e:  # a copied constant that does not compile
        return "syntax_error", {"detail": str(e)}
    banned_deps = [m for m in sup.modules if _is_banned(m, banned)]
    if banned_deps:
        return "banned_dependency", {"detail": banned_deps[0]}
    if sup.unresolved:
        return "unresolved_name", {"detail": ", ".join(sup.unresolved)}
    header = [*record.get("future_imports", []), *sorted(sup.imports)]
    parts = ["\n".join(header), "\n".join(sup.constants), code]
    standalone = "\n\n\n".join(p.rstrip("\n") for p in parts if p) + "\n"
    return None, {"code": standalone, "imports_added": sorted(sup.imports), "constants_added": sup.constants}


def _filter_chunk(records: list[dict], banned: list[str], min_lines: int, max_lines: int,
                  keep_methods: bool) -> tuple[list[dict], list[dict]]:
    """(kept records, skip log entries) of one chunk."""
    kept, skipped = [], []
    for record in records:
        reason, fields = _check(record, banned, min_lines, max_lines, keep_methods)
        if reason is None:
            out = {k: v for k, v in record.items() if k not in CONTEXT_FIELDS}
            kept.append({**out, **fields})
        else:
            skipped.append({"id": record["id"], "reason": reason, **fields})
    return kept, skipped


def filter_functions(
    records: list[dict], *, banned_imports: list[str], min_lines: int = 3, max_lines: int = 60,
    keep_methods: bool = False, define_check: bool = True, workers: int = 1, progress: bool = False,
) -> tuple[list[dict], dict, list[dict]]:
    """(kept records made standalone, stats, skip log): stats has the count per drop reason
    (``dropped``), ``kept`` and, with ``define_check``, the sandboxed define check's
    summary (``define_check``: its pass rate over the statically kept functions, whose
    failures are then dropped as ``define_error``). ``workers`` processes (and sandboxes)
    check the records; the result does not depend on them."""
    check = partial(_filter_chunk, banned=banned_imports, min_lines=min_lines, max_lines=max_lines,
                    keep_methods=keep_methods)
    chunks = [records[i:i + CHUNK_RECORDS] for i in range(0, len(records), CHUNK_RECORDS)]
    if workers > 1 and len(chunks) > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(check, chunks)
    else:
        parts = list(map(check, chunks))
    kept = [r for part, _ in parts for r in part]
    skipped = [s for _, part in parts for s in part]
    stats: dict = {}
    if define_check:
        roots = {r["id"]: r.get("import_root") for r in records}
        results = define_snippets([{"code": r["code"], "name": r["name"], "import_root": roots[r["id"]]}
                                   for r in kept], workers=workers, progress=progress)
        stats["define_check"] = summarize(results)
        passed = []
        for record, result in zip(kept, results):
            if result["status"] == "error":  # a missing module is this machine's, not the snippet's
                skipped.append({"id": record["id"], "reason": "define_error", "detail": result["detail"]})
            else:
                passed.append({**record, "define": result["status"]})
        kept = passed
    dropped = dict.fromkeys(REASONS, 0)
    for entry in skipped:
        dropped[entry["reason"]] += 1
    order = {r["id"]: i for i, r in enumerate(records)}
    skipped.sort(key=lambda e: order[e["id"]])
    return kept, {"dropped": dropped, "kept": len(kept), **stats}, skipped
