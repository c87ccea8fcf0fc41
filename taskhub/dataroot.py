"""``data.root``, enforced where a media file is opened.

Reading a data file already refuses paths outside the root, but a path inside it can be
swapped for a symlink to a file elsewhere while the run goes on (a long predict, an
epoch of training). So the file is resolved and checked again when it is opened, and
the resolved path is what gets opened.

The root is process-wide while a run holds it (set by :func:`confined_to` around the
run), so preprocessing worker threads see it too; a run without ``data.root`` and the
Python API's ``task.predict`` are not confined.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_roots: list[str] = []


class OutsideRootError(PermissionError):
    """A media path that resolves outside ``data.root``; an OSError, so readers report it
    like any other unreadable file (one line naming file and row)."""


@contextmanager
def confined_to(root: str | None) -> Iterator[None]:
    """Confine media files opened in this block to ``root`` (None: no confinement)."""
    if root is None:
        yield
        return
    _roots.append(os.path.realpath(os.path.expanduser(root)))
    try:
        yield
    finally:
        _roots.pop()


def checked_path(path: str | os.PathLike) -> str:
    """The path to open: resolved, and inside the current ``data.root`` if there is one."""
    if not _roots:
        return os.fspath(path)
    root, real = _roots[-1], os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise OutsideRootError(f"{os.fspath(path)} resolves to {real}, outside data.root ({root})")
    return real
