"""What a function needs from the file it was cut from (SCoder Appendix A: "we supplement the
remaining functions with necessary dependency packages").

extract reads every file once with :func:`module_context` and then, per function,
:func:`function_context` records what the filter may add to make it stand alone:

- ``future_imports``: the file's ``from __future__ import ...`` lines (they change how
  the code compiles, e.g. annotations are not evaluated);
- ``module_imports``: the file's module-level imports, one bound name per statement.
  Relative imports are resolved inside the file's package (``from .utils import x`` in
  ``requests/models.py`` becomes ``from requests.utils import x``); imports under ``if
  TYPE_CHECKING:`` are left out (they exist for type checkers only and may name modules
  that are not installed); a ``try:``/``except ImportError:`` block of imports (and
  fallback assignments) is kept whole, so its fallback stays with it;
- ``module_constants``: module-level constants the function reads (directly or through
  another constant), to be copied: a name bound once at module level by ``NAME = value``
  where the value calls nothing and spans at most ``MAX_CONSTANT_LINES`` lines;
- ``module_globals``: other module-level names it reads (functions, classes, computed
  values) that the module surely binds (an ``if`` binds what both of its branches bind),
  which the filter imports from the function's own module when that module has an
  importable name (``module``; tree and stdlib sources, not Stack rows). After a star
  import any name it reads may be one (the define check tells);
- ``module`` and ``import_root``: the file's dotted module name, found like pytest does
  (up through the directories that hold an ``__init__.py``), and the directory it is
  imported from.

    ctx = module_context(ast.parse(text), lines, module="requests.utils")
    fields = function_context(ctx, func_node)
"""
from __future__ import annotations

import ast
import builtins
import io
import keyword
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

SITE_DIRS = ("site-packages", "dist-packages")
# A longer module constant (a big table) is imported from its module, not copied.
MAX_CONSTANT_LINES = 10
BUILTIN_NAMES = frozenset(dir(builtins))
# Exceptions whose handler marks a `try:` of imports as an import fallback.
_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
# Nodes that run code when a constant is defined: such a value is not copied.
_RUNS_CODE = (ast.Call, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
              ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)


@dataclass
class ModuleContext:
    """The module-level facts of one file that its functions may depend on."""
    module: str | None
    future: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    constants: dict[str, tuple[str, frozenset]] = field(default_factory=dict)  # name -> (source, names read)
    globals: set[str] = field(default_factory=set)
    imported: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)  # `del`eted at module level
    star: bool = False  # a `from x import *` binds names this analysis cannot see


@lru_cache(maxsize=4096)
def _is_package(directory: str) -> bool:
    return (Path(directory) / "__init__.py").is_file()


def module_name(file: Path) -> tuple[str | None, str | None]:
    """(dotted module name, directory to import it from) of a ``.py`` file: up through the
    parent directories that are packages (hold ``__init__.py``), and on through the
    namespace packages of an installation (``site-packages/google/...``); None when a part
    is not an identifier (``my-script.py``)."""
    file = Path(os.path.realpath(file))
    parts = [] if file.stem == "__init__" else [file.stem]
    directory = file.parent
    while _is_package(str(directory)):
        parts.insert(0, directory.name)
        directory = directory.parent
    if directory.name not in SITE_DIRS:
        site = next((a for a in directory.parents if a.name in SITE_DIRS), None)
        if site is not None:
            parts = [*directory.relative_to(site).parts, *parts]
            directory = site
    if not parts or not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        return None, None
    return ".".join(parts), str(directory)


def package_of(module: str | None, is_init: bool) -> str | None:
    if module is None:
        return None
    return module if is_init else module.rpartition(".")[0]


def resolve_relative(node: ast.ImportFrom, package: str | None) -> ast.ImportFrom | None:
    """The absolute form of a (possibly relative) ``from`` import; None when it cannot be
    resolved (no known package, or it climbs above the top package)."""
    if node.level == 0:
        return node
    if not package:
        return None
    base = package.split(".")
    if node.level - 1 >= len(base):
        return None
    prefix = ".".join(base[:len(base) - (node.level - 1)])
    return ast.ImportFrom(module=f"{prefix}.{node.module}" if node.module else prefix, names=node.names, level=0)


