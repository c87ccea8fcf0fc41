"""Content keys of files and folders, at three costs: exact (every byte hashed), stamped
(size, mtime and the ends of a file: weights too big to hash on every start) and listed
(names, sizes and mtimes of a tree). Caches and resumes key on them; this module sits at
the bottom so that any layer can use it."""

from __future__ import annotations

import hashlib
import os

#: Bytes hashed at each end of a file by :func:`file_stamp`.
STAMP_BYTES = 1 << 20

_file_hashes: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, memoised per (path, size, mtime) within the process."""
    stat = os.stat(path)
    memo = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _file_hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _file_hashes[memo] = digest.hexdigest()
    return _file_hashes[memo]


def folder_digest(folder: str | os.PathLike, exclude_suffixes: tuple[str, ...] = ()) -> str:
    """Hash of the names and bytes of the files directly in a folder (a checkpoint)."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not name.endswith(exclude_suffixes) and not name.startswith("."):
            digest.update(name.encode() + b"\0" + file_digest(path).encode())
    return digest.hexdigest()


def file_stamp(path: str | os.PathLike) -> str:
    """A cheap content key for files too big to hash on every start (weights): size,
    modification time (ns) and the sha256 of the first and last MiB. A file rewritten
    with other bytes changes its mtime; one rewritten with the same bytes does too, which
    only costs a refused reuse."""
    stat = os.stat(path)
    digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        digest.update(f.read(STAMP_BYTES))
        if stat.st_size > STAMP_BYTES:
            f.seek(max(STAMP_BYTES, stat.st_size - STAMP_BYTES))
            digest.update(f.read())
    return digest.hexdigest()


def folder_stamp(folder: str | os.PathLike) -> str:
    """:func:`file_stamp` of every file directly in a folder (a checkpoint), with names."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not name.startswith("."):
            digest.update(f"{name}\0{file_stamp(path)}\0".encode())
    return digest.hexdigest()


def tree_listing_key(folder: str | os.PathLike) -> str:
    """Names, sizes and modification times of every file under a folder (a dataset
    folder of media files: hashing their bytes would read the whole dataset)."""
    digest = hashlib.sha256()
    for parent, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(parent, name))
            digest.update(f"{os.path.relpath(os.path.join(parent, name), folder)}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()
