"""What the workflow needs to know about the package itself: which source files a script runs.

Snakemake re-runs a job when its script changes, but it does not see the modules that script
imports. The rules therefore declare the package files a script can execute as inputs
(``input: code=script_code("scripts/x.py")``): editing ``headstart/models/transformer.py`` re-runs
every job whose script imports it, directly or through another module, and nothing else.

The set is found statically: the ``headstart`` imports of the script (at any depth of the file,
so imports inside functions count), then of each imported module, transitively, plus every
package ``__init__.py`` on the way (Python runs those when it imports a submodule). It is an
over-approximation of what a run executes, never an under-approximation, except for imports
built at run time from strings (``importlib.import_module(name)``), which this package avoids.
"""
from __future__ import annotations

import ast
import os
from functools import lru_cache
from pathlib import Path

PACKAGE = "headstart"


def _module_file(src: Path, module: str) -> Path | None:
    """The file of ``module`` (``headstart.x.y``) under ``src``, or None when it is not a module."""
    base = src.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


@lru_cache(maxsize=None)
def _imported(path: Path, module: str | None) -> frozenset[str]:
    """Names of ``headstart`` modules (or names inside them) that the file at ``path`` imports
    (each file parsed once per process: the Snakefile asks for every script's closure)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (module if path.name == "__init__.py" else module.rpartition(".")[0]) if module else ""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:                                   # relative: from .x import y
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)   # may be submodules
    return frozenset(n for n in names if n == PACKAGE or n.startswith(PACKAGE + "."))


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@lru_cache(maxsize=None)
def _closure(script: str, src: str) -> tuple[str, ...]:
    src_path = Path(src)
    todo = sorted(_imported(Path(script), None))
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        for mod in _with_parents(name):
            if mod in seen:
                continue
            f = _module_file(src_path, mod)
            if f is None:          # a name inside a module (from x import func), not a module
                continue
            seen[mod] = f
            todo.extend(_imported(f, mod))
    return tuple(sorted(str(f) for f in seen.values()))


def script_code(script: str | os.PathLike, src: str | os.PathLike) -> list[str]:
    """The package source files that ``script`` can execute: its ``headstart`` imports and theirs,
    transitively, with the packages' ``__init__.py`` files. ``src`` is the folder that holds the
    ``headstart`` package (the repository's ``src/``). Paths come back as given (relative stays
    relative), sorted."""
    script, src = Path(script), Path(src)
    if not script.is_file():
        raise FileNotFoundError(f"{script}: script not found")
    if not (src / PACKAGE / "__init__.py").is_file():
        raise FileNotFoundError(f"{src}: no {PACKAGE} package here (expected {src / PACKAGE / '__init__.py'})")
    return list(_closure(str(script), str(src)))