def absolute_imports(code: str, tree: ast.Module, package: str | None) -> str | None:
    """``code`` with its own relative imports (``from .x import y`` inside the function)
    made absolute inside ``package``; None when one cannot be."""
    relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
    if not relative:
        return code
    lines = io.StringIO(code, newline="").readlines()  # ast's own line numbering
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(lineno: int, col: int) -> int:  # ast columns count UTF-8 bytes
        return starts[lineno - 1] + len(lines[lineno - 1].encode("utf-8")[:col].decode("utf-8", "replace"))

    edits = []
    for node in relative:
        resolved = resolve_relative(node, package)
        if resolved is None:
            return None
        edits.append((offset(node.lineno, node.col_offset), offset(node.end_lineno, node.end_col_offset),
                      ast.unparse(resolved)))
    for start, end, text in sorted(edits, reverse=True):
        code = code[:start] + text + code[end:]
    return code


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` / ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _bound_names(node: ast.AST) -> list[str]:
    """Names a module-level statement binds (imports, assignment targets, defs)."""
    if isinstance(node, ast.Import):
        return [a.asname or a.name.split(".")[0] for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [a.asname or a.name for a in node.names if a.name != "*"]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    targets = {ast.Assign: lambda n: n.targets, ast.AnnAssign: lambda n: [n.target],
               ast.AugAssign: lambda n: [n.target], ast.For: lambda n: [n.target],
               ast.AsyncFor: lambda n: [n.target],
               ast.With: lambda n: [i.optional_vars for i in n.items if i.optional_vars],
               ast.AsyncWith: lambda n: [i.optional_vars for i in n.items if i.optional_vars]}
    get = targets.get(type(node))
    if get is None:
        return []
    # only stored names: `x[0] = ...` or `x.y = ...` binds nothing
    return [n.id for t in get(node) for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]


def import_bindings(statement: ast.stmt) -> list[str]:
    """Names an import statement of ``module_imports`` binds (a kept ``try:`` block: all of its own)."""
    if isinstance(statement, ast.Try):
        inner = [*statement.body, *(s for h in statement.handlers for s in h.body), *statement.orelse]
        return [n for s in inner for n in _bound_names(s)]
    return _bound_names(statement)


def _import_fallback(node: ast.Try) -> bool:
    """A ``try:`` whose every statement is an import, a plain assignment or ``pass``, with
    handlers for import errors only: kept whole, so its fallback stays with it."""
    for handler in node.handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if handler.type is not None and not all(isinstance(k, ast.Name) and k.id in _IMPORT_ERRORS for k in kinds):
            return False
    statements = [*node.body, *(s for h in node.handlers for s in h.body), *node.orelse, *node.finalbody]
    simple = (ast.Import, ast.ImportFrom, ast.Pass, ast.Assign)
    return bool(node.handlers) and all(
        isinstance(s, simple) and not (isinstance(s, ast.ImportFrom) and any(a.name == "*" for a in s.names))
        and not (isinstance(s, ast.Assign) and any(isinstance(n, _RUNS_CODE) for n in ast.walk(s.value)))
        for s in statements)


class _Resolver(ast.NodeTransformer):
    """Relative imports made absolute inside a kept ``try:`` block; unresolvable ones fail it."""

    def __init__(self, package: str | None):
        self.package, self.failed = package, False

    def visit_ImportFrom(self, node: ast.ImportFrom):
        resolved = resolve_relative(node, self.package)
        self.failed |= resolved is None
        return resolved or node


def _segment(lines: list[str], node: ast.stmt) -> str:
    """A top-level statement's source, or its unparsed form when it shares a line."""
    text = "".join(lines[node.lineno - 1:node.end_lineno]).rstrip()
    try:
        alone = len(ast.parse(text).body) == 1
    except SyntaxError:
        alone = False
    return text if alone and node.col_offset == 0 else ast.unparse(node)


def module_context(tree: ast.Module, lines: list[str], *, module: str | None, is_init: bool = False) -> ModuleContext:
    """The module-level imports, constants and other names of a parsed file (module docstring)."""
    package = package_of(module, is_init)
    ctx = ModuleContext(module)
    bindings: dict[str, int] = {}
    candidates: dict[str, ast.stmt] = {}
    deleted = ctx.deleted

    def add_import(node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__" and node.level == 0:
                ctx.future += [f"from __future__ import {a.name}" for a in node.names]
                return
            resolved = resolve_relative(node, package)
            if resolved is None:
                return
            ctx.star |= any(a.name == "*" for a in resolved.names)
            ctx.imports += [ast.unparse(ast.ImportFrom(module=resolved.module, names=[a], level=0))
                            for a in resolved.names if a.name != "*"]
        else:
            ctx.imports += [ast.unparse(ast.Import(names=[a])) for a in node.names]

    def walk(body: list[ast.stmt], top: bool) -> set[str]:
        """Names the statements surely bind (an ``if`` binds what both of its branches bind)."""
        bound: set[str] = set()
        for node in body:
            names = _bound_names(node)
            if isinstance(node, ast.Try) and _import_fallback(node):
                names = import_bindings(node)
                resolver = _Resolver(package)
                block = resolver.visit(ast.parse(ast.unparse(node)).body[0])
                if not resolver.failed:
                    ctx.imports.append(ast.unparse(block))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                add_import(node)
            elif isinstance(node, ast.If):
                orelse = walk(node.orelse, False)
                # the body of `if TYPE_CHECKING:` exists for type checkers only
                bound |= orelse if _is_type_checking(node.test) else walk(node.body, False) & orelse
            elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                bound |= walk([*node.body, *(s for h in node.handlers for s in h.body), *node.orelse,
                               *node.finalbody], False)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                bound |= walk(node.body, False)
            elif isinstance(node, ast.Delete):  # e.g. datetime.py drops its helpers for _datetime's
                deleted.update(n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name))
            elif top and isinstance(node, (ast.Assign, ast.AnnAssign)):
                target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
                    getattr(node, "target", None)
                if isinstance(target, ast.Name) and node.value is not None:
                    candidates.setdefault(target.id, node)
            for name in names:
                bindings[name] = bindings.get(name, 0) + 1
            bound.update(names)
        return bound

    certain = walk(tree.body, True)
    imported = ctx.imported = {n for stmt in ctx.imports for n in import_bindings(ast.parse(stmt).body[0])}
    for name, node in candidates.items():
        value = node.value
        copyable = (bindings.get(name) == 1 and node.end_lineno - node.lineno < MAX_CONSTANT_LINES
                    and not any(isinstance(n, _RUNS_CODE) for n in ast.walk(value)))
        if copyable:
            source = _segment(lines, node) if isinstance(node, ast.Assign) else f"{name} = {ast.unparse(value)}"
            names = frozenset(n.id for n in ast.walk(value) if isinstance(n, ast.Name))
            ctx.constants[name] = (source, names)
    # functions, classes, computed values: what is surely bound and neither imported nor copied
    ctx.globals = certain - ctx.constants.keys() - imported - deleted
    return ctx


def function_context(ctx: ModuleContext, func: ast.AST) -> dict:
    """The record fields that let the filter make one function stand alone (module docstring)."""
    names = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)}
    needed: set[str] = set()
    todo = [n for n in names if n in ctx.constants]
    while todo:  # constants read by the function, and the constants those read
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += [n for n in ctx.constants[name][1] if n in ctx.constants]
    reads = names.union(*(ctx.constants[n][1] for n in needed))
    # after a star import any other name read may be a module global: the define check tells
    others = reads - ctx.constants.keys() - ctx.imported - ctx.deleted - BUILTIN_NAMES if ctx.star else set()
    return {
        "future_imports": ctx.future,
        "module_imports": ctx.imports,
        "module_constants": {n: src for n, (src, _) in ctx.constants.items() if n in needed},
        "module_globals": sorted(reads & ctx.globals | others),
    }
