"""Which library code a cached result depends on, as hashes of its normalised source.

An artifact is computed by a function ``compute`` (usually a closure inside a chapter's ``run``).
Its code dependencies are:

- the **top-level definition** that contains ``compute`` (the whole function or class, so that a
  closure's helpers and a class's methods count; for a ``functools.partial``, its function), and every top-level definition of the same
  module that it names, transitively (functions, classes, constants);
- every **library module** those definitions name (``train.finetune``, or a function imported from
  it), whole, with the library modules it imports, transitively.

Library modules are the modules of the ``pretraining`` package and of the package ``compute`` is
defined in. Which names a definition uses is the compiler's own scope analysis (:mod:`symtable`):
a local variable that happens to share a top-level name is not a dependency, and neither are type
annotations (they run no code). Third-party code (torch, numpy) is not hashed; its versions are in each chapter's
provenance. Source is normalised before hashing: parsed, docstrings dropped and printed again
(``ast.unparse``), so comments, docstrings and formatting never change a key, while any change to
what the code does changes it. A figure function that no ``compute`` names is never a dependency.

:func:`dependencies` returns ``{part: sha256}`` with parts named ``"pretraining/core/train.py"``
(a whole module) or ``"pretraining/chapters/ch03_depth_study.py:DepthStudy"`` (one definition).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
import inspect
import symtable
import sys
import types
from collections.abc import Callable
from pathlib import Path

__all__ = ["dependencies", "digest", "CodeDependencyError"]

LIBRARY = "pretraining"


class CodeDependencyError(ValueError):
    """``compute`` is not library code (e.g. a function defined in a notebook cell)."""


def digest(parts: dict[str, str]) -> str:
    """One sha256 over the sorted ``{part: hash}`` items."""
    h = hashlib.sha256()
    for k in sorted(parts):
        h.update(f"{k}\0{parts[k]}\0".encode())
    return h.hexdigest()


def dependencies(compute: Callable) -> dict[str, str]:
    """``{part: sha256 of its normalised source}`` of the library code ``compute``'s result depends on."""
    fn = inspect.unwrap(compute.func if isinstance(compute, functools.partial) else compute)
    code = getattr(fn, "__code__", None)
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    if code is None or file is None or Path(code.co_filename).resolve() != Path(file).resolve():
        raise CodeDependencyError(
            f"compute={getattr(compute, '__qualname__', compute)!r} is not defined in a library module "
            "(e.g. it was defined in a notebook cell); its code would not be part of the cache key. "
            "Move it into the chapter's module under lib/pretraining/chapters/")
    roots = {LIBRARY, module.__name__.split(".")[0]}
    parsed = _parsed(module.__file__)
    name = _enclosing(parsed, code.co_firstlineno)
    if name is None:
        raise CodeDependencyError(f"cannot find the definition of {fn.__qualname__} in {module.__file__}")
    out: dict[str, str] = {}
    _add_definition(module, name, roots, out)
    return out


# -- internals --------------------------------------------------------------------------------

class _Module:
    """A parsed module: normalised source of each top-level definition, the names each uses."""

    def __init__(self, path: str):
        source = Path(path).read_text()
        tree = ast.parse(source, filename=path)
        self.scopes = {(t.get_name(), t.get_lineno()): t
                       for t in symtable.symtable(source, path, "exec").get_children()}
        _strip_docstrings(tree)
        self.tree = tree
        self.normalised = ast.unparse(tree)
        self.defs: dict[str, ast.AST] = {}
        self.spans: list[tuple[int, int, str]] = []
        for node in tree.body:
            for target in _defined_names(node):
                self.defs.setdefault(target, node)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                self.spans.append((start, node.end_lineno or node.lineno, node.name))
        self.imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


@functools.lru_cache(maxsize=256)
def _parse_cached(path: str, mtime_ns: int, size: int) -> _Module:
    return _Module(path)


