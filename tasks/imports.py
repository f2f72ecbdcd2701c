"""Importing user code named by a `module:attribute` path in a spec."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any


def ensure_import_roots(base_dir: Path) -> None:
    """Put the spec's folder and the working directory on `sys.path`.

    A spec's `module:attribute` paths are looked up in its own folder first, then
    in the working directory, then in the installed packages. The change to
    `sys.path` lasts for the whole process, because trials import the same module
    again later.
    """
    for root in (str(Path.cwd()), str(base_dir)):
        if root not in sys.path:
            sys.path.insert(0, root)


def import_object(path: str, base_dir: Path) -> Any:
    """Import the object named by `path` ("package.module:attribute").

    Raises:
        ValueError: the path is malformed, or the module or attribute is not found.
            The message names the value and what to change.
    """
    module_name, separator, attribute = path.partition(":")
    if not separator or not module_name or not attribute:
        raise ValueError(
            f"must have the form 'module:attribute'. Received: {path!r}. "
            "Write the module's import path, a colon and the name of the build "
            "function or HyperModel, e.g. 'digits_model:build_model'."
        )

    ensure_import_roots(base_dir)
    module = _import_module(module_name, path, base_dir)

    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            public = sorted(name for name in vars(module) if not name.startswith("_"))
            raise ValueError(
                f"module {module_name!r} has no attribute {attribute!r}. "
                f"Received: {path!r}. Use one of the names it defines: {public}."
            )
        target = getattr(target, part)
    return target


def _import_module(module_name: str, path: str, base_dir: Path) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or module_name
        if module_name != missing and not module_name.startswith(missing + "."):
            raise ValueError(
                f"importing module {module_name!r} failed because it imports "
                f"{missing!r}, which is not installed. Received: {path!r}. "
                f"Install {missing!r} or remove that import."
            ) from error
        raise ValueError(
            f"module {module_name!r} was not found. Received: {path!r}. Modules are "
            f"looked up in the spec's folder ({base_dir}), the working directory "
            f"({Path.cwd()}) and the installed packages. Fix the module path, or "
            "move the module into one of those places."
        ) from error
    except Exception as error:
        raise ValueError(
            f"importing module {module_name!r} failed with "
            f"{type(error).__name__}: {error}. Received: {path!r}. Fix the error "
            "in that module."
        ) from error
