"""What a study's result depends on: the memlib modules it imports, found statically, and their bytes.

A study's cache entry and its current/stale verdict are keyed on :func:`study_sources` — its module, every memlib
module in its static import closure (``studies/common.py``, the methods and the ML core it uses, their package
``__init__`` files) and the style files that shape its figures — never on the whole package: editing one study,
the runner or the report does not retrain the other studies.

The closure is read from the source with :mod:`ast` (every ``import`` statement anywhere in a module, those inside
functions included), so nothing is imported to compute it. A module that imports memlib code by a computed name
(``importlib.import_module``) would hide an edge; :func:`dynamic_imports` lists such modules and a test keeps the
studies' closures free of them. Standard library only.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path

from .config import PACKAGE_DIR

PACKAGE = "memlib"
#: Files outside the import graph that a study's figures depend on.
STYLE_FILES = ("style/*.mplstyle",)


def module_path(name: str) -> Path | None:
    """The source file of memlib module ``name`` (``memlib.methods.knn`` → ``memlib/methods/knn.py``), or None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _resolve(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _memlib_imports(tree: ast.AST, package: str) -> set[str]:
    """The memlib modules that the ``import`` statements anywhere in ``tree`` name, with relative imports resolved
    from ``package`` (``from ..methods import knn`` names the module ``memlib.methods.knn``)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, package)
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if module_path(sub) is not None else target)
    return {m for m in out if module_path(m) is not None}


@functools.lru_cache(maxsize=None)
def _module_imports(path: Path, package: str, mtime_ns: int, size: int) -> frozenset[str]:
    """:func:`_memlib_imports` of one source file, parsed once per version of the file (its mtime and size are part
    of the cache key, so an edited file is parsed again)."""
    return frozenset(_memlib_imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), package))


def direct_imports(name: str) -> frozenset[str]:
    """The memlib modules that module ``name`` imports (at top level or inside functions)."""
    path = module_path(name)
    if path is None:
        return frozenset()
    stat = path.stat()
    return _module_imports(path, _package_of(name, path), stat.st_mtime_ns, stat.st_size)


def closure(names) -> list[str]:
    """Every memlib module reachable from ``names`` by imports, with the packages that contain them (importing
    ``memlib.methods.knn`` runs ``memlib/__init__.py`` and ``memlib/methods/__init__.py``), sorted."""
    seen: set[str] = set()
    todo = [n for n in names if module_path(n) is not None]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(direct_imports(name))
    return sorted(seen)


def notebook_imports(notebook: Path) -> list[str]:
    """The memlib modules a notebook's code cells import."""
    out = set()
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse("".join(cell.get("source", "")))
        except SyntaxError:
            continue  # a cell with IPython magics: it imports nothing we could follow
        out |= _memlib_imports(tree, PACKAGE)
    return sorted(out)


def study_sources(study: str, notebook: Path | None = None) -> list[Path]:
    """The files a study's result depends on: its module's import closure, the modules its notebook imports and
    theirs, and the figure style files."""
    roots = [f"{PACKAGE}.studies.{study}"] + (notebook_imports(notebook) if notebook is not None else [])
    files = {module_path(m) for m in closure(roots)}
    for pattern in STYLE_FILES:
        files.update(PACKAGE_DIR.glob(pattern))
    return sorted(f for f in files if f is not None)


def files_hash(files) -> str:
    """sha256 over each file's path (relative to the package) and bytes."""
    h = hashlib.sha256()
    for p in sorted(Path(f) for f in files):
        h.update(str(p.relative_to(PACKAGE_DIR)).encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def study_hash(study: str, notebook: Path | None = None) -> str:
    """Hash of :func:`study_sources` (the code a study's computation and figures depend on)."""
    return files_hash(study_sources(study, notebook))


def dynamic_imports(names) -> list[str]:
    """Modules among ``names`` that call ``importlib.import_module`` or ``__import__`` (edges a static walk misses)."""
    out = []
    for name in names:
        path = module_path(name)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                called = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if called in ("import_module", "__import__"):
                    out.append(name)
                    break
    return out
