"""Confining paths to ``functions.file_roots``: no traversal, no symlink out of a root."""

from __future__ import annotations

import os
from pathlib import Path

from minion.errors import FunctionError


def confined(path: str, roots: tuple[Path, ...], *, parent_only: bool = False) -> Path:
    """The real path of ``path`` if it lies inside one of ``roots``, else ``FunctionError``.

    Symlinks are resolved before the check, so a link that points out of a root is refused.
    With ``parent_only`` (writing a file that may not exist yet), the parent folder is
    resolved and the last component must not be a symlink.
    """
    if not roots:
        raise FunctionError("file functions are disabled: list the allowed folders in functions.file_roots")
    if not isinstance(path, str) or not path or "\0" in path:
        raise FunctionError("a path is a non-empty string")
    candidate = Path(path)
    if not candidate.is_absolute():
        raise FunctionError(f"{path!r}: use an absolute path")
    if ".." in candidate.parts:
        raise FunctionError(f"{path!r}: '..' is not allowed")
    if parent_only:
        real = Path(os.path.realpath(candidate.parent)) / candidate.name
        if candidate.is_symlink():
            raise FunctionError(f"{path!r} is a symlink; refusing to write through it")
    else:
        real = Path(os.path.realpath(candidate))
    for root in roots:
        real_root = Path(os.path.realpath(root))
        if real == real_root or real_root in real.parents:
            return real
    raise FunctionError(f"{path!r} is outside functions.file_roots")