def _parsed(path: str) -> _Module:
    st = Path(path).stat()
    return _parse_cached(path, st.st_mtime_ns, st.st_size)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]


def _defined_names(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _enclosing(parsed: _Module, line: int) -> str | None:
    for start, end, name in parsed.spans:
        if start <= line <= end:
            return name
    return None


def _used_names(parsed: _Module, node: ast.AST) -> set[str]:
    """The module-level names ``node`` uses: its free names, not its locals, not its annotations.

    For a function or class the compiler's own scope analysis (:mod:`symtable`) decides which names
    are global; type annotations, which run no code, are left out as well.
    """
    skip: set[int] = set()
    for n in ast.walk(node):
        notes = []
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = n.args
            notes = [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs,
                                             args.vararg, args.kwarg) if a is not None] + [n.returns]
        elif isinstance(n, ast.AnnAssign):
            notes = [n.annotation]
        skip.update(id(sub) for note in notes if note is not None for sub in ast.walk(note))
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and id(n) not in skip}
    scope = parsed.scopes.get((getattr(node, "name", None), getattr(node, "lineno", None)))
    if scope is None:  # a module-level assignment: every name it uses is global
        return names
    free: set[str] = set()
    stack = [scope]
    while stack:
        table = stack.pop()
        free |= {sym.get_name() for sym in table.get_symbols() if sym.is_global()}
        stack += table.get_children()
    return names & free


def _label(module: types.ModuleType) -> str:
    """``pretraining/core/train.py``: the module's file, relative to the folder of its top package."""
    top = sys.modules[module.__name__.split(".")[0]]
    base = Path(top.__file__).parent.parent if hasattr(top, "__path__") else Path(top.__file__).parent
    return Path(module.__file__).relative_to(base).as_posix()


def _is_library(module: types.ModuleType | None, roots: set[str]) -> bool:
    return (module is not None and getattr(module, "__file__", None) is not None
            and module.__name__.split(".")[0] in roots)


def _add_definition(module: types.ModuleType, name: str, roots: set[str], out: dict[str, str]) -> None:
    key = f"{_label(module)}:{name}"
    if key in out:
        return
    parsed = _parsed(module.__file__)
    node = parsed.defs[name]
    out[key] = _sha(ast.unparse(node))
    for used in sorted(_used_names(parsed, node)):
        if used in parsed.defs and used != name:
            _add_definition(module, used, roots, out)
        elif used in vars(module):
            _add_object(vars(module)[used], module, roots, out)


def _add_object(obj: object, home: types.ModuleType, roots: set[str], out: dict[str, str]) -> None:
    """A name bound in ``home`` to a module, or to something defined in another library module."""
    target = obj if isinstance(obj, types.ModuleType) else sys.modules.get(getattr(obj, "__module__", "") or "")
    if target is not home and _is_library(target, roots):
        _add_module(target, roots, out)


def _add_module(module: types.ModuleType, roots: set[str], out: dict[str, str]) -> None:
    key = _label(module)
    if key in out:
        return
    parsed = _parsed(module.__file__)
    out[key] = _sha(parsed.normalised)
    for node in parsed.imports:
        for name in _imported_modules(node, module):
            try:
                imported = importlib.import_module(name)
            except ImportError:
                continue
            if _is_library(imported, roots):
                _add_module(imported, roots, out)


def _imported_modules(node: ast.Import | ast.ImportFrom, module: types.ModuleType) -> list[str]:
    """Absolute names of the modules an import statement of ``module`` brings in.

    ``from . import train`` brings in the submodule ``train``; ``from .train import finetune``
    brings in ``train`` only.
    """
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        package = module.__name__ if hasattr(module, "__path__") else module.__name__.rpartition(".")[0]
        base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
    else:
        base = node.module or ""
    names = [base]
    parent = sys.modules.get(base)
    if parent is not None and hasattr(parent, "__path__"):
        names += [f"{base}.{a.name}" for a in node.names
                  if isinstance(getattr(parent, a.name, None), types.ModuleType)]
    return names
